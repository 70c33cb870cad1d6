"""What Swagger UI at / says about this service: its title, version and endpoints, the decision values, and the
way to the page for people (/ui), instead of BentoML's boilerplate (whose badge images need the internet).

BentoML builds the OpenAPI document's `info` from the bento's description, or its own README text when served
from source; this ASGI middleware replaces that `info` in /docs.json, the document Swagger UI reads, and adds the
route BentoML does not describe (DELETE /feedback/{photo_id}, mounted from erasure.py).
"""

from __future__ import annotations

import json

from kitchenware import __version__
from kitchenware.serving.erasure import OPENAPI_PATHS, OPENAPI_SECURITY_SCHEMES

TITLE = "Kitchenware classifier"
# BentoML's Swagger UI shows only the version badges of `info.title`: the description repeats the title.
DESCRIPTION = f"""\
# {TITLE}

Classifies photos of kitchenware: **cup, fork, glass, knife, plate, spoon** (the classes of the model served).

**For people: [open the page at /ui](/ui)**: drop a photo, see the category and where the model looked,
correct it.

Endpoints:
- `POST /classify`: one photo (multipart field `image`; JPEG, PNG, WebP, HEIC, BMP, GIF, TIFF) -> its class,
  calibrated probabilities and a decision.
- `POST /classify_batch`: several photos (field `images`) in one forward pass, answers in upload order.
- `POST /explain`: the photo with a heat map of where the model looked for the top class (or `label`), as
  a PNG; with `grid=true`, the class activation map itself as JSON.
- `POST /feedback`: the category the seller finally chose for a classified photo (`photo_id`, `label`), when
  feedback storage is on, with `token`: the `feedback_token` of the photo's answer (or, for bulk use,
  `Authorization: Bearer <key>` when the service has an API key).
- `DELETE /feedback/{{photo_id}}`: erase a stored photo, its file and every row about it (API key required).
- `GET /review/queue`, `GET /review/photo/{{photo_id}}`, `POST /review/label`: the stored photos most worth a label
  and a reviewer's label, for the review page [/ui/review/](/ui/review/) (API key required).
- `POST /model_info`: the model card: classes, training data, validation figures, decision thresholds.
- `GET /metrics`: Prometheus metrics, answers by decision and label, live agreement with sellers' choices.

The decision in every answer:
- `confident`: suggest `label`;
- `unsure`: show the top few classes and let the person choose;
- `unknown`: the photo does not look like any of the classes (not kitchenware, or unlike every training photo).

Errors are JSON `{{"error": "what was wrong and what to do"}}` with a 4xx status.
"""


class ServiceDescription:
    """ASGI middleware: /docs.json with this project's title, version and description."""

    def __init__(self, app, version: str = __version__):
        self.app = app
        self.info = {"title": TITLE, "version": version, "description": DESCRIPTION}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != "/docs.json":
            return await self.app(scope, receive, send)
        start, body = {}, []

        async def keep(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                body.append(message.get("body", b""))

        await self.app(scope, receive, keep)
        content = b"".join(body)
        if start.get("status") == 200:
            document = json.loads(content)
            document["info"] = self.info
            document.setdefault("paths", {}).update(OPENAPI_PATHS)
            document.setdefault("components", {}).setdefault("securitySchemes", {}).update(OPENAPI_SECURITY_SCHEMES)
            content = json.dumps(document).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 500), "headers": headers})
        await send({"type": "http.response.body", "body": content})
