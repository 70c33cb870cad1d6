"""Feedback tokens: each /classify answer carries a short-lived token that lets its page post the seller's choice for
that one photo to /feedback, without holding the API key.

A token is `<photo id>.<expiry, Unix seconds>.<HMAC-SHA256 of both under the server's secret, base64url>`: the
photo id is inside, so a token for one photo is refused for another; the expiry is inside, so the lifetime is set
when the token is issued.

The standard library's `hmac` rather than `itsdangerous`: its URLSafeTimedSerializer (or TimestampSigner) does the
same job (HMAC, a timestamp, SignatureExpired apart from BadSignature) but it is one more package in the serving
set for about thirty lines here; it signs with SHA-1 by default and records the signing time, checked against a
max_age at verification (its clock is overridden by subclassing), where a stored expiry and an injected clock are
what the service and its tests want.

The secret: KITCHENWARE_FEEDBACK_SECRET; else derived from KITCHENWARE_API_KEY (every replica of a keyed
deployment shares it, so a token from one is accepted by the others, and after a restart); else random, made by
the first process that reads the settings (`bentoml serve`'s own, before it starts its workers) and handed to the
workers through the environment, so every worker of that server accepts the others' tokens, but no other replica,
nor the server after a restart (logged at start-up).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable, MutableMapping

log = logging.getLogger(__name__)

SECRET_VARIABLE = "KITCHENWARE_FEEDBACK_SECRET"
MAX_TOKEN_CHARS = 256  # a token is about 120 characters; anything much longer is not one
AGAIN = "classify the photo again to get a fresh feedback_token"


class TokenRefused(ValueError):
    """The token does not allow feedback on this photo; the message says why and what to do."""


class FeedbackTokens:
    """Issue and check the tokens of one secret; `clock` gives the time in Unix seconds (injected by tests)."""

    def __init__(self, secret: bytes, lifetime_seconds: int, clock: Callable[[], float] = time.time):
        self._secret = secret
        self.lifetime_seconds = lifetime_seconds
        self._clock = clock

    def _signature(self, photo_id: str, expires: str) -> str:
        digest = hmac.new(self._secret, f"{photo_id}.{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, photo_id: str) -> str:
        expires = str(int(self._clock()) + self.lifetime_seconds)
        return f"{photo_id}.{expires}.{self._signature(photo_id, expires)}"

    def check(self, token: str, photo_id: str) -> None:
        """Return when `token` is this service's, for `photo_id`, unexpired; else raise TokenRefused."""
        parts = token.split(".") if len(token) <= MAX_TOKEN_CHARS else []
        if len(parts) != 3 or not parts[1].isdigit():
            raise TokenRefused(f"the feedback token is malformed: send the answer's feedback_token as is, or {AGAIN}")
        signed_for, expires, signature = parts
        if not hmac.compare_digest(signature.encode(), self._signature(signed_for, expires).encode()):
            raise TokenRefused(
                "the feedback token was not issued by this service (altered, or signed with another secret: after a "
                f"restart or by another replica without a shared KITCHENWARE_FEEDBACK_SECRET): {AGAIN}"
            )
        if not hmac.compare_digest(signed_for.encode(), photo_id.encode()):
            raise TokenRefused(f"the feedback token is for another photo: send this photo's feedback_token, or {AGAIN}")
        if int(expires) < self._clock():
            lifetime = f"tokens last {self.lifetime_seconds // 60} minutes"
            raise TokenRefused(f"the feedback token has expired ({lifetime}): {AGAIN}")


def secret_from_environment(environment: MutableMapping[str, str] = os.environ) -> bytes:
    """The signing secret (see the module's docstring). Without either variable, a random secret is written into
    `environment`, so the worker processes started after this call inherit it."""
    if environment.get(SECRET_VARIABLE):
        return environment[SECRET_VARIABLE].encode()
    if environment.get("KITCHENWARE_API_KEY"):
        key = environment["KITCHENWARE_API_KEY"].encode()
        return hmac.new(key, b"kitchenware feedback tokens", hashlib.sha256).digest()  # not the key itself
    environment[SECRET_VARIABLE] = secrets.token_urlsafe(32)
    log.warning(
        "%s is not set (nor KITCHENWARE_API_KEY): feedback tokens are signed with a random secret made at start-up, "
        "accepted by this server's workers but not by other replicas nor after a restart; set %s to the same long "
        "random value on every replica to keep them valid",
        SECRET_VARIABLE,
        SECRET_VARIABLE,
    )
    return environment[SECRET_VARIABLE].encode()
