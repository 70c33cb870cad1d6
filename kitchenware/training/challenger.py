"""Challenger against champion: each figure of both models on the same photos, the noise of its difference
measured by a paired bootstrap, and the rule that promotes the challenger only when it wins (`kitchenware retrain`).

The rule, on every figure of every set of photos: the challenger is *worse beyond the noise* when the whole 95 %
interval of (challenger - champion) lies on the worse side of 0, *better beyond the noise* when it lies wholly on
the better side. It is promoted when it is worse beyond the noise on none and better beyond the noise on at least
one. An interval that touches 0 is noise: one photo answered differently never decides (it is left out of about
a third of the resamples, so 0 stays inside the interval).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kitchenware.core.decision import CONFIDENT, UNKNOWN, Answers
from kitchenware.core.photos import Sample

RESAMPLES = 1000  # paired bootstrap resamples of the photos of a set
LEVEL = 0.95  # the interval of each difference
SEED = 0  # the resamples are drawn the same on every run: the same answers give the same verdict

BETTER, WORSE, NOISE, UNMEASURED = "better", "worse", "within the noise", "not measured"
# The figures whose lower value is the better one: on photos labelled with a class, "unknown" refuses kitchenware.
LOWER_IS_BETTER = {"unknown share"}


@dataclass(frozen=True)
class PhotoSet:
    """Photos both models are judged on (neither trained on them), labelled, and how they were chosen."""

    name: str
    samples: list[Sample]


@dataclass(frozen=True)
class Comparison:
    """One figure of both models on one set: their values, the difference and its interval (None: not measured,
    e.g. the accuracy of the `confident` answers of a model that gave none)."""

    photos: str  # the set's name
    figure: str
    champion: float | None
    challenger: float | None
    difference: float | None  # challenger - champion
    low: float | None
    high: float | None

    @property
    def higher_is_better(self) -> bool:
        return self.figure not in LOWER_IS_BETTER

    @property
    def verdict(self) -> str:
        if self.low is None or self.high is None:
            return UNMEASURED
        if self.low > 0 or self.high < 0:
            return BETTER if (self.low > 0) == self.higher_is_better else WORSE
        return NOISE

    def __str__(self) -> str:
        if self.difference is None:
            return f"{self.photos}: {self.figure} not measured"
        return (
            f"{self.photos}: {self.figure} {self.champion:.3f} -> {self.challenger:.3f} ({self.difference:+.3f}, "
            f"{LEVEL:.0%} interval [{self.low:+.3f}, {self.high:+.3f}])"
        )


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str
    worse: tuple[Comparison, ...]
    better: tuple[Comparison, ...]


def figures(
    correct: np.ndarray, labels: np.ndarray, confident: np.ndarray, unknown: np.ndarray, classes: dict[str, int]
) -> dict[str, np.ndarray]:
    """Each figure on each row of photos ((resamples, n) arrays; a row is one resample): accuracy, the recall of
    each of `classes` ({name: index}), the share answered `confident` and their accuracy, the share answered
    `unknown`. NaN where a row has no photo to measure on (no photo of the class, no `confident` answer)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        values = {"accuracy": correct.mean(axis=1)}
        for name, index in classes.items():
            of_class = labels == index
            values[f"recall {name}"] = (correct & of_class).sum(axis=1) / of_class.sum(axis=1)
        values["confident coverage"] = confident.mean(axis=1)
        values["confident accuracy"] = (correct & confident).sum(axis=1) / confident.sum(axis=1)
        values["unknown share"] = unknown.mean(axis=1)
    return values


def _per_photo(answers: Answers, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    decisions = np.array(answers.decisions)
    return answers.labels == labels, decisions == CONFIDENT, decisions == UNKNOWN


def compare(
    photos: str, labels: np.ndarray, champion: Answers, challenger: Answers, class_names: list[str]
) -> list[Comparison]:
    """Every figure of both models on the same photos, with the LEVEL interval of the difference from RESAMPLES
    paired resamples (the same photos drawn for both models: what differs is the model, not the photos)."""
    rows = np.random.default_rng(SEED).integers(0, len(labels), (RESAMPLES, len(labels)))
    everything = np.arange(len(labels))[None]
    present = {name: index for index, name in enumerate(class_names) if (labels == index).any()}
    measured = {}
    for role, answers in (("champion", champion), ("challenger", challenger)):
        correct, confident, unknown = _per_photo(answers, labels)
        measured[role] = [
            figures(correct[chosen], labels[chosen], confident[chosen], unknown[chosen], present)
            for chosen in (everything, rows)
        ]
    tail = (1 - LEVEL) / 2 * 100
    comparisons = []
    for figure, value in measured["champion"][0].items():
        old, new = float(value[0]), float(measured["challenger"][0][figure][0])
        differences = measured["challenger"][1][figure] - measured["champion"][1][figure]
        differences = differences[~np.isnan(differences)]
        if np.isnan(old) or np.isnan(new) or not len(differences):
            comparisons.append(Comparison(photos, figure, _number(old), _number(new), None, None, None))
            continue
        low, high = np.percentile(differences, [tail, 100 - tail])
        comparisons.append(Comparison(photos, figure, old, new, new - old, float(low), float(high)))
    return comparisons


def _number(value: float) -> float | None:
    return None if np.isnan(value) else value


def judge(comparisons: list[Comparison]) -> Verdict:
    """Promote when worse beyond the noise on no figure and better beyond the noise on at least one."""
    worse = tuple(c for c in comparisons if c.verdict == WORSE)
    better = tuple(c for c in comparisons if c.verdict == BETTER)
    if worse:
        reason = "worse beyond the noise on " + "; ".join(map(str, worse))
    elif not better:
        reason = "better beyond the noise on no figure: every interval of the difference includes 0"
    else:
        reason = "better beyond the noise on " + "; ".join(map(str, better)) + "; worse on none"
    return Verdict(bool(better) and not worse, reason, worse, better)
