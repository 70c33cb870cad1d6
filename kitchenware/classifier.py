"""The Python API: open a trained model, classify photos, see where it looked.

    from kitchenware import Classifier

    clf = Classifier.open("models/")     # an exported model folder, or a BentoML store tag
    answer = clf.classify("cup.jpg")     # a path, bytes, a Pillow image, or a list of them
    print(answer.label, answer.confidence, answer.decision)

The service, `kitchenware evaluate`/`predict` and the Ray jobs classify through this class: the one preprocessing
function, the model's runtime, its decision rule. So a photo gets the same answer everywhere.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from kitchenware.core.answers import Answer, answer_list, answer_rows
from kitchenware.core.card import DEFAULT_MODEL_NAME, ModelCard, StoredModel
from kitchenware.core.decision import Answers, DecisionRule
from kitchenware.core.explain import Explanation
from kitchenware.core.inference import Forward, forward_in_batches, joined
from kitchenware.core.preprocessing import (
    DEFAULT_MAX_PIXELS,
    ImageSource,
    decoded_in_chunks,
    load_image,
    prepare,
    resize,
)
from kitchenware.core.runtimes import open_runtime, preferred_runtime

__all__ = ["Answer", "Classifier", "Explanation", "answer_rows", "find_model"]

DECODE_CHUNK = 64  # photos decoded, then classified, at a time: bounded memory on any number of photos
PROGRESS_SECONDS = 10.0  # how often a long run says how far it got

log = logging.getLogger(__name__)


def find_model(model: str | Path) -> StoredModel:
    """A model from an exported folder (or a file inside it) or a BentoML store tag (`name[:version]`)."""
    path = Path(model)
    if path.is_dir() or path.suffix in (".onnx", ".keras", ".json"):
        folder = path if path.is_dir() else path.parent
        if not folder.is_dir():
            raise FileNotFoundError(f"model folder {folder} not found: pass a store tag or an exported model folder")
        return StoredModel(folder, ModelCard.read(folder), str(folder))
    from kitchenware import store  # BentoML only for a store tag

    return store.get(str(model))


class Classifier:
    """A trained model ready to answer: its card, its decision rule and the runtime that runs it."""

    def __init__(
        self,
        stored: StoredModel,
        runtime: str | None = None,
        threads: int = 0,
        min_confidence: float | None = None,
        ood_threshold: float | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ):
        self.stored = stored
        self.card = stored.card
        self.rule = DecisionRule.for_model(stored.card, stored.path, min_confidence, ood_threshold)
        self.runtime = runtime or preferred_runtime(stored.path, stored.card.int8)
        self.network = open_runtime(
            stored.path, self.runtime, threads, stored.card.input_size, self.rule, stored.card.int8
        )
        self.max_pixels = max_pixels

    @classmethod
    def open(
        cls,
        model: str | Path = f"{DEFAULT_MODEL_NAME}:latest",
        runtime: str | None = None,
        threads: int = 0,
        min_confidence: float | None = None,
        ood_threshold: float | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> Classifier:
        """Open an exported model folder (e.g. "models/") or a model in the BentoML store (e.g.
        "kitchenware_classifier:latest").

        runtime: "onnx", "onnx-int8-cascade" or "tensorflow" (default: the cascade when the model has its int8
        network, else "onnx"); threads: the forward pass's threads (0: every core); min_confidence and
        ood_threshold: the decision thresholds, when not the model's own; max_pixels: larger photos are refused."""
        return cls(find_model(model), runtime, threads, min_confidence, ood_threshold, max_pixels)

    @property
    def name(self) -> str:
        """The store tag, or the folder of an exported model."""
        return self.stored.tag

    @property
    def class_names(self) -> list[str]:
        return list(self.card.class_names)

    def pixels(self, photo: ImageSource) -> np.ndarray:
        """A photo as the network's input, by the one preprocessing function; ImageError names a bad photo."""
        return prepare(photo, self.card.input_size, self.max_pixels)

    def decide(self, pixels: np.ndarray) -> Answers:
        """The decided answers of a stack of prepared photos ((n, size, size, 3) uint8)."""
        return self._decided(forward_in_batches(self.network, pixels))

    def decide_photos(self, photos: Sequence[ImageSource]) -> Answers:
        """The decided answers of photos, decoded DECODE_CHUNK at a time on a few threads; on a long run, how far it
        got is logged every PROGRESS_SECONDS."""
        passes, started, logged = [], time.monotonic(), time.monotonic()
        for pixels in decoded_in_chunks(photos, self.pixels, DECODE_CHUNK):
            passes.append(forward_in_batches(self.network, pixels))
            done, now = sum(len(forward.probabilities) for forward in passes), time.monotonic()
            if now - logged >= PROGRESS_SECONDS and done < len(photos):
                log.info("classified %d of %d photos (%.1f a second)", done, len(photos), done / (now - started))
                logged = now
        return self._decided(joined(passes))

    def _decided(self, forward: Forward) -> Answers:
        answers = self.rule.decide(forward.probabilities, forward.features)
        return dataclasses.replace(answers, float_answered=forward.float_answered, features=forward.features)

    def answers(self, decided: Answers) -> list[Answer]:
        return answer_list(decided, self.card.class_names)

    def classify(self, photos: ImageSource | Sequence[ImageSource]) -> Answer | list[Answer]:
        """The answer for a photo, or the answers for a list of photos, in their order."""
        if isinstance(photos, (list, tuple)):
            return self.answers(self.decide_photos(photos)) if photos else []
        return self.answers(self.decide(self.pixels(photos)[None]))[0]

    @property
    def has_class_maps(self) -> bool:
        """Whether the model can show where it looked (a head of one linear layer on pooled features)."""
        return self.network.has_class_maps

    def explain(self, photo: ImageSource, label: str | None = None) -> Explanation:
        """Where the model looked for `label` (default: the most likely class) in the photo."""
        return self.explain_image(load_image(photo, self.max_pixels, self.card.input_size), label)

    def explain_image(self, image: Image.Image, label: str | None = None) -> Explanation:
        """`explain` for a photo already decoded by `load_image` (upright RGB)."""
        if not self.has_class_maps:
            raise ValueError(
                "this model has no class activation map (its head has an inner Dense layer, or it was exported "
                "before maps existed): serve a model trained with the default head"
            )
        if label is not None and label not in self.card.class_names:
            raise ValueError(f"label {label!r} is not one of the model's classes {self.class_names}")
        pixels = resize(image, self.card.input_size)[None]  # the same pixels as `pixels` gives `classify`
        forward = forward_in_batches(self.network, pixels, explain=True)
        chosen = self.class_names.index(label) if label else int(np.argmax(forward.probabilities[0]))
        return Explanation(self.class_names[chosen], forward.class_maps[0, :, :, chosen], image)
