"""The review queue over HTTP, for the review page (/ui/review/): the stored photos most worth a label, each photo,
and a reviewer's label, written as a seller's choice is but marked as a reviewer's.

    GET  /review/queue?limit=N     the queue (feedback/review.py) and the model's classes in their order
    GET  /review/photo/{photo_id}  the stored photo, as a JPEG of at most PREVIEW_PIXELS a side
    POST /review/label             {"photo_id": ..., "label": a class or "other"}

A small Starlette app that service.py mounts at /review, as erasure.py is at /feedback: it reaches the store and the
model through the service instance of its worker. Each route needs `Authorization: Bearer <KITCHENWARE_API_KEY>`
(401 without it or with a wrong key) and is off without a key on the server (403): the photos are the sellers'.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kitchenware.core.preprocessing import ImageError, load_image
from kitchenware.feedback.repository import OTHER, PHOTO_ID, UnknownPhoto
from kitchenware.feedback.review import rank
from kitchenware.feedback.tables import REVIEWER
from kitchenware.serving.feedback import refusal
from kitchenware.serving.upload import error, storage_reason

DEFAULT_LIMIT, MAX_LIMIT = 50, 500
PREVIEW_PIXELS = 800
PRIVATE = {"Cache-Control": "no-store"}  # sellers' photos: no cache keeps them


def _refused(request: Request) -> JSONResponse | None:
    return refusal(bentoml.get_current_service().recorder, request.headers.get("authorization"), "the review queue")


async def queue(request: Request) -> JSONResponse:
    if refused := _refused(request):
        return refused
    limit = request.query_params.get("limit", str(DEFAULT_LIMIT))
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        return error(f"limit={limit!r}: send a whole number of photos from 1 to {MAX_LIMIT}")
    service = bentoml.get_current_service()
    try:
        picks = await asyncio.to_thread(lambda: rank(service.recorder.store().unlabelled(), int(limit)))
    except Exception as problem:  # noqa: BLE001 - the database is down: say so, keep serving
        return error(f"the queue could not be read ({storage_reason(problem, '')}): try again later", 503)
    photos = [{k: v for k, v in dataclasses.asdict(pick).items() if k != "signature"} for pick in picks]
    return JSONResponse({"class_names": service.model.class_names, "other": OTHER, "photos": photos}, headers=PRIVATE)


def _preview(photo: bytes, max_pixels: int) -> bytes:
    """The photo upright as a JPEG, at most PREVIEW_PIXELS a side: decoded and written again, never the bytes a
    seller sent, whatever they hold besides the picture."""
    image = load_image(photo, max_pixels, PREVIEW_PIXELS)
    image.thumbnail((PREVIEW_PIXELS, PREVIEW_PIXELS))
    encoded = io.BytesIO()
    image.save(encoded, "JPEG", quality=85)
    return encoded.getvalue()


async def photo(request: Request) -> Response:
    if refused := _refused(request):
        return refused
    photo_id = request.path_params["photo_id"]
    if not PHOTO_ID.fullmatch(photo_id):
        return error("a photo id is the 64 lower-case hexadecimal characters the queue lists", 400)
    recorder = bentoml.get_current_service().recorder
    try:
        path = recorder.store().photo_path(photo_id)
        jpeg = await asyncio.to_thread(lambda: _preview(path.read_bytes(), recorder.settings.max_pixels))
    except FileNotFoundError:
        return error("no stored photo has this id: it was erased or evicted meanwhile, reload the queue", 404)
    except ImageError as problem:
        return error(f"the stored photo cannot be shown: {problem}", 422)
    except Exception as problem:  # noqa: BLE001 - the database could not be opened: say so, keep serving
        return error(f"the photo could not be read ({storage_reason(problem, photo_id)}): try again later", 503)
    return Response(jpeg, media_type="image/jpeg", headers=PRIVATE)


async def _json_object(request: Request) -> dict | None:
    """The request's JSON object (UploadGuard has bounded the body to FEEDBACK_MAX_BYTES); None when it is not one."""
    try:
        parsed = json.loads(await request.body())
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


async def label(request: Request) -> JSONResponse:
    if refused := _refused(request):
        return refused
    sent = await _json_object(request)
    if sent is None or not isinstance(sent.get("photo_id"), str) or not isinstance(sent.get("label"), str):
        return error('send a JSON object {"photo_id": "<id from the queue>", "label": "<a class or other>"}')
    service = bentoml.get_current_service()
    photo_id, chosen = sent["photo_id"], sent["label"]
    try:
        said = await asyncio.to_thread(service.recorder.choose, photo_id, chosen, service.model.class_names, REVIEWER)
    except UnknownPhoto:
        return error("no classified photo has this id (or it was erased): reload the queue", 404)
    except ValueError as problem:
        return error(f"{problem}: send one of them as label", 400)
    except Exception as problem:  # noqa: BLE001 - the database is down or the disk full: say so, keep serving
        return error(f"the label could not be saved ({storage_reason(problem, photo_id)}): try again later", 503)
    return JSONResponse({"photo_id": photo_id, "label": chosen, "predicted": said})


REVIEW = Starlette(
    routes=[
        Route("/queue", queue, methods=["GET"]),
        Route("/photo/{photo_id}", photo, methods=["GET"]),
        Route("/label", label, methods=["POST"]),
    ]
)
