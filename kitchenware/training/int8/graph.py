"""Graph surgery on the float ONNX network before it is quantized: the network the int8 file holds (no class maps),
cross-layer equalization of its channels, and the nodes kept in float (residual additions, the shortcut
convolutions that read them)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx

INT8_OUTPUTS = ("probabilities", "features")


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


def exposing(model: onnx.ModelProto, tensors: list[str], optimised: bool = True):
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
    ranges = channel_ranges(model, [name for members, *_ in plans for name in members], chunks)

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


def channel_ranges(model: onnx.ModelProto, tensors: list[str], chunks: Iterable[np.ndarray]) -> dict[str, np.ndarray]:
    """The largest |value| of each channel (axis 1, NCHW) of the given tensors over the photos."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    session = exposing(exposed, tensors)
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
