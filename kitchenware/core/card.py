"""The model card: what a trained model *is*, the contract between training, the store, the CLI and the service.

Training writes it; the BentoML store keeps it as the model's metadata; an exported folder keeps it as
model_card.json beside model.onnx. Everything that runs a model reads this class and its typed sections, never the
metadata by key. How a model is *run* (workers, limits, database) is the service's settings, not the card's.
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
INT8_FILE = "model-int8.onnx"  # the int8 network of the onnx-int8-cascade runtime (`kitchenware quantize`)
KERAS_FILE = "model.keras"  # what training, fine-tuning and the TensorFlow runtime load
OOD_REFERENCE_FILE = "ood_reference.npy"  # L2-normalised training features (float16) for the "unknown" score
OOD_FEEDBACK_FILE = "ood_feedback.npy"  # the same of the photos sellers labelled, added at import (feedback/)
CARD_JSON = "model_card.json"
CARD_MARKDOWN = "model_card.md"
# What a stored model may hold besides its card.
MODEL_FILES = (ONNX_FILE, INT8_FILE, KERAS_FILE, OOD_REFERENCE_FILE, OOD_FEEDBACK_FILE)


def _known(cls: type, data: dict[str, Any], **converted: Any) -> Any:
    """A section from its stored dict: unknown keys (from a newer or older version) dropped, missing ones defaulted,
    nested sections converted by the caller."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{key: value for key, value in data.items() if key in names} | converted)


@dataclass(frozen=True)
class ValidationSection:
    """How the model did on its validation photos (photos its head was not trained on)."""

    accuracy: float
    loss: float
    images: int
    per_class: tuple[dict[str, Any], ...] = ()  # rows of class, precision, recall, f1, support
    confusion_matrix: tuple[tuple[int, ...], ...] = ()  # rows: true class; columns: predicted
    class_names: tuple[str, ...] = ()
    decisions: dict[str, float] = field(default_factory=dict)  # share of each decision
    confident_accuracy: float | None = None
    ece: float | None = None  # expected calibration error of the calibrated probabilities

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationSection:
        return _known(
            cls,
            data,
            per_class=tuple(data.get("per_class", ())),
            confusion_matrix=tuple(tuple(row) for row in data.get("confusion_matrix", ())),
            class_names=tuple(data.get("class_names", ())),
        )


@dataclass(frozen=True)
class OodSection:
    """The "unknown" answer: the distance from a photo's normalised backbone features to its k-th nearest reference
    photo's (the training photos, stored as ood_reference.npy), and the threshold above which it is "unknown"."""

    threshold: float
    score: str = "knn"
    k: int = 1
    accept: float | None = None  # share of the photos it was fit on that the threshold accepts
    reference_photos: int | None = None
    fit_on: str | None = None  # None: the validation split (the first cards did not say)
    held_out: dict[str, float] | None = None  # with held-out sources: each one's own threshold
    feedback_photos: int | None = None  # photos sellers labelled, known by the score since an import (ood_feedback.npy)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OodSection:
        return _known(cls, data)


@dataclass(frozen=True)
class CalibrationSection:
    """What the temperature and the thresholds were fit on, and what they measured there."""

    fit_on: str = ""
    unsure_target: float | None = None  # the accuracy the "confident" answers were chosen to reach
    photos: int | None = None
    temperature_and_unsure_fit_on: str = "the validation split"
    temperature: float | None = None
    nll_before: float | None = None
    nll_after: float | None = None
    ece_before: float | None = None
    ece_after: float | None = None
    confident_share: float | None = None
    confident_accuracy: float | None = None
    unknown_share: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibrationSection:
        return _known(cls, data)


@dataclass(frozen=True)
class Band:
    """How far the int8 network's answers may be from the float network's: in calibrated log-probability between
    the top class and any other (margin), in log-odds of the top confidence, and in the out-of-distribution score.
    The last two are signed (int8 minus float): the "unsure" bar is in doubt for int8 log-odds in
    [bar + confidence_low, bar + confidence_high), the "unknown" threshold for int8 scores in
    (threshold + ood_low, threshold + ood_high] (core/cascade.py)."""

    margin: float
    confidence_low: float
    confidence_high: float
    ood_low: float
    ood_high: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Band:
        return cls(**{f.name: float(data[f.name]) for f in dataclasses.fields(cls)})

    def rounded(self) -> Band:
        return Band(**{name: round(float(value), 6) for name, value in dataclasses.asdict(self).items()})


@dataclass(frozen=True)
class CascadeFigures:
    """What the cascade did on a set of photos: how often the float network ran, and how often the final answer
    (label and decision) and the int8 network's alone were the float network's."""

    photos: int
    fallback: float
    final_agreement: float
    final_disagreements: int
    int8_alone_agreement: float
    int8_alone_top1_agreement: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CascadeFigures:
        return _known(cls, data)


@dataclass(frozen=True)
class FineTuning:
    """The quantization-aware fine-tuning of the int8 network (training/int8/qat.py)."""

    method: str
    photos: int
    epochs: int
    learning_rate: float
    step_learning_rate: float = 0.0
    loss_per_epoch: tuple[float, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FineTuning:
        return _known(cls, data, loss_per_epoch=tuple(data.get("loss_per_epoch", ())))


@dataclass(frozen=True)
class Int8Recipe:
    """How the int8 network was made."""

    quantizer: str
    weights: str
    activations: str
    equalization: str
    calibration: str
    calibration_photos: dict[str, int] = field(default_factory=dict)  # photos per source
    fine_tuning: FineTuning | None = None
    kept_float: dict[str, Any] = field(default_factory=dict)  # what stayed float: node names, or a description

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Int8Recipe:
        tuned = data.get("fine_tuning")  # "none" in the cards of the first int8 networks
        return _known(cls, data, fine_tuning=FineTuning.from_dict(tuned) if isinstance(tuned, dict) else None)


@dataclass(frozen=True)
class Int8Section:
    """The int8 network (`kitchenware quantize`), the band inside which the float network decides, and what the
    cascade measured."""

    band: Band
    band_safety_factor: float = 1.0
    band_chosen_on: str = ""
    file: str = INT8_FILE
    sha256: str = ""
    command: str = ""
    recipe: Int8Recipe | None = None
    validation_accuracy: dict[str, float] = field(default_factory=dict)  # float, cascade, int8_alone
    figures: dict[str, CascadeFigures] = field(default_factory=dict)  # per set of photos ("<source>, <role>")
    worst_layers: tuple[dict[str, Any], ...] = ()  # tensor, local_sqnr_db

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Int8Section:
        return _known(
            cls,
            data,
            band=Band.from_dict(data["band"]),
            recipe=Int8Recipe.from_dict(data["recipe"]) if data.get("recipe") else None,
            figures={name: CascadeFigures.from_dict(row) for name, row in data.get("figures", {}).items()},
            worst_layers=tuple(data.get("worst_layers", ())),
        )


def _section(kind: type, data: dict[str, Any] | None) -> Any:
    """A stored section, or None where the card has none (older cards store an empty dict)."""
    return kind.from_dict(data) if data else None


@dataclass(frozen=True)
class ModelCard:
    name: str
    class_names: tuple[str, ...]
    input_size: int
    architecture: str = "unknown"
    weights: str = "unknown"  # "imagenet", "none" or "unknown"; never a local path
    weights_sha256: str | None = None  # of the local weights file, when one was used
    command: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # the training settings (TrainConfig), as given
    validation: ValidationSection | None = None
    dataset: dict[str, Any] = field(default_factory=dict)  # sources, counts, split, fingerprint, ...
    cross_validation: dict[str, Any] = field(default_factory=dict)  # grouped k-fold figures of the training setting
    created: str = ""
    onnx: dict[str, Any] = field(default_factory=dict)  # the export check, or {"error": ...}
    # The decision rule (kitchenware/core/decision.py), fit on photos the head was not trained on:
    temperature: float = 1.0  # temperature scaling of the probabilities
    min_confidence: float | None = None  # calibrated confidence under which an answer is "unsure"
    ood: OodSection | None = None  # the "unknown" answer; None: never
    calibration: CalibrationSection | None = None
    int8: Int8Section | None = None  # the int8 network of the cascade runtime; None: the model has none
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
                f"the model card lacks {', '.join(missing)}: it was not written by `kitchenware train`; "
                "train or export the model again"
            )
        card = _known(
            cls,
            {"schema_version": 1, **metadata},
            validation=_section(ValidationSection, metadata.get("validation")),
            ood=_section(OodSection, metadata.get("ood")),
            calibration=_section(CalibrationSection, metadata.get("calibration")),
            int8=_section(Int8Section, metadata.get("int8")),
        )
        return card

    @classmethod
    def read(cls, folder: Path) -> ModelCard:
        path = Path(folder) / CARD_JSON
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: an exported model folder holds {ONNX_FILE} and {CARD_JSON} "
                "(written by `kitchenware train --export DIR`)"
            )
        return cls.from_metadata(json.loads(path.read_text()))

    def write(self, folder: Path) -> Path:
        path = Path(folder) / CARD_JSON
        path.write_text(json.dumps(self.to_metadata(), indent=2) + "\n")
        return path

    def replace(self, **changes: Any) -> ModelCard:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class StoredModel:
    """A model on disk: its folder (model.onnx and the rest), its card, and the name it goes by (a store tag, or
    the folder of an exported model)."""

    path: Path
    card: ModelCard
    tag: str


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_none(item) for item in value if item is not None]
    return value
