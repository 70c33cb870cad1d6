"""The review queue's routes and the storage sampling rule on a real `bentoml serve` of a tiny real ONNX model, under
an API key and KITCHENWARE_FEEDBACK_KEEP_CONFIDENT=0: only the unsure and unknown answers are stored, every review
route needs the key, the queue is ranked, and a reviewer's label is stored as a reviewer's. (The review page in a
browser: test_page.py.)"""

import io
from pathlib import Path

import httpx
import pytest
from images import encode
from PIL import Image
from server import serving
from tiny_model import write_tiny_model

from kitchenware.feedback.repository import FeedbackStore
from kitchenware.store import import_exported

API_KEY = "a-reviewer-key"
KEY = {"Authorization": f"Bearer {API_KEY}"}
RED, YELLOW, GREY = (200, 40, 40), (200, 200, 40), (128, 128, 128)  # confident cup, unsure cup/fork, unknown


@pytest.fixture(scope="module")
def review_server(tmp_path_factory):
    """The tiny model served under an API key, keeping no confident answer; yields (base URL, database URL)."""
    folder = tmp_path_factory.mktemp("review")
    tag, _ = import_exported(write_tiny_model(folder / "model"))
    database = f"sqlite:///{folder / 'feedback.db'}"
    environment = {
        "KITCHENWARE_MODEL": tag,
        "KITCHENWARE_FEEDBACK_DB": database,
        "KITCHENWARE_API_KEY": API_KEY,
        "KITCHENWARE_FEEDBACK_KEEP_CONFIDENT": "0",
    }
    with serving("service:KitchenwareClassifier", folder / "serve.log", **environment) as (url, _):
        yield url, database


def classify(url: str, colour: tuple[int, int, int]) -> dict:
    photo = encode(Image.new("RGB", (32, 32), colour), "PNG")
    response = httpx.post(f"{url}/classify", files={"image": ("photo.png", photo, "image/png")}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_with_keep_confident_0_only_unsure_and_unknown_answers_are_stored(review_server, tmp_path: Path):
    url, database = review_server
    answers = {name: classify(url, colour) for name, colour in (("red", RED), ("yellow", YELLOW), ("grey", GREY))}
    assert {name: answer["decision"] for name, answer in answers.items()} == {
        "red": "confident",
        "yellow": "unsure",
        "grey": "unknown",
    }
    assert answers["red"]["photo_id"] is None and answers["red"]["feedback_token"] is None  # as with storage off
    assert answers["yellow"]["photo_id"] and answers["grey"]["photo_id"]
    store = FeedbackStore(database, tmp_path)
    assert store.counts() == {"photos": 2, "classifications": 2, "choices": 0}
    assert classify(url, RED)["photo_id"] is None  # the same photo again: never kept


def test_the_review_routes_need_the_api_key(review_server):
    url, _ = review_server
    for route in ("/review/queue", f"/review/photo/{'a' * 64}"):
        assert httpx.get(f"{url}{route}", timeout=30).status_code == 401
        wrong = httpx.get(f"{url}{route}", headers={"Authorization": "Bearer not-the-key"}, timeout=30)
        assert wrong.status_code == 401 and "missing or wrong API key" in wrong.json()["error"]
    refused = httpx.post(f"{url}/review/label", json={"photo_id": "a" * 64, "label": "cup"}, timeout=30)
    assert refused.status_code == 401


def test_the_queue_lists_unsure_before_unknown_and_a_reviewers_label_is_stored_as_one(review_server, tmp_path: Path):
    url, database = review_server
    yellow, grey = classify(url, YELLOW), classify(url, GREY)
    queue = httpx.get(f"{url}/review/queue?limit=10", headers=KEY, timeout=30).json()
    assert queue["class_names"] == ["cup", "fork", "spoon"] and queue["other"] == "other"
    assert [photo["photo_id"] for photo in queue["photos"]] == [yellow["photo_id"], grey["photo_id"]]
    assert queue["photos"][0]["reason"].startswith("unsure: margin 0.00 between its top two classes")
    assert queue["photos"][1]["reason"].startswith("unknown: like no training photo (score 0.7")
    picture = httpx.get(f"{url}/review/photo/{grey['photo_id']}", headers=KEY, timeout=30)
    assert picture.headers["content-type"] == "image/jpeg" and picture.headers["cache-control"] == "no-store"
    assert Image.open(io.BytesIO(picture.content)).size == (32, 32)

    saved = httpx.post(f"{url}/review/label", json={"photo_id": grey["photo_id"], "label": "other"}, headers=KEY)
    assert saved.json() == {"photo_id": grey["photo_id"], "label": "other", "predicted": grey["label"]}
    answered = FeedbackStore(database, tmp_path).answered()
    assert [(row.photo_id, row.chosen, row.source) for row in answered] == [(grey["photo_id"], "other", "reviewer")]
    after = httpx.get(f"{url}/review/queue", headers=KEY, timeout=30).json()["photos"]
    assert [photo["photo_id"] for photo in after] == [yellow["photo_id"]]  # a labelled photo leaves the queue

    bowl = httpx.post(f"{url}/review/label", json={"photo_id": yellow["photo_id"], "label": "bowl"}, headers=KEY)
    assert bowl.status_code == 400 and "is not one of the model's classes" in bowl.json()["error"]
    assert httpx.get(f"{url}/review/queue?limit=0", headers=KEY, timeout=30).status_code == 400
    padded = {"photo_id": yellow["photo_id"], "label": "cup", "note": "x" * 5000}
    too_large = httpx.post(f"{url}/review/label", json=padded, headers=KEY, timeout=30)
    assert too_large.status_code == 413
    assert too_large.json()["error"] == "the label is larger than the limit of 4 KB: send photo_id and label"
