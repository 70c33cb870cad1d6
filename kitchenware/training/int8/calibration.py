"""ONNX Runtime's static quantizer on the equalized network, calibrated in chunks, and how far each int8 layer is
from the float network's."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx

from kitchenware.training.int8.graph import exposing

log = logging.getLogger(__name__)

# What runs in int8: the convolutions (nearly all the arithmetic), the residual additions and poolings between
# them, so that int8 tensors flow from one convolution to the next without a float round trip. The head (global
# pooling, the dense layer, softmax) stays float: it is cheap, and a uint8 `features` output would put 256 levels
# into the "unknown" score's distances.
OP_TYPES_TO_QUANTIZE = ("Conv", "Add", "MaxPool", "Relu", "Transpose")
CHUNK = 8  # photos per calibration step: the histograms are merged step by step, never every activation at once


class _Chunk:
    """One calibration step's photos as ONNX Runtime's CalibrationDataReader wants them, one photo a run."""

    def __init__(self, input_name: str, pixels: np.ndarray):
        self.runs = iter([{input_name: photo[None].astype(np.float32)} for photo in pixels])

    def get_next(self) -> dict | None:
        return next(self.runs, None)


def calibrate(network: Path, chunks: Iterable[np.ndarray], method: str = "percentile", percentile: float = 99.999):
    """The activation ranges of the network on photos given CHUNK at a time ((n, size, size, 3) uint8 arrays).

    ONNX Runtime's calibrators merge what each `collect_data` call saw into the ranges (min-max) or histograms
    (percentile, entropy) of the calls before, so feeding them chunk by chunk keeps the memory of one chunk's
    activations. (Its own `CalibMaxIntermediateOutputs` option drops the chunks it clears in 1.32: every chunk
    but the last is lost.)"""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator

    methods = {
        "minmax": (CalibrationMethod.MinMax, {}),
        "percentile": (CalibrationMethod.Percentile, {"percentile": percentile, "symmetric": True}),
        "entropy": (CalibrationMethod.Entropy, {}),
    }
    calibrate_method, options = methods[method]
    input_name = onnx.load(str(network), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory() as scratch:
        calibrator = create_calibrator(
            network,
            list(OP_TYPES_TO_QUANTIZE),
            augmented_model_path=str(Path(scratch) / "augmented.onnx"),
            calibrate_method=calibrate_method,
            extra_options=options,
        )
        seen = 0
        with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print every step
            for pixels in chunks:
                calibrator.collect_data(_Chunk(input_name, pixels))
                seen += len(pixels)
                log.debug("calibrated on %d photos", seen)
            ranges = calibrator.compute_data()
    return ranges


def quantize(network: Path, ranges, out: Path, exclude: Iterable[str] = ()) -> Path:
    """QDQ int8: per-channel int8 weights, uint8 activations in the calibrated ranges; the nodes named in
    `exclude` stay float."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import save_tensors_data

    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch) / "ranges.json"
        save_tensors_data(ranges, cache)
        quantize_static(
            str(network),
            str(out),
            None,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(OP_TYPES_TO_QUANTIZE),
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude),
            calibrate_method=ranges.calibration_method,
            calibration_cache_path=str(cache),
        )
    return out


def in_chunks(pixels: np.ndarray, size: int = CHUNK) -> Iterator[np.ndarray]:
    for start in range(0, len(pixels), size):
        yield np.asarray(pixels[start : start + size])


def layer_errors(network: Path, int8_file: Path, chunks: Iterable[np.ndarray]) -> dict[str, dict[str, float]]:
    """For each activation the int8 network quantizes, in graph order: its signal-to-quantization-noise ratio
    (dB, higher is better) against the float network's same tensor ("cumulative": every int8 layer before it
    counts) and against its own value just before it was rounded ("local": this rounding alone), the way
    onnxruntime.quantization.qdq_loss_debug defines it, summed over the photos one at a time (so the memory is
    one photo's activations, not every photo's)."""

    int8 = onnx.load(str(int8_file))
    float_producers = {output: node.op_type for node in onnx.load(str(network)).graph.node for output in node.output}
    produced = set(float_producers)
    # The quantizer drops a Relu after a convolution (uint8 with zero point 0 clamps at 0 by itself): the tensor
    # before that rounding is the convolution's, and the Relu's clamping is not rounding error.
    int8_producers = {output: node.op_type for node in int8.graph.node for output in node.output}
    relu_dropped = {name for name, op in float_producers.items() if op == "Relu" and int8_producers.get(name) != "Relu"}
    names = [
        node.input[0] for node in int8.graph.node if node.op_type == "QuantizeLinear" and node.input[0] in produced
    ]
    float_session = exposing(onnx.load(str(network)), names)
    int8_tensors = [f"{name}_DequantizeLinear_Output" for name in names] + names
    int8_session = exposing(int8, int8_tensors, optimised=False)
    input_name = float_session.get_inputs()[0].name
    signal, cumulative, local = (dict.fromkeys(names, 0.0) for _ in range(3))
    for pixels in chunks:
        for photo in pixels:
            feed = {input_name: photo[None].astype(np.float32)}
            exact = dict(zip(names, float_session.run(names, feed)))
            outputs = int8_session.run(int8_tensors, feed)
            rounded, before = outputs[: len(names)], outputs[len(names) :]
            for name, after, unrounded in zip(names, rounded, before):
                unrounded = np.maximum(unrounded, 0) if name in relu_dropped else unrounded
                signal[name] += float(np.sum(np.square(exact[name], dtype=np.float64)))
                cumulative[name] += float(np.sum(np.square(exact[name] - after, dtype=np.float64)))
                local[name] += float(np.sum(np.square(unrounded - after, dtype=np.float64)))
    return {
        name: {
            "cumulative_db": _decibels(signal[name], cumulative[name]),
            "local_db": _decibels(signal[name], local[name]),
        }
        for name in names
    }


def _decibels(signal: float, noise: float) -> float:
    return 10 * float(np.log10(max(signal, 1e-30) / max(noise, 1e-30)))
