"""The kitchenware classifier as an HTTP service: `bentoml serve` -> Swagger UI at http://localhost:3000.

One BentoML service holds the model in its own process: an upload is decoded on a worker thread, then
runs through the network on the one inference thread, which owns the CPU cores. Measured on 2 cores
(README, Benchmarks), this beats a separate model service with BentoML's adaptive batching: batching
gains ONNX Runtime a few percent on a CPU, while the hop between two services cost more CPU and 3x the memory.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bentoml
import numpy as np

from kitchenware.core.card import ModelCard
from kitchenware.core.decision import DecisionRule
from kitchenware.core.inference import classify_pixels, open_classifier
from kitchenware.core.preprocessing import ImageError, prepare
from kitchenware.serving import metrics, schemas
from kitchenware.serving.schemas import Classification
from kitchenware.serving.settings import ServiceSettings
from kitchenware.serving.upload import UploadGuard, error

SETTINGS = ServiceSettings.from_environment()


@bentoml.service(http={"port": 3000}, workers=SETTINGS.workers, traffic={"timeout": 120, "max_concurrency": 128})
class KitchenwareClassifier:
    """Upload a photo of kitchenware (cup, fork, glass, knife, plate, spoon): get its class, calibrated
    probabilities and a decision: "confident" (suggest the class), "unsure" (let the person choose among the
    top few) or "unknown" (not one of the classes)."""

    bento_model = bentoml.models.BentoModel(SETTINGS.model_tag)

    def __init__(self) -> None:
        self.card = ModelCard.from_metadata(self.bento_model.info.metadata)
        self.tag = str(self.bento_model.tag)
        self.classifier = open_classifier(
            self.bento_model.path, SETTINGS.runtime, SETTINGS.threads, self.card.input_size
        )
        self.rule = DecisionRule.for_model(
            self.card, self.bento_model.path, SETTINGS.min_confidence, SETTINGS.ood_threshold
        )
        # One forward pass at a time: it already uses every core given to this worker.
        self.inference_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")

    def _pixels(self, upload: Path) -> np.ndarray:
        return prepare(upload.read_bytes(), self.card.input_size, SETTINGS.max_pixels)

    async def _classify(self, uploads: list[Path]) -> list[Classification]:
        """Decode the uploads in parallel (ImageError names a bad one), then run them through the network."""
        decoding = [asyncio.to_thread(self._pixels, upload) for upload in uploads]
        pixels = await asyncio.gather(*decoding, return_exceptions=True)
        for position, problem in enumerate(pixels, start=1):
            if isinstance(problem, ImageError) and len(uploads) > 1:
                raise ImageError(f"photo {position} of {len(uploads)}: {problem}") from problem
            if isinstance(problem, BaseException):
                raise problem
        loop = asyncio.get_running_loop()
        forward = await loop.run_in_executor(self.inference_thread, classify_pixels, self.classifier, np.stack(pixels))
        answers = self.rule.decide(forward.probabilities, forward.features)
        metrics.count(answers, self.card.class_names)
        return schemas.classifications(answers, list(self.card.class_names), self.tag)

    @bentoml.api
    async def classify(self, image: Path) -> Classification:
        """Classify one photo (JPEG, PNG, WebP, BMP, GIF, TIFF)."""
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
    def model_info(self) -> dict:
        """The model card: tag, runtime, classes in output order, input size, training data, validation metrics, and
        the decision thresholds in force with the validation figures behind them."""
        return schemas.model_info(self.card, self.tag, SETTINGS.runtime, self.rule)


KitchenwareClassifier.add_asgi_middleware(UploadGuard, max_upload_bytes=SETTINGS.max_upload_bytes)
