"""The forward pass: RGB pixels in, probabilities and features out, with ONNX Runtime or TensorFlow.

A model holds model.onnx, exported from its Keras model and checked against it when saved, and model.keras when it
was trained here. ONNX Runtime runs the same network faster on a CPU, and its ~80 MB wheel replaces TensorFlow's
~1.3 GB; the TensorFlow runtime keeps the Keras file in charge. Neither is imported until a runtime is opened
(core/runtimes.py); the int8 cascade builds on OnnxRuntime (core/cascade.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

# Photos per forward pass: larger batches are no faster on a CPU here, and ONNX Runtime keeps the memory of
# the largest batch it has seen (~45 MB per photo at 299x299).
FORWARD_BATCH = 8


class Forward(NamedTuple):
    """What one pass through the network gives: the probabilities, the backbone's pooled features (for the
    "unknown" score) when the model has a backbone, the class activation maps when asked for and the model
    has them (core/explain.py), and with the int8 cascade which photos the float network answered."""

    probabilities: np.ndarray  # (n, classes) float32
    features: np.ndarray | None  # (n, features) float32
    class_maps: np.ndarray | None = None  # (n, grid, grid, classes) float32 logits per cell
    float_answered: np.ndarray | None = None  # (n,) bool, onnx-int8-cascade only


class Runtime(Protocol):
    """What runs a network: ONNX Runtime (float or the int8 cascade) or TensorFlow."""

    has_class_maps: bool
    # Forward passes the service runs at once, each on every core it was given: one for a network that already
    # keeps the cores busy.
    passes_at_once: int

    def forward(self, pixels: np.ndarray, explain: bool = False) -> Forward:
        """(n, size, size, 3) uint8 pixels -> probabilities and features (and, with explain, the class maps)."""


class OnnxRuntime:
    passes_at_once = 1  # two at once: the same images/s with the float network, and +6% CPU (benchmarks/RESULTS.md)

    def __init__(self, onnx_file: Path, threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: in the service they share the cores with photo decoding,
        # and spinning cost 22% more CPU per request at 16 clients (benchmarks/RESULTS.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Memory patterns are planned and kept per input shape: with batches of 1 to 8 photos (and the cascade's
        # float passes on any subset of them) the process grew by each new shape, +15% over a soak; without them
        # it stays at its first plateau, at the same speed (benchmarks/memory_patterns.py).
        options.enable_mem_pattern = False
        self._session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        outputs = [output.name for output in self._session.get_outputs()]
        # A model exported before the features output existed has one output, the probabilities.
        self._outputs = ["probabilities", "features"] if "features" in outputs else outputs[:1]
        self.has_class_maps = "class_maps" in outputs

    def forward(self, pixels: np.ndarray, explain: bool = False) -> Forward:
        wanted = self._outputs + ["class_maps"] if explain and self.has_class_maps else self._outputs
        results = self._session.run(wanted, {self._input: pixels.astype(np.float32)})
        return Forward(*results, *[None] * (3 - len(results)))


class TensorFlowRuntime:
    passes_at_once = 1

    def __init__(self, model, threads: int):
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already ran in this process (in-process tests): keep its settings
            pass
        size = model.input_shape[1]
        # One trace for every batch size; model.predict() would add its data-adapter overhead to each call.
        self._forward = tf.function(
            lambda pixels: model(tf.cast(pixels, tf.float32), training=False),
            input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)],
        )
        traced = self._forward.get_concrete_function().structured_outputs  # a loaded model may never have run
        self.has_class_maps = isinstance(traced, dict) and "class_maps" in traced

    def forward(self, pixels: np.ndarray, explain: bool = False) -> Forward:
        outputs = self._forward(pixels)
        if not isinstance(outputs, dict):
            return Forward(outputs.numpy(), None)
        maps = outputs["class_maps"].numpy() if explain and self.has_class_maps else None
        return Forward(outputs["probabilities"].numpy(), outputs["features"].numpy(), maps)


def joined(passes: Sequence[Forward]) -> Forward:
    """Several forward passes as one, photo after photo (an output none of them has stays None)."""
    return Forward(*(None if part[0] is None else np.concatenate(part) for part in zip(*passes)))


def forward_in_batches(runtime: Runtime, pixels: np.ndarray, explain: bool = False) -> Forward:
    """The forward pass of a stack of photos, FORWARD_BATCH at a time (with explain, the class maps too)."""
    return joined(
        [runtime.forward(pixels[i : i + FORWARD_BATCH], explain) for i in range(0, len(pixels), FORWARD_BATCH)]
    )
