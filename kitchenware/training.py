"""Training: stage 1 (head on a frozen base, on cached features when possible), stage 2 (fine-tuning), sweeps."""

from __future__ import annotations

import dataclasses
import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from kitchenware import data
from kitchenware.architectures import Network, build, unfreeze_top_blocks
from kitchenware.config import TrainConfig
from kitchenware.evaluation import Report


class TargetAccuracy(keras.callbacks.Callback):
    """Stop as soon as validation accuracy reaches the target: good enough is good enough."""

    def __init__(self, target: float, monitor: str = "val_accuracy"):
        super().__init__()
        self.target = target
        self.monitor = monitor
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (logs or {}).get(self.monitor, -np.inf) >= self.target:
            self.stopped_epoch = epoch
            self.model.stop_training = True


def stopping_callbacks(patience: int, target_accuracy: float | None) -> list[keras.callbacks.Callback]:
    """Early stopping on validation accuracy (higher is better), back to the best epoch's weights."""
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=patience, restore_best_weights=True)
    ]
    if target_accuracy is not None:
        callbacks.append(TargetAccuracy(target_accuracy))
    return callbacks


def precision_policy(mode: str, gpu_count: int) -> str:
    """Mixed float16 pays off on GPUs only: 'auto' turns it on when one is present."""
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"--mixed-precision must be auto, on or off, not {mode!r}")
    on = mode == "on" or (mode == "auto" and gpu_count > 0)
    return "mixed_float16" if on else "float32"


def distribution_strategy(gpu_count: int):
    """MirroredStrategy over several GPUs; TensorFlow's default strategy otherwise."""
    import tensorflow as tf

    return tf.distribute.MirroredStrategy() if gpu_count > 1 else tf.distribute.get_strategy()


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """n_samples / (n_classes * n_c): each class weighs as much in the loss as the others in total."""
    counts = np.bincount(labels, minlength=num_classes)
    return {i: float(len(labels) / (num_classes * count)) for i, count in enumerate(counts) if count}


@dataclass
class PreparedData:
    """Photos checked and split once; shared by every setting of a sweep."""

    photos: data.LabelledPhotos
    train: list[data.Sample]
    val: list[data.Sample]
    skipped: list[tuple[data.Sample, str]]
    fingerprint: str

    @property
    def class_names(self) -> list[str]:
        return self.photos.class_names


def prepare_data(config: TrainConfig) -> PreparedData:
    photos = data.find_photos(config.data)
    readable, skipped = data.drop_unreadable(photos.samples)
    train, val = data.stratified_split(readable, config.val_fraction, config.seed)
    photos = dataclasses.replace(photos, samples=readable)
    return PreparedData(photos, train, val, skipped, data.fingerprint(readable))


@dataclass
class TrainedModel:
    config: TrainConfig
    network: Network
    history: dict[str, list]  # per epoch, both stages: loss, accuracy, val_loss, val_accuracy, stage
    report: Report  # on the validation split, with the restored best weights
    seconds: float


class FeatureCache:
    """Backbone features of the train and validation photos, computed once for a whole sweep."""

    def __init__(self):
        self.features: tuple[np.ndarray, np.ndarray] | None = None

    def get(self, backbone: keras.Model, prepared: PreparedData, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
        if self.features is None:
            print(f"extracting backbone features of {len(prepared.train)} + {len(prepared.val)} photos (once)")
            self.features = tuple(
                backbone.predict(_images(samples, prepared, config), verbose=1)  # a progress bar: this is the slow part
                for samples in (prepared.train, prepared.val)
            )
        return self.features


def _verbosity() -> int:
    return 1 if sys.stdout.isatty() else 2  # one line per epoch in logs and CI


def _images(samples: list[data.Sample], prepared: PreparedData, config: TrainConfig, shuffle: bool = False):
    labels = data.label_indices(samples, prepared.class_names)
    return data.image_dataset(
        [sample.path for sample in samples],
        labels,
        config.input_size,
        config.batch_size,
        config.seed if shuffle else None,
    )


def uses_cached_features(config: TrainConfig) -> bool:
    return config.arch == "xception" and config.cache_features and not config.augment


def train_model(
    config: TrainConfig, prepared: PreparedData, run_dir: Path, cache: FeatureCache | None = None
) -> TrainedModel:
    """Train one setting: stage 1 on the frozen base, then optional fine-tuning of its top blocks."""
    import tensorflow as tf

    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    gpu_count = len(tf.config.list_physical_devices("GPU"))
    keras.mixed_precision.set_global_policy(precision_policy(config.mixed_precision, gpu_count))
    y_train = data.label_indices(prepared.train, prepared.class_names)
    y_val = data.label_indices(prepared.val, prepared.class_names)
    class_weight = (
        balanced_class_weights(y_train, len(prepared.class_names)) if config.class_weight == "balanced" else None
    )
    callbacks = stopping_callbacks(config.patience, config.target_accuracy)
    if config.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard")))

    with distribution_strategy(gpu_count).scope():
        network = build(
            config.arch,
            len(prepared.class_names),
            config.input_size,
            config.weights,
            config.inner_size,
            config.dropout,
            config.augment,
            config.seed,
        )
        if uses_cached_features(config):
            train_features, val_features = (cache or FeatureCache()).get(network.backbone, prepared, config)
            trained_part = network.head
            train_inputs = _batches(train_features, y_train, config.batch_size, config.seed)
            val_inputs = _batches(val_features, y_val, config.batch_size)
        else:
            trained_part = network.model
            train_inputs = _images(prepared.train, prepared, config, shuffle=True)
            val_inputs = _images(prepared.val, prepared, config)
        _compile(trained_part, config.lr)

    # The pipelines shuffle the training batches themselves.
    fit = dict(callbacks=callbacks, class_weight=class_weight, shuffle=False, verbose=_verbosity())
    stage1 = trained_part.fit(train_inputs, validation_data=val_inputs, epochs=config.epochs, **fit)
    history = _with_stage(stage1.history, "head")

    if config.fine_tune_epochs and network.backbone is not None:
        print(f"fine-tuning the top {config.unfreeze} Xception blocks at learning rate {config.fine_tune_lr}")
        with distribution_strategy(gpu_count).scope():
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


def _batches(features: np.ndarray, labels: np.ndarray, batch_size: int, shuffle_seed: int | None = None):
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


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
    lr: float
    dropout: float
    val_accuracy: float
    val_loss: float
    epochs: int
    seconds: float
    history: dict[str, list]


def sweep(
    config: TrainConfig, learning_rates: list[float], dropouts: list[float], prepared: PreparedData, run_dir: Path
) -> tuple[TrainedModel, list[SweepResult]]:
    """Train every (learning rate, dropout) pair on the same split and features; return the best and the table."""
    cache = FeatureCache()
    best: TrainedModel | None = None
    results = []
    for lr, dropout in itertools.product(learning_rates, dropouts):
        print(f"--- setting: lr={lr} dropout={dropout}")
        trained = train_model(dataclasses.replace(config, lr=lr, dropout=dropout), prepared, run_dir, cache)
        accuracy, loss = trained.report.accuracy, trained.report.loss
        results.append(
            SweepResult(lr, dropout, accuracy, loss, len(trained.history["loss"]), trained.seconds, trained.history)
        )
        print(f"--- lr={lr} dropout={dropout}: val_accuracy={accuracy:.4f} val_loss={loss:.4f}")
        if best is None or (accuracy, -loss) > (best.report.accuracy, -best.report.loss):
            best = trained
    return best, results
