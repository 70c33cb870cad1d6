"""The Python API on the shipped model and real photos: one way to open a model, typed answers for every kind of
input, where the model looked, rows for files, and the errors a user meets."""

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sample_data import MORE_PHOTOS, NOT_KITCHENWARE, REAL_PHOTOS, SHIPPED_MODEL, needs_shipped_model_and_photos

from kitchenware import Answer, Classifier, ModelCard, answer_rows
from kitchenware import classifier as api
from kitchenware.core.preprocessing import ImageError

pytestmark = needs_shipped_model_and_photos
CUP = REAL_PHOTOS / "images" / "0009.jpg"


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier.open(SHIPPED_MODEL)


def photos_of_every_class() -> list[Path]:
    return [sorted((MORE_PHOTOS / name).iterdir())[0] for name in ("cup", "fork", "glass", "knife", "plate", "spoon")]


def test_a_photo_gets_a_typed_answer_whatever_it_comes_as(clf: Classifier):
    answer = clf.classify(CUP)
    assert isinstance(answer, Answer) and answer.label == "cup" and answer.decision == "confident"
    assert list(answer.probabilities) == sorted(answer.probabilities, key=lambda name: -answer.probabilities[name])
    assert set(answer.probabilities) == set(clf.card.class_names)
    assert answer.confidence == answer.probabilities["cup"] and 0 <= answer.ood_score < clf.rule.ood_threshold
    assert clf.classify(str(CUP)) == clf.classify(CUP.read_bytes()) == clf.classify(open(CUP, "rb")) == answer
    assert answer.to_dict() == {
        "label": "cup",
        "confidence": answer.confidence,
        "decision": "confident",
        "ood_score": answer.ood_score,
        "probabilities": answer.probabilities,
    }
    # A Pillow image is taken as decoded, at full size (a path lets a JPEG decode at a smaller scale): the same
    # class and decision, figures within a hundredth.
    from_pillow = clf.classify(Image.open(CUP))
    assert (from_pillow.label, from_pillow.decision) == ("cup", "confident")
    assert abs(from_pillow.confidence - answer.confidence) < 0.01


def test_a_list_gets_its_answers_in_order_as_one_by_one(clf: Classifier):
    photos = photos_of_every_class()
    answers = clf.classify(photos)
    assert answers == [clf.classify(photo) for photo in photos]
    assert [answer.label for answer in answers] == ["cup", "fork", "glass", "knife", "plate", "spoon"]
    assert clf.classify([]) == []


def test_a_photo_of_something_else_is_unknown(clf: Classifier):
    car = clf.classify(NOT_KITCHENWARE / "far-car-006.jpg")
    assert car.decision == "unknown" and car.ood_score > clf.rule.ood_threshold


def test_a_store_tag_and_the_exported_folder_are_the_same_model(clf: Classifier, shipped_model_in_store: str):
    from_store = Classifier.open(shipped_model_in_store)
    assert from_store.name == shipped_model_in_store and clf.name == str(SHIPPED_MODEL)
    assert from_store.card.replace(file_sha256=None) == clf.card == ModelCard.read(SHIPPED_MODEL)
    assert from_store.classify(photos_of_every_class()) == clf.classify(photos_of_every_class())


def test_the_runtime_and_thresholds_can_be_chosen(clf: Classifier):
    assert clf.runtime == "onnx-int8-cascade"  # the shipped model has its int8 network
    float_only = Classifier.open(SHIPPED_MODEL, runtime="onnx", min_confidence=0.999, ood_threshold=0.0)
    assert float_only.runtime == "onnx" and float_only.classify(CUP).decision == "unknown"
    assert Classifier.open(SHIPPED_MODEL, runtime="onnx", min_confidence=0.99999).classify(CUP).decision == "unsure"
    with pytest.raises(ValueError, match="unknown runtime 'torch': choose one of onnx, onnx-int8-cascade"):
        Classifier.open(SHIPPED_MODEL, runtime="torch")


def test_explain_shows_where_the_model_looked(clf: Classifier):
    explanation = clf.explain(CUP)
    assert explanation.label == "cup" and explanation.grid.shape == (10, 10)
    assert explanation.grid.min() == 0.0 and explanation.grid.max() == 1.0
    overlay = explanation.overlay()
    assert overlay.mode == "RGB" and max(overlay.size) <= 512
    assert overlay.size[0] * Image.open(CUP).size[1] == overlay.size[1] * Image.open(CUP).size[0]  # the photo's shape
    assert clf.explain(CUP, label="glass").label == "glass"
    assert not np.array_equal(clf.explain(CUP, label="glass").grid, explanation.grid)
    with pytest.raises(ValueError, match=r"label 'bowl' is not one of the model's classes"):
        clf.explain(CUP, label="bowl")


def test_bad_photos_and_models_are_clear_errors(clf: Classifier, tmp_path: Path):
    with pytest.raises(ImageError, match="not a readable image"):
        clf.classify(b"this is not a photo")
    with pytest.raises(ImageError, match="the file is empty"):
        clf.classify(b"")
    with pytest.raises(FileNotFoundError, match="model folder .* not found: pass a store tag or an exported"):
        Classifier.open(tmp_path / "nowhere" / "model.onnx")
    with pytest.raises(FileNotFoundError, match="'no_such_model:latest' is not in the BentoML store"):
        Classifier.open("no_such_model:latest")


def test_answers_become_rows_for_files(clf: Classifier):
    answers = clf.classify(photos_of_every_class()[:2])
    rows = answer_rows(["a", "b", "broken"], [*answers, None], clf.class_names, [None, None, "not a photo"])
    assert list(rows[0]) == ["Id", "label", "confidence", "decision", "ood_score", "error", *clf.class_names]
    assert rows[0]["Id"] == "a" and rows[0]["label"] == answers[0].label and rows[0]["error"] is None
    assert [rows[1][name] for name in clf.class_names] == [answers[1].probabilities[name] for name in clf.class_names]
    assert rows[2] == {"Id": "broken", "error": "not a photo"} | dict.fromkeys(
        ["label", "confidence", "decision", "ood_score", *clf.class_names]
    )
    assert "error" not in answer_rows(["a"], answers[:1], clf.class_names)[0]


def test_a_long_run_says_how_far_it_got(clf: Classifier, monkeypatch: pytest.MonkeyPatch, caplog):
    monkeypatch.setattr(api, "PROGRESS_SECONDS", 0.0)
    monkeypatch.setattr(api, "DECODE_CHUNK", 2)
    with caplog.at_level(logging.INFO, logger="kitchenware"):
        clf.decide_photos(photos_of_every_class())
    assert [record.getMessage().split(" (")[0] for record in caplog.records] == [
        "classified 2 of 6 photos",
        "classified 4 of 6 photos",
    ]
