"""The linear probe: a multinomial logistic regression on the L2-normalised backbone features, fit by scikit-learn,
its weights copied into the Keras head (UnitNormalization -> Dense softmax) that the exported model runs.

Strong L2 regularisation on unit-length features transfers to photos of sources the head never saw: held out one
origin at a time, it beat the Keras softmax head (Adam on the raw features) on 1,020 paired photos
(benchmarks/HEAD_RECIPES.md, docs/validation.md). scikit-learn's lbfgs solves the convex problem exactly, which Adam
did not in 60 epochs; the copy reproduces `predict_proba` to 1e-6.
"""

from __future__ import annotations

import keras
import numpy as np
from sklearn.linear_model import LogisticRegression

from kitchenware.core.decision import l2_normalise

TOLERANCE = 1e-8  # lbfgs stops early at its default 1e-4 for C of 10 and more (answers off by up to 0.09)
MAX_ITERATIONS = 10_000


NEVER = -1e4  # the intercept of a class no training photo shows: its probability is exp(-1e4), 0 in float32


def fit_probe(features: np.ndarray, labels: np.ndarray, c: float, balanced: bool) -> LogisticRegression:
    """The logistic regression on unit-length features (one row per photo or augmented view); balanced: each class
    weighs as much in the loss as the others."""
    probe = LogisticRegression(
        C=c, class_weight="balanced" if balanced else None, tol=TOLERANCE, max_iter=MAX_ITERATIONS
    )
    return probe.fit(l2_normalise(features), labels)


def copy_into(probe: LogisticRegression, head: keras.Model) -> None:
    """The probe's weights into the head's Dense layer (after its UnitNormalization layer); a class the training
    photos lack (a small cross-validation fold) is never answered."""
    (dense,) = [layer for layer in head.layers if isinstance(layer, keras.layers.Dense)]
    kernel, bias = np.zeros(dense.kernel.shape, np.float32), np.full(dense.bias.shape, NEVER, np.float32)
    coef, intercept = probe.coef_, probe.intercept_
    if len(probe.classes_) == 2:  # scikit-learn keeps one row for two classes: the second's logit against the first
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.r_[-intercept / 2, intercept / 2]
    kernel[:, probe.classes_] = coef.T
    bias[probe.classes_] = intercept
    dense.set_weights([kernel, bias])
