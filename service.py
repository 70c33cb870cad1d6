"""The kitchenware classifier as an HTTP service: `bentoml serve` -> Swagger UI at http://localhost:3000.

Two BentoML services: `KitchenwareClassifier` takes uploads, checks and preprocesses them and answers
with labels; `ImageModel` runs the network, grouping concurrent requests into one batch (adaptive batching).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import bentoml
import numpy as np

# Only light imports here: the front service never loads TensorFlow, only ImageModel does.
from kitchenware.preprocessing import ImageError, prepare
from kitchenware.serving import Classification, ServiceSettings, UploadGuard, error, model_card, ranked

SETTINGS = ServiceSettings.from_environment()


@bentoml.service(workers=SETTINGS.workers, traffic={"timeout": 120, "max_concurrency": 64})
class ImageModel:
    bento_model = bentoml.models.BentoModel(SETTINGS.model_tag)

    def __init__(self) -> None:
        from kitchenware import store
        from kitchenware.inference import Classifier, limit_threads

        limit_threads(SETTINGS.threads)
        self.classifier = Classifier(store.load(str(self.bento_model.tag)))
        self.classifier.warm_up()

    # A request that waits longer than max_latency_ms is refused with 503; on a CPU (~0.2 s per image)
    # 16 queued photos take seconds, so let them queue up to the traffic timeout instead.
    @bentoml.api(batchable=True, max_batch_size=16, max_latency_ms=60_000)
    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        return self.classifier.probabilities(pixels)


@bentoml.service(http={"port": 3000}, traffic={"timeout": 120, "max_concurrency": 128})
class KitchenwareClassifier:
    """Upload a photo of kitchenware (cup, fork, glass, knife, plate, spoon): get its class and probabilities."""

    bento_model = bentoml.models.BentoModel(SETTINGS.model_tag)
    image_model = bentoml.depends(ImageModel)

    def __init__(self) -> None:
        self.metadata = dict(self.bento_model.info.metadata)
        self.tag = str(self.bento_model.tag)
        self.class_names = list(self.metadata["class_names"])
        self.input_size = int(self.metadata["input_size"])

    async def _probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Call ImageModel, once more if the pooled connection was closed under us: BentoML's internal client
        can reuse a keep-alive connection the server has just closed (BentoML issue #4971); the call is
        idempotent, so one retry is safe."""
        try:
            return await self.image_model.to_async.probabilities(pixels)
        except aiohttp.ClientConnectionError:
            return await self.image_model.to_async.probabilities(pixels)

    async def _classify(self, upload: Path) -> Classification:
        pixels = prepare(upload.read_bytes(), self.input_size, SETTINGS.max_pixels)
        probabilities = await self._probabilities(pixels[None])
        scores = ranked(probabilities[0], self.class_names)
        label = next(iter(scores))
        return Classification(label=label, confidence=scores[label], probabilities=scores, model=self.tag)

    @bentoml.api
    async def classify(self, image: Path) -> Classification:
        """Classify one photo (JPEG, PNG, WebP, BMP, GIF, TIFF)."""
        try:
            return await self._classify(image)
        except ImageError as problem:
            return error(str(problem))

    @bentoml.api
    async def classify_batch(self, images: list[Path]) -> list[Classification]:
        """Classify several photos; the answers come in the order of the uploads."""
        if len(images) > SETTINGS.max_batch_images:
            return error(
                f"{len(images)} photos in one request, more than the limit of {SETTINGS.max_batch_images}: "
                "split them over several requests"
            )
        answers = await asyncio.gather(*(self._classify(image) for image in images), return_exceptions=True)
        for position, answer in enumerate(answers, start=1):
            if isinstance(answer, ImageError):
                return error(f"photo {position} of {len(images)}: {answer}")
            if isinstance(answer, BaseException):
                raise answer
        return answers

    @bentoml.api
    def model_info(self) -> dict:
        """The model card: tag, classes in output order, input size, training data and validation metrics."""
        return model_card(self.metadata, self.tag)


KitchenwareClassifier.add_asgi_middleware(UploadGuard, max_upload_bytes=SETTINGS.max_upload_bytes)
