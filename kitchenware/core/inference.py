"""The one forward pass: RGB pixels in, probabilities out, with ONNX Runtime (default), ONNX Runtime's int8
network with the float one as its fallback (core/cascade.py), or TensorFlow.

The service, `train.py evaluate` and `train.py predict` all classify through `open_classifier` and
`classify_pixels`, so one photo gets one answer everywhere. A model holds model.onnx, exported from its
Keras model and checked against it when saved, and model.keras when it was trained here. ONNX Runtime runs
the same network faster on a CPU, and its ~80 MB wheel replaces TensorFlow's ~1.3 GB;
`runtime="tensorflow"` keeps the Keras file in charge. Neither is imported until a runtime is chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from kitchenware.core.card import INT8_FILE, KERAS_FILE, ONNX_FILE
from kitchenware.core.decision import Answers, DecisionRule
from kitchenware.core.preprocessing import decoded_in_chunks, prepare

CASCADE = "onnx-int8-cascade"
RUNTIMES = ("onnx", CASCADE, "tensorflow")
# Photos per forward pass: larger batches are no faster on a CPU here, and ONNX Runtime keeps the memory of
# the largest batch it has seen (~45 MB per photo at 299x299).
FORWARD_BATCH = 8
DECODE_CHUNK = 64  # photos decoded, then classified, at a time by classify_files


class Forward(NamedTuple):
    """What one pass through the network gives: the probabilities, the backbone's pooled features (for the
    "unknown" score) when the model has a backbone, the class activation maps when asked for and the model
    has them (core/explain.py), and with the int8 cascade which photos the float network answered."""

    probabilities: np.ndarray  # (n, classes) float32
    features: np.ndarray | None  # (n, features) float32
    class_maps: np.ndarray | None = None  # (n, grid, grid, classes) float32 logits per cell
    float_answered: np.ndarray | None = None  # (n,) bool, onnx-int8-cascade only


class Classifier(Protocol):
    has_class_maps: bool
    # Forward passes the service runs at once, each on every core it was given: one for a network that already
    # keeps the cores busy.
    passes_at_once: int

    def forward(self, pixels: np.ndarray, explain: bool = False) -> Forward:
        """(n, size, size, 3) uint8 pixels -> probabilities and features (and, with explain, the class maps)."""


class OnnxClassifier:
    passes_at_once = 1  # two at once: the same images/s with the float network, and +6% CPU (README, Benchmarks)

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
        outputs = [output.name for output in self._session.get_outputs()]
        # A model exported before the features output existed has one output, the probabilities.
        self._outputs = ["probabilities", "features"] if "features" in outputs else outputs[:1]
        self.has_class_maps = "class_maps" in outputs

    def forward(self, pixels: np.ndarray, explain: bool = False) -> Forward:
        wanted = self._outputs + ["class_maps"] if explain and self.has_class_maps else self._outputs
        results = self._session.run(wanted, {self._input: pixels.astype(np.float32)})
        return Forward(*results, *[None] * (3 - len(results)))


class TensorFlowClassifier:
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


def preferred_runtime(model_dir: Path, int8: dict | None) -> str:
    """What runs a model when nobody chose (KITCHENWARE_RUNTIME, --runtime): the int8 cascade when the model has its
    int8 network and band (the float network's answers at 1.8x the photos per core: README, int8), else the float
    network."""
    return CASCADE if (Path(model_dir) / INT8_FILE).is_file() and (int8 or {}).get("band") else "onnx"


def open_classifier(
    model_dir: Path,
    runtime: str,
    threads: int,
    input_size: int,
    rule: DecisionRule | None = None,
    int8: dict | None = None,
) -> Classifier:
    """The classifier for a stored model's folder, warmed up so the first request does not pay for tracing.

    The cascade needs the decision rule in force and the card's `int8` section (its band)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if runtime in ("onnx", CASCADE):
        onnx_file = Path(model_dir) / ONNX_FILE
        if not onnx_file.is_file():
            raise FileNotFoundError(
                f"{onnx_file} not found: the model was saved before ONNX export, or its export failed (see 'onnx' "
                "in its model card); import its exported folder again with `python build_bento_from_saved_model.py "
                "--model DIR`, or serve it with KITCHENWARE_RUNTIME=tensorflow"
            )
    if runtime == "onnx":
        classifier = OnnxClassifier(onnx_file, threads)
    elif runtime == CASCADE:
        from kitchenware.core.cascade import Band, CascadeClassifier  # it builds on this module's OnnxClassifier

        int8_file = Path(model_dir) / INT8_FILE
        if not int8_file.is_file() or not (int8 or {}).get("band") or rule is None:
            raise FileNotFoundError(
                f"{int8_file} and its band in the model card are needed by the {CASCADE} runtime: make them with "
                "`python train.py quantize --model DIR ...` and import the folder again, or serve the model with "
                "KITCHENWARE_RUNTIME=onnx"
            )
        classifier = CascadeClassifier(int8_file, onnx_file, rule, Band.from_card(int8), threads)
    else:
        import keras

        keras_file = Path(model_dir) / KERAS_FILE
        if not keras_file.is_file():
            raise FileNotFoundError(
                f"{keras_file} not found: this model ships model.onnx only; serve it with ONNX Runtime "
                "(KITCHENWARE_RUNTIME=onnx, --runtime onnx), or train it with `python train.py train --export DIR` "
                "to get its Keras file"
            )
        classifier = TensorFlowClassifier(keras.models.load_model(keras_file), threads)
    blank = np.zeros((1, input_size, input_size, 3), np.uint8)
    classifier.warm_up(blank) if runtime == CASCADE else classifier.forward(blank)
    return classifier


def classify_files(classifier: Classifier, rule: DecisionRule, paths: list[Path], input_size: int) -> Answers:
    """Answers for photos on disk (`train.py evaluate`/`predict`, batch jobs): decoded by the one preprocessing
    function on a few threads, DECODE_CHUNK at a time (bounded memory on any number of photos), classified by
    `classify_pixels` and decided by the model's rule, exactly as the service does."""
    decoded = decoded_in_chunks(paths, lambda path: prepare(path, input_size), DECODE_CHUNK)
    forward = joined([classify_pixels(classifier, pixels) for pixels in decoded])
    return rule.decide(forward.probabilities, forward.features)


def joined(passes: Sequence[Forward]) -> Forward:
    """Several forward passes as one, photo after photo (an output none of them has stays None)."""
    return Forward(*(None if part[0] is None else np.concatenate(part) for part in zip(*passes)))


def classify_pixels(classifier: Classifier, pixels: np.ndarray, explain: bool = False) -> Forward:
    """The forward pass of a stack of photos, FORWARD_BATCH at a time (with explain, the class maps too)."""
    return joined(
        [classifier.forward(pixels[i : i + FORWARD_BATCH], explain) for i in range(0, len(pixels), FORWARD_BATCH)]
    )
