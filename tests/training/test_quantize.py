"""`kitchenware quantize`: the int8 network of an exported model, its band, and the cascade that serves them.

On a real (small, random-weight) Xception exported to ONNX, as training exports it, and on a small Xception
trained by the CLI on generated photos."""

from pathlib import Path

import bentoml
import keras
import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from sample_data import photo

from kitchenware import store
from kitchenware.cli import main
from kitchenware.core.card import INT8_FILE, ModelCard
from kitchenware.core.cascade import CascadeRuntime, edges, unclear
from kitchenware.core.decision import DecisionRule, l2_normalise
from kitchenware.core.inference import Forward, OnnxRuntime
from kitchenware.core.runtimes import CASCADE, open_runtime
from kitchenware.training.architectures import build_xception
from kitchenware.training.export import export_onnx, serving_model
from kitchenware.training.int8.band import cascade_figures, choose_band
from kitchenware.training.int8.calibration import calibrate, in_chunks, layer_errors, quantize
from kitchenware.training.int8.graph import (
    channel_ranges,
    equalize,
    network_for_int8,
    residual_additions,
    stream_readers,
)
from kitchenware.training.int8.qat import QDQReplica, UnsupportedNetwork, fine_tune

SIZE = 71


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Path:
    """A small Xception's ONNX file as training exports it, made ready for the quantizer (no class maps)."""
    folder = tmp_path_factory.mktemp("xception")
    keras.utils.set_random_seed(0)  # random weights, the same every run: the channel spreads below depend on them
    export_onnx(serving_model(build_xception(3, input_size=SIZE, weights="none").model), folder / "model.onnx")
    return network_for_int8(folder / "model.onnx", folder / "network.onnx")


@pytest.fixture(scope="module")
def network_with_biases(tmp_path_factory) -> Path:
    """The same, with random batch normalization statistics: exported, they become the convolutions' biases (a
    freshly built network's normalization is the identity, and its convolutions have none)."""
    folder = tmp_path_factory.mktemp("xception-biases")
    keras.utils.set_random_seed(0)
    model = build_xception(3, input_size=SIZE, weights="none").model
    rng = np.random.default_rng(0)

    def normalizations(layer) -> list:
        if isinstance(layer, keras.layers.BatchNormalization):
            return [layer]
        return [found for inner in getattr(layer, "layers", []) for found in normalizations(inner)]

    for layer in normalizations(model):
        shape = layer.gamma.shape
        spread, shift = rng.uniform(0.5, 1.5, (2, *shape)), rng.normal(0, 0.5, (2, *shape))
        layer.set_weights([spread[0], shift[0], shift[1], spread[1]])  # gamma, beta, moving mean and variance
    export_onnx(serving_model(model), folder / "model.onnx")
    return network_for_int8(folder / "model.onnx", folder / "network.onnx")


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (12, SIZE, SIZE, 3)).astype(np.uint8)


def test_the_int8_network_answers_probabilities_and_features_only(network: Path):
    outputs = [output.name for output in onnx.load(str(network)).graph.output]
    assert sorted(outputs) == ["features", "probabilities"]


def test_equalization_keeps_the_float_outputs_and_evens_the_channels_out(network: Path, pixels, tmp_path: Path):
    equalized = tmp_path / "equalized.onnx"
    rescaled = equalize(network, in_chunks(pixels, 4), equalized)
    assert rescaled["groups"] >= 30  # every separable convolution's depthwise output, and more
    before, after = OnnxRuntime(network, 1).forward(pixels), OnnxRuntime(equalized, 1).forward(pixels)
    np.testing.assert_allclose(after.probabilities, before.probabilities, atol=1e-5)
    np.testing.assert_allclose(after.features, before.features, rtol=1e-4, atol=1e-5)

    depthwise = next(n.output[0] for n in onnx.load(str(network)).graph.node if "depthwise" in n.name)
    spread = {}
    for name, path in (("before", network), ("after", equalized)):
        largest = channel_ranges(onnx.load(str(path)), [depthwise], in_chunks(pixels, 4))[depthwise]
        largest = largest[largest > 0]
        spread[name] = largest.max() / largest.min()
    assert spread["after"] < spread["before"] / 2


def test_calibrating_chunk_by_chunk_gives_the_ranges_of_one_pass(network: Path, pixels):
    whole = calibrate(network, [pixels], "minmax")
    chunked = calibrate(network, in_chunks(pixels, 3), "minmax")
    assert whole.data.keys() == chunked.data.keys()
    for name in whole.data:
        np.testing.assert_array_equal(whole.data[name].range_value, chunked.data[name].range_value)


def test_quantized_weights_are_int8_per_channel_and_the_residual_stream_stays_float(
    network: Path, pixels, tmp_path: Path
):
    ranges = calibrate(network, in_chunks(pixels, 4), "percentile")
    residual = residual_additions(network)
    assert len(residual) == 12  # Xception's residual connections
    shortcuts = stream_readers(network)
    assert len(shortcuts) == 3  # the 1x1 convolutions of the entry and exit flows that read the stream

    def float_inputs_of_residual_additions(model: onnx.ModelProto) -> int:
        rounded = {node.output[0] for node in model.graph.node if node.op_type == "DequantizeLinear"}
        return sum(name not in rounded for node in model.graph.node if node.name in residual for name in node.input)

    every_node = onnx.load(str(quantize(network, ranges, tmp_path / "all.onnx")))
    int8 = onnx.load(str(quantize(network, ranges, tmp_path / INT8_FILE, residual + shortcuts)))
    assert float_inputs_of_residual_additions(every_node) == 0
    assert float_inputs_of_residual_additions(int8) >= 8  # the middle flow adds up in float
    weights = {tensor.name: tensor for tensor in int8.graph.initializer}
    dequantized = {node.output[0]: node for node in int8.graph.node if node.op_type == "DequantizeLinear"}
    for conv in (node for node in int8.graph.node if node.op_type == "Conv"):
        if conv.name in shortcuts:  # float: its weights are not rounded
            assert conv.input[1] not in dequantized
            continue
        weight = dequantized[conv.input[1]]
        assert numpy_helper.to_array(weights[weight.input[0]]).dtype == np.int8
        assert numpy_helper.to_array(weights[weight.input[1]]).size == weights[weight.input[0]].dims[0]  # per channel
    answered = OnnxRuntime(tmp_path / INT8_FILE, 1).forward(pixels)
    assert answered.probabilities.shape == (12, 3) and np.isfinite(answered.features).all()


def test_layer_errors_name_every_quantized_activation(network: Path, pixels, tmp_path: Path):
    ranges = calibrate(network, in_chunks(pixels, 4), "minmax")
    int8_file = quantize(network, ranges, tmp_path / INT8_FILE)
    errors = layer_errors(network, int8_file, in_chunks(pixels[:2], 1))
    rounded = {n.input[0] for n in onnx.load(str(int8_file)).graph.node if n.op_type == "QuantizeLinear"}
    assert set(errors) == rounded - {"pixels"}
    assert all(np.isfinite(row["local_db"]) and row["local_db"] > 0 for row in errors.values())
    first = next(iter(errors.values()))
    assert first["cumulative_db"] == pytest.approx(first["local_db"], abs=1e-6)  # nothing rounded before it


def _quantized(network: Path, pixels: np.ndarray, out: Path, method: str = "percentile") -> Path:
    ranges = calibrate(network, in_chunks(pixels, 4), method)
    return quantize(network, ranges, out, residual_additions(network) + stream_readers(network))


def _feature_error(network: Path, int8_file: Path, pixels: np.ndarray) -> float:
    exact, quick = OnnxRuntime(network, 1).forward(pixels), OnnxRuntime(int8_file, 1).forward(pixels)
    return float(np.mean((quick.features - exact.features) ** 2) / np.mean(exact.features**2))


def test_the_replica_runs_the_int8_network_and_rounds_back_to_the_same_file(network: Path, pixels, tmp_path: Path):
    int8_file = _quantized(network, pixels, tmp_path / INT8_FILE)
    model = onnx.load(str(int8_file))
    replica = QDQReplica(model)
    assert len(replica.variables) >= 70  # every convolution's weights, and their biases
    features, logits = (np.asarray(value) for value in replica(pixels.astype(np.float32)))
    answered = OnnxRuntime(int8_file, 1).forward(pixels)
    cosine = np.sum(features * answered.features, 1) / np.linalg.norm(features, axis=1)
    cosine /= np.linalg.norm(answered.features, axis=1)
    assert cosine.min() > 0.95  # ONNX Runtime's integer kernels round a few values differently
    top = np.argmax(answered.probabilities, axis=1)
    assert np.mean(np.argmax(logits, axis=1) == top) >= 0.75
    original = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    rounded = {tensor.name: numpy_helper.to_array(tensor) for tensor in replica.rounded_back().graph.initializer}
    assert rounded.keys() == original.keys()
    for name, values in original.items():  # untrained weights go back onto exactly the levels they came from
        np.testing.assert_array_equal(rounded[name], values)


def test_quantization_aware_fine_tuning_brings_int8_features_closer_to_the_float_ones(
    network: Path, pixels, tmp_path: Path
):
    # Ranges calibrated on photos half as bright as the ones it answers: int8 clips much of what it sees (a random
    # network's int8 copy is otherwise too close to the float one to show a gain). Fine-tuning learns around it.
    int8_file = _quantized(network, pixels // 2, tmp_path / INT8_FILE, "minmax")
    before = _feature_error(network, int8_file, pixels)
    losses = fine_tune(int8_file, lambda epoch: pixels, OnnxRuntime(network, 1).forward, 6, 1e-4, 1.0)
    after = _feature_error(network, int8_file, pixels)  # measured by ONNX Runtime on the rounded-back network
    assert len(losses) == 6 and losses[-1] < losses[0] / 2
    assert after < before / 2, (before, after)
    model = onnx.load(str(int8_file))
    weights = [t for t in model.graph.initializer if numpy_helper.to_array(t).dtype == np.int8]
    assert weights and all(numpy_helper.to_array(t).min() >= -127 for t in weights)  # still ONNX Runtime's grid


def _bias_steps_off_their_grid(model: onnx.ModelProto) -> int:
    """How many int32 biases have a step other than their convolution's input step times its weights' step (the
    grid ONNX Runtime's fused integer convolution reads them on)."""
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    makers = {node.output[0]: node for node in model.graph.node if node.op_type == "DequantizeLinear"}
    off = 0
    for conv in (node for node in model.graph.node if node.op_type == "Conv" and len(node.input) > 2):
        if conv.input[2] in makers and constants[makers[conv.input[2]].input[0]].dtype == np.int32:
            pixels, weights, bias = (constants[makers[name].input[1]] for name in conv.input[:3])
            off += not np.array_equal(bias, (pixels * weights).astype(np.float32))
    return off


def test_learned_activation_steps_round_back_with_each_bias_on_its_convolutions_grid(
    network_with_biases: Path, pixels, tmp_path: Path
):
    int8_file = _quantized(network_with_biases, pixels, tmp_path / INT8_FILE)
    replica = QDQReplica(onnx.load(str(int8_file)), learn_steps=True)
    assert len(replica.step_changes) >= 60  # one per activation grid, shared by its QuantizeLinear and Dequantize
    assert len(replica._bias_steps()) >= 30  # the separable and entry convolutions' biases
    rng = np.random.default_rng(1)
    for change in replica.step_changes.values():
        change.assign(rng.uniform(-0.3, 0.3))
    features = np.asarray(replica(pixels.astype(np.float32))[0])
    onnx.save(replica.rounded_back(), str(tmp_path / "learned.onnx"))
    assert _bias_steps_off_their_grid(onnx.load(str(tmp_path / "learned.onnx"))) == 0
    answered = OnnxRuntime(tmp_path / "learned.onnx", 1).forward(pixels)  # ONNX Runtime's fused kernels
    cosine = np.sum(features * answered.features, 1) / np.linalg.norm(features, axis=1)
    cosine /= np.linalg.norm(answered.features, axis=1)
    assert cosine.min() > 0.95


def test_fine_tuning_with_learned_steps_widens_the_pixels_step_that_clips(network: Path, pixels, tmp_path: Path):
    # Calibrated on photos half as bright as the ones it answers, the pixels' step is too fine: bright pixels clip.
    int8_file = _quantized(network, pixels // 2, tmp_path / INT8_FILE, "minmax")
    before = _feature_error(network, int8_file, pixels)
    clipping = onnx.load(str(int8_file))
    fine_tune(int8_file, lambda epoch: pixels, OnnxRuntime(network, 1).forward, 6, 1e-4, 1.0, 1e-2)
    after = _feature_error(network, int8_file, pixels)
    assert after < before / 2, (before, after)
    learned = onnx.load(str(int8_file))

    def pixels_step(model: onnx.ModelProto) -> float:
        first = next(node for node in model.graph.node if node.op_type == "QuantizeLinear")
        return float(next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == first.input[1]))

    assert np.log(pixels_step(learned) / pixels_step(clipping)) > 0.02  # 12 steps of Adam at 1e-2: at most 0.12


def test_the_replica_names_an_operator_it_does_not_run(network: Path, pixels, tmp_path: Path):
    model = onnx.load(str(_quantized(network, pixels, tmp_path / INT8_FILE)))
    model.graph.node[-1].op_type = "LogSoftmax"
    with pytest.raises(UnsupportedNetwork, match="LogSoftmax.*--qat-epochs 0"):
        QDQReplica(model)


def softmax(logits: np.ndarray) -> np.ndarray:
    exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def forwards(seed: int, photos: int, noise: float) -> tuple[Forward, Forward, DecisionRule]:
    """Float answers and "int8" ones with noise in their logits and features, and a rule to decide them."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, (photos, 4))
    features = rng.normal(0, 1, (photos, 16))
    exact = Forward(softmax(logits).astype(np.float32), features.astype(np.float32))
    quick = Forward(
        softmax(logits + rng.normal(0, noise, logits.shape)).astype(np.float32),
        (features + rng.normal(0, noise, features.shape)).astype(np.float32),
    )
    rule = DecisionRule(1.2, 0.7, 1.2, reference=l2_normalise(rng.normal(0, 1, (40, 16))))
    return exact, quick, rule


def test_the_chosen_band_gives_the_float_answer_on_every_photo_it_was_chosen_on():
    exact, quick, rule = forwards(seed=1, photos=300, noise=0.3)
    band, safety, cross_fitted = choose_band(rule, exact, quick)
    figures = cascade_figures(rule, band, exact, quick)
    assert figures.int8_alone_agreement < 0.9  # the noise changes many answers...
    assert figures.final_agreement == 1.0 and figures.final_disagreements == 0  # ...the cascade none
    assert figures.fallback < 1.0
    assert safety >= 1.0 and cross_fitted >= 0.999


def test_noisier_int8_answers_widen_the_band():
    bands = []
    for noise in (0.1, 0.4):
        exact, quick, rule = forwards(seed=2, photos=300, noise=noise)
        bands.append(choose_band(rule, exact, quick)[0])
    assert bands[1].margin > bands[0].margin and bands[1].ood_high > bands[0].ood_high


def others(folder: Path, count: int) -> Path:
    folder.mkdir()
    for n in range(count):
        photo((128, 128 + 10 * n % 100, 20), seed=1000 + n).save(folder / f"far-thing-{n:03d}.jpg")
    return folder


def test_quantize_command_writes_the_int8_network_and_band_that_the_cascade_serves(
    kaggle_photos: Path, tmp_path: Path, capsys
):
    from test_training import train_small_xception

    export, run = tmp_path / "export", tmp_path / "run"
    assert train_small_xception(kaggle_photos, "to_quantize", run, "--epochs", "2", "--export", str(export)) == 0
    arguments = ["--model", str(export), "--data", str(kaggle_photos), "--split", str(run / "split.csv")]
    arguments += ["--qat-epochs", "2"]
    ood = others(tmp_path / "other-things", 6)
    assert main(["quantize", *arguments, "--ood", str(ood), "--out", str(tmp_path / "report")]) == 0

    printed = capsys.readouterr().out
    assert "float network on" in printed and "final answer = float's on 100.00%" in printed
    card = ModelCard.read(export)
    int8 = card.int8
    assert (export / INT8_FILE).is_file() and int8.file == INT8_FILE
    assert int8.band.confidence_low <= 0 <= int8.band.confidence_high
    assert int8.validation_accuracy["cascade"] == int8.validation_accuracy["float"]
    assert int8.figures["kaggle, validation (band chosen here)"].final_agreement == 1.0
    assert int8.recipe.calibration_photos == {"kaggle": 12, "other-things": 3}  # half of the training side
    assert int8.recipe.fine_tuning.epochs == 2 and len(int8.recipe.fine_tuning.loss_per_epoch) == 2
    assert len(int8.recipe.kept_float["residual additions"]) == 12
    assert len(int8.recipe.kept_float["shortcut convolutions"]) == 3  # the 1x1 ones reading the stream
    assert (tmp_path / "report" / "layer_errors.csv").stat().st_size > 0
    assert "int8 network: model-int8.onnx" in (export / "model_card.md").read_text()

    tag, imported = store.import_exported(export)
    assert imported and INT8_FILE in {path.name for path in Path(bentoml.models.get(tag).path).iterdir()}
    stored = store.get(tag)
    rule = DecisionRule.for_model(stored.card, stored.path)
    cascade = open_runtime(stored.path, CASCADE, 1, stored.card.input_size, rule, stored.card.int8)
    assert isinstance(cascade, CascadeRuntime)
    pixels = np.stack([photo((200, 40, 40), seed=n, size=(SIZE, SIZE)) for n in range(4)]).astype(np.uint8)
    answered = cascade.forward(pixels)
    exact = OnnxRuntime(Path(stored.path) / "model.onnx", 1).forward(pixels)
    refereed = unclear(cascade.band, rule, edges(rule, OnnxRuntime(Path(stored.path) / INT8_FILE, 1).forward(pixels)))
    np.testing.assert_array_equal(answered.float_answered, refereed)
    np.testing.assert_array_equal(answered.probabilities[refereed], exact.probabilities[refereed])
