"""Erasure and the storage quota through a real `bentoml serve` with an API key and SQLite storage: DELETE
/feedback/{photo_id} removes the photo's file and rows and nothing else, refuses what it must without echoing
the id; a store full of labelled photos stores no new one and /classify still answers. One server for the file."""

from pathlib import Path

import httpx
import pytest
from images import colour_photo, encode
from sample_data import needs_shipped_model_and_photos
from server import serving

from kitchenware.feedback.repository import FeedbackStore

KEY = "erasure-test-key"
ADMIN = {"Authorization": f"Bearer {KEY}"}
PHOTOS = [encode(colour_photo(seed=900 + n, size=(120, 90)), "JPEG") for n in range(4)]
pytestmark = needs_shipped_model_and_photos


@pytest.fixture(scope="module")
def service(shipped_model_in_store: str, tmp_path_factory):
    """(URL, store, log) of a server with a key and a quota of 2 photos."""
    folder = tmp_path_factory.mktemp("erasure")
    database, photos = f"sqlite:///{folder / 'kitchenware.db'}", folder / "photos"
    environment = {
        "KITCHENWARE_FEEDBACK_DB": database,
        "KITCHENWARE_FEEDBACK_PHOTOS": str(photos),
        "KITCHENWARE_API_KEY": KEY,
        "KITCHENWARE_FEEDBACK_MAX_PHOTOS": "2",
        "KITCHENWARE_MODEL": shipped_model_in_store,  # not the store's latest: another module may have saved one
    }
    with serving("service:KitchenwareClassifier", folder / "serve.log", **environment) as (url, _):
        yield url, FeedbackStore(database, photos), folder / "serve.log"


def classify(url: str, photo: bytes) -> dict:
    answer = httpx.post(f"{url}/classify", files={"image": photo}, timeout=60)
    assert answer.status_code == 200
    return answer.json()


def choose(url: str, photo_id: str, label: str) -> None:
    chosen = httpx.post(f"{url}/feedback", json={"photo_id": photo_id, "label": label}, headers=ADMIN, timeout=60)
    assert chosen.status_code == 200, chosen.text


def erase(url: str, photo_id: str, headers: dict | None = None) -> httpx.Response:
    return httpx.delete(f"{url}/feedback/{photo_id}", headers=ADMIN if headers is None else headers, timeout=60)


def test_delete_erases_the_photo_and_its_rows_and_refuses_without_echoing_the_id(service):
    url, store, _ = service
    erased, kept = (classify(url, photo)["photo_id"] for photo in PHOTOS[:2])
    choose(url, erased, "cup")
    assert erase(url, erased, {}).status_code == 401
    assert erase(url, erased, {"Authorization": "Bearer wrong"}).status_code == 401
    assert store.photo_path(erased).exists()
    done = erase(url, erased)
    assert done.status_code == 200
    assert done.json() == {"photo_id": erased, "classifications": 1, "choices": 1, "file_removed": True}
    assert not store.photo_path(erased).exists() and store.photo_path(kept).exists()
    assert store.counts() == {"photos": 1, "classifications": 1, "choices": 0}
    again = erase(url, erased)
    assert again.status_code == 404 and erased not in again.text
    assert again.json()["error"].startswith("no stored photo has this id")
    malformed = erase(url, "..%2F..%2Fkitchenware.db")
    assert malformed.status_code in (400, 404) and "kitchenware.db" not in malformed.text
    assert erase(url, "A" * 64).status_code == 400
    assert httpx.post(f"{url}/classify", files={"image": PHOTOS[0]}, timeout=60).status_code == 200  # still serving
    store.erase(kept)
    store.erase(classify(url, PHOTOS[0])["photo_id"])
    document = httpx.get(f"{url}/docs.json", timeout=10).json()
    assert document["paths"]["/feedback/{photo_id}"]["delete"]["responses"]["403"]


def test_a_store_full_of_labelled_photos_stores_no_new_one_and_still_answers(service):
    url, store, log = service
    labelled = [classify(url, photo)["photo_id"] for photo in PHOTOS[:2]]
    for photo_id in labelled:
        choose(url, photo_id, "glass")
    for photo in PHOTOS[2:]:
        answer = classify(url, photo)
        assert answer["photo_id"] is None and answer["label"]
    assert store.counts()["photos"] == 2 and {
        path.name for path in store.photo_folder.rglob("*") if path.is_file()
    } == set(labelled)
    assert "kitchenware_feedback_store_full_total 2.0" in httpx.get(f"{url}/metrics", timeout=10).text
    assert log.read_text().count("feedback store full") == 1  # logged once a minute
    assert erase(url, labelled[0]).status_code == 200
    assert classify(url, PHOTOS[2])["photo_id"]  # room again


def test_erasure_is_refused_when_the_service_has_no_api_key(shipped_model_in_store: str, tmp_path: Path):
    environment = {"KITCHENWARE_FEEDBACK_DB": f"sqlite:///{tmp_path / 'kitchenware.db'}"}
    with serving("service:KitchenwareClassifier", tmp_path / "serve.log", **environment) as (url, _):
        photo_id = classify(url, PHOTOS[0])["photo_id"]
        refused = erase(url, photo_id, {})
        assert refused.status_code == 403 and "KITCHENWARE_API_KEY" in refused.json()["error"]
        assert photo_id not in refused.text
    assert FeedbackStore(environment["KITCHENWARE_FEEDBACK_DB"], tmp_path / "photos").counts()["photos"] == 1
