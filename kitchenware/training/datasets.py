"""tf.data pipelines of photos for Keras, decoded by the one preprocessing function."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kitchenware.core.preprocessing import prepare


def image_dataset(
    paths: list[Path], labels: np.ndarray | None, input_size: int, batch_size: int, shuffle_seed: int | None = None
):
    """tf.data batches of uint8 pixels (with class indices when `labels` is given):
    parallel decode + resize with the shared preprocessing, cached, optionally shuffled, prefetched."""
    import tensorflow as tf

    def decode(path: bytes) -> np.ndarray:
        return prepare(path.decode(), input_size)

    def load(path):
        pixels = tf.numpy_function(decode, [path], tf.uint8, stateful=False)
        return tf.ensure_shape(pixels, (input_size, input_size, 3))

    dataset = tf.data.Dataset.from_tensor_slices([str(path) for path in paths])
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if labels is not None:
        dataset = tf.data.Dataset.zip(dataset, tf.data.Dataset.from_tensor_slices(labels))
    dataset = dataset.cache()
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
