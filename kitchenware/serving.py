"""What the HTTP service needs besides the model: settings from the environment, answer shapes, upload checks."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from kitchenware.config import DEFAULT_MODEL_NAME
from kitchenware.preprocessing import DEFAULT_MAX_PIXELS

CLASSIFY_ROUTES = ("/classify", "/classify_batch")


def _environment_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} must be a whole number") from None


@dataclass(frozen=True)
class ServiceSettings:
    """Read once at start-up; every variable is optional."""

    model_tag: str  # KITCHENWARE_MODEL
    max_upload_bytes: int  # KITCHENWARE_MAX_UPLOAD_MB
    max_pixels: int  # KITCHENWARE_MAX_PIXELS
    max_batch_images: int  # KITCHENWARE_MAX_BATCH_IMAGES
    runtime: str  # KITCHENWARE_RUNTIME: onnx (default) or tensorflow
    workers: int  # KITCHENWARE_WORKERS
    threads: int  # KITCHENWARE_THREADS: threads per worker for the forward pass

    @classmethod
    def from_environment(cls) -> ServiceSettings:
        workers = _environment_int("KITCHENWARE_WORKERS", 1)
        cores = len(os.sched_getaffinity(0))
        return cls(
            model_tag=os.environ.get("KITCHENWARE_MODEL", f"{DEFAULT_MODEL_NAME}:latest"),
            max_upload_bytes=_environment_int("KITCHENWARE_MAX_UPLOAD_MB", 10) * 1024 * 1024,
            max_pixels=_environment_int("KITCHENWARE_MAX_PIXELS", DEFAULT_MAX_PIXELS),
            max_batch_images=_environment_int("KITCHENWARE_MAX_BATCH_IMAGES", 32),
            runtime=os.environ.get("KITCHENWARE_RUNTIME", "onnx"),
            workers=workers,
            threads=_environment_int("KITCHENWARE_THREADS", max(1, cores // workers)),
        )


class Classification(BaseModel):
    label: str = Field(description="the most likely class", examples=["cup"])
    confidence: float = Field(description="its probability", examples=[0.97])
    probabilities: dict[str, float] = Field(
        description="every class, highest first", examples=[{"cup": 0.97, "glass": 0.02, "plate": 0.01}]
    )
    model: str = Field(description="the model's tag in the BentoML store", examples=["kitchenware_classifier:abc123"])


def error(message: str, status: int = 400) -> JSONResponse:
    """The one shape of every error: {"error": "<what was wrong and what to do>"}."""
    return JSONResponse({"error": message}, status_code=status)


class UploadGuard:
    """ASGI middleware in front of the classify routes: 413 for bodies over the limit (before anything is
    decoded), 400 for bodies that are not a multipart form upload. Buffers at most the limit."""

    def __init__(self, app, max_upload_bytes: int):
        self.app = app
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in CLASSIFY_ROUTES:
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        field = "image" if scope["path"] == "/classify" else "images"
        limit_mb = self.max_upload_bytes / 1024 / 1024
        too_large = error(f"the upload is larger than the limit of {limit_mb:g} MB: send a smaller photo", 413)
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_upload_bytes:
            return await too_large(scope, receive, send)
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if not content_type.startswith("multipart/form-data"):
            message = (
                f"expected a multipart/form-data upload with the photo in the field '{field}', "
                f"got content type {content_type or 'none'!r}: "
                f"e.g. curl -F '{field}=@photo.jpg' http://localhost:3000{scope['path']}"
            )
            return await error(message)(scope, receive, send)
        body, more = [], True
        size = 0
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_upload_bytes:
                return await too_large(scope, receive, send)
            body.append(chunk)
            more = message.get("more_body", False)
        buffered = {"type": "http.request", "body": b"".join(body), "more_body": False}
        if f'name="{field}"'.encode() not in buffered["body"]:
            message = f"no photo in the form field '{field}': upload it as {field}=@photo.jpg (multipart/form-data)"
            return await error(message)(scope, receive, send)

        async def replay():
            nonlocal buffered
            if buffered is None:
                return await receive()
            message, buffered = buffered, None
            return message

        return await self.app(scope, replay, send)


def ranked(probabilities: np.ndarray, class_names: list[str]) -> dict[str, float]:
    """{class: probability}, highest first."""
    order = np.argsort(-probabilities, kind="stable")
    return {class_names[i]: round(float(probabilities[i]), 6) for i in order}


def model_card(metadata: dict, tag: str, runtime: str) -> dict:
    """The part of the model's metadata a client wants to see, and what runs it."""
    validation = metadata.get("validation", {})
    return json.loads(
        json.dumps(
            {
                "model": tag,
                "runtime": runtime,
                "class_names": metadata["class_names"],
                "input_size": metadata["input_size"],
                "architecture": metadata.get("architecture"),
                "weights": metadata.get("weights"),
                "validation": {key: validation.get(key) for key in ("accuracy", "loss", "images", "per_class")},
                "dataset": {key: metadata.get("dataset", {}).get(key) for key in ("images", "counts", "fingerprint")},
                "created": metadata.get("created"),
                "command": metadata.get("command"),
            }
        )
    )
