"""Which runtime runs a stored model, and opening it: ONNX Runtime (`onnx`, the float network), the int8 network
with the float one as its referee (`onnx-int8-cascade`), or TensorFlow (`tensorflow`, model.keras)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kitchenware.core.card import INT8_FILE, KERAS_FILE, ONNX_FILE, Int8Section
from kitchenware.core.cascade import CascadeRuntime
from kitchenware.core.decision import DecisionRule
from kitchenware.core.inference import OnnxRuntime, Runtime, TensorFlowRuntime

CASCADE = "onnx-int8-cascade"
RUNTIMES = ("onnx", CASCADE, "tensorflow")


def preferred_runtime(model_dir: Path, int8: Int8Section | None) -> str:
    """What runs a model when nobody chose (KITCHENWARE_RUNTIME, --runtime): the int8 cascade when the model has its
    int8 network and band (the float network's answers at 1.8x the photos per core: docs/int8.md), else the float
    network."""
    return CASCADE if (Path(model_dir) / INT8_FILE).is_file() and int8 is not None else "onnx"


def open_runtime(
    model_dir: Path,
    runtime: str,
    threads: int,
    input_size: int,
    rule: DecisionRule | None = None,
    int8: Int8Section | None = None,
) -> Runtime:
    """The runtime for a stored model's folder, warmed up so the first request does not pay for tracing.

    The cascade needs the decision rule in force and the card's int8 section (its band)."""
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
        opened: Runtime = OnnxRuntime(onnx_file, threads)
    elif runtime == CASCADE:
        int8_file = Path(model_dir) / INT8_FILE
        if not int8_file.is_file() or int8 is None or rule is None:
            raise FileNotFoundError(
                f"{int8_file} and its band in the model card are needed by the {CASCADE} runtime: make them with "
                "`kitchenware quantize --model DIR ...` and import the folder again, or serve the model with "
                "KITCHENWARE_RUNTIME=onnx"
            )
        opened = CascadeRuntime(int8_file, onnx_file, rule, int8.band, threads)
    else:
        import keras

        keras_file = Path(model_dir) / KERAS_FILE
        if not keras_file.is_file():
            raise FileNotFoundError(
                f"{keras_file} not found: this model ships model.onnx only; serve it with ONNX Runtime "
                "(KITCHENWARE_RUNTIME=onnx, --runtime onnx), or train it with `kitchenware train --export DIR` "
                "to get its Keras file"
            )
        opened = TensorFlowRuntime(keras.models.load_model(keras_file), threads)
    blank = np.zeros((1, input_size, input_size, 3), np.uint8)
    opened.warm_up(blank) if isinstance(opened, CascadeRuntime) else opened.forward(blank)
    return opened
