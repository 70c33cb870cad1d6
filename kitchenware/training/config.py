"""Every training setting in one place; the CLI fills it, the rest of the package reads it."""

from __future__ import annotations

import datetime
import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kitchenware.core.card import DEFAULT_MODEL_NAME
from kitchenware.training.augmentation import ViewRecipe

INPUT_SIZES = {"scratch": 150, "xception": 299}
HEADS = ("probe", "dense")
PASSWORD_IN_URL = re.compile(r"(://[^/:@]+:)[^@/]+@")  # scheme://user:<password>@host
# `kitchenware quantize`: quantization-aware fine-tuning of the int8 network (kitchenware/training/qat.py), passes over
# the calibration photos and learning rate; 8 at 3e-5 took the validation photos' fallback from 23.9 to 19.5 %.
# The activations' steps learning with them at 3e-3 (0: fixed) took it to 15.6 % (docs/int8.md).
QAT_EPOCHS = 8
QAT_LEARNING_RATE = 3e-5
QAT_STEP_LEARNING_RATE = 3e-3


@dataclass(frozen=True)
class TrainConfig:
    data: tuple[str, ...]  # one or more data sources (--data DIR --data feedback:URL ...)
    arch: str = "xception"
    # Xception's head: "probe", L2-normalised features -> multinomial logistic regression (scikit-learn, L2 penalty
    # 1/probe_c), which transfers to photos of sources it never saw best (benchmarks/HEAD_RECIPES.md); or "dense", a
    # softmax layer on the raw features trained by Keras (--lr, --dropout, --inner-size, --epochs, --patience).
    head: str = "probe"
    probe_c: float = 3.0  # scikit-learn's C: the inverse L2 strength, on the loss summed over photos and views
    weights: str = "imagenet"  # "imagenet" (download), "none" (random) or a local .weights.h5 path
    input_size: int = 0  # 0: the architecture's own (150 scratch, 299 xception)
    epochs: int = 20  # the most the head trains; early stopping (patience) usually ends it sooner
    batch_size: int = 32
    lr: float = 1e-3
    dropout: float = 0.0
    inner_size: int = 0  # units of an inner Dense layer in the head; 0: none
    augment: bool = False
    fine_tune_epochs: int = 0
    unfreeze: int = 2  # Xception blocks (of 14) trained when fine-tuning
    fine_tune_lr: float = 1e-5
    val_fraction: float = 0.2
    split: str = "grouped"  # near-duplicate groups on one side (needs cached Xception features), or "stratified"
    origins: str | None = None  # CSV of source,Id,origin: where each photo comes from (default: its --data source)
    # Only the photos sellers labelled before this moment (ISO 8601, UTC when no zone): a run the growing feedback
    # store can repeat, and what `kitchenware retrain` keeps its newest photos out of training with.
    feedback_before: str | None = None
    validate_on: str | None = None  # an origin: its photos are the validation split, the others train
    seed: int = 42
    # "balanced": each class weighs as much in the loss as the others (won grouped cross-validation, keeping the
    # few-shot classes' recall: benchmarks/HEAD_RECIPES.md); "none": each photo weighs the same
    class_weight: str = "balanced"
    patience: int = 3
    target_accuracy: float | None = None
    mixed_precision: str = "auto"  # auto (on with a GPU), on, off
    cache_features: bool = True  # head on cached backbone features when the backbone is frozen and no augmentation
    # With cached features: augmented views of each training photo, cached too. 5 won grouped cross-validation on
    # three splits into folds (benchmarks/HEAD_RECIPES.md); 0 trains on the photos alone, 5x faster.
    augment_views: int = 5
    augment_min_area: float = 0.6  # the views' random crops keep U(this, 1) of the photo's area
    augment_rotation: float = 0.0  # the views turn the photo by U(-this, this) degrees first; 0: not turned
    augment_fill: str = "crop"  # the turned photo's corners: crop (largest rectangle inside) or reflect
    name: str = DEFAULT_MODEL_NAME
    labels: dict[str, str] = field(
        default_factory=lambda: {"owner": "kitchenware-classifier", "project": "kitchenware"}
    )
    tensorboard: bool = False

    def __post_init__(self) -> None:
        sources = [self.data] if isinstance(self.data, (str, Path)) else self.data
        object.__setattr__(self, "data", tuple(str(source) for source in sources))
        if self.arch not in INPUT_SIZES:
            raise ValueError(f"unknown architecture {self.arch!r}: choose one of {', '.join(INPUT_SIZES)}")
        if not self.input_size:
            object.__setattr__(self, "input_size", INPUT_SIZES[self.arch])
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}: choose one of {', '.join(HEADS)}")
        if self.arch == "scratch":
            object.__setattr__(self, "head", "dense")  # the CNN from scratch trains its own dense layers
        if self.head == "probe" and (self.augment or not self.cache_features):
            raise ValueError(
                "the probe head is fit on cached backbone features: drop --augment and --no-cache-features, or "
                "train a --head dense"
            )
        if self.head == "probe" and self.tensorboard and not self.fine_tune_epochs:
            raise ValueError(
                "--tensorboard logs Keras epochs, and the probe head is fit in one go by scikit-learn: train a --head "
                "dense, add --fine-tune EPOCHS, or drop --tensorboard"
            )
        self.view_recipe()  # checks the augmented views' settings
        self.feedback_cutoff()  # checks the moment's format

    def feedback_cutoff(self) -> datetime.datetime | None:
        """`feedback_before` as an aware datetime (UTC when it names no zone)."""
        if self.feedback_before is None:
            return None
        try:
            moment = datetime.datetime.fromisoformat(self.feedback_before)
        except ValueError:
            raise ValueError(
                f"--feedback-before takes a moment such as 2026-12-07 or 2026-12-07T18:30:00+00:00, not "
                f"{self.feedback_before!r}"
            ) from None
        return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)

    def view_recipe(self) -> ViewRecipe:
        """How the cached augmented views (`augment_views`) are drawn."""
        return ViewRecipe(self.augment_min_area, self.augment_rotation, self.augment_fill)

    def weights_record(self) -> tuple[str, str | None]:
        """(what the backbone started from, the SHA-256 of its local file): a model card names no local path.

        A local --weights file is the offline copy of the ImageNet weights (docs/training.md); its hash says which."""
        if self.arch != "xception":
            return "none (trained from scratch)", None
        if self.weights in ("imagenet", "none"):
            return self.weights, None
        return "imagenet", hashlib.sha256(Path(self.weights).read_bytes()).hexdigest()

    def as_metadata(self) -> dict:
        """JSON-friendly copy, for the model store and the model card (BentoML metadata has no None)."""
        values = {key: value for key, value in asdict(self).items() if value is not None}
        # A feedback:postgresql+psycopg://user:password@host/db source: the card and MLflow get it without the password.
        values["data"] = [PASSWORD_IN_URL.sub(r"\1***@", str(folder)) for folder in self.data]
        values["weights"] = self.weights_record()[0]
        return values
