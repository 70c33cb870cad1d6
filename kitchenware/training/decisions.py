"""Fit the decision rule of `kitchenware/core/decision.py` on photos the head was not trained on.

- Temperature scaling: one scalar T minimising the validation photos' negative log-likelihood.
- "unknown": the k-nearest-neighbour distance (k=1) from a photo's L2-normalised backbone features to the
  training photos' (Sun et al., ICML 2022). Chosen by measurement over 5 grouped folds of both shared photo
  sets against ../shared/data/not-kitchenware (docs/decisions.md): AUROC 0.993 and 2 % of
  other things accepted at 95 % of kitchenware accepted, against 0.991/5.9 % for Mahalanobis (Ledoit-Wolf,
  normalised features), 0.974/8.5 % for the energy score and 0.964/16 % for the calibrated top probability.
- Thresholds: "unknown" above the score that accepts UNKNOWN_ACCEPT of the validation photos; "unsure" under
  the lowest calibrated confidence whose photos above it are right at least UNSURE_TARGET of the time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from kitchenware.core.decision import UNKNOWN, DecisionRule, calibrate, l2_normalise

UNKNOWN_ACCEPT = 0.95  # of the validation photos, when the threshold is fit in domain
HELD_OUT_ACCEPT = 0.97  # of each held-out source's photos, when it is fit on held-out sources
UNSURE_TARGET = 0.98
KNN_K = 10  # the distance to the 10th nearest reference photo: the most stable across held-out sources
CALIBRATION_BINS = 15


def negative_log_likelihood(log_probabilities: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    scaled = log_softmax(log_probabilities.astype(np.float64) / temperature, axis=1)
    return float(-scaled[np.arange(len(labels)), labels].mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 20] minimising the NLL of softmax(log p / T) (= softmax(z / T)); bounded search on log T."""
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(probabilities.astype(np.float64)), -1e4)
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(log_p, labels, math.exp(log_t)),
        bounds=(math.log(0.05), math.log(20.0)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(math.exp(result.x))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Share-weighted gap between accuracy and mean confidence, over equal-width bins of the top probability."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    return float(
        sum(
            (index == b).mean() * abs(correct[index == b].mean() - confidence[index == b].mean())
            for b in range(bins)
            if (index == b).any()
        )
    )


def pick_unknown_threshold(scores: np.ndarray, accept: float = UNKNOWN_ACCEPT) -> float:
    """The score at or under which at least `accept` of the (in-distribution) scores fall."""
    ordered = np.sort(scores.astype(np.float64))
    return float(ordered[max(math.ceil(accept * len(ordered) - 1e-9), 1) - 1])


def pick_unsure_threshold(confidences: np.ndarray, correct: np.ndarray, target: float = UNSURE_TARGET) -> float:
    """The lowest confidence c such that the photos with confidence >= c are right at least `target` of the time
    (ties at c included); 1.0 plus a hair (nothing is confident) when no c qualifies."""
    order = np.argsort(-confidences, kind="stable")
    ordered, right = confidences[order], correct[order]
    accuracy = np.cumsum(right) / np.arange(1, len(right) + 1)
    last_of_tie = np.r_[ordered[1:] != ordered[:-1], True]
    qualifies = last_of_tie & (accuracy >= target - 1e-12)
    return float(ordered[np.flatnonzero(qualifies)[-1]]) if qualifies.any() else float(np.nextafter(1.0, 2.0))


def stored_reference(features: np.ndarray) -> np.ndarray:
    """The "unknown" score's reference as the model stores it (float16, a quarter of the file), in the float64 the
    rule computes with: thresholds are fit on the values the served rule reads."""
    return l2_normalise(features).astype(np.float16).astype(np.float64)


def held_out_source_thresholds(
    features: np.ndarray, parts: dict[str, tuple[list[int], list[int]]], k: int = KNN_K
) -> dict[str, float]:
    """For each origin held out: its photos' scores against the other origins' photos (the training side of the
    part), and the score that accepts HELD_OUT_ACCEPT of them. A seller's photo comes from a source the model never
    saw: each held-out origin is one sample of that."""
    normalised = stored_reference(features)
    thresholds = {}
    for origin, (train_rows, val_rows) in parts.items():
        rule = DecisionRule(1.0, 0.0, None, k, normalised[train_rows])
        thresholds[origin] = pick_unknown_threshold(rule.ood_scores(features[val_rows]), HELD_OUT_ACCEPT)
    return thresholds


@dataclass(frozen=True)
class FittedRule:
    rule: DecisionRule
    figures: dict  # what the rule measured on the photos it was fit on
    unknown_accept: float = UNKNOWN_ACCEPT  # the share of the photos below that the "unknown" threshold accepts
    unknown_fit_on: str = "the validation split"


def fit_rule(
    val_probabilities: np.ndarray,
    val_labels: np.ndarray,
    val_features: np.ndarray | None,
    train_features: np.ndarray | None,
    out_of_fold: tuple[np.ndarray, np.ndarray] | None = None,
    held_out_thresholds: dict[str, float] | None = None,
    out_of_fold_from: str = "grouped folds",
) -> FittedRule:
    """Temperature, "unsure" and (with features) "unknown", fit on the validation photos; the kNN reference is the
    training photos' features, so a validation photo is never its own neighbour.

    With cross-validation's out-of-fold (probabilities, labels) of every photo, temperature and "unsure" are fit on
    those instead: five times more photos, and a validation split without a single error cannot drive T to its
    bound (which sharpens every answer to certainty). With the thresholds of held-out sources
    (`held_out_source_thresholds`), "unknown" is their median: in-domain validation photos sit next to near-twins
    of their own source and give a threshold that refuses photos of new sources."""
    confidence_probabilities, confidence_labels = out_of_fold or (val_probabilities, val_labels)
    temperature = fit_temperature(confidence_probabilities, confidence_labels)
    calibrated = calibrate(confidence_probabilities, temperature)
    min_confidence = pick_unsure_threshold(calibrated.max(axis=1), calibrated.argmax(axis=1) == confidence_labels)
    reference = None if train_features is None else stored_reference(train_features)
    scores = DecisionRule(temperature, min_confidence, None, KNN_K, reference).ood_scores(val_features)
    if scores is None:
        threshold = None
    elif held_out_thresholds:
        threshold = float(np.median(list(held_out_thresholds.values())))
    else:
        threshold = pick_unknown_threshold(scores)
    rule = DecisionRule(temperature, min_confidence, threshold, KNN_K, reference)
    answers = rule.decide(val_probabilities, val_features)
    correct = answers.labels == val_labels
    confident = np.array(answers.decisions) == "confident"
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(val_probabilities.astype(np.float64)), -1e4)
    figures = {
        "photos": int(len(val_labels)),
        "temperature_and_unsure_fit_on": f"out-of-fold predictions of every photo ({out_of_fold_from})"
        if out_of_fold
        else "the validation split",
        "temperature": round(temperature, 4),
        "nll_before": round(negative_log_likelihood(log_p, val_labels), 4),
        "nll_after": round(negative_log_likelihood(log_p, val_labels, temperature), 4),
        "ece_before": round(expected_calibration_error(val_probabilities, val_labels), 4),
        "ece_after": round(expected_calibration_error(answers.probabilities, val_labels), 4),
        "confident_share": round(float(confident.mean()), 4),
        "confident_accuracy": round(float(correct[confident].mean()), 4) if confident.any() else None,
        "unknown_share": round(float(np.mean([d == UNKNOWN for d in answers.decisions])), 4),
    }
    if held_out_thresholds:
        fit_on = f"the median over {len(held_out_thresholds)} origins, each held out in turn, of its own threshold"
        return FittedRule(rule, figures, HELD_OUT_ACCEPT, fit_on)
    return FittedRule(rule, figures)


def reliability_diagram(
    before: np.ndarray, after: np.ndarray, labels: np.ndarray, path: Path, bins: int = CALIBRATION_BINS
) -> None:
    """Accuracy against confidence per bin, before and after temperature scaling, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(9, 4.5))
    edges = np.linspace(0, 1, bins + 1)
    for ax, (title, probabilities) in zip(axes, (("raw", before), ("temperature-scaled", after))):
        confidence = probabilities.max(axis=1)
        correct = probabilities.argmax(axis=1) == labels
        index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
        accuracy = [correct[index == b].mean() if (index == b).any() else 0.0 for b in range(bins)]
        counts = [int((index == b).sum()) for b in range(bins)]
        ax.bar(edges[:-1], accuracy, width=1 / bins, align="edge", edgecolor="black", alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", label="perfectly calibrated")
        for b, count in enumerate(counts):
            if count:
                ax.text(edges[b] + 0.5 / bins, 0.02, str(count), ha="center", fontsize=7, rotation=90)
        ece = expected_calibration_error(probabilities, labels, bins)
        ax.set(
            title=f"{title}: ECE {ece:.3f}",
            xlabel="confidence (top probability)",
            ylabel="accuracy",
            xlim=(0, 1),
            ylim=(0, 1),
        )
        ax.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
