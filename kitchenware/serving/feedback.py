"""The service's side of the feedback store: keep what was classified, take the sellers' choices (from a page with
the photo's feedback token, in bulk with the API key), and never let storage trouble turn /classify into an error
(the answer comes without photo_id; the failure is logged at most once a minute and counted in /metrics)."""

from __future__ import annotations

import hmac
import logging
import threading
import time

from starlette.responses import JSONResponse

from kitchenware.core.decision import Answers
from kitchenware.feedback.quota import StoreFull
from kitchenware.feedback.repository import Classified, FeedbackStore
from kitchenware.feedback.review import margin, signatures
from kitchenware.feedback.tables import SELLER
from kitchenware.serving.metrics import FEEDBACK, STORAGE_FAILURES, STORE_FULL
from kitchenware.serving.schemas import Classification
from kitchenware.serving.settings import ServiceSettings
from kitchenware.serving.tokens import FeedbackTokens
from kitchenware.serving.upload import error

log = logging.getLogger(__name__)
BEARER = "'Authorization: Bearer <key>'"
LOG_EVERY_SECONDS = 60
READY_PROBE_SECONDS = 5  # /readyz asks the database at most this often


class Unauthorised(PermissionError):
    """Neither the photo's feedback token nor the right API key came with the choice."""


class Recorder:
    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self._store: FeedbackStore | None = None
        self._lock = threading.Lock()
        self._logged_at: dict[type, float] = {}  # by the kind of failure: one kind does not hide another
        self.tokens = FeedbackTokens(settings.feedback_secret, settings.feedback_token_minutes * 60)
        self._probing = threading.Lock()
        self._usable, self._probed_at = True, -float("inf")
        self.ready()  # at start-up: opens (and migrates) the store, and logs why when it cannot

    @property
    def enabled(self) -> bool:
        return bool(self.settings.feedback_db)

    def store(self) -> FeedbackStore:
        """The store, opened (and its schema migrated) on first use, and again after a failure to open it."""
        with self._lock:
            if self._store is None:
                self._store = FeedbackStore(
                    self.settings.feedback_db,
                    self.settings.feedback_photos,
                    self.settings.feedback_quota,
                    keep_confident=self.settings.feedback_keep_confident,
                )
            return self._store

    def ready(self) -> bool:
        """False until feedback storage, when configured, has opened once (the database reached, its schema accepted
        or migrated): an orchestrator sends no traffic to a replica whose database it cannot use (unreachable at
        start, a newer schema), and the log says why. Once open, an outage of the database leaves the replica ready:
        otherwise every replica would leave the load balancer at once, while /classify still answers (without
        photo_id) and /feedback says why with a 503. Opening is tried at most every READY_PROBE_SECONDS."""
        if not self.enabled or self._store is not None:
            return True
        with self._probing:
            if self._store is None and time.monotonic() - self._probed_at >= READY_PROBE_SECONDS:
                self._probed_at = time.monotonic()
                try:
                    self.store()
                except Exception as problem:  # noqa: BLE001 - whatever keeps the store from opening: not ready
                    if self._usable:
                        log.error("feedback storage is unusable, /readyz answers 503 until it is back: %s", problem)
                    self._usable = False
                else:
                    if not self._usable:
                        log.warning("feedback storage is usable again")
            return self._store is not None

    def record(self, photo: bytes, classified: Classified) -> str | None:
        """The photo's id once stored; None when the sampling rule leaves it out, or storage failed (logged,
        counted): the answer goes out anyway."""
        try:
            if not self.ready():  # not opened yet, and tried less than READY_PROBE_SECONDS ago: do not wait again
                raise ConnectionError("the feedback database could not be opened (see the log at start-up)")
            return self.store().record(photo, classified)
        except StoreFull as problem:
            STORE_FULL.inc()
            if self._time_to_log(StoreFull):
                log.warning(
                    "feedback store full, answering without photo_id (logged once a minute): %s: raise "
                    "KITCHENWARE_FEEDBACK_MAX_PHOTOS / _MAX_MB, or export and erase labelled photos",
                    problem,
                )
        except Exception as problem:  # noqa: BLE001 - whatever the database or the disk raises, /classify answers
            STORAGE_FAILURES.inc()
            if self._time_to_log(Exception):
                log.error("feedback storage failed, answering without photo_id (logged once a minute): %s", problem)
        return None

    def _time_to_log(self, kind: type) -> bool:
        """True at most once every LOG_EVERY_SECONDS for each kind of failure."""
        now = time.monotonic()
        if now - self._logged_at.get(kind, -LOG_EVERY_SECONDS) < LOG_EVERY_SECONDS:
            return False
        self._logged_at[kind] = now
        return True

    def authorised(self, authorization: str | None) -> bool:
        """True without an API key; with one, the header must be `Bearer <key>` (compared in constant time)."""
        if not self.settings.api_key:
            return True
        expected = f"Bearer {self.settings.api_key}".encode()
        return hmac.compare_digest((authorization or "").encode(), expected)

    def may_choose(self, photo_id: str, token: str, authorization: str | None) -> None:
        """Return when the choice may be saved: the API key (when there is one) in `authorization`, or the token
        of this photo's /classify answer; else raise Unauthorised, or TokenRefused saying what is wrong with it.
        Without an API key the token is the only way: nobody labels a photo they were not answered about."""
        if self.settings.api_key and self.authorised(authorization):
            return
        if token:
            return self.tokens.check(token, photo_id)
        send_token = "send the feedback_token of the photo's /classify answer as token"
        if not self.settings.api_key:
            raise Unauthorised(f"no feedback token: {send_token}")
        if authorization:
            raise Unauthorised(f"wrong API key: send {BEARER} with the right key, or {send_token}")
        raise Unauthorised(f"no feedback token nor API key: {send_token}, or the header {BEARER}")

    def choose(self, photo_id: str, label: str, class_names: list[str], source: str = SELLER) -> str:
        said = self.store().choose(photo_id, label, class_names, source)
        FEEDBACK.labels(chosen=label, agrees=str(said == label).lower()).inc()
        return said


def refusal(recorder: Recorder, authorization: str | None, what: str) -> JSONResponse | None:
    """The answer that refuses a request for `what` (erasure, the review queue), which always needs the API key and
    the store; None when it may go on. Never open: without KITCHENWARE_API_KEY on the server it is refused (403)."""
    if not recorder.settings.api_key:
        return error(f"{what} needs an API key: start the service with KITCHENWARE_API_KEY set, send {BEARER}", 403)
    if not recorder.authorised(authorization):
        return error(f"missing or wrong API key: send the header {BEARER}", 401)
    if not recorder.enabled:
        return error("feedback storage is off (KITCHENWARE_FEEDBACK_DB is not set): nothing is stored here", 503)
    return None


def classified(results: list[Classification], decided: Answers, model: str) -> list[Classified]:
    """What the store keeps of each answer: the answer, and what the review queue ranks by (feedback/review.py)."""
    signed = signatures(decided.features, len(results))
    return [
        Classified(
            result.label,
            result.confidence,
            result.decision,
            model,
            margin(result.probabilities),
            result.ood_score,
            signature,
        )
        for result, signature in zip(results, signed)
    ]
