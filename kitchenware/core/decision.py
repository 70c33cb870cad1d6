"""From one forward pass to an answer a seller can act on: calibrated probabilities, an out-of-distribution
score, and the decision: "confident" (suggest the label), "unsure" (let the person choose among the top
few) or "unknown" (none of the classes).

Training fits the rule on photos the head was not trained on (`kitchenware/training/decisions.py`) and
stores it in the model card and the model's folder; the service, `evaluate` and `predict` all decide here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from kitchenware.core.card import OOD_FEEDBACK_FILE, OOD_REFERENCE_FILE, ModelCard

CONFIDENT, UNSURE, UNKNOWN = "confident", "unsure", "unknown"
DECISIONS = (CONFIDENT, UNSURE, UNKNOWN)
# For a model saved before calibration existed: raw probabilities, and this bar for "confident".
DEFAULT_MIN_CONFIDENCE = 0.8


def calibrate(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling, softmax(z / T), from the probabilities softmax(z): log p equals z up to a constant
    per row, which softmax ignores. The ranking of the classes never changes."""
    if temperature == 1.0:
        return probabilities.astype(np.float32)
    with np.errstate(divide="ignore"):
        scaled = np.log(probabilities.astype(np.float64)) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exponentials = np.exp(scaled)
    return (exponentials / exponentials.sum(axis=1, keepdims=True)).astype(np.float32)


def l2_normalise(features: np.ndarray) -> np.ndarray:
    features = features.astype(np.float64)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def knn_distance(features: np.ndarray, reference: np.ndarray, k: int) -> np.ndarray:
    """Euclidean distance from each photo to its k-th nearest reference photo, on L2-normalised features
    (Sun et al., ICML 2022): small for photos like the training ones, large for other things.

    In float64: sqrt(2 - 2 cos) cancels for near-identical photos, and a float32 product rounds differently
    with the number of photos in the batch; in float64 the service (one photo) and `predict` (many) agree to
    the last printed digit. About 1 ms a photo against 815 training photos."""
    cosine = l2_normalise(features) @ reference.T
    kth_largest = -np.partition(-cosine, k - 1, axis=1)[:, k - 1]
    return np.sqrt(np.maximum(2.0 - 2.0 * kth_largest, 0.0))


@dataclass(frozen=True)
class Answers:
    """The decided answers for n photos: calibrated probabilities, top class, OOD score and decision."""

    probabilities: np.ndarray  # (n, classes), calibrated
    labels: np.ndarray  # (n,) class indices
    confidences: np.ndarray  # (n,) the calibrated probability of the top class
    ood_scores: np.ndarray | None  # (n,) higher = less like the training photos; None without a score
    decisions: list[str]
    float_answered: np.ndarray | None = None  # (n,) bool with the int8 cascade: the photos the float network answered
    # (n, features) the backbone's pooled features, when the model has them: the service stores a compact signature
    # of each, so that the review queue can tell near-duplicates apart (feedback/review.py)
    features: np.ndarray | None = None


@dataclass(frozen=True)
class DecisionRule:
    temperature: float
    min_confidence: float  # calibrated confidence under which the top answer is "unsure"
    ood_threshold: float | None  # OOD score above which a photo is "unknown"; None: never
    k: int = 1
    reference: np.ndarray | None = None  # L2-normalised training features (float64 here; float16 on disk)
    # L2-normalised features of photos sellers labelled (feedback/reference.py): each counts on its own, as k
    # training photos do
    labelled_by_sellers: np.ndarray | None = None

    @classmethod
    def for_model(
        cls,
        card: ModelCard,
        folder: Path,
        min_confidence: float | None = None,
        ood_threshold: float | None = None,
    ) -> DecisionRule:
        """The rule stored with a model, with a deployment's overrides; a model saved before the rule existed
        gets its raw probabilities, DEFAULT_MIN_CONFIDENCE and no "unknown"."""
        reference_file, feedback_file = Path(folder) / OOD_REFERENCE_FILE, Path(folder) / OOD_FEEDBACK_FILE
        ood = card.ood if card.ood is not None and card.ood.score == "knn" and reference_file.is_file() else None
        if ood is not None:
            # NumPy's BLAS threads spin after each product, on the cores the forward pass needs: measured in the
            # service, +44 core-ms and +20 ms a photo with them, +1 with one thread (benchmarks/RESULTS.md).
            threadpool_limits(1, user_api="blas")
        return cls(
            temperature=card.temperature,
            min_confidence=min_confidence
            if min_confidence is not None
            else card.min_confidence or DEFAULT_MIN_CONFIDENCE,
            ood_threshold=None if ood is None else ood_threshold if ood_threshold is not None else ood.threshold,
            k=1 if ood is None else ood.k,
            # Converted once: a float16 matrix product converts the reference on every call (~16 ms a photo).
            reference=None if ood is None else np.load(reference_file).astype(np.float64),
            labelled_by_sellers=np.load(feedback_file).astype(np.float64)
            if ood is not None and ood.feedback_photos and feedback_file.is_file()
            else None,
        )

    def ood_scores(self, features: np.ndarray | None) -> np.ndarray | None:
        """The distance to the k-th nearest training photo, or to the nearest photo a seller labelled when that is
        nearer: a photo like one a seller said was a cup is not "unknown"."""
        if self.reference is None or features is None:
            return None
        scores = knn_distance(features, self.reference, self.k)
        if self.labelled_by_sellers is not None:
            scores = np.minimum(scores, knn_distance(features, self.labelled_by_sellers, 1))
        return scores

    def decide(self, probabilities: np.ndarray, features: np.ndarray | None) -> Answers:
        calibrated = calibrate(probabilities, self.temperature)
        labels = calibrated.argmax(axis=1)
        confidences = calibrated[np.arange(len(labels)), labels]
        scores = self.ood_scores(features)
        decisions = []
        for i, confidence in enumerate(confidences):
            if scores is not None and self.ood_threshold is not None and scores[i] > self.ood_threshold:
                decisions.append(UNKNOWN)
            elif confidence < self.min_confidence:
                decisions.append(UNSURE)
            else:
                decisions.append(CONFIDENT)
        return Answers(calibrated, labels, confidences, scores, decisions)
