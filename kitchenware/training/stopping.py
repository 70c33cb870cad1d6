"""When training stops: early stopping on validation accuracy that works, and an optional target accuracy."""

from __future__ import annotations

import keras
import numpy as np


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
    """Early stopping on validation accuracy (higher is better), back to the best epoch's weights; patience 0: none,
    every epoch runs and the last one's weights are kept (cross-validation, where the held-out fold must not
    choose the epoch)."""
    callbacks = []
    if patience > 0:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", mode="max", patience=patience, restore_best_weights=True
            )
        )
    if target_accuracy is not None:
        callbacks.append(TargetAccuracy(target_accuracy))
    return callbacks
