"""Sellers' choices join the "unknown" score's reference at the next import, without retraining (on SQLite and on
PostgreSQL): the photo a seller labelled stops being "unknown", a photo of something else stays so."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from images import encode
from PIL import Image
from tiny_model import write_tiny_model

from build_bento_from_saved_model import main as build_bento_main
from kitchenware import Classifier
from kitchenware.core.card import ModelCard
from kitchenware.core.photos import DataError
from kitchenware.feedback.reference import with_sellers_photos
from kitchenware.feedback.repository import Classified, FeedbackStore

ORANGE = Image.new("RGB", (32, 32), (255, 128, 0))  # mostly red: the tiny model says cup, and is sure of it
GREY = Image.new("RGB", (32, 32), (128, 128, 128))  # none of its colours


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """The tiny model with a tight "unknown" threshold: orange is too far from its red, green and blue."""
    folder = write_tiny_model(tmp_path / "model")
    card = ModelCard.read(folder)
    card.replace(ood=dataclasses.replace(card.ood, threshold=0.2)).write(folder)
    return folder


def test_a_photo_a_seller_labelled_is_known_after_the_import(tiny_model: Path, store: FeedbackStore, tmp_path: Path):
    before = Classifier.open(tiny_model)
    orange, grey = before.classify(ORANGE), before.classify(GREY)
    assert (orange.label, orange.decision) == ("cup", "unknown") and orange.confidence > 0.9
    assert grey.decision == "unknown"

    photo_id = store.record(encode(ORANGE, "PNG"), Classified(orange.label, orange.confidence, orange.decision, "t"))
    store.choose(photo_id, "cup", list(before.class_names))  # the seller says: a cup
    other_id = store.record(encode(GREY, "PNG"), Classified(grey.label, grey.confidence, grey.decision, "t"))
    store.choose(other_id, "other", list(before.class_names))  # "none of these": not a reference photo
    url = "feedback:" + store.engine.url.render_as_string(hide_password=False)

    arguments = ["--model", str(tiny_model), "--reference-from", url, "--photos", str(store.photo_folder)]
    assert build_bento_main([*arguments, "--no-build"]) == 0
    after = Classifier.open("tiny_test_model:latest")  # the model the import put in the store
    assert after.card.ood.feedback_photos == 1 and after.card.ood.threshold == before.card.ood.threshold
    known = after.classify(ORANGE)
    assert (known.label, known.decision) == ("cup", "confident")
    assert known.ood_score < 0.02  # its own features, stored in float16 (sqrt(2 - 2 cos) magnifies the rounding)
    assert known.probabilities == orange.probabilities  # the head is the same
    still = after.classify(GREY)  # nearer the seller's orange photo than any training colour, yet far from it
    nearest = min(grey.ood_score, float(np.linalg.norm(_unit(GREY) - _unit(ORANGE))))
    assert still.decision == "unknown" and still.ood_score == pytest.approx(nearest, abs=1e-3)
    assert Classifier.open(tiny_model).classify(ORANGE).decision == "unknown"  # the exported folder is unchanged


def _unit(image: Image.Image) -> np.ndarray:
    """The tiny model's features of a one-colour photo, at unit length: its colour."""
    colour = np.asarray(image, np.float64)[0, 0]
    return colour / np.linalg.norm(colour)


def test_a_store_without_labelled_photos_is_a_clear_error(tiny_model: Path, store: FeedbackStore, tmp_path: Path):
    url = "feedback:" + store.engine.url.render_as_string(hide_password=False)
    with pytest.raises(DataError, match="holds no photo with a seller's category yet"):
        with_sellers_photos(tiny_model, url, tmp_path / "out", store.photo_folder)
    with pytest.raises(DataError, match="is not a feedback store: pass feedback:<SQLAlchemy URL>"):
        with_sellers_photos(tiny_model, "sqlite:///x.db", tmp_path / "out")
