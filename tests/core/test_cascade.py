"""The int8 cascade: the float network answers exactly the photos inside the band, the int8 network the others.

Two tiny real ONNX networks stand in for the pair: the same linear network, the "int8" one with its weights
nudged, so that some answers differ, as quantization makes them differ."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kitchenware.core.card import INT8_FILE, ONNX_FILE, Band, Int8Section
from kitchenware.core.cascade import CascadeRuntime, Edges, edges, log_odds, unclear
from kitchenware.core.decision import DecisionRule, l2_normalise
from kitchenware.core.inference import OnnxRuntime
from kitchenware.core.runtimes import CASCADE, open_runtime, preferred_runtime

SIZE, CLASSES, FEATURES = 4, 3, 8


def tiny_network(path: Path, seed: int, nudge: float = 0.0) -> Path:
    """pixels (n, 4, 4, 3) -> features = x W_f, probabilities = softmax(features W_p), class_maps (n, 2, 2, 3)."""
    rng = np.random.default_rng(seed)
    features_weights = rng.normal(0, 0.002, (SIZE * SIZE * 3, FEATURES)).astype(np.float32)
    head = rng.normal(0, 1.0, (FEATURES, CLASSES)).astype(np.float32)  # soft answers: no probability of 0
    if nudge:
        nudged = np.random.default_rng(seed + 1)
        features_weights += nudged.normal(0, nudge * 0.002, features_weights.shape).astype(np.float32)
    maps = rng.normal(0, 0.02, (SIZE * SIZE * 3, 4 * CLASSES)).astype(np.float32)
    constants = [
        numpy_helper.from_array(np.array([-1, SIZE * SIZE * 3], np.int64), "flat_shape"),
        numpy_helper.from_array(np.array([-1, 2, 2, CLASSES], np.int64), "maps_shape"),
        numpy_helper.from_array(features_weights, "features_weights"),
        numpy_helper.from_array(head, "head"),
        numpy_helper.from_array(maps, "maps_weights"),
    ]
    nodes = [
        helper.make_node("Reshape", ["pixels", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "features_weights"], ["features"]),
        helper.make_node("MatMul", ["features", "head"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        helper.make_node("MatMul", ["flat", "maps_weights"], ["maps_flat"]),
        helper.make_node("Reshape", ["maps_flat", "maps_shape"], ["class_maps"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [None, SIZE, SIZE, 3])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, CLASSES]),
            helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, FEATURES]),
            helper.make_tensor_value_info("class_maps", TensorProto.FLOAT, [None, 2, 2, CLASSES]),
        ],
        constants,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return tiny_network(tmp_path / ONNX_FILE, seed=0), tiny_network(tmp_path / INT8_FILE, seed=0, nudge=0.1)


@pytest.fixture
def pixels() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (400, SIZE, SIZE, 3)).astype(np.uint8)


def rule_for(float_file: Path, pixels: np.ndarray) -> DecisionRule:
    """A rule whose thresholds sit among these photos' answers, so every edge is met by some of them."""
    exact = OnnxRuntime(float_file, 1).forward(pixels)
    reference = l2_normalise(exact.features[:50])
    rule = DecisionRule(temperature=1.5, min_confidence=0.5, ood_threshold=1.0, reference=reference)
    scores = rule.ood_scores(exact.features[50:])
    return DecisionRule(1.5, 0.5, float(np.median(scores)), reference=reference)


def test_the_float_network_answers_exactly_the_photos_inside_the_band(pair, pixels):
    float_file, int8_file = pair
    rule = rule_for(float_file, pixels)
    band = Band(margin=0.4, confidence_low=-0.3, confidence_high=0.3, ood_low=-0.05, ood_high=0.05)
    exact = OnnxRuntime(float_file, 1).forward(pixels)
    quick = OnnxRuntime(int8_file, 1).forward(pixels)
    refereed = unclear(band, rule, edges(rule, quick))
    assert 0.05 < refereed.mean() < 0.95  # both kinds of photo are met

    answered = CascadeRuntime(int8_file, float_file, rule, band, threads=1).forward(pixels)

    np.testing.assert_array_equal(answered.float_answered, refereed)
    np.testing.assert_array_equal(answered.probabilities[refereed], exact.probabilities[refereed])
    np.testing.assert_array_equal(answered.features[refereed], exact.features[refereed])
    np.testing.assert_array_equal(answered.probabilities[~refereed], quick.probabilities[~refereed])
    np.testing.assert_array_equal(answered.features[~refereed], quick.features[~refereed])
    assert answered.class_maps is None


def test_a_band_wider_than_every_gap_gives_the_float_networks_answers(pair, pixels):
    float_file, int8_file = pair
    rule = rule_for(float_file, pixels)
    exact, quick = OnnxRuntime(float_file, 1).forward(pixels), OnnxRuntime(int8_file, 1).forward(pixels)
    a, b = edges(rule, exact), edges(rule, quick)
    rows = np.arange(len(pixels))
    gained = (b.log_probabilities - a.log_probabilities)[rows, b.labels][:, None] - (
        b.log_probabilities - a.log_probabilities
    )
    top = np.exp(a.log_probabilities[rows, b.labels])
    log_odds_gap = b.log_odds - (np.log(top) - np.log1p(-top))
    ood_gap = b.ood_scores - a.ood_scores
    band = Band(
        gained.max(), min(log_odds_gap.min(), 0), max(log_odds_gap.max(), 0), min(ood_gap.min(), 0), ood_gap.max()
    )
    answered = CascadeRuntime(int8_file, float_file, rule, band, threads=1).forward(pixels)

    truth, found = (
        rule.decide(exact.probabilities, exact.features),
        rule.decide(answered.probabilities, answered.features),
    )
    alone = rule.decide(quick.probabilities, quick.features)
    assert (alone.labels != truth.labels).any() and alone.decisions != truth.decisions  # int8 alone differs
    np.testing.assert_array_equal(found.labels, truth.labels)
    assert found.decisions == truth.decisions
    assert answered.float_answered.mean() < 1  # and still answers some photos by itself


def one_photo(gap: float, log_odds_value: float, ood: float | None) -> Edges:
    return Edges(
        np.zeros((1, 2)),
        np.zeros(1, int),
        np.array([gap]),
        np.array([log_odds_value]),
        None if ood is None else np.array([ood]),
    )


@pytest.mark.parametrize(
    ("gap", "confidence", "ood", "in_doubt"),
    [
        (2.0, 0.9, 0.2, False),  # clearly confident, clearly kitchenware
        (0.5, 0.9, 0.2, True),  # the label's gap is the band's margin: in doubt
        (0.51, 0.9, 0.2, False),
        (2.0, 0.55, 0.2, True),  # confidence just above the bar, inside the band
        (2.0, 0.3, 0.2, False),  # clearly unsure
        (2.0, 0.9, 1.04, True),  # the score just above the threshold, inside the band
        (2.0, 0.55, 1.2, False),  # clearly unknown: whatever the confidence
        (2.0, 0.9, 0.98, False),  # the score at the threshold plus ood_low: known
    ],
)
def test_the_band_is_in_doubt_only_near_an_edge(gap, confidence, ood, in_doubt):
    rule = DecisionRule(temperature=1.0, min_confidence=0.5, ood_threshold=1.0)
    band = Band(margin=0.5, confidence_low=-0.2, confidence_high=0.3, ood_low=-0.02, ood_high=0.05)
    assert bool(unclear(band, rule, one_photo(gap, log_odds(confidence), ood))[0]) is in_doubt


def test_without_an_unknown_threshold_only_the_label_and_confidence_count():
    rule = DecisionRule(temperature=1.0, min_confidence=0.5, ood_threshold=None)
    band = Band(margin=0.5, confidence_low=-0.2, confidence_high=0.3, ood_low=-0.02, ood_high=0.05)
    assert not unclear(band, rule, one_photo(2.0, log_odds(0.9), None))[0]
    assert unclear(band, rule, one_photo(2.0, log_odds(0.55), None))[0]


def test_explain_runs_the_float_network(pair, pixels):
    float_file, int8_file = pair
    rule = rule_for(float_file, pixels)
    band = Band(0.0, 0.0, 0.0, 0.0, 0.0)  # never in doubt: only /explain runs the float network
    cascade = CascadeRuntime(int8_file, float_file, rule, band, threads=1)
    explained, exact = (
        cascade.forward(pixels[:5], explain=True),
        OnnxRuntime(float_file, 1).forward(pixels[:5], True),
    )
    assert cascade.has_class_maps
    np.testing.assert_array_equal(explained.class_maps, exact.class_maps)
    np.testing.assert_array_equal(explained.probabilities, exact.probabilities)
    assert not cascade.forward(pixels[:5]).float_answered.any()


def test_the_cascade_runtime_needs_the_int8_network_and_its_band(pair, pixels, tmp_path: Path):
    float_file, int8_file = pair
    rule = rule_for(float_file, pixels)
    band = Int8Section(Band(0.4, -0.3, 0.3, -0.05, 0.05))
    cascade = open_runtime(tmp_path, CASCADE, 1, SIZE, rule, band)
    assert isinstance(cascade, CascadeRuntime) and cascade.band == band.band
    # what serves when nobody chose: the cascade only with both its network and its band
    assert preferred_runtime(tmp_path, band) == CASCADE
    assert preferred_runtime(tmp_path, None) == "onnx"
    int8_file.unlink()
    assert preferred_runtime(tmp_path, band) == "onnx"
    with pytest.raises(FileNotFoundError, match="kitchenware quantize"):
        open_runtime(tmp_path, CASCADE, 1, SIZE, rule, band)
    assert open_runtime(tmp_path, "onnx", 1, SIZE).forward(pixels[:2]).float_answered is None  # float still serves
