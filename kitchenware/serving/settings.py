"""The service's settings: every KITCHENWARE_* environment variable, read once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from kitchenware.core.card import DEFAULT_MODEL_NAME
from kitchenware.core.preprocessing import DEFAULT_MAX_PIXELS
from kitchenware.feedback.quota import Quota
from kitchenware.feedback.repository import photos_beside
from kitchenware.serving.load_shedding import DEFAULT_MAX_QUEUED
from kitchenware.serving.rate_limit import RateLimit
from kitchenware.serving.tokens import secret_from_environment


def _environment_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} must be a whole number") from None


def _environment_float(name: str) -> float | None:
    value = os.environ.get(name, "")
    try:
        return float(value) if value else None
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} must be a number") from None


def _environment_share(name: str, default: float) -> float:
    """A number from 0 to 1."""
    share = _environment_float(name)
    if share is None:
        return default
    if not 0 <= share <= 1:
        raise ValueError(f"environment variable {name}={share:g} must be a share from 0 to 1 (e.g. 0.1 for 10 %)")
    return share


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity where the system has one (Linux), else every core (macOS,
    Windows)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class ServiceSettings:
    """Read once at start-up; every variable is optional."""

    model_tag: str  # KITCHENWARE_MODEL
    max_upload_bytes: int  # KITCHENWARE_MAX_UPLOAD_MB
    max_pixels: int  # KITCHENWARE_MAX_PIXELS
    max_batch_images: int  # KITCHENWARE_MAX_BATCH_IMAGES
    runtime: str  # KITCHENWARE_RUNTIME: onnx, onnx-int8-cascade or tensorflow; empty: the model's preferred one
    workers: int  # KITCHENWARE_WORKERS
    threads: int  # KITCHENWARE_THREADS: threads per worker for the forward pass
    min_confidence: float | None  # KITCHENWARE_MIN_CONFIDENCE: "unsure" below it (default: the model's own)
    ood_threshold: float | None  # KITCHENWARE_OOD_THRESHOLD: "unknown" above it (default: the model's own)
    feedback_db: str  # KITCHENWARE_FEEDBACK_DB: a SQLAlchemy URL; empty: nothing is stored
    feedback_photos: Path  # KITCHENWARE_FEEDBACK_PHOTOS: default, a photos/ folder beside a SQLite file
    # KITCHENWARE_FEEDBACK_MAX_PHOTOS, KITCHENWARE_FEEDBACK_MAX_MB (MB like KITCHENWARE_MAX_UPLOAD_MB; volumes are
    # sized in them, not in bytes): the oldest photos without a seller's choice make room; 0 or unset, no limit
    feedback_quota: Quota
    # KITCHENWARE_FEEDBACK_KEEP_CONFIDENT: the share of `confident` answers stored (every unsure and unknown one is);
    # 1 by default (feedback/sampling.py)
    feedback_keep_confident: float
    api_key: str  # KITCHENWARE_API_KEY: when set, POST /feedback takes `Authorization: Bearer <key>` (bulk, admin)
    feedback_secret: bytes = field(repr=False)  # KITCHENWARE_FEEDBACK_SECRET: signs feedback tokens (see tokens.py)
    feedback_token_minutes: int  # KITCHENWARE_FEEDBACK_TOKEN_MINUTES: how long a /classify answer's token lasts
    cors_origins: tuple[str, ...]  # KITCHENWARE_CORS_ORIGINS: comma-separated origins whose pages may call the API
    max_queued: int  # KITCHENWARE_MAX_QUEUED: classify requests inside a worker at once, 503 beyond (load_shedding.py)
    rate_limit: RateLimit | None  # KITCHENWARE_RATE_LIMIT: e.g. "10/s,burst=20" per client; unset: off (rate_limit.py)

    def http(self) -> dict:
        """BentoML's http settings: the port, and CORS for the configured origins (off when there are none)."""
        if not self.cors_origins:
            return {"port": 3000}
        cors = {
            "enabled": True,
            "access_control_allow_origins": list(self.cors_origins),
            "access_control_allow_methods": ["GET", "POST", "OPTIONS"],
            "access_control_allow_headers": ["Authorization", "Content-Type"],
            "access_control_max_age": 600,
        }
        return {"port": 3000, "cors": cors}

    @classmethod
    def from_environment(cls) -> ServiceSettings:
        workers = _environment_int("KITCHENWARE_WORKERS", 1)
        feedback_db = os.environ.get("KITCHENWARE_FEEDBACK_DB", "")
        cores = available_cores()
        return cls(
            model_tag=os.environ.get("KITCHENWARE_MODEL", f"{DEFAULT_MODEL_NAME}:latest"),
            max_upload_bytes=_environment_int("KITCHENWARE_MAX_UPLOAD_MB", 10) * 1024 * 1024,
            max_pixels=_environment_int("KITCHENWARE_MAX_PIXELS", DEFAULT_MAX_PIXELS),
            max_batch_images=_environment_int("KITCHENWARE_MAX_BATCH_IMAGES", 32),
            runtime=os.environ.get("KITCHENWARE_RUNTIME", ""),
            workers=workers,
            threads=_environment_int("KITCHENWARE_THREADS", max(1, cores // workers)),
            min_confidence=_environment_float("KITCHENWARE_MIN_CONFIDENCE"),
            ood_threshold=_environment_float("KITCHENWARE_OOD_THRESHOLD"),
            feedback_db=feedback_db,
            feedback_photos=Path(os.environ.get("KITCHENWARE_FEEDBACK_PHOTOS", "") or photos_beside(feedback_db)),
            feedback_quota=Quota(
                _environment_int("KITCHENWARE_FEEDBACK_MAX_PHOTOS", 0),
                _environment_int("KITCHENWARE_FEEDBACK_MAX_MB", 0) * 1024 * 1024,
            ),
            feedback_keep_confident=_environment_share("KITCHENWARE_FEEDBACK_KEEP_CONFIDENT", 1.0),
            api_key=os.environ.get("KITCHENWARE_API_KEY", ""),
            feedback_secret=secret_from_environment() if feedback_db else b"",
            feedback_token_minutes=_environment_int("KITCHENWARE_FEEDBACK_TOKEN_MINUTES", 60),
            cors_origins=tuple(
                origin.strip() for origin in os.environ.get("KITCHENWARE_CORS_ORIGINS", "").split(",") if origin.strip()
            ),
            max_queued=_environment_int("KITCHENWARE_MAX_QUEUED", DEFAULT_MAX_QUEUED),
            rate_limit=RateLimit.parse(os.environ.get("KITCHENWARE_RATE_LIMIT", "")),
        )
