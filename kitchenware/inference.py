"""A loaded model with its class names: RGB pixels in, probabilities out, through one compiled forward pass."""

from __future__ import annotations

import numpy as np

from kitchenware.store import StoredModel


def limit_threads(threads: int) -> None:
    """Cap TensorFlow to this worker's share of the CPUs (possible only before TensorFlow first runs)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already running in this process (e.g. in-process tests): keep its settings
        pass


class Classifier:
    def __init__(self, stored: StoredModel):
        import tensorflow as tf

        self.tag = stored.tag
        self.class_names = stored.class_names
        self.input_size = stored.input_size
        model = stored.model
        size = self.input_size
        # One trace for every batch size; model.predict() would add its data-adapter overhead to each call.
        self._forward = tf.function(
            lambda pixels: model(tf.cast(pixels, tf.float32), training=False),
            input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)],
        )

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """(n, input_size, input_size, 3) uint8 pixels -> (n, classes) float32 probabilities."""
        return self._forward(pixels).numpy()

    def warm_up(self) -> None:
        """Trace and run the forward pass once, so the first request does not pay for it."""
        self.probabilities(np.zeros((1, self.input_size, self.input_size, 3), np.uint8))
