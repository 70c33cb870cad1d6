"""The cascade's band, chosen on validation photos: how far the int8 network's answers may be from the float
network's before the float network must referee; and what the cascade does on a set of photos."""

from __future__ import annotations

import numpy as np

from kitchenware.core.card import Band, CascadeFigures
from kitchenware.core.cascade import edges, unclear
from kitchenware.core.decision import DecisionRule
from kitchenware.core.inference import Forward


def gaps(rule: DecisionRule, exact: Forward, quick: Forward) -> dict[str, np.ndarray]:
    """Per photo, int8 minus float where the rule's edges are: for the label, the largest amount by which the
    int8 network's top class gained on another class (calibrated log-probability); the log-odds of the top
    confidence; the out-of-distribution score (both signed)."""
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


def band_from(gap: dict[str, np.ndarray], chosen: np.ndarray, safety: float) -> Band:
    """The largest gaps of each kind on the chosen photos, times the safety factor."""

    def low(name: str) -> float:
        return safety * min(float(gap[name][chosen].min()), 0.0) if name in gap else 0.0

    def high(name: str) -> float:
        return safety * max(float(gap[name][chosen].max()), 0.0) if name in gap else 0.0

    return Band(high("margin"), low("log_odds"), high("log_odds"), low("ood"), high("ood"))


def same_answers(rule: DecisionRule, exact: Forward, quick: Forward) -> np.ndarray:
    """Photos on which the int8 network alone gives the float network's label and decision."""
    a, b = rule.decide(exact.probabilities, exact.features), rule.decide(quick.probabilities, quick.features)
    return (a.labels == b.labels) & (np.array(a.decisions) == np.array(b.decisions))


SAFETY_FACTORS = tuple(np.round(np.arange(1.0, 3.01, 0.05), 2))


def choose_band(
    rule: DecisionRule, exact: Forward, quick: Forward, target: float = 0.999, rounds: int = 20, seed: int = 0
) -> tuple[Band, float, float]:
    """The band, from validation photos only: the largest int8-minus-float gap of each kind times the smallest
    safety factor whose band, chosen on one random half of the photos, gives the float network's answer on at
    least `target` of the other half (over `rounds` random halvings, both ways). Returns the band, the factor
    and that cross-fitted agreement."""
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
            refereed = unclear(band_from(gap, chosen, safety), rule, found)
            wrong += int(np.sum(~agree[measured] & ~refereed[measured]))
            checked += len(measured)
        if 1 - wrong / checked >= target:
            break
    return band_from(gap, np.arange(photos), safety), float(safety), 1 - wrong / checked


def cascade_figures(rule: DecisionRule, band: Band, exact: Forward, quick: Forward) -> CascadeFigures:
    """What the cascade does on some photos: how often the float network runs, and how often the final answer
    (label and decision) and the int8 network's alone are the float network's."""
    refereed = unclear(band, rule, edges(rule, quick))
    alone = same_answers(rule, exact, quick)
    top1 = rule.decide(exact.probabilities, None).labels == rule.decide(quick.probabilities, None).labels
    return CascadeFigures(
        photos=len(alone),
        fallback=round(float(refereed.mean()), 4),
        final_agreement=round(float(np.mean(alone | refereed)), 4),
        final_disagreements=int(np.sum(~alone & ~refereed)),
        int8_alone_agreement=round(float(alone.mean()), 4),
        int8_alone_top1_agreement=round(float(top1.mean()), 4),
    )
