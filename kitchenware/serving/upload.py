"""Bodies before they reach the service: size and form checks, and the one shape of every error."""

from __future__ import annotations

import math

from starlette.responses import JSONResponse

CLASSIFY_ROUTES = ("/classify", "/classify_batch", "/explain")
FEEDBACK_MAX_BYTES = 4096  # a choice is a photo id, a label and a token: about 250 bytes of JSON
# The routes that take a small JSON body, limited to FEEDBACK_MAX_BYTES: what the body is, and what it holds.
JSON_ROUTES = {"/feedback": ("feedback", "photo_id, label and token"), "/review/label": ("label", "photo_id and label")}
GUARDED_ROUTES = (*CLASSIFY_ROUTES, *JSON_ROUTES)


def error(message: str, status: int = 400) -> JSONResponse:
    """The one shape of every error: {"error": "<what was wrong and what to do>"}."""
    return JSONResponse({"error": message}, status_code=status)


def retry_later(reason: str, seconds: float, status: int) -> JSONResponse:
    """A refusal that passes: the error says why and when to retry, and Retry-After says it to HTTP clients
    (whole seconds, at least 1)."""
    retry_after = max(1, math.ceil(seconds))
    refused = error(f"{reason}: retry after {retry_after} s", status)
    refused.headers["Retry-After"] = str(retry_after)
    return refused


def storage_reason(problem: Exception, photo_id: str) -> str:
    """What a storage failure says in an error answer: the driver's first line, without the SQL and its parameters,
    and never the photo id."""
    reason = str(problem).partition("\n")[0]
    return reason.replace(photo_id, "<photo_id>") if photo_id else reason


class TooLarge(Exception):
    """A body past its limit."""


async def body_within(receive, limit: int) -> bytes | None:
    """The whole request body, buffering at most `limit` bytes (TooLarge past it); None when the client left."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


class UploadGuard:
    """ASGI middleware in front of the routes that take a body, checked before anything is parsed or decoded:
    413 for bodies over the limit (the upload limit for the classify routes, FEEDBACK_MAX_BYTES for /feedback and
    /review/label),
    400 for classify bodies that are not a multipart form upload. Buffers at most the limit."""

    def __init__(self, app, max_upload_bytes: int):
        self.app = app
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in GUARDED_ROUTES:
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        upload = scope["path"] in CLASSIFY_ROUTES
        if upload:
            limit = self.max_upload_bytes
            too_large = f"the upload is larger than the limit of {limit / 1024 / 1024:g} MB: send a smaller photo"
        else:
            limit = FEEDBACK_MAX_BYTES
            what, holds = JSON_ROUTES[scope["path"]]
            too_large = f"the {what} is larger than the limit of {limit / 1024:g} KB: send {holds}"
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            return await error(too_large, 413)(scope, receive, send)
        field = "images" if scope["path"] == "/classify_batch" else "image"
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if upload and not content_type.startswith("multipart/form-data"):
            message = (
                f"expected a multipart/form-data upload with the photo in the field '{field}', "
                f"got content type {content_type or 'none'!r}: "
                f"e.g. curl -F '{field}=@photo.jpg' http://localhost:3000{scope['path']}"
            )
            return await error(message)(scope, receive, send)
        try:
            body = await body_within(receive, limit)
        except TooLarge:
            return await error(too_large, 413)(scope, receive, send)
        if body is None:
            return None
        if upload and f'name="{field}"'.encode() not in body:
            message = f"no photo in the form field '{field}': upload it as {field}=@photo.jpg (multipart/form-data)"
            return await error(message)(scope, receive, send)
        buffered = {"type": "http.request", "body": body, "more_body": False}

        async def replay():
            nonlocal buffered
            if buffered is None:
                return await receive()
            message, buffered = buffered, None
            return message

        return await self.app(scope, replay, send)
