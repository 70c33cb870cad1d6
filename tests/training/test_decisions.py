"""Fitting the decision rule: temperature scaling, the two thresholds, the figures behind them."""

import numpy as np
import pytest

from kitchenware.core.decision import CONFIDENT, UNKNOWN, UNSURE, calibrate
from kitchenware.training.decisions import (
    expected_calibration_error,
    fit_rule,
    fit_temperature,
    negative_log_likelihood,
    pick_unknown_threshold,
    pick_unsure_threshold,
)


def over_confident(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of a model that is right 80 % of the time but always about 99 % sure."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    predicted = np.where(rng.random(n) < 0.8, labels, (labels + 1) % 3)
    logits = rng.normal(0, 0.5, (n, 3))
    logits[np.arange(n), predicted] += 6.0
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probabilities.astype(np.float32), labels


def test_temperature_scaling_lowers_the_nll_of_an_over_confident_model_and_keeps_its_answers():
    probabilities, labels = over_confident()
    temperature = fit_temperature(probabilities, labels)
    assert temperature > 2  # softened
    calibrated = calibrate(probabilities, temperature)
    log_p = np.log(probabilities.astype(np.float64))
    assert negative_log_likelihood(log_p, labels, temperature) < 0.6 * negative_log_likelihood(log_p, labels)
    assert (calibrated.argmax(axis=1) == probabilities.argmax(axis=1)).all()
    assert expected_calibration_error(calibrated, labels) < expected_calibration_error(probabilities, labels) / 2
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0, atol=1e-5)


def test_unknown_threshold_accepts_the_share_asked_for():
    scores = np.arange(1, 21, dtype=float)  # 1..20
    assert pick_unknown_threshold(scores, 0.95) == 19.0  # 19 of 20 accepted
    assert pick_unknown_threshold(scores, 0.5) == 10.0
    assert pick_unknown_threshold(scores, 1.0) == 20.0


def test_unsure_threshold_is_the_lowest_confidence_keeping_the_target_accuracy():
    confidences = np.array([0.99, 0.95, 0.90, 0.80, 0.70, 0.60, 0.50])
    correct = np.array([True, True, True, True, False, True, False])
    # Top 4 all right (1.0); top 5: 0.8; top 6: 5/6 = 0.833; top 7: 5/7.
    assert pick_unsure_threshold(confidences, correct, 0.98) == 0.80
    assert pick_unsure_threshold(confidences, correct, 0.8) == 0.60
    assert pick_unsure_threshold(confidences, np.zeros(7, bool), 0.98) > 1.0  # nothing qualifies: never confident


def test_fit_rule_decides_unknown_for_features_far_from_the_training_photos():
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 1, (3, 16))
    train_labels = np.repeat(np.arange(3), 30)
    train = centres[train_labels] + rng.normal(0, 0.1, (90, 16))
    val_labels = np.repeat(np.arange(3), 20)
    val = centres[val_labels] + rng.normal(0, 0.1, (60, 16))
    val_probabilities = np.full((60, 3), 0.05, np.float32)
    val_probabilities[np.arange(60), val_labels] = 0.9
    fitted = fit_rule(val_probabilities, val_labels, val.astype(np.float32), train.astype(np.float32))
    assert fitted.figures["unknown_share"] <= 0.05 and fitted.figures["confident_accuracy"] == 1.0
    strangers = rng.normal(0, 1, (5, 16)).astype(np.float32) * 3
    answers = fitted.rule.decide(np.tile(val_probabilities[:1], (5, 1)), strangers)
    assert answers.decisions == [UNKNOWN] * 5
    validation = fitted.rule.decide(val_probabilities, val.astype(np.float32)).decisions
    assert validation.count(UNKNOWN) == 3 and validation.count(CONFIDENT) == 57  # 95 % accepted, all right


@pytest.mark.parametrize("confidence, expected", [(0.9, CONFIDENT), (0.5, UNSURE)])
def test_without_features_there_is_no_unknown(confidence: float, expected: str):
    fitted = fit_rule(np.array([[0.9, 0.1], [0.8, 0.2]], np.float32), np.array([0, 0]), None, None)
    assert fitted.rule.ood_threshold is None and fitted.figures["unknown_share"] == 0
    answers = fitted.rule.decide(np.array([[confidence, 1 - confidence]], np.float32), None)
    assert answers.ood_scores is None
    assert answers.decisions == [expected] or fitted.rule.min_confidence <= confidence
