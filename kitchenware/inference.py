"""The served forward pass: RGB pixels in, probabilities out, with ONNX Runtime (default) or TensorFlow.

A model in the BentoML store holds both files: model.keras (training, evaluation) and model.onnx, exported
from it and checked against it when saved. ONNX Runtime runs the same network faster on a CPU, and its
~80 MB wheel replaces TensorFlow's ~1.3 GB in the container; `KITCHENWARE_RUNTIME=tensorflow` keeps the
Keras file in charge. Neither module is imported until a runtime is chosen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from kitchenware.config import KERAS_FILE, ONNX_FILE

RUNTIMES = ("onnx", "tensorflow")


class Classifier(Protocol):
    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """(n, size, size, 3) uint8 pixels -> (n, classes) float32 probabilities."""


class OnnxClassifier:
    def __init__(self, onnx_file: Path, threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: in the service they share the cores with photo decoding,
        # and spinning cost 22% more CPU per request at 16 clients (README, Benchmarks).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: pixels.astype(np.float32)})[0]


class TensorFlowClassifier:
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

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        return self._forward(pixels).numpy()


def open_classifier(model_dir: Path, runtime: str, threads: int, input_size: int) -> Classifier:
    """The classifier for a stored model's folder, warmed up so the first request does not pay for tracing."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if runtime == "onnx":
        onnx_file = Path(model_dir) / ONNX_FILE
        if not onnx_file.is_file():
            raise FileNotFoundError(
                f"{onnx_file} not found: the model was saved before ONNX export, or its export failed (see 'onnx' "
                "in its metadata); import its .keras file again with `python build_bento_from_saved_model.py "
                "--model path/to/model.keras`, or serve it with KITCHENWARE_RUNTIME=tensorflow"
            )
        classifier = OnnxClassifier(onnx_file, threads)
    else:
        import keras

        classifier = TensorFlowClassifier(keras.models.load_model(Path(model_dir) / KERAS_FILE), threads)
    classifier.probabilities(np.zeros((1, input_size, input_size, 3), np.uint8))
    return classifier
