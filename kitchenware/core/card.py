"""The model card: what a trained model *is*, the contract between training, the store, the CLI and the service.

Training writes it; the BentoML store keeps it as the model's metadata; an exported folder keeps it as
model_card.json beside model.onnx. Everything that runs a model reads this class, never the metadata by key.
How a model is *run* (workers, limits, database) is the service's settings, not the card's.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MODEL_NAME = "kitchenware_classifier"
SCHEMA_VERSION = 2  # 1: the metadata dicts of the first versions (no schema_version key)

# The files of a model, in the BentoML store and in an exported folder.
ONNX_FILE = "model.onnx"  # what the service runs (ONNX Runtime)
INT8_FILE = "model-int8.onnx"  # the int8 network of the onnx-int8-cascade runtime (`train.py quantize`)
KERAS_FILE = "model.keras"  # what training, fine-tuning and the TensorFlow runtime load
OOD_REFERENCE_FILE = "ood_reference.npy"  # L2-normalised training features (float16) for the "unknown" score
CARD_JSON = "model_card.json"
CARD_MARKDOWN = "model_card.md"
MODEL_FILES = (ONNX_FILE, INT8_FILE, KERAS_FILE, OOD_REFERENCE_FILE)  # what a stored model may hold besides its card


@dataclass(frozen=True)
class ModelCard:
    name: str
    class_names: tuple[str, ...]
    input_size: int
    architecture: str = "unknown"
    weights: str = "unknown"  # "imagenet", "none" or "unknown"; never a local path
    weights_sha256: str | None = None  # of the local weights file, when one was used
    command: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)  # accuracy, loss, images, per_class, confusion_matrix
    dataset: dict[str, Any] = field(default_factory=dict)  # sources, counts, split, fingerprint, ...
    cross_validation: dict[str, Any] = field(default_factory=dict)  # grouped k-fold figures of the training setting
    created: str = ""
    onnx: dict[str, Any] = field(default_factory=dict)  # the export check, or {"error": ...}
    # The decision rule (kitchenware/core/decision.py), fit on photos the head was not trained on:
    temperature: float = 1.0  # temperature scaling of the probabilities
    min_confidence: float | None = None  # calibrated confidence under which an answer is "unsure"
    ood: dict[str, Any] = field(default_factory=dict)  # score, k, threshold (above: "unknown"), figures
    calibration: dict[str, Any] = field(default_factory=dict)  # what they were fit on and what they measured
    # The int8 network (`train.py quantize`): how it was made, the band inside which the float network decides
    # (core/cascade.py), and what that measured.
    int8: dict[str, Any] = field(default_factory=dict)
    file_sha256: str | None = None  # of the imported network files, so importing the same folder twice is a no-op
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "input_size", int(self.input_size))

    def to_metadata(self) -> dict[str, Any]:
        """A JSON-friendly dict for BentoML's metadata and model_card.json (no None at any depth: BentoML refuses
        it; a missing key reads back as None)."""
        return _without_none(json.loads(json.dumps(dataclasses.asdict(self))))

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> ModelCard:
        """Read a card, also one written by an older version (unknown keys are dropped, missing ones defaulted)."""
        missing = [key for key in ("name", "class_names", "input_size") if key not in metadata]
        if missing:
            raise ValueError(
                f"the model card lacks {', '.join(missing)}: it was not written by `train.py train`; "
                "train or export the model again"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in metadata.items() if key in known}
        values.setdefault("schema_version", 1)
        return cls(**values)

    @classmethod
    def read(cls, folder: Path) -> ModelCard:
        path = Path(folder) / CARD_JSON
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: an exported model folder holds {ONNX_FILE} and {CARD_JSON} "
                "(written by `python train.py train --export DIR`)"
            )
        return cls.from_metadata(json.loads(path.read_text()))

    def write(self, folder: Path) -> Path:
        path = Path(folder) / CARD_JSON
        path.write_text(json.dumps(self.to_metadata(), indent=2) + "\n")
        return path

    def replace(self, **changes: Any) -> ModelCard:
        return dataclasses.replace(self, **changes)


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_none(item) for item in value if item is not None]
    return value
