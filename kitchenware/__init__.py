"""Kitchenware photo classifier: train it with Keras, serve it with BentoML, use it from Python.

    from kitchenware import Classifier

    clf = Classifier.open("models/")
    answer = clf.classify("cup.jpg")

The package's rooms and which way they may import are in docs/architecture.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.6.0"  # the package's one version: pyproject.toml reads it
__all__ = ["Answer", "Classifier", "Explanation", "ModelCard", "answer_rows"]

if TYPE_CHECKING:
    from kitchenware.classifier import Answer, Classifier, Explanation, answer_rows
    from kitchenware.core.card import ModelCard


def __getattr__(name: str):
    """The API on first use (PEP 562): importing a room, e.g. kitchenware.core.card, loads no more than it needs."""
    if name in ("Answer", "Classifier", "Explanation", "answer_rows"):
        from kitchenware import classifier

        return getattr(classifier, name)
    if name == "ModelCard":
        from kitchenware.core.card import ModelCard

        return ModelCard
    raise AttributeError(f"module 'kitchenware' has no attribute {name!r}")
