"""The review queue: the stored photos without a choice, the ones most worth a person's label first.

The rule, measured on the real photos the shipped model never trained on (docs/feedback.md#the-review-queue):
1. `unsure` answers, the smallest margin between the top two classes first: the model's own doubt, and where most
   of its wrong labels are;
2. `unknown` answers, the nearest the "unknown" threshold first: the likeliest to be kitchenware the model does
   not know (far above it, they are mostly other things, and a label "other" teaches the model nothing);
3. `confident` answers, the smallest margin first.
Spread: a photo whose feature signature is within NEAR_BITS of one already picked (a burst of the same object) is
pushed back behind the others, so one burst does not fill the page.

The signature is 64 bits of the backbone's features (SimHash: the signs of 64 fixed random projections of the
L2-normalised features; Charikar, STOC 2002): the Hamming distance of two signatures estimates the angle between
the features, and 16 hexadecimal characters a row keep it in the database (classifications.signature). Rows
stored before revision 0003 have no margin nor signature: they are ranked by the margin their confidence allows (at
least 2c - 1), and never pushed back.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from sqlalchemy import ColumnElement, case, func

from kitchenware.core.decision import CONFIDENT, UNKNOWN, UNSURE
from kitchenware.feedback.tables import classifications

SIGNATURE_BITS = 64
# Measured on the shipped model's features of the real photos: photos of one near-duplicate group (the grouped
# split's) differ by 8 bits at the median, 11 at the 90th percentile; photos of different groups by 24 at the median,
# and 1 % of them by 12 or fewer.
NEAR_BITS = 10
PROJECTION_SEED = 20261207  # fixed: signatures written by every worker, replica and version compare
ORDER = (UNSURE, UNKNOWN, CONFIDENT)


@dataclass(frozen=True)
class Waiting:
    """A stored photo without a choice, with the service's latest answer for it."""

    photo_id: str
    label: str
    confidence: float
    decision: str
    margin: float | None
    ood_score: float | None
    signature: str | None


@dataclass(frozen=True)
class Pick(Waiting):
    """A photo in the queue, and why it is there."""

    reason: str


@functools.cache
def _projection(dimensions: int) -> np.ndarray:
    return np.random.default_rng(PROJECTION_SEED).standard_normal((dimensions, SIGNATURE_BITS)).astype(np.float32)


def signatures(features: np.ndarray | None, count: int) -> list[str | None]:
    """The signature of each photo's features ((count, dimensions)), as 16 hexadecimal digits; None each for a model
    without features."""
    if features is None:
        return [None] * count
    signs = (features.astype(np.float32) @ _projection(features.shape[1])) > 0  # the norm does not change a sign
    weights = 1 << np.arange(SIGNATURE_BITS - 1, -1, -1, dtype=np.uint64)
    return [f"{int((row * weights).sum()):016x}" for row in signs.astype(np.uint64)]


def margin(probabilities: Mapping[str, float]) -> float | None:
    """The top class's probability minus the second's; None for a model of one class."""
    top = sorted(probabilities.values(), reverse=True)
    return round(top[0] - top[1], 6) if len(top) > 1 else None


def order_by() -> tuple[ColumnElement, ...]:
    """The rule's order as SQL, on the classifications table (the repository pages through it)."""
    rank = case({decision: place for place, decision in enumerate(ORDER)}, value=classifications.c.decision, else_=3)
    known_margin = func.coalesce(classifications.c.margin, 2 * classifications.c.confidence - 1)
    within = case(
        (classifications.c.decision == UNKNOWN, func.coalesce(classifications.c.ood_score, 0.0)),
        else_=known_margin,
    )
    return rank, within, classifications.c.id.desc()  # ties: the newest answer first


def _why(photo: Waiting) -> str:
    if photo.decision == UNKNOWN:
        score = "no score stored" if photo.ood_score is None else f"score {photo.ood_score:.3f}"
        return f"unknown: like no training photo ({score}; the nearest the threshold first)"
    if photo.margin is None:
        return f"{photo.decision}: confidence {photo.confidence:.2f} (stored before margins were)"
    return f"{photo.decision}: margin {photo.margin:.2f} between its top two classes"


def _distance(first: str, second: str) -> int:
    return (int(first, 16) ^ int(second, 16)).bit_count()


def rank(waiting: Iterable[Waiting], limit: int) -> list[Pick]:
    """The first `limit` photos of the queue, from photos in the rule's order (order_by): greedily, each photo
    unless it is a near-duplicate of one already picked; those follow when the others run out."""
    picked: list[Pick] = []
    signed: list[tuple[str, str]] = []  # (signature, photo id) of the picked photos
    pushed_back: list[Pick] = []
    for photo in waiting:
        if len(picked) >= limit:
            break
        near = next(
            (
                photo_id
                for signature, photo_id in signed
                if photo.signature and _distance(signature, photo.signature) <= NEAR_BITS
            ),
            None,
        )
        fields = dataclasses.asdict(photo)
        if near is not None:
            pushed_back.append(Pick(**fields, reason=f"{_why(photo)}; pushed back: like photo {near[:12]}"))
            continue
        picked.append(Pick(**fields, reason=_why(photo)))
        if photo.signature:
            signed.append((photo.signature, photo.photo_id))
    return (picked + pushed_back)[:limit]
