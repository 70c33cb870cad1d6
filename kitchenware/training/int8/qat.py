"""Quantization-aware fine-tuning of the int8 network, toward the float network's answers.

Post-training quantization leaves int8's features off the float ones by noise that differs from photo to photo
(a per-channel correction of the features removes none of it), and the cascade's band must be as wide as the
largest such gap. A QDQ network is a fake-quantized graph already: QuantizeLinear -> DequantizeLinear pairs round
the activations, DequantizeLinear of the int8 initializers gives the weights. `QDQReplica` runs that graph in
TensorFlow with straight-through rounding, so that its weights can learn to give the float network's features
and probabilities through their own rounding (distillation: the float network is the teacher, no labels). The
trained weights are rounded back onto the same int8 grids (same scales and zero points), so ONNX Runtime runs
the result with the same kernels at the same speed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import tensorflow as tf
from onnx import numpy_helper

from kitchenware.core.inference import Forward

log = logging.getLogger(__name__)

BATCH = 8
INT8_WEIGHTS = (-127.0, 127.0)  # ONNX Runtime's symmetric int8 weights never use -128
INT32_BIASES = (-(2.0**31), 2.0**31 - 1)


class UnsupportedNetwork(ValueError):
    """The QDQ network has an operator the replica does not run; the message names it."""


def _attributes(node: onnx.NodeProto) -> dict:
    return {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}


class QDQReplica:
    """A QDQ ONNX network (as `quantize` writes it) run by TensorFlow in NHWC, weights trainable.

    Rounding is straight-through (the gradient passes the rounding, not the clipping). ONNX Runtime's integer
    kernels round some requantizations differently by one level, so the replica's features are close to
    ONNX Runtime's (cosine about 0.99), not identical: training makes the network robust to this kind of rounding,
    and the rounded-back network is measured with ONNX Runtime itself."""

    def __init__(self, model: onnx.ModelProto, learn_steps: bool = False):
        self.model = model
        self.constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
        self.nodes = list(model.graph.node)
        unsupported = {node.op_type for node in self.nodes} - set(_OPERATORS) - {"QuantizeLinear", "DequantizeLinear"}
        if unsupported:
            raise UnsupportedNetwork(
                f"quantization-aware fine-tuning runs Xception's operators; this network also has "
                f"{', '.join(sorted(unsupported))}: run `kitchenware quantize` with --qat-epochs 0"
            )
        self.logits = next(node.input[0] for node in self.nodes if node.op_type == "Softmax")
        # DequantizeLinear of an int8 (weight) or int32 (bias) initializer -> its float values, trainable, and grid;
        # of any other constant (uint8: the pixel scaling's offset) -> its float values, fixed
        self.variables: dict[str, tf.Variable] = {}
        self.grids: dict[str, tuple[np.ndarray, np.ndarray, float, float]] = {}
        for node in self.nodes:
            if node.op_type == "DequantizeLinear" and node.input[0] in self.constants:
                values = self.constants[node.input[0]]
                scale, zero = self._grid(node, values.ndim)
                dequantized = ((values.astype(np.float32) - zero) * scale).astype(np.float32)
                if values.dtype not in (np.int8, np.int32):
                    self.constants[node.output[0]] = dequantized
                    continue
                low, high = INT8_WEIGHTS if values.dtype == np.int8 else INT32_BIASES
                self.variables[node.output[0]] = tf.Variable(dequantized, name=f"w{len(self.variables)}")
                self.grids[node.output[0]] = (scale, zero, low, high)
        # With learn_steps, each activation grid's step is trained too, as the logarithm of its change (a step
        # stays positive and moves by a share of itself): LSQ, Esser et al. 2020. The gradient through the
        # straight-through rounding is already LSQ's.
        self.step_changes: dict[str, tf.Variable] = {}
        if learn_steps:
            for node in self.nodes:
                if node.op_type == "QuantizeLinear" and node.input[1] not in self.step_changes:
                    name = f"s{len(self.step_changes)}"
                    self.step_changes[node.input[1]] = tf.Variable(0.0, dtype=tf.float32, name=name)

    def _grid(self, node: onnx.NodeProto, rank: int) -> tuple[np.ndarray, np.ndarray]:
        scale = self.constants[node.input[1]].astype(np.float32)
        zero = self.constants[node.input[2]].astype(np.float32) if len(node.input) > 2 and node.input[2] else 0.0
        zero = np.asarray(zero, np.float32)
        if scale.ndim == 1 and rank > 1:  # per channel along `axis`
            shape = [1] * rank
            shape[_attributes(node).get("axis", 1)] = -1
            return scale.reshape(shape), zero.reshape(shape) if zero.ndim else zero
        return scale, zero

    def __call__(self, pixels):
        """(features, logits) of a batch of (n, size, size, 3) pixels."""
        values = {self.model.graph.input[0].name: tf.cast(pixels, tf.float32)}
        rounded = {}  # QuantizeLinear output -> (input, scale, zero point, lowest and highest level)
        for node in self.nodes:
            if node.op_type == "QuantizeLinear":
                scale, zero = (self.constants[name] for name in node.input[1:3])
                levels = np.iinfo(zero.dtype)  # uint8 activations: 0..255
                if node.input[1] in self.step_changes:
                    scale = float(scale) * tf.exp(self.step_changes[node.input[1]])
                else:
                    scale = float(scale)
                rounded[node.output[0]] = (values[node.input[0]], scale, float(zero), levels.min, levels.max)
            elif node.op_type == "DequantizeLinear" and node.output[0] in self.variables:
                scale, zero, low, high = self.grids[node.output[0]]
                values[node.output[0]] = _fake_quantized(self.variables[node.output[0]], scale, zero, low, high)
            elif node.op_type == "DequantizeLinear" and node.output[0] in self.constants:
                values[node.output[0]] = tf.constant(self.constants[node.output[0]])
            elif node.op_type == "DequantizeLinear":
                values[node.output[0]] = _fake_quantized(*rounded[node.input[0]])
            else:
                inputs = [values[name] if name in values else self.constants.get(name) for name in node.input]
                values[node.output[0]] = _OPERATORS[node.op_type](inputs, _attributes(node))
        return values["features"], values[self.logits]

    def rounded_back(self) -> onnx.ModelProto:
        """A copy of the QDQ model with the trained weights rounded onto their int8 (biases: int32) grids and the
        trained activation steps.

        ONNX Runtime fuses DequantizeLinear -> Conv -> QuantizeLinear into one integer convolution that reads the
        int32 bias as if its step were the input's step times the weights': a bias is rounded onto that grid."""
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        sources = {node.output[0]: node.input[0] for node in model.graph.node if node.op_type == "DequantizeLinear"}
        tensors = {tensor.name: tensor for tensor in model.graph.initializer}
        grids = dict(self.grids)
        changes = self.step_changes.items()
        steps = {name: np.float32(self.constants[name] * np.exp(change.numpy())) for name, change in changes}
        for name, step in steps.items():
            tensors[name].CopyFrom(numpy_helper.from_array(np.asarray(step, np.float32), name))
        for bias, (pixels_step, weights_step, bias_step) in self._bias_steps().items():
            if pixels_step in steps:
                step = (steps[pixels_step] * self.constants[weights_step]).astype(np.float32)
                tensors[bias_step].CopyFrom(numpy_helper.from_array(step, bias_step))
                grids[bias] = (step, *grids[bias][1:])
        for name, variable in self.variables.items():
            scale, zero, low, high = grids[name]
            tensor = tensors[sources[name]]
            levels = np.clip(np.round(variable.numpy() / scale + zero), low, high)
            tensor.CopyFrom(numpy_helper.from_array(levels.astype(self.constants[tensor.name].dtype), tensor.name))
        return model

    def _bias_steps(self) -> dict[str, tuple[str, str, str]]:
        """Each quantized convolution's bias (its DequantizeLinear output) -> the names of the steps of its input,
        its weights and its bias."""
        makers = {node.output[0]: node for node in self.nodes if node.op_type == "DequantizeLinear"}
        found = {}
        for node in self.nodes:
            if node.op_type == "Conv" and len(node.input) > 2 and node.input[2] in self.grids:
                pixels, weights, bias = (makers[name] for name in node.input[:3])
                found[node.input[2]] = (pixels.input[1], weights.input[1], bias.input[1])
        return found


def _fake_quantized(tensor, scale, zero, low: float, high: float):
    levels = tf.clip_by_value(tensor / scale + zero, low, high)
    levels = levels + tf.stop_gradient(tf.round(levels) - levels)  # round forward, identity backward
    return (levels - zero) * scale


def _padded(tensor, pads: list[int], value: float = 0.0):
    if not any(pads):
        return tensor
    return tf.pad(tensor, [[0, 0], [pads[0], pads[2]], [pads[1], pads[3]], [0, 0]], constant_values=value)


def _conv(inputs: list, attributes: dict):
    pixels, weights = inputs[0], inputs[1]  # weights (out, in / group, kh, kw), as ONNX has them
    strides = [1, *attributes.get("strides", [1, 1]), 1]
    pixels = _padded(pixels, attributes.get("pads", [0, 0, 0, 0]))
    if attributes.get("group", 1) == 1:
        out = tf.nn.conv2d(pixels, tf.transpose(weights, [2, 3, 1, 0]), strides, "VALID")
    else:  # depthwise: one filter per channel
        out = tf.nn.depthwise_conv2d(pixels, tf.transpose(weights, [2, 3, 0, 1]), strides, "VALID")
    return out if len(inputs) < 3 or inputs[2] is None else out + inputs[2]


def _max_pool(inputs: list, attributes: dict):
    pixels = _padded(inputs[0], attributes.get("pads", [0, 0, 0, 0]), value=-1e9)
    return tf.nn.max_pool2d(pixels, attributes["kernel_shape"], attributes["strides"], "VALID")


def _gemm(inputs: list, attributes: dict):
    product = tf.matmul(inputs[0], inputs[1], transpose_b=bool(attributes.get("transB", 0)))
    return product if len(inputs) < 3 else product + inputs[2]


def _reduce_sum(inputs: list, attributes: dict):
    # Only on the pooled (n, features) rows, where ONNX's axes are the replica's.
    axes = [int(axis) for axis in np.atleast_1d(inputs[1])] if len(inputs) > 1 and inputs[1] is not None else None
    return tf.reduce_sum(inputs[0], axis=axes, keepdims=bool(attributes.get("keepdims", 1)))


_OPERATORS: dict[str, Callable] = {
    "Mul": lambda inputs, _: inputs[0] * inputs[1],
    "Add": lambda inputs, _: inputs[0] + inputs[1],
    "Relu": lambda inputs, _: tf.nn.relu(inputs[0]),
    "Transpose": lambda inputs, _: inputs[0],  # the replica stays NHWC: ONNX's NHWC -> NCHW transpose is a no-op here
    "Conv": _conv,
    "MaxPool": _max_pool,
    "GlobalAveragePool": lambda inputs, _: tf.reduce_mean(inputs[0], axis=[1, 2], keepdims=True),
    "Squeeze": lambda inputs, _: tf.squeeze(inputs[0], axis=[1, 2]),  # the pooled (1, 1) grid
    "Gemm": _gemm,
    "MatMul": lambda inputs, _: tf.matmul(inputs[0], inputs[1]),
    "Softmax": lambda inputs, _: tf.nn.softmax(inputs[0], axis=-1),
    # the probe head's unit-length scaling of the pooled features (Keras' UnitNormalization)
    "ReduceSum": _reduce_sum,
    "Sqrt": lambda inputs, _: tf.sqrt(inputs[0]),
    "Reciprocal": lambda inputs, _: tf.math.reciprocal(inputs[0]),
    "Min": lambda inputs, _: tf.minimum(inputs[0], inputs[1]),
}


def fine_tune(
    int8_file: Path,
    views: Callable[[int], np.ndarray],
    teacher: Callable[[np.ndarray], Forward],
    epochs: int,
    learning_rate: float,
    temperature: float,
    step_learning_rate: float = 0.0,
    seed: int = 0,
) -> list[float]:
    """Train the int8 network's weights for `epochs` passes over some photos toward the teacher's features and
    probabilities (`teacher(pixels)`: the float network's forward pass), the probabilities compared at the
    model's temperature; rewrite int8_file with the weights rounded back. With step_learning_rate, the
    activations' steps learn too (Adam on their logarithms at that rate). `views(epoch)` gives the pixels of an
    epoch's pass (the photos, then augmented views of them: a new view each pass, so that the weights learn the
    network's rounding, not these photos). Returns each epoch's mean loss."""
    replica = QDQReplica(onnx.load(str(int8_file)), learn_steps=step_learning_rate > 0)
    weights, steps = list(replica.variables.values()), list(replica.step_changes.values())
    optimizer = tf.keras.optimizers.Adam(learning_rate)
    step_optimizer = tf.keras.optimizers.Adam(step_learning_rate) if steps else None
    scale = tf.Variable(1.0, trainable=False)  # the mean square of the first pass's float features

    @tf.function(reduce_retracing=True)
    def step(batch, features, logits):
        with tf.GradientTape() as tape:
            student_features, student_logits = replica(batch)
            distance = tf.reduce_mean((student_features - features) ** 2) / scale
            taught = tf.nn.softmax(logits / temperature)
            divergence = tf.reduce_sum(
                taught * (tf.nn.log_softmax(logits / temperature) - tf.nn.log_softmax(student_logits / temperature)),
                axis=1,
            )
            loss = distance + tf.reduce_mean(divergence)
        gradients = tape.gradient(loss, weights + steps)
        optimizer.apply_gradients(zip(gradients[: len(weights)], weights))
        if step_optimizer is not None:
            step_optimizer.apply_gradients(zip(gradients[len(weights) :], steps))
        return loss

    rng = np.random.default_rng(seed)
    losses = []
    for epoch in range(epochs):
        photos = views(epoch)
        taught = teacher(photos)
        if epoch == 0:
            scale.assign(float(np.mean(taught.features**2)))
        logits = np.log(np.maximum(taught.probabilities, 1e-30)).astype(np.float32)  # the teacher's, up to a constant
        order = rng.permutation(len(photos))
        batches = [np.sort(order[start : start + BATCH]) for start in range(0, len(order), BATCH)]
        epoch_losses = [
            float(step(tf.constant(photos[rows], tf.float32), tf.constant(taught.features[rows]), logits[rows]))
            for rows in batches
        ]
        losses.append(float(np.mean(epoch_losses)))
        log.info("quantization-aware fine-tuning: epoch %d of %d, loss %.4f", epoch + 1, epochs, losses[-1])
    onnx.save(replica.rounded_back(), str(int8_file))
    return losses
