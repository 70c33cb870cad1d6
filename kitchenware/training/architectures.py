"""The two approaches: a small CNN from scratch and an ImageNet Xception with a new head.

Each model takes plain 0-255 RGB pixels: pixel scaling is a layer inside the model, so a saved
model needs nothing but `kitchenware.preprocessing` in front of it. Xception's head is either a linear probe
(L2-normalised features -> softmax, its weights fit by scikit-learn: training/probe.py) or a dense head trained by
Keras (optionally an inner Dense layer and dropout).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import keras
from keras import layers

if TYPE_CHECKING:
    from kitchenware.training.config import TrainConfig

XCEPTION_BLOCKS = 14


@dataclass
class Network:
    """The full model, plus its parts when the model is backbone + head (Xception)."""

    model: keras.Model
    backbone: keras.Model | None = None  # pixels -> pooled features (frozen in stage 1)
    head: keras.Model | None = None  # pooled features -> class probabilities


def augmentation(seed: int | None = None) -> keras.Sequential:
    """Random flips, rotations, zooms, shifts and contrast; Keras runs these layers only in training."""
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(0.1, fill_mode="reflect", seed=seed),
            layers.RandomZoom(0.1, fill_mode="reflect", seed=seed),
            layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed),
            layers.RandomContrast(0.2, seed=seed),
        ],
        name="augmentation",
    )


def build_scratch(
    num_classes: int, input_size: int = 150, dropout: float = 0.0, augment: bool = False, seed: int | None = None
) -> Network:
    """The seed's network: Conv2D(32, 3x3) -> MaxPooling -> Flatten -> Dense(64) -> softmax."""
    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    x = augmentation(seed)(inputs) if augment else inputs
    x = layers.Rescaling(1.0 / 255)(x)
    x = layers.Conv2D(32, (3, 3), activation="relu")(x)
    x = layers.MaxPooling2D((2, 2))(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    if dropout:
        x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return Network(keras.Model(inputs, outputs, name="scratch_cnn"))


def xception_backbone(input_size: int, weights: str) -> keras.Model:
    """Xception's scaling to [-1, 1], the convolutional base, global average pooling."""
    if weights not in ("imagenet", "none") and not Path(weights).is_file():
        raise FileNotFoundError(
            f"weights file {weights} not found: pass --weights imagenet (download), none (random) "
            "or the path of xception_imagenet_notop.weights.h5"
        )
    base = keras.applications.Xception(
        weights=None if weights == "none" else weights,
        include_top=False,
        input_shape=(input_size, input_size, 3),
    )
    base.trainable = False
    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)  # keras.applications.xception.preprocess_input
    x = base(x, training=False)  # BatchNorm stays in inference mode, also while fine-tuning
    outputs = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, outputs, name="xception_backbone")


def classification_head(
    num_features: int, num_classes: int, inner_size: int = 0, dropout: float = 0.0, normalised: bool = False
) -> keras.Model:
    """Pooled features -> class probabilities; `normalised`: the features scaled to unit length first (the probe)."""
    inputs = keras.Input((num_features,), name="features")
    # In float32 even under mixed precision: a sum of 2,048 squares overflows float16's 65,504.
    x = layers.UnitNormalization(dtype="float32", name="unit_length")(inputs) if normalised else inputs
    if inner_size:
        x = layers.Dense(inner_size, activation="relu")(x)
    if dropout:
        x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="head")


def build_xception(
    num_classes: int,
    input_size: int = 299,
    weights: str = "imagenet",
    inner_size: int = 0,
    dropout: float = 0.0,
    augment: bool = False,
    seed: int | None = None,
    normalised: bool = False,
) -> Network:
    """Frozen Xception backbone + a new head; the head can also be trained alone on cached features."""
    backbone = xception_backbone(input_size, weights)
    head = classification_head(backbone.output_shape[-1], num_classes, inner_size, dropout, normalised)
    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    x = augmentation(seed)(inputs) if augment else inputs
    outputs = head(backbone(x))
    return Network(keras.Model(inputs, outputs, name="xception_classifier"), backbone, head)


def unfreeze_top_blocks(backbone: keras.Model, blocks: int) -> int:
    """Make Xception's top `blocks` blocks (of 14) trainable, BatchNorm layers excepted; returns the layer count."""
    base = next(layer for layer in backbone.layers if isinstance(layer, keras.Model))
    base.trainable = True
    first = XCEPTION_BLOCKS - blocks + 1
    unfrozen = 0
    for layer in base.layers:
        block = layer.name.split("_")[0]
        number = int(block[5:]) if block.startswith("block") and block[5:].isdigit() else 0
        layer.trainable = number >= first and not isinstance(layer, layers.BatchNormalization)
        unfrozen += layer.trainable and bool(layer.weights)
    return unfrozen


def build(config: TrainConfig, num_classes: int) -> Network:
    """The network a training setting describes."""
    if config.arch == "scratch":
        return build_scratch(num_classes, config.input_size, config.dropout, config.augment, config.seed)
    return build_xception(
        num_classes,
        config.input_size,
        config.weights,
        config.inner_size,
        config.dropout,
        config.augment,
        config.seed,
        normalised=config.head == "probe",
    )
