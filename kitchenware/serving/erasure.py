"""DELETE /feedback/{photo_id}: a stored photo erased on request, its file and every row about it.

BentoML's @bentoml.api routes are POST only: this one is a small Starlette app that service.py mounts at /feedback
(BentoML's PassiveMount lets POST /feedback through to the API). It reaches the feedback store through the
service instance of its worker (bentoml.get_current_service()), the store /classify writes to.

Erasure is never open: without KITCHENWARE_API_KEY on the server it is refused (403), and with one it needs
`Authorization: Bearer <key>`, checked as /feedback checks it. No answer repeats a photo id it was not sure of.
"""

from __future__ import annotations

import asyncio
import logging

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kitchenware.feedback.repository import PHOTO_ID, UnknownPhoto
from kitchenware.serving.feedback import Recorder, refusal
from kitchenware.serving.upload import error, storage_reason

log = logging.getLogger(__name__)


async def erase(request: Request) -> JSONResponse:
    recorder: Recorder = bentoml.get_current_service().recorder
    refused = refusal(recorder, request.headers.get("authorization"), "erasure")
    if refused is not None:
        return refused
    photo_id = request.path_params["photo_id"]
    if not PHOTO_ID.fullmatch(photo_id):
        return error("a photo id is the 64 lower-case hexadecimal characters of the photo_id /classify answered", 400)
    try:
        erased = await asyncio.to_thread(lambda: recorder.store().erase(photo_id))
    except UnknownPhoto as problem:  # its message does not hold the id
        return error(f"{problem}: send the photo_id /classify answered", 404)
    except Exception as problem:  # noqa: BLE001 - the database is down or the disk failing: say so, keep serving
        return error(f"the photo could not be erased ({storage_reason(problem, photo_id)}): try again later", 503)
    log.info("a photo was erased on request: %s", erased)
    answer = {"photo_id": photo_id, "classifications": erased.classifications, "choices": erased.choices}
    return JSONResponse({**answer, "file_removed": erased.files == 1})


ERASURE = Starlette(routes=[Route("/{photo_id}", erase, methods=["DELETE"])])

# Its entry in the OpenAPI document (openapi.py adds it: BentoML describes only its own routes).
OPENAPI_PATHS = {
    "/feedback/{photo_id}": {
        "delete": {
            "tags": ["Service APIs"],
            "summary": "Erase a stored photo: its file and every row about it",
            "description": "Needs `Authorization: Bearer <key>`; refused (403) when the service has no "
            "KITCHENWARE_API_KEY. 404 for an id the store does not hold, 503 when storage is off or failing.",
            "security": [{"bearer": []}],
            "parameters": [
                {
                    "name": "photo_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    "description": "the photo_id /classify answered",
                }
            ],
            "responses": {
                "200": {"description": "erased: the id, the rows removed, whether the file was still there"},
                "400": {"description": "not a photo id"},
                "401": {"description": "missing or wrong API key"},
                "403": {"description": "the service has no API key: erasure is off"},
                "404": {"description": "no stored photo has this id"},
                "503": {"description": "feedback storage is off or failing"},
            },
        }
    }
}
OPENAPI_SECURITY_SCHEMES = {"bearer": {"type": "http", "scheme": "bearer"}}
