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

from kitchenware.inference import open_classifier
from kitchenware.preprocessing import ImageError, prepare
from kitchenware.serving import Classification, ServiceSettings, UploadGuard, error, model_card, ranked

SETTINGS = ServiceSettings.from_environment()
FORWARD_BATCH = 8


@bentoml.service(http={"port": 3000}, workers=SETTINGS.workers, traffic={"timeout": 120, "max_concurrency": 128})
class KitchenwareClassifier:
    """Upload a photo of kitchenware (cup, fork, glass, knife, plate, spoon): get its class and probabilities."""

    bento_model = bentoml.models.BentoModel(SETTINGS.model_tag)

    def __init__(self) -> None:
        self.metadata = dict(self.bento_model.info.metadata)
        self.tag = str(self.bento_model.tag)
        self.class_names = list(self.metadata["class_names"])
        self.input_size = int(self.metadata["input_size"])
        self.classifier = open_classifier(self.bento_model.path, SETTINGS.runtime, SETTINGS.threads, self.input_size)
        # One forward pass at a time: it already uses every core given to this worker.
        self.inference_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")

    def _forward(self, pixels: np.ndarray) -> np.ndarray:
        """At most FORWARD_BATCH photos per pass: larger batches are no faster here, and ONNX Runtime keeps the
        memory of the largest batch it has seen (~45 MB per photo at 299x299)."""
        chunks = range(0, len(pixels), FORWARD_BATCH)
        return np.concatenate([self.classifier.probabilities(pixels[i : i + FORWARD_BATCH]) for i in chunks])

    def _pixels(self, upload: Path) -> np.ndarray:
        return prepare(upload.read_bytes(), self.input_size, SETTINGS.max_pixels)

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
        probabilities = await loop.run_in_executor(self.inference_thread, self._forward, np.stack(pixels))
        answers = []
        for row in probabilities:
            scores = ranked(row, self.class_names)
            label = next(iter(scores))
            answers.append(Classification(label=label, confidence=scores[label], probabilities=scores, model=self.tag))
        return answers

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
        """The model card: tag, runtime, classes in output order, input size, training data and validation metrics."""
        return model_card(self.metadata, self.tag, SETTINGS.runtime)


KitchenwareClassifier.add_asgi_middleware(UploadGuard, max_upload_bytes=SETTINGS.max_upload_bytes)
