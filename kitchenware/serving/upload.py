"""Uploads before they reach the service: size and form checks, and the one shape of every error."""

from __future__ import annotations

from starlette.responses import JSONResponse

CLASSIFY_ROUTES = ("/classify", "/classify_batch", "/explain")


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
        field = "images" if scope["path"] == "/classify_batch" else "image"
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
