"""int8 for the served network: ONNX Runtime's static quantizer, calibrated in chunks, with the layers it hurts
most kept in float.

    network_for_int8 -> equalize -> calibrate (chunk by chunk) -> quantize (QDQ, per-channel int8 weights)
        -> quantization-aware fine-tuning toward the float network (qat.py)
    layer_errors: how far each layer's int8 output is from the float network's, to choose what stays in float

The int8 network answers probabilities and features only: `/explain` and its class maps stay with the float
model (core/cascade.py), so the int8 file has no class_maps branch.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx

from kitchenware.training.config import QAT_EPOCHS, QAT_LEARNING_RATE, QAT_STEP_LEARNING_RATE

log = logging.getLogger(__name__)

INT8_OUTPUTS = ("probabilities", "features")
# What runs in int8: the convolutions (nearly all the arithmetic), the residual additions and poolings between
# them, so that int8 tensors flow from one convolution to the next without a float round trip. The head (global
# pooling, the dense layer, softmax) stays float: it is cheap, and a uint8 `features` output would put 256 levels
# into the "unknown" score's distances.
OP_TYPES_TO_QUANTIZE = ("Conv", "Add", "MaxPool", "Relu", "Transpose")
CHUNK = 8  # photos per calibration step: the histograms are merged step by step, never every activation at once


def network_for_int8(float_file: Path, out: Path) -> Path:
    """The float network without its class_maps output (and the nodes only it needs), shape-inferred and
    optimised for the quantizer (onnxruntime's quant_pre_process)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(float_file))
    inputs = [graph_input.name for graph_input in model.graph.input]
    outputs = [output.name for output in model.graph.output if output.name in INT8_OUTPUTS]
    network = onnx.utils.Extractor(model).extract_model(inputs, outputs)
    with tempfile.TemporaryDirectory() as scratch:
        bare = Path(scratch) / "network.onnx"
        onnx.save(network, str(bare))
        quant_pre_process(str(bare), str(out), skip_symbolic_shape=True)
    return out


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
    float_session = _exposing(onnx.load(str(network)), names)
    int8_tensors = [f"{name}_DequantizeLinear_Output" for name in names] + names
    int8_session = _exposing(int8, int8_tensors, optimised=False)
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


def _exposing(model: onnx.ModelProto, tensors: list[str], optimised: bool = True):
    """A session that also answers the given inner tensors (after the model's own outputs)."""
    import onnxruntime

    present = {output.name for output in model.graph.output}
    model.graph.output.extend(
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        for name in tensors
        if name not in present
    )
    options = onnxruntime.SessionOptions()
    if not optimised:  # keep the QuantizeLinear/DequantizeLinear pairs apart, to read the tensors between them
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def equalize(network: Path, chunks: Iterable[np.ndarray], out: Path, alpha: float = 0.5) -> dict:
    """Rescale channels so that one int8 scale per tensor fits every channel, with the float network's outputs
    unchanged (cross-layer equalization, Nagel et al., 2019; the balance against weights as in SmoothQuant,
    Xiao et al., 2023).

    Xception's activations are very uneven across channels: in the middle flow one channel of a depthwise
    output spans 165 while the median one spans 1.4, and a single int8 scale for the tensor leaves the small
    channels a level or two. Relu, MaxPool and Add commute with a positive scale per channel, so the tensors
    linked through them form a group that can share one scale per channel: each convolution writing into the
    group multiplies its output channel c by s_c (weights and bias: free, weights are quantized per channel),
    each depthwise convolution reading from it divides its channel c by s_c (free as well), and each other
    convolution reading from it divides its input column c by s_c (which widens some columns of its weights).
    With only free rewrites, s_c = 1 / a_c evens the channels out (a_c: the channel's largest |activation| on
    the photos); when a convolution's columns pay for it, s_c = w_c^(1 - alpha) / a_c^alpha shares the spread
    between the activations and those weights (w_c: the column's largest |weight|, relative to the layer's).
    Groups that reach anything else (the pooled features, a constant added to the pixels) are left alone.
    Returns how many groups were rescaled and how many tensors they hold."""
    from onnx import numpy_helper

    model = onnx.load(str(network))
    graph = model.graph
    weights = {tensor.name: tensor for tensor in graph.initializer}
    outputs = {output.name for output in graph.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    group_of: dict[str, str] = {}

    def root(name: str) -> str:
        while group_of.setdefault(name, name) != name:
            name = group_of[name]
        return name

    def join(first: str, second: str) -> None:
        group_of[root(first)] = root(second)

    homogeneous = {"Relu", "MaxPool", "Add"}  # f(s * x) = s * f(x) per channel, for s > 0
    for node in graph.node:
        if node.op_type in homogeneous:
            for name in node.input:
                join(name, node.output[0])
    for node in graph.node:  # every convolution output starts a group, maybe joined to others above
        if node.op_type == "Conv":
            root(node.output[0])
    groups: dict[str, list[str]] = {}
    for name in list(group_of):
        groups.setdefault(root(name), []).append(name)

    def is_depthwise(node) -> bool:
        return node.op_type == "Conv" and 1 < _groups(node) == weights[node.input[1]].dims[0]

    plans = []
    for members in groups.values():
        inside = set(members)
        writers, readers, free_readers, scalable = [], [], [], True
        for name in members:
            if name in weights or name in outputs or name in {i.name for i in graph.input}:
                scalable = False
                break
            for node in consumers.get(name, []):
                if node.op_type in homogeneous and node.output[0] in inside:
                    continue
                if node.op_type == "Conv" and node.input[0] == name:
                    (free_readers if is_depthwise(node) else readers).append(node)
                else:
                    scalable = False
        for node in graph.node:
            if scalable and node.output and node.output[0] in inside and node.op_type not in homogeneous:
                if node.op_type == "Conv":
                    writers.append(node)
                else:
                    scalable = False
        if scalable and writers and (readers or free_readers):
            plans.append((members, writers, readers, free_readers))
    ranges = _channel_ranges(model, [name for members, *_ in plans for name in members], chunks)

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(weights[name]).astype(np.float32)

    def store(name: str, values: np.ndarray) -> None:
        weights[name].CopyFrom(numpy_helper.from_array(values.astype(np.float32), name))

    shared = [name for name, uses in consumers.items() if name in weights and len(uses) > 1]
    if shared:
        raise ValueError(f"weights shared between nodes cannot be rescaled one node at a time: {shared[:3]}")
    for members, writers, readers, free_readers in plans:
        activation = np.maximum(np.max([ranges[name] for name in members], axis=0), 1e-6)
        if readers:
            columns = [np.abs(array(r.input[1])).max(axis=(0, 2, 3)) for r in readers]
            column = np.maximum(np.max([c / c.max() for c in columns], axis=0), 1e-6)
            scale = column ** (1 - alpha) / activation**alpha
        else:
            scale = 1 / activation
        scale /= np.exp(np.mean(np.log(scale)))  # keep the tensors' overall size
        for writer in writers:
            store(writer.input[1], array(writer.input[1]) * scale[:, None, None, None])
            if len(writer.input) > 2 and writer.input[2]:
                store(writer.input[2], array(writer.input[2]) * scale)
        for reader in free_readers:  # depthwise: channel c in is channel c out; its bias stays
            store(reader.input[1], array(reader.input[1]) / scale[:, None, None, None])
        for reader in readers:
            store(reader.input[1], array(reader.input[1]) / scale[None, :, None, None])
    onnx.save(model, str(out))
    return {"groups": len(plans), "tensors": sum(len(members) for members, *_ in plans)}


def _channel_ranges(model: onnx.ModelProto, tensors: list[str], chunks: Iterable[np.ndarray]) -> dict[str, np.ndarray]:
    """The largest |value| of each channel (axis 1, NCHW) of the given tensors over the photos."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    session = _exposing(exposed, tensors)
    input_name = session.get_inputs()[0].name
    ranges: dict[str, np.ndarray] = {}
    for pixels in chunks:
        for photo in pixels:
            values = session.run(tensors, {input_name: photo[None].astype(np.float32)})
            for name, value in zip(tensors, values):
                largest = np.abs(value).max(axis=(0, 2, 3))
                ranges[name] = np.maximum(ranges[name], largest) if name in ranges else largest
    return ranges


def _groups(node: onnx.NodeProto) -> int:
    """A convolution's `group` attribute: 1 for an ordinary convolution, its channels for a depthwise one."""
    return next((attribute.i for attribute in node.attribute if attribute.name == "group"), 1)


def residual_additions(network: Path) -> list[str]:
    """The Add nodes that join two computed tensors (Xception's residual connections), not a constant."""
    graph = onnx.load(str(network), load_external_data=False).graph
    constants = {tensor.name for tensor in graph.initializer}
    return [node.name for node in graph.node if node.op_type == "Add" and not constants & set(node.input)]


def stream_readers(network: Path) -> list[str]:
    """The convolutions that read a residual addition's output directly (Xception's 1x1 shortcut convolutions
    of the entry and exit flows): quantizing them would round the residual stream where they read it."""
    graph = onnx.load(str(network), load_external_data=False).graph
    residual = set(residual_additions(network))
    additions = {node.output[0] for node in graph.node if node.name in residual}
    return [
        node.name
        for node in graph.node
        if node.op_type == "Conv" and node.input[0] in additions and _groups(node) == 1  # not a depthwise one
    ]


# ---- choosing the band, and measuring the cascade ---------------------------------------------------------------


def gaps(rule, exact, quick) -> dict[str, np.ndarray]:
    """Per photo, int8 minus float where the rule's edges are: for the label, the largest amount by which the
    int8 network's top class gained on another class (calibrated log-probability); the log-odds of the top
    confidence; the out-of-distribution score (both signed)."""
    from kitchenware.core.cascade import edges

    float_edges, int8_edges = edges(rule, exact), edges(rule, quick)
    rows = np.arange(len(int8_edges.labels))
    top = int8_edges.labels
    error = int8_edges.log_probabilities - float_edges.log_probabilities
    with np.errstate(invalid="ignore"):  # -inf - -inf for classes both give a probability of 0
        gained = np.nan_to_num(error[rows, top][:, None] - error, nan=0.0, posinf=0.0, neginf=0.0)
    gained[rows, top] = 0.0
    float_top = np.exp(float_edges.log_probabilities[rows, top])
    with np.errstate(divide="ignore"):
        float_log_odds = np.log(float_top) - np.log1p(-float_top)
    gap = {"margin": gained.max(axis=1), "log_odds": np.nan_to_num(int8_edges.log_odds - float_log_odds)}
    if float_edges.ood_scores is not None and int8_edges.ood_scores is not None:
        gap["ood"] = int8_edges.ood_scores - float_edges.ood_scores
    return gap


def band_from(gap: dict[str, np.ndarray], chosen: np.ndarray, safety: float):
    from kitchenware.core.cascade import Band

    def low(name: str) -> float:
        return safety * min(float(gap[name][chosen].min()), 0.0) if name in gap else 0.0

    def high(name: str) -> float:
        return safety * max(float(gap[name][chosen].max()), 0.0) if name in gap else 0.0

    return Band(high("margin"), low("log_odds"), high("log_odds"), low("ood"), high("ood"))


def same_answers(rule, exact, quick) -> np.ndarray:
    """Photos on which the int8 network alone gives the float network's label and decision."""
    a, b = rule.decide(exact.probabilities, exact.features), rule.decide(quick.probabilities, quick.features)
    return (a.labels == b.labels) & (np.array(a.decisions) == np.array(b.decisions))


SAFETY_FACTORS = tuple(np.round(np.arange(1.0, 3.01, 0.05), 2))


def choose_band(rule, exact, quick, target: float = 0.999, rounds: int = 20, seed: int = 0):
    """The band, from validation photos only: the largest int8-minus-float gap of each kind times the smallest
    safety factor whose band, chosen on one random half of the photos, gives the float network's answer on at
    least `target` of the other half (over `rounds` random halvings, both ways). Returns the band, the factor
    and that cross-fitted agreement."""
    from kitchenware.core.cascade import edges

    gap = gaps(rule, exact, quick)
    found = edges(rule, quick)
    agree = same_answers(rule, exact, quick)
    photos = len(agree)
    rng = np.random.default_rng(seed)
    halvings = []
    for _ in range(rounds):
        order = rng.permutation(photos)
        halvings += [(order[: photos // 2], order[photos // 2 :]), (order[photos // 2 :], order[: photos // 2])]
    for safety in SAFETY_FACTORS:
        wrong = checked = 0
        for chosen, measured in halvings:
            unclear = band_from(gap, chosen, safety).unclear(rule, found)
            wrong += int(np.sum(~agree[measured] & ~unclear[measured]))
            checked += len(measured)
        if 1 - wrong / checked >= target:
            break
    return band_from(gap, np.arange(photos), safety), float(safety), 1 - wrong / checked


def cascade_figures(rule, band, exact, quick) -> dict:
    """What the cascade does on some photos: how often the float network runs, and how often the final answer
    (label and decision) and the int8 network's alone are the float network's."""
    from kitchenware.core.cascade import edges

    unclear = band.unclear(rule, edges(rule, quick))
    alone = same_answers(rule, exact, quick)
    top1 = rule.decide(exact.probabilities, None).labels == rule.decide(quick.probabilities, None).labels
    return {
        "photos": len(alone),
        "fallback": round(float(unclear.mean()), 4),
        "final_agreement": round(float(np.mean(alone | unclear)), 4),
        "final_disagreements": int(np.sum(~alone & ~unclear)),
        "int8_alone_agreement": round(float(alone.mean()), 4),
        "int8_alone_top1_agreement": round(float(top1.mean()), 4),
    }


# ---- the `train.py quantize` command ------------------------------------------------------------------------------

ALPHA = 0.5
PERCENTILE = 99.999
EQUALIZE_PHOTOS = 64  # per-channel ranges for the equalization: the largest values settle within a few dozen photos
ERROR_PHOTOS = 12  # photos the per-layer error report runs on (every activation of one photo at a time)
TARGET_AGREEMENT = 0.999
QAT_PHOTOS = 512  # at most, evenly spread over the calibration photos: their pixels are held in memory (0.3 MB each)


def _decoded(samples: list, input_size: int) -> Iterator[np.ndarray]:
    """The photos' pixels CHUNK at a time, decoded by the one preprocessing function."""
    from kitchenware.core.preprocessing import decoded_in_chunks, prepare

    return decoded_in_chunks(samples, lambda sample: prepare(sample.path, input_size), CHUNK)


def _spread(samples: list, count: int) -> list:
    """`count` of the samples, evenly spaced (all of them when there are fewer)."""
    if count >= len(samples):
        return list(samples)
    return [samples[int(i)] for i in np.linspace(0, len(samples) - 1, count).round()]


def _fine_tuned(
    int8_file: Path,
    float_network,
    samples: list,
    size: int,
    temperature: float,
    epochs: int,
    learning_rate: float,
    step_learning_rate: float,
) -> dict:
    """Quantization-aware fine-tuning of int8_file toward the float network (a Classifier), on these photos (then a
    new augmented view of each every epoch); what it did."""
    from kitchenware.core.inference import classify_pixels
    from kitchenware.core.preprocessing import decoded_in_chunks
    from kitchenware.training.augmentation import view_pixels
    from kitchenware.training.qat import fine_tune

    def views(epoch: int) -> np.ndarray:
        pixels = decoded_in_chunks(samples, lambda sample: view_pixels(sample, epoch, size, seed=0), CHUNK)
        return np.concatenate(list(pixels))

    log.info("quantization-aware fine-tuning on %d photos, %d epochs", len(samples), epochs)
    losses = fine_tune(
        int8_file,
        views,
        lambda photos: classify_pixels(float_network, photos),
        epochs,
        learning_rate,
        temperature,
        step_learning_rate,
    )
    return {
        "method": "quantization-aware: the int8 weights trained through their rounding toward the float network's "
        "features and calibrated probabilities (distillation); the photos, then a new augmented view of each "
        "every epoch" + ("; the activations' steps learned with them (LSQ)" if step_learning_rate else ""),
        "photos": len(samples),
        "epochs": epochs,
        "learning_rate": learning_rate,
        "step_learning_rate": step_learning_rate,
        "loss_per_epoch": [round(loss, 5) for loss in losses],
    }


def quantize_model(
    folder: Path,
    labelled: list,
    validation: set[tuple[str, str]],
    others: list,
    out: Path,
    calibration_photos: int | None = None,
    command: str = "",
    qat_epochs: int = QAT_EPOCHS,
    qat_learning_rate: float = QAT_LEARNING_RATE,
    qat_step_learning_rate: float = QAT_STEP_LEARNING_RATE,
):
    """Write folder/model-int8.onnx and the int8 section of its model card (band and figures); reports in `out`.

    The labelled photos of the split's training side are halved (sorted by source and Id, every other one): one
    half calibrates, the other half is never seen and measures; the photos of other things likewise. The band is
    chosen on the validation side. Returns the updated card."""
    import csv
    import hashlib
    import json
    import shutil

    import onnxruntime

    from kitchenware.core.card import CARD_MARKDOWN, INT8_FILE, ONNX_FILE, ModelCard
    from kitchenware.core.decision import DecisionRule
    from kitchenware.core.inference import Forward, OnnxClassifier, classify_pixels, joined
    from kitchenware.training.model_card import card_markdown

    card = ModelCard.read(folder)
    rule = DecisionRule.for_model(card, folder)
    exact_network = OnnxClassifier(folder / ONNX_FILE, 0)  # the float network: teacher, then referee
    order = sorted(labelled, key=lambda sample: (sample.source, sample.id))
    checking = [sample for sample in order if (sample.source, sample.id) in validation]
    rest = [sample for sample in order if (sample.source, sample.id) not in validation]
    others = sorted(others, key=lambda sample: sample.id)
    calibration = rest[::2] + others[::2]
    held_out = rest[1::2] + others[1::2]
    if calibration_photos:
        calibration = _spread(calibration, calibration_photos)
    out.mkdir(parents=True, exist_ok=True)
    size = card.input_size
    log.info(
        "%d photos calibrate, %d choose the band (validation), %d are held out",
        len(calibration),
        len(checking),
        len(held_out),
    )
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        network = network_for_int8(folder / ONNX_FILE, work / "network.onnx")
        equalized = work / "equalized.onnx"
        rescaled = equalize(network, _decoded(_spread(calibration, EQUALIZE_PHOTOS), size), equalized, ALPHA)
        log.info("equalized %d groups of channels; calibrating (percentile %s)", rescaled["groups"], PERCENTILE)
        ranges = calibrate(equalized, _decoded(calibration, size), "percentile", PERCENTILE)
        additions, shortcuts = residual_additions(equalized), stream_readers(equalized)
        quantize(equalized, ranges, work / INT8_FILE, additions + shortcuts)
        fine_tuning = None
        if qat_epochs:
            photos = _spread(calibration, QAT_PHOTOS)
            fine_tuning = _fine_tuned(
                work / INT8_FILE,
                exact_network,
                photos,
                size,
                rule.temperature,
                qat_epochs,
                qat_learning_rate,
                qat_step_learning_rate,
            )
        log.info("quantized; per-layer error against the float network on %d photos", ERROR_PHOTOS)
        errors = layer_errors(equalized, work / INT8_FILE, _decoded(_spread(checking + others, ERROR_PHOTOS), size))
        shutil.copyfile(work / INT8_FILE, folder / INT8_FILE)
    with open(out / "layer_errors.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["tensor", "cumulative_sqnr_db", "local_sqnr_db"])
        writer.writerows(
            [name, round(row["cumulative_db"], 2), round(row["local_db"], 2)] for name, row in errors.items()
        )

    quick_network = OnnxClassifier(folder / INT8_FILE, 0)

    def both(samples: list) -> tuple[Forward, Forward]:
        passes = [
            (classify_pixels(exact_network, p), classify_pixels(quick_network, p)) for p in _decoded(samples, size)
        ]
        exact_passes, quick_passes = zip(*passes)
        return joined(exact_passes), joined(quick_passes)

    def subset(forward: Forward, rows: np.ndarray) -> Forward:
        return Forward(forward.probabilities[rows], None if forward.features is None else forward.features[rows])

    log.info("float and int8 forward passes on %d photos", len(checking) + len(held_out) + len(calibration))
    exact, quick = both(checking)
    band, safety, cross_fitted = choose_band(rule, exact, quick, TARGET_AGREEMENT)
    labels = np.array([card.class_names.index(sample.label) for sample in checking])
    from kitchenware.core.cascade import edges

    unclear = band.unclear(rule, edges(rule, quick))
    cascade_labels = np.where(unclear, exact.probabilities.argmax(1), quick.probabilities.argmax(1))
    validation_accuracy = {
        "float": round(float(np.mean(exact.probabilities.argmax(1) == labels)), 4),
        "cascade": round(float(np.mean(cascade_labels == labels)), 4),
        "int8_alone": round(float(np.mean(quick.probabilities.argmax(1) == labels)), 4),
    }
    figures: dict[str, dict] = {}
    for role, samples in (
        ("validation (band chosen here)", checking),
        ("held out", held_out),
        ("calibration", calibration),
    ):
        role_exact, role_quick = (exact, quick) if samples is checking else both(samples)
        sources = np.array([sample.source or "other things" for sample in samples])
        for source in dict.fromkeys(sources):
            rows = np.flatnonzero(sources == source)
            figures[f"{source}, {role}"] = cascade_figures(
                rule, band, subset(role_exact, rows), subset(role_quick, rows)
            )
    int8_bytes = (folder / INT8_FILE).read_bytes()
    card = card.replace(
        int8={
            "file": INT8_FILE,
            "sha256": hashlib.sha256(int8_bytes).hexdigest(),
            "command": command,
            "recipe": {
                "quantizer": f"onnxruntime {onnxruntime.__version__} quantize_static, QDQ",
                "weights": "int8, per output channel",
                "activations": "uint8, per tensor",
                "equalization": f"cross-layer, alpha {ALPHA}, on {min(EQUALIZE_PHOTOS, len(calibration))} photos",
                "calibration": f"percentile {PERCENTILE}, {len(calibration)} photos in chunks of {CHUNK}",
                "calibration_photos": dict(Counter(sample.source or "other things" for sample in calibration)),
                "fine_tuning": fine_tuning or "none",
                "kept_float": {
                    "residual additions": additions,
                    "shortcut convolutions": shortcuts,
                    "head": "global pooling, dense layer, softmax",
                },
            },
            "band": band.to_dict(),
            "band_safety_factor": safety,
            "band_chosen_on": f"{len(checking)} validation photos; cross-fitted agreement {cross_fitted:.4f}",
            "validation_accuracy": validation_accuracy,
            "figures": figures,
            "worst_layers": [
                {"tensor": name, "local_sqnr_db": round(row["local_db"], 1)}
                for name, row in sorted(errors.items(), key=lambda item: item[1]["local_db"])[:5]
            ],
        }
    )
    card.write(folder)
    (folder / CARD_MARKDOWN).write_text(card_markdown(card))
    (out / "int8.json").write_text(json.dumps(card.int8, indent=2) + "\n")
    return card
