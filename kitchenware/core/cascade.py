"""The int8 network first, the float network when int8's answer is not clear: the float network's answers at
a fraction of its cost.

model-int8.onnx (written by `kitchenware quantize`) runs about 3x faster on a CPU with int8 dot products, but its
probabilities and features are not exactly the float network's. Far from the decision rule's edges that
changes nothing; near one (two classes close, the confidence near the "unsure" bar, the out-of-distribution
score near the "unknown" threshold) it could change the answer. The band says how near is too near: the
largest gap between the two networks on validation photos, with a safety factor (both chosen by
`kitchenware quantize`, stored in the model card). Inside it the float network runs on the photo and its output is
the answer, so the label and the decision are the float network's; outside it they are too, as far as the
validation photos can tell, and the probabilities and score are int8's, within the band of the float ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from kitchenware.core.card import Band
from kitchenware.core.decision import DecisionRule, calibrate
from kitchenware.core.inference import Forward, OnnxRuntime, Runtime


class Edges(NamedTuple):
    """How far one forward pass's answers are from the decision rule's edges, photo by photo."""

    log_probabilities: np.ndarray  # (n, classes): calibrated, natural log
    labels: np.ndarray  # (n,) top class
    gap: np.ndarray  # (n,) log-probability of the top class minus the second's
    log_odds: np.ndarray  # (n,) log(p / (1 - p)) of the top calibrated probability
    ood_scores: np.ndarray | None  # (n,) the rule's out-of-distribution score


def edges(rule: DecisionRule, forward: Forward) -> Edges:
    calibrated = calibrate(forward.probabilities, rule.temperature).astype(np.float64)
    with np.errstate(divide="ignore"):
        log_probabilities = np.log(calibrated)
    ranked = np.sort(log_probabilities, axis=1)
    labels = log_probabilities.argmax(axis=1)
    top = calibrated[np.arange(len(labels)), labels]
    with np.errstate(divide="ignore"):
        log_odds = np.log(top) - np.log1p(-top)
    return Edges(log_probabilities, labels, ranked[:, -1] - ranked[:, -2], log_odds, rule.ood_scores(forward.features))


def log_odds(probability: float) -> float:
    probability = min(max(probability, 1e-12), 1 - 1e-12)
    return float(np.log(probability) - np.log1p(-probability))


def unclear(band: Band, rule: DecisionRule, found: Edges) -> np.ndarray:
    """Which photos int8 cannot answer alone: the label, or the decision, might differ from the float network's."""
    label_sure = found.gap > band.margin
    bar = log_odds(rule.min_confidence)
    sure_unsure = found.log_odds < bar + band.confidence_low
    sure_confident = found.log_odds >= bar + band.confidence_high
    decision_sure = sure_unsure | sure_confident
    if rule.ood_threshold is not None and found.ood_scores is not None:
        sure_unknown = found.ood_scores > rule.ood_threshold + band.ood_high
        sure_known = found.ood_scores <= rule.ood_threshold + band.ood_low
        decision_sure = sure_unknown | (sure_known & decision_sure)
    return ~(label_sure & decision_sure)


class CascadeRuntime:
    """The `onnx-int8-cascade` runtime: model-int8.onnx first, model.onnx for the photos inside
    the band and for the class maps of /explain. Forward.float_answered says which photos the float network
    answered."""

    # The int8 network's many small kernels leave the cores idle between them at batch 1: a second photo in flight
    # fills them, +13% images/s for the int8 network alone (benchmarks/RESULTS.md).
    passes_at_once = 2

    def __init__(self, int8_file: Path, float_file: Path, rule: DecisionRule, band: Band, threads: int):
        self.int8 = OnnxRuntime(int8_file, threads)
        self.exact: Runtime = OnnxRuntime(float_file, threads)
        self.has_class_maps = self.exact.has_class_maps
        self.rule, self.band = rule, band

    def warm_up(self, pixels: np.ndarray) -> None:
        self.int8.forward(pixels)
        self.exact.forward(pixels)

    def forward(self, pixels: np.ndarray, explain: bool = False) -> Forward:
        if explain:
            exact = self.exact.forward(pixels, explain=True)
            return exact._replace(float_answered=np.ones(len(pixels), bool))
        quick = self.int8.forward(pixels)
        refereed = unclear(self.band, self.rule, edges(self.rule, quick))
        probabilities, features = quick.probabilities, quick.features
        if refereed.any():
            exact = self.exact.forward(pixels[refereed])
            probabilities = probabilities.copy()
            probabilities[refereed] = exact.probabilities
            if features is not None:  # a model without a backbone has no features output
                features = features.copy()
                features[refereed] = exact.features
        return Forward(probabilities, features, None, refereed)
