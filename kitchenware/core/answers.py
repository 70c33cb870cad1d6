"""What one photo's answer is, and the flat rows answers become for CSV, Parquet and JSON files.

Every way of classifying (the Python API, the service, `predict`, the Ray jobs) builds its answers here, so a photo
gets the same label, decision and figures, to the sixth decimal, whichever way it went.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kitchenware.core.decision import Answers

DECIMALS = 6  # float32 probabilities hold about 7 significant digits: 6 decimals is what they know


@dataclass(frozen=True)
class Answer:
    """One photo's answer: the class, how sure, and what to do with it."""

    label: str  # the most likely class
    confidence: float  # its calibrated probability
    decision: str  # "confident": suggest the label; "unsure": let the person choose; "unknown": none of the classes
    ood_score: float | None  # how unlike the training photos (above the model's threshold: "unknown"); None: no score
    probabilities: dict[str, float]  # every class, calibrated, highest first

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def ranked(probabilities: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
    """{class: probability}, highest first (ties in the model's class order)."""
    order = np.argsort(-probabilities, kind="stable")
    return {class_names[i]: round(float(probabilities[i]), DECIMALS) for i in order}


def answer_list(answers: Answers, class_names: Sequence[str]) -> list[Answer]:
    """The decided answers of n photos, one Answer each."""
    listed = []
    for i, decision in enumerate(answers.decisions):
        probabilities = ranked(answers.probabilities[i], class_names)
        label = class_names[answers.labels[i]]
        ood_score = None if answers.ood_scores is None else round(float(answers.ood_scores[i]), DECIMALS)
        listed.append(Answer(label, probabilities[label], decision, ood_score, probabilities))
    return listed


def answer_rows(
    ids: Sequence[str],
    answers: Sequence[Answer | None],
    class_names: Sequence[str],
    errors: Sequence[str | None] | None = None,
) -> list[dict[str, Any]]:
    """One flat row per photo: Id, label, confidence, decision, ood_score, error (when `errors` is given: a photo
    without an answer has its reason there) and one probability column per class, in the model's class order."""
    rows = []
    for i, (photo_id, answer) in enumerate(zip(ids, answers)):
        row: dict[str, Any] = {"Id": photo_id}
        if answer is None:
            row |= dict.fromkeys(("label", "confidence", "decision", "ood_score"))
        else:
            row |= {key: getattr(answer, key) for key in ("label", "confidence", "decision", "ood_score")}
        if errors is not None:
            row["error"] = errors[i]
        row |= {name: None if answer is None else answer.probabilities[name] for name in class_names}
        rows.append(row)
    return rows
