"""What the service answers: the shapes Swagger UI shows, built from the decided answers and the model card."""

from __future__ import annotations

import dataclasses

from pydantic import BaseModel, Field

from kitchenware.core.answers import Answer
from kitchenware.core.card import ModelCard
from kitchenware.core.decision import DecisionRule


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
    feedback_token: str | None = Field(
        default=None,
        description=(
            "with photo_id: send it as `token` with POST /feedback to record the seller's choice for this photo "
            "(short-lived: KITCHENWARE_FEEDBACK_TOKEN_MINUTES, 60 by default); null otherwise"
        ),
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08.1796650000.kXq3Yx..."],
    )


class FeedbackSaved(BaseModel):
    photo_id: str = Field(description="the photo the seller labelled")
    label: str = Field(description='the category they chose: one of the classes, or "other"')
    predicted: str = Field(description="what the model had answered for that photo")


def classification(answer: Answer, tag: str) -> Classification:
    return Classification(**answer.to_dict(), model=tag)


def model_info(card: ModelCard, tag: str, runtime: str, rule: DecisionRule) -> dict:
    """The part of the model card a client wants to see, what runs it, and the decision thresholds in force."""
    validation = card.validation
    int8 = card.int8
    return {
        "model": tag,
        "runtime": runtime,
        "class_names": list(card.class_names),
        "input_size": card.input_size,
        "architecture": card.architecture,
        "weights": card.weights,
        "validation": None
        if validation is None
        else {
            "accuracy": validation.accuracy,
            "loss": validation.loss,
            "images": validation.images,
            "per_class": list(validation.per_class),
        },
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
            "validation": None if card.calibration is None else _without_none(dataclasses.asdict(card.calibration)),
        },
        "int8": None
        if int8 is None
        else {
            "band": dataclasses.asdict(int8.band),
            "band_safety_factor": int8.band_safety_factor,
            "band_chosen_on": int8.band_chosen_on,
            "validation_accuracy": int8.validation_accuracy,
        },
        "created": card.created,
        "command": card.command,
    }


def _without_none(figures: dict) -> dict:
    """The figures a card holds, as it stores them."""
    return {key: value for key, value in figures.items() if value is not None}
