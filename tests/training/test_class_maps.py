"""The exported model's class activation maps: exact for a linear head, checked in Keras and in ONNX Runtime."""

from pathlib import Path

import numpy as np
import pytest

from kitchenware.core.inference import OnnxRuntime, forward_in_batches
from kitchenware.training.architectures import build_xception
from kitchenware.training.export import export_onnx, serving_model
from kitchenware.training.probe import copy_into, fit_probe


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("probe", [False, True], ids=["dense head", "probe on unit-length features"])
def test_a_linear_heads_class_maps_average_to_its_logits_in_keras_and_onnx(probe: bool, tmp_path: Path):
    network = build_xception(3, input_size=71, weights="none", normalised=probe)
    if probe:  # weights as a fit probe has them: large, so that the answers are far from uniform
        rng = np.random.default_rng(0)
        copy_into(fit_probe(rng.normal(size=(30, 2048)), np.arange(30) % 3, c=10.0, balanced=True), network.head)
    model = serving_model(network.model)
    pixels = np.random.default_rng(1).integers(0, 256, (2, 71, 71, 3)).astype(np.uint8)
    outputs = model(pixels.astype(np.float32), training=False)
    maps = np.asarray(outputs["class_maps"])
    assert maps.shape == (2, 3, 3, 3)  # a 3x3 grid at 71x71 (10x10 at 299), one map per class
    np.testing.assert_allclose(softmax(maps.mean(axis=(1, 2))), np.asarray(outputs["probabilities"]), atol=1e-5)

    checked = export_onnx(model, tmp_path / "model.onnx")
    assert checked["max_abs_difference"] <= 1e-4
    classifier = OnnxRuntime(tmp_path / "model.onnx", threads=1)
    assert classifier.has_class_maps
    plain, explained = forward_in_batches(classifier, pixels), forward_in_batches(classifier, pixels, explain=True)
    assert plain.class_maps is None  # computed only when asked
    np.testing.assert_allclose(explained.class_maps, maps, atol=1e-4)
    np.testing.assert_allclose(explained.probabilities, plain.probabilities, atol=1e-6)


def test_a_head_with_an_inner_dense_layer_has_no_class_maps():
    model = serving_model(build_xception(3, input_size=71, weights="none", inner_size=8).model)
    assert set(model.output) == {"probabilities", "features"}
