"""The kitchenware classifier as an HTTP service: `bentoml serve` -> Swagger UI at http://localhost:3000.

One BentoML service holds the model in its own process: an upload is decoded on a worker thread, then
runs through the network on the inference thread (two for the int8 cascade), which owns the CPU cores. Measured on
2 cores (benchmarks/RESULTS.md), this beats a separate model service with BentoML's adaptive batching: batching
gains ONNX Runtime a few percent on a CPU, while the hop between two services cost more CPU and 3x the memory.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bentoml
import numpy as np
from PIL import Image
from starlette.responses import JSONResponse, Response
from starlette.staticfiles import StaticFiles

from kitchenware.classifier import Classifier
from kitchenware.core import explain
from kitchenware.core.card import ModelCard, StoredModel
from kitchenware.core.preprocessing import ImageError, load_image
from kitchenware.feedback.repository import UnknownPhoto
from kitchenware.serving import PAGE, metrics, schemas
from kitchenware.serving.cors import RefusalCors
from kitchenware.serving.erasure import ERASURE
from kitchenware.serving.feedback import Recorder, Unauthorised, classified
from kitchenware.serving.load_shedding import LoadShedder
from kitchenware.serving.openapi import ServiceDescription
from kitchenware.serving.rate_limit import RateLimiter
from kitchenware.serving.review import REVIEW
from kitchenware.serving.schemas import Classification, FeedbackSaved
from kitchenware.serving.settings import ServiceSettings
from kitchenware.serving.tokens import TokenRefused
from kitchenware.serving.upload import UploadGuard, error, storage_reason

SETTINGS = ServiceSettings.from_environment()


@bentoml.asgi_app(StaticFiles(directory=PAGE, html=True), path="/ui", name="page")
@bentoml.asgi_app(ERASURE, path="/feedback", name="erasure")  # DELETE /feedback/{photo_id}
@bentoml.asgi_app(REVIEW, path="/review", name="review")  # the review page's queue, photos and labels
@bentoml.service(http=SETTINGS.http(), workers=SETTINGS.workers, traffic={"timeout": 120, "max_concurrency": 128})
class KitchenwareClassifier:
    """Upload a photo of kitchenware (cup, fork, glass, knife, plate, spoon): get its class, calibrated
    probabilities and a decision: "confident" (suggest the class), "unsure" (let the person choose among the
    top few) or "unknown" (not one of the classes)."""

    bento_model = bentoml.models.BentoModel(SETTINGS.model_tag)

    def __init__(self) -> None:
        stored = StoredModel(
            Path(self.bento_model.path),
            ModelCard.from_metadata(self.bento_model.info.metadata),
            str(self.bento_model.tag),
        )
        self.model = Classifier(
            stored,
            SETTINGS.runtime,
            SETTINGS.threads,
            SETTINGS.min_confidence,
            SETTINGS.ood_threshold,
            SETTINGS.max_pixels,
        )
        self.recorder = Recorder(SETTINGS)
        # The forward passes run here, as many at once as keep the worker's cores busy (one for the float network).
        self.forward_passes = ThreadPoolExecutor(self.model.network.passes_at_once, thread_name_prefix="inference")

    async def _classify(self, uploads: list[Path]) -> list[Classification]:
        """Decode the uploads in parallel (ImageError names a bad one), run them through the network, and with
        feedback storage on keep each photo and its answer."""
        photos = [upload.read_bytes() for upload in uploads]
        decoding = [asyncio.to_thread(self.model.pixels, photo) for photo in photos]
        pixels = await asyncio.gather(*decoding, return_exceptions=True)
        for position, problem in enumerate(pixels, start=1):
            if isinstance(problem, ImageError) and len(uploads) > 1:
                raise ImageError(f"photo {position} of {len(uploads)}: {problem}") from problem
            if isinstance(problem, BaseException):
                raise problem
        loop = asyncio.get_running_loop()
        decided = await loop.run_in_executor(self.forward_passes, self.model.decide, np.stack(pixels))
        metrics.count(decided, self.model.class_names)
        results = [schemas.classification(answer, self.model.name) for answer in self.model.answers(decided)]
        if self.recorder.enabled:
            for photo, result, answer in zip(photos, results, classified(results, decided, self.model.name)):
                result.photo_id = await asyncio.to_thread(self.recorder.record, photo, answer)
                result.feedback_token = result.photo_id and self.recorder.tokens.issue(result.photo_id)
        return results

    @bentoml.api
    async def classify(self, image: Path) -> Classification:
        """Classify one photo (JPEG, PNG, WebP, HEIC, BMP, GIF, TIFF)."""
        try:
            return (await self._classify([image]))[0]
        except ImageError as problem:
            return error(str(problem))

    @bentoml.api
    async def classify_batch(self, images: list[Path]) -> list[Classification]:
        """Classify several photos in one forward pass; the answers come in the order of the uploads."""
        if len(images) > SETTINGS.max_batch_images:
            return error(
                f"{len(images)} photos in one request, more than the limit of {SETTINGS.max_batch_images}: "
                "split them over several requests"
            )
        try:
            return await self._classify(images)
        except ImageError as problem:
            return error(str(problem))

    @bentoml.api
    async def explain(self, image: Path, label: str = "", grid: bool = False) -> Image.Image:
        """Where the model looked: the photo with the class activation map of the most likely class (or of
        `label`) over it, as a PNG (bright: strong evidence for the class). With grid=true, the map itself as JSON:
        {"label", "grid": rows of cells from 0 (weakest) to 1 (strongest), top row first}."""
        if not self.model.has_class_maps:
            return error(
                "this model has no class activation map (its head has an inner Dense layer, or it was exported "
                "before maps existed): serve a model trained with the default head",
                501,
            )
        if label and label not in self.model.class_names:
            return error(
                f"label {label!r} is not one of the model's classes {self.model.class_names}: send one of them, or none"
            )
        try:
            photo = await asyncio.to_thread(
                load_image, image.read_bytes(), SETTINGS.max_pixels, self.model.card.input_size
            )
        except ImageError as problem:
            return error(str(problem))
        loop = asyncio.get_running_loop()
        explanation = await loop.run_in_executor(self.forward_passes, self.model.explain_image, photo, label or None)
        if grid:
            return JSONResponse({"label": explanation.label, "grid": np.round(explanation.grid, 4).tolist()})
        png = await asyncio.to_thread(lambda: explain.png(explanation.overlay()))
        return Response(png, media_type="image/png")

    @bentoml.api
    async def feedback(self, photo_id: str, label: str, ctx: bentoml.Context, token: str = "") -> FeedbackSaved:
        """The category the seller finally chose for a classified photo: one of the classes, or "other".
        A repeated call replaces the choice (the history is kept). Send the photo's `feedback_token` from its
        /classify answer as `token` (a page does), or, for bulk use, `Authorization: Bearer <key>` when the service
        has KITCHENWARE_API_KEY."""
        if not self.recorder.enabled:
            return refuse(ctx, "feedback storage is off: start the service with KITCHENWARE_FEEDBACK_DB set", 503)
        try:
            self.recorder.may_choose(photo_id, token, ctx.request.headers.get("authorization"))
        except Unauthorised as problem:
            return refuse(ctx, str(problem), 401)
        except TokenRefused as problem:
            return refuse(ctx, str(problem), 403)
        try:
            said = await asyncio.to_thread(self.recorder.choose, photo_id, label, self.model.class_names)
        except UnknownPhoto:
            message = "no classified photo has this id (or it was erased): send the photo_id of a /classify answer"
            return refuse(ctx, message, 404)
        except ValueError as problem:
            return refuse(ctx, f"{problem}: send one of them as label", 400)
        except Exception as problem:  # noqa: BLE001 - the database is down or the disk full: say so, keep serving
            return refuse(
                ctx, f"the choice could not be saved ({storage_reason(problem, photo_id)}): try again later", 503
            )
        return FeedbackSaved(photo_id=photo_id, label=label, predicted=said)

    @bentoml.api
    def model_info(self) -> dict:
        """The model card: tag, runtime, classes in output order, input size, training data, validation metrics, and
        the decision thresholds in force with the validation figures behind them."""
        return schemas.model_info(self.model.card, self.model.name, self.model.runtime, self.model.rule)

    def __is_ready__(self) -> bool:
        """/readyz: 503 while feedback storage is configured but unusable (BentoML runs this on a thread)."""
        return self.recorder.ready()


def refuse(ctx: bentoml.Context, message: str, status: int):
    """The error answer of an endpoint that takes bentoml.Context: BentoML answers with ctx.response's status."""
    ctx.response.status_code = status
    return error(message, status)


# Outermost first: a client past its rate, then a request past the bound, is refused before its body is read.
KitchenwareClassifier.add_asgi_middleware(RefusalCors, origins=SETTINGS.cors_origins)
KitchenwareClassifier.add_asgi_middleware(RateLimiter, limit=SETTINGS.rate_limit, api_key=SETTINGS.api_key)
KitchenwareClassifier.add_asgi_middleware(LoadShedder, max_queued=SETTINGS.max_queued)
KitchenwareClassifier.add_asgi_middleware(UploadGuard, max_upload_bytes=SETTINGS.max_upload_bytes)
KitchenwareClassifier.add_asgi_middleware(ServiceDescription)
