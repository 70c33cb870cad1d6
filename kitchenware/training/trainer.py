"""Training: stage 1 (head on a frozen base, on cached features when possible), stage 2 (fine-tuning), sweeps."""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from kitchenware.core.photos import (
    DataError,
    LabelledPhotos,
    Sample,
    drop_unreadable,
    fingerprint,
    label_indices,
)
from kitchenware.core.preprocessing import decoded_in_chunks
from kitchenware.training import datasets, splits
from kitchenware.training.accelerators import distribution_strategy, gpu_count, precision_policy
from kitchenware.training.architectures import Network, build, unfreeze_top_blocks, xception_backbone
from kitchenware.training.augmentation import ViewRecipe, view_pixels
from kitchenware.training.config import TrainConfig
from kitchenware.training.evaluation import Report
from kitchenware.training.health import HealthReport, check
from kitchenware.training.probe import copy_into, fit_probe
from kitchenware.training.sources import find_sources
from kitchenware.training.stopping import stopping_callbacks

log = logging.getLogger(__name__)


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """n_samples / (n_classes * n_c): each class weighs as much in the loss as the others in total."""
    counts = np.bincount(labels, minlength=num_classes)
    return {i: float(len(labels) / (num_classes * count)) for i, count in enumerate(counts) if count}


# (photos, view, how views 1.. are drawn) -> their features, one row each
Extractor = Callable[[list[Sample], int, ViewRecipe | None], np.ndarray]


class FeatureCache:
    """Backbone features of photos, each computed once per run: the near-duplicate groups of the split, every
    setting of a sweep and the decision rule all read them. View 0 is the photo; views 1.. are random augmented
    views (rotation, crop, flip, colour, drawn as a ViewRecipe says), seeded per photo and by the cache's own
    config.seed, so that a run is reproducible; each recipe's views are kept apart, so the settings of a sweep or
    a benchmark with different recipes share one cache. `seconds` says what each view took to extract."""

    def __init__(self, config: TrainConfig, extract: Extractor | None = None):
        self.config = config
        self._backbone: keras.Model | None = None
        self.seconds: dict[tuple[int, ViewRecipe | None], float] = {}  # extraction time of each view, summed
        self._features: dict[tuple[Sample, int, ViewRecipe | None], np.ndarray] = {}
        # Where the missing features are computed: this process (`compute`), or a batch engine's pool of workers
        # running `compute` on their share (kitchenware/batch/features.py).
        self._extract = extract or self.compute

    @property
    def backbone(self) -> keras.Model:
        if self._backbone is None:
            keras.utils.set_random_seed(self.config.seed)
            self._backbone = xception_backbone(self.config.input_size, self.config.weights)
        return self._backbone

    def of(self, samples: list[Sample], view: int = 0, recipe: ViewRecipe | None = None) -> np.ndarray:
        """(len(samples), features) for one view of each photo; `recipe` (default: ViewRecipe()) draws views 1..."""
        recipe = (recipe or ViewRecipe()) if view else None
        missing = [sample for sample in samples if (sample, view, recipe) not in self._features]
        if missing:
            started = time.perf_counter()
            log.info("extracting backbone features of %d photos (view %d, %s, once)", len(missing), view, recipe)
            features = self._extract(missing, view, recipe)
            self._features.update({(sample, view, recipe): row for sample, row in zip(missing, features)})
            self.seconds[view, recipe] = self.seconds.get((view, recipe), 0.0) + time.perf_counter() - started
        return np.stack([self._features[sample, view, recipe] for sample in samples])

    def compute(self, samples: list[Sample], view: int = 0, recipe: ViewRecipe | None = None) -> np.ndarray:
        """The backbone's features of one view of these photos, FEATURE_CHUNK decoded at a time; not kept."""
        size = self.config.input_size
        decoded = decoded_in_chunks(
            samples, lambda sample: view_pixels(sample, view, size, self.config.seed, recipe), FEATURE_CHUNK
        )
        return np.concatenate(
            [self.backbone.predict(pixels, batch_size=self.config.batch_size, verbose=0) for pixels in decoded]
        )


FEATURE_CHUNK = 256  # photos decoded at a time while extracting features: bounded memory on any data set


@dataclass
class PreparedData:
    """Photos checked, embedded (when the backbone is frozen) and split once; shared by every setting of a sweep."""

    train: list[Sample]
    val: list[Sample]
    fingerprint: str
    split: str  # "grouped" (near-duplicates on one side) or "stratified"
    health: HealthReport  # holds the readable photos and the skipped ones
    cache: FeatureCache | None = None

    @property
    def photos(self) -> LabelledPhotos:
        return self.health.photos

    @property
    def skipped(self) -> list[tuple[Sample, str]]:
        return self.health.unreadable

    @property
    def groups(self) -> dict[Sample, int] | None:
        """The near-duplicate group of each photo, when they were found."""
        groups = self.health.groups
        return None if groups is None else dict(zip(self.photos.samples, groups.tolist()))

    @property
    def class_names(self) -> list[str]:
        return self.photos.class_names

    @property
    def cross_validated(self) -> list[Sample]:
        """The photos cross-validation and the thresholds fit on held-out sources may see: every readable one, but
        none of an origin held out for validation (`validate_on`), which stays unseen by everything."""
        return self.train if self.split == "origin" else self.photos.samples

    def groups_of(self, samples: list[Sample]) -> np.ndarray | None:
        """The near-duplicate group of each of these photos, when the groups were found."""
        groups = self.groups
        return None if groups is None else np.array([groups[sample] for sample in samples])


def inspect_photos(config: TrainConfig, extract: Extractor | None = None) -> tuple[HealthReport, FeatureCache | None]:
    """Find the photos, skip the unreadable ones and run the health check, on the backbone's features when the
    head trains on cached ones (they find the near-duplicates): `kitchenware check`, and the start of training."""
    found = find_sources(*config.data, origins=config.origins, feedback_before=config.feedback_cutoff())
    readable, skipped = drop_unreadable(found.samples)
    cache = FeatureCache(config, extract) if uses_cached_features(config) else None
    return check(found.keep(readable), skipped, None if cache is None else cache.of(readable)), cache


def prepare_data(config: TrainConfig, extract: Extractor | None = None) -> PreparedData:
    """Find and check the photos; with cached features, find near-duplicate groups and split by them; with
    `validate_on`, the photos of that origin are the validation split."""
    health, cache = inspect_photos(config, extract)
    readable = health.photos.samples
    if config.validate_on:
        split, (train, val) = "origin", splits.origin_split(readable, config.validate_on, health.groups)
    elif cache is not None and config.split == "grouped":
        split, (train, val) = "grouped", splits.grouped_split(readable, health.groups, config.val_fraction, config.seed)
    else:
        split, (train, val) = "stratified", splits.stratified_split(readable, config.val_fraction, config.seed)
    return PreparedData(train, val, fingerprint(readable), split, health, cache)


@dataclass
class TrainedModel:
    config: TrainConfig
    network: Network
    history: dict[str, list]  # per epoch, both stages: loss, accuracy, val_loss, val_accuracy, stage
    report: Report  # on the validation split, with the restored best weights
    seconds: float


def _verbosity() -> int:
    return 1 if sys.stdout.isatty() else 2  # one line per epoch in logs and CI


def _images(samples: list[Sample], prepared: PreparedData, config: TrainConfig, shuffle: bool = False):
    labels = label_indices(samples, prepared.class_names)
    return datasets.image_dataset(
        [sample.path for sample in samples],
        labels,
        config.input_size,
        config.batch_size,
        config.seed if shuffle else None,
    )


def uses_cached_features(config: TrainConfig) -> bool:
    return config.arch == "xception" and config.cache_features and not config.augment


def train_model(config: TrainConfig, prepared: PreparedData, run_dir: Path) -> TrainedModel:
    """Train one setting: stage 1 on the frozen base, then optional fine-tuning of its top blocks."""
    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    gpus = gpu_count()
    keras.mixed_precision.set_global_policy(precision_policy(config.mixed_precision, gpus))
    y_train = label_indices(prepared.train, prepared.class_names)
    y_val = label_indices(prepared.val, prepared.class_names)
    class_weight = (
        balanced_class_weights(y_train, len(prepared.class_names)) if config.class_weight == "balanced" else None
    )
    callbacks = stopping_callbacks(config.patience, config.target_accuracy)
    if config.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard")))

    with distribution_strategy(gpus).scope():
        network = build(config, len(prepared.class_names))
        if prepared.cache is not None and uses_cached_features(config):
            network.backbone.set_weights(prepared.cache.backbone.get_weights())  # the backbone of the features
            views = range(config.augment_views + 1)
            recipe = config.view_recipe()
            train_features = np.concatenate([prepared.cache.of(prepared.train, view, recipe) for view in views])
            trained_part = network.head
            train_inputs = _batches(train_features, np.tile(y_train, len(views)), config.batch_size, config.seed)
            val_inputs = _batches(prepared.cache.of(prepared.val), y_val, config.batch_size)
        else:
            trained_part = network.model
            train_inputs = _images(prepared.train, prepared, config, shuffle=True)
            val_inputs = _images(prepared.val, prepared, config)
        _compile(trained_part, config.lr)

    # The pipelines shuffle the training batches themselves.
    fit = dict(callbacks=callbacks, class_weight=class_weight, shuffle=False, verbose=_verbosity())
    if config.head == "probe":
        labels = np.tile(y_train, len(views))
        copy_into(fit_probe(train_features, labels, config.probe_c, config.class_weight == "balanced"), network.head)
        history = _with_stage(_evaluated(network.head, train_inputs, val_inputs), "probe")
    else:
        stage1 = trained_part.fit(train_inputs, validation_data=val_inputs, epochs=config.epochs, **fit)
        history = _with_stage(stage1.history, "head")

    if config.fine_tune_epochs and network.backbone is not None:
        log.info("fine-tuning the top %d Xception blocks at learning rate %g", config.unfreeze, config.fine_tune_lr)
        with distribution_strategy(gpus).scope():
            unfreeze_top_blocks(network.backbone, config.unfreeze)
            _compile(network.model, config.fine_tune_lr)
        val_inputs = _images(prepared.val, prepared, config)
        stage2 = network.model.fit(
            _images(prepared.train, prepared, config, shuffle=True),
            validation_data=val_inputs,
            epochs=config.fine_tune_epochs,
            **fit,
        )
        history = {key: history[key] + _with_stage(stage2.history, "fine-tune")[key] for key in history}
        trained_part = network.model

    report = Report(prepared.class_names, y_val, trained_part.predict(val_inputs, verbose=0).astype(np.float32))
    keras.mixed_precision.set_global_policy("float32")
    return TrainedModel(config, network, history, report, time.perf_counter() - started)


def held_out_parts(prepared: PreparedData, folds: int | str, seed: int) -> dict[str, tuple[list[int], list[int]]]:
    """{name: (training rows, held-out rows)} of the readable photos: grouped k-fold (whole near-duplicate groups
    held out, stratified by class), or with folds="sources" each origin held out in turn (splits.origin_rows)."""
    from sklearn.model_selection import StratifiedGroupKFold

    samples = prepared.cross_validated
    groups = prepared.groups_of(samples)
    if folds == "sources":
        origins = sorted({sample.where for sample in samples})
        if len(origins) < 2:
            raise DataError(
                f"every photo comes from {origins[0]!r}: holding out sources needs two or more (--data folders, or "
                "--origins)"
            )
        return {origin: splits.origin_rows(samples, origin, groups) for origin in origins}
    splitter = StratifiedGroupKFold(n_splits=int(folds), shuffle=True, random_state=seed)
    parts = splitter.split(np.zeros(len(samples)), [sample.label for sample in samples], groups)
    return {f"fold {n + 1}": (list(train), list(val)) for n, (train, val) in enumerate(parts)}


def cross_validate(config: TrainConfig, prepared: PreparedData, folds: int | str, run_dir: Path) -> tuple[dict, Report]:
    """Cross-validation of this training setting on all the readable photos, grouped k-fold or (folds="sources")
    holding out each origin in turn; every part trains exactly as `train_model` does on the cached features.
    Returns the mean and spread of accuracy and of each class's recall, pooled recall, each part's accuracy, and the
    out-of-fold report: every photo predicted by a head that was not trained on it."""
    if prepared.cache is None or prepared.health.groups is None:
        raise DataError("cross-validation runs on cached features: train Xception with the backbone frozen")
    samples = prepared.cross_validated
    parts = held_out_parts(prepared, folds, config.seed)
    config = dataclasses.replace(config, patience=0, target_accuracy=None)  # the held-out part chooses nothing
    reports = []
    for n, (name, (train_rows, val_rows)) in enumerate(parts.items()):
        log.info("--- cross-validation, %s held out (%d of %d)", name, n + 1, len(parts))
        fold_data = dataclasses.replace(
            prepared, train=[samples[i] for i in train_rows], val=[samples[i] for i in val_rows]
        )
        reports.append(train_model(config, fold_data, run_dir).report)
    accuracies = [report.accuracy for report in reports]
    recalls = {
        name: [r.per_class()[i]["recall"] for r in reports if r.per_class()[i]["support"]]
        for i, name in enumerate(prepared.class_names)
    }
    pooled = Report(
        prepared.class_names,
        np.concatenate([r.labels for r in reports]),
        np.concatenate([r.probabilities for r in reports]),
    )
    return {
        "folds": folds,
        "photos": len(pooled.labels),
        "accuracy_mean": round(float(np.mean(accuracies)), 4),
        "accuracy_std": round(float(np.std(accuracies)), 4),
        "accuracy_pooled": round(pooled.accuracy, 4),
        "recall_mean": {name: round(float(np.mean(values)), 4) for name, values in recalls.items() if values},
        "recall_pooled": {row["class"]: row["recall"] for row in pooled.per_class()},
        "fold_accuracy": [round(a, 4) for a in accuracies],
        "held_out": {
            name: {"photos": len(report.labels), "accuracy": round(report.accuracy, 4)}
            for name, report in zip(parts, reports)
        },
    }, pooled


def decision_features(trained: TrainedModel, prepared: PreparedData) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(training, validation) pooled features of the trained backbone, for the "unknown" score: from the cache
    when the backbone stayed frozen, otherwise from one more pass; (None, None) without a backbone."""
    backbone = trained.network.backbone
    if backbone is None:
        return None, None
    if prepared.cache is not None and not trained.config.fine_tune_epochs:
        return prepared.cache.of(prepared.train), prepared.cache.of(prepared.val)
    train, val = (
        backbone.predict(_images(s, prepared, trained.config), verbose=0) for s in (prepared.train, prepared.val)
    )
    return train.astype(np.float32), val.astype(np.float32)


def _batches(features: np.ndarray, labels: np.ndarray, batch_size: int, shuffle_seed: int | None = None):
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _evaluated(head: keras.Model, train_inputs, val_inputs) -> dict[str, list]:
    """A head fit in one go (the probe) as one row of the training history: its loss and accuracy on the training
    rows and on the validation photos."""
    train_loss, train_accuracy = head.evaluate(train_inputs, verbose=0)
    val_loss, val_accuracy = head.evaluate(val_inputs, verbose=0)
    return {"loss": [train_loss], "accuracy": [train_accuracy], "val_loss": [val_loss], "val_accuracy": [val_accuracy]}


def _compile(model: keras.Model, learning_rate: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )


def _with_stage(history: dict[str, list], stage: str) -> dict[str, list]:
    columns = ("loss", "accuracy", "val_loss", "val_accuracy")
    epochs = len(history["loss"])
    return {**{column: [float(v) for v in history[column]] for column in columns}, "stage": [stage] * epochs}


@dataclass
class SweepResult:
    changes: dict  # the setting: what it changes in the run's configuration
    val_accuracy: float
    val_loss: float
    epochs: int
    seconds: float
    history: dict[str, list]

    @property
    def name(self) -> str:
        return " ".join(f"{key}={value}" for key, value in self.changes.items())


def sweep(
    config: TrainConfig, settings: list[dict], prepared: PreparedData, run_dir: Path
) -> tuple[TrainedModel, list[SweepResult]]:
    """Train every setting (changes to `config`) on the same split and features; return the best and the table."""
    best: TrainedModel | None = None
    results = []
    for changes in settings:
        trained = train_model(dataclasses.replace(config, **changes), prepared, run_dir)
        accuracy, loss = trained.report.accuracy, trained.report.loss
        result = SweepResult(changes, accuracy, loss, len(trained.history["loss"]), trained.seconds, trained.history)
        results.append(result)
        log.info("--- %s: val_accuracy=%.4f val_loss=%.4f", result.name, accuracy, loss)
        if best is None or (accuracy, -loss) > (best.report.accuracy, -best.report.loss):
            best = trained
    return best, results
