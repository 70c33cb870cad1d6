"""The service's side of the feedback store: keep what was classified, take the sellers' choices, and never let
storage trouble turn /classify into an error (the answer comes without photo_id; the failure is logged at most
once a minute and counted in /metrics)."""

from __future__ import annotations

import hmac
import logging
import threading
import time

from kitchenware.feedback.repository import Classified, FeedbackStore
from kitchenware.serving.metrics import FEEDBACK, STORAGE_FAILURES
from kitchenware.serving.settings import ServiceSettings

log = logging.getLogger(__name__)
LOG_EVERY_SECONDS = 60


class Recorder:
    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self._store: FeedbackStore | None = None
        self._lock = threading.Lock()
        self._last_logged = -LOG_EVERY_SECONDS

    @property
    def enabled(self) -> bool:
        return bool(self.settings.feedback_db)

    def store(self) -> FeedbackStore:
        """The store, opened (and its schema migrated) on first use, and again after a failure to open it."""
        with self._lock:
            if self._store is None:
                self._store = FeedbackStore(self.settings.feedback_db, self.settings.feedback_photos)
            return self._store

    def record(self, photo: bytes, classified: Classified) -> str | None:
        """The photo's id once stored; None when storage failed (logged, counted), the answer goes out anyway."""
        try:
            return self.store().record(photo, classified)
        except Exception as problem:  # noqa: BLE001 - whatever the database or the disk raises, /classify answers
            STORAGE_FAILURES.inc()
            now = time.monotonic()
            if now - self._last_logged >= LOG_EVERY_SECONDS:
                self._last_logged = now
                log.error("feedback storage failed, answering without photo_id (logged once a minute): %s", problem)
            return None

    def authorised(self, authorization: str | None) -> bool:
        """True without an API key; with one, the header must be `Bearer <key>` (compared in constant time)."""
        if not self.settings.api_key:
            return True
        expected = f"Bearer {self.settings.api_key}".encode()
        return hmac.compare_digest((authorization or "").encode(), expected)

    def choose(self, photo_id: str, label: str, class_names: list[str]) -> str:
        said = self.store().choose(photo_id, label, class_names)
        FEEDBACK.labels(chosen=label, agrees=str(said == label).lower()).inc()
        return said
