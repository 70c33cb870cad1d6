"""What the service answers: the shapes Swagger UI shows, built from the decided answers and the model card."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from kitchenware.core.card import ModelCard
from kitchenware.core.decision import Answers, DecisionRule


class Classification(BaseModel):
    label: str = Field(description="the most likely class", examples=["cup"])
    confidence: float = Field(description="its calibrated probability", examples=[0.97])
    decision: str = Field(
        description=(
            '"confident": suggest `label`; "unsure": show the top few classes and let the person choose; '
            '"unknown": the photo does not look like any of the classes'
        ),
        examples=["confident"],
    )
    ood_score: float | None = Field(
        description=(
            "how unlike the training photos it is (distance to the nearest one's features); above the model's "
            'threshold the decision is "unknown"; null for a model without this score'
        ),
        examples=[0.41],
    )
    probabilities: dict[str, float] = Field(
        description="every class, calibrated, highest first", examples=[{"cup": 0.97, "glass": 0.02, "plate": 0.01}]
    )
    model: str = Field(description="the model's tag in the BentoML store", examples=["kitchenware_classifier:abc123"])
    photo_id: str | None = Field(
        default=None,
        description="with feedback storage on: the stored photo's id, for POST /feedback; null otherwise",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    )


class FeedbackSaved(BaseModel):
    photo_id: str = Field(description="the photo the seller labelled")
    label: str = Field(description='the category they chose: one of the classes, or "other"')
    predicted: str = Field(description="what the model had answered for that photo")


def ranked(probabilities: np.ndarray, class_names: list[str]) -> dict[str, float]:
    """{class: probability}, highest first."""
    order = np.argsort(-probabilities, kind="stable")
    return {class_names[i]: round(float(probabilities[i]), 6) for i in order}


def classifications(answers: Answers, class_names: list[str], tag: str) -> list[Classification]:
    results = []
    for i, decision in enumerate(answers.decisions):
        scores = ranked(answers.probabilities[i], class_names)
        label = class_names[answers.labels[i]]
        ood_score = None if answers.ood_scores is None else round(float(answers.ood_scores[i]), 6)
        results.append(
            Classification(
                label=label,
                confidence=scores[label],
                decision=decision,
                ood_score=ood_score,
                probabilities=scores,
                model=tag,
            )
        )
    return results


def model_info(card: ModelCard, tag: str, runtime: str, rule: DecisionRule) -> dict:
    """The part of the model card a client wants to see, what runs it, and the decision thresholds in force."""
    validation = card.validation
    return {
        "model": tag,
        "runtime": runtime,
        "class_names": list(card.class_names),
        "input_size": card.input_size,
        "architecture": card.architecture,
        "weights": card.weights,
        "validation": {key: validation.get(key) for key in ("accuracy", "loss", "images", "per_class")},
        "dataset": {key: card.dataset.get(key) for key in ("images", "counts", "sources", "split", "fingerprint")},
        "decisions": {
            "temperature": rule.temperature,
            "min_confidence": rule.min_confidence,
            "ood_threshold": rule.ood_threshold,
            "ood_score": "knn" if rule.reference is not None else None,
            "calibrated": card.min_confidence is not None,
            "note": (
                "thresholds fit on held-out photos when the model was trained; KITCHENWARE_MIN_CONFIDENCE and "
                "KITCHENWARE_OOD_THRESHOLD override them"
                if card.min_confidence is not None
                else "this model was saved before calibration: raw probabilities, a default confidence bar, "
                "and no 'unknown' answers; train it again to get them"
            ),
            "validation": card.calibration,
        },
        "int8": {
            key: card.int8.get(key) for key in ("band", "band_safety_factor", "band_chosen_on", "validation_accuracy")
        }
        if card.int8
        else None,
        "created": card.created,
        "command": card.command,
    }
