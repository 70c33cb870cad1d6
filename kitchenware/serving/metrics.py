"""What the model meets in production, for a dashboard and an alert when "unknown" climbs: answers counted by
decision and label, and the distribution of confidence. Served at /metrics with BentoML's own."""

from __future__ import annotations

import bentoml

from kitchenware.core.decision import Answers

ANSWERS = bentoml.metrics.Counter(
    name="kitchenware_answers",
    documentation="Photos answered, by decision (confident, unsure, unknown) and top label",
    labelnames=["decision", "label"],
)
CONFIDENCE = bentoml.metrics.Histogram(
    name="kitchenware_confidence",
    documentation="Calibrated confidence of the top label",
    buckets=(0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 1.0),
)
FEEDBACK = bentoml.metrics.Counter(
    name="kitchenware_feedback",
    documentation="Categories sellers chose, by the chosen label and whether the model's answer agreed (live accuracy)",
    labelnames=["chosen", "agrees"],
)
FLOAT_FALLBACKS = bentoml.metrics.Counter(
    name="kitchenware_float_fallbacks",
    documentation="Photos the int8 network left to the float network (KITCHENWARE_RUNTIME=onnx-int8-cascade): "
    "its answer was inside the band where the two networks could disagree",
)
STORAGE_FAILURES = bentoml.metrics.Counter(
    name="kitchenware_feedback_storage_failures",
    documentation="Classified photos that could not be stored (database or disk trouble); answered anyway",
)
STORE_FULL = bentoml.metrics.Counter(
    name="kitchenware_feedback_store_full",
    documentation="Classified photos not stored: the quota (KITCHENWARE_FEEDBACK_MAX_PHOTOS, _MAX_MB) was reached "
    "and every stored photo had a seller's choice; answered anyway",
)


def count(answers: Answers, class_names: list[str]) -> None:
    for decision, label, confidence in zip(answers.decisions, answers.labels, answers.confidences):
        ANSWERS.labels(decision=decision, label=class_names[label]).inc()
        CONFIDENCE.observe(float(confidence))
    if answers.float_answered is not None and answers.float_answered.any():
        FLOAT_FALLBACKS.inc(int(answers.float_answered.sum()))
