"""CORS headers on the refusals our middleware answers itself (429, 503, 413, 400): BentoML runs the middleware a
service adds outside its own CORS middleware, so without this a page on an allowed origin sees a network error
instead of the message and its Retry-After."""

from __future__ import annotations


class RefusalCors:
    """ASGI middleware, outermost: adds Access-Control-Allow-Origin (and exposes Retry-After) to a response that
    lacks it, when the request comes from one of the configured origins (KITCHENWARE_CORS_ORIGINS)."""

    def __init__(self, app, origins: tuple[str, ...]):
        self.app = app
        self.origins = set(origins)

    async def __call__(self, scope, receive, send) -> None:
        origin = dict(scope.get("headers", [])).get(b"origin", b"") if scope["type"] == "http" else b""
        if not origin or origin.decode("latin-1") not in self.origins:
            return await self.app(scope, receive, send)

        async def send_with_cors(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"access-control-allow-origin" for name, _ in headers):
                    headers += [
                        (b"access-control-allow-origin", origin),
                        (b"access-control-expose-headers", b"Retry-After"),
                        (b"vary", b"Origin"),
                    ]
                    message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_with_cors)
