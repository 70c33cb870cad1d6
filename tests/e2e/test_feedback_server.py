"""Feedback through a real `bentoml serve`: acknowledged choices survive a SIGKILL, on SQLite and on a real
PostgreSQL server; a database that is down never turns /classify into an error."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from images import colour_photo, encode
from postgres import postgres_binaries, throwaway_postgres
from sample_data import needs_shipped_model_and_photos
from server import kill_hard, serving

from kitchenware.feedback.repository import FeedbackStore

PHOTOS = [encode(colour_photo(seed=500 + n, size=(120, 90)), "JPEG") for n in range(8)]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path: Path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'feedback' / 'kitchenware.db'}"
        return
    if postgres_binaries() is None:
        pytest.skip("PostgreSQL is not installed here: run scripts/install_test_services.sh (as root, with apt-get)")
    with throwaway_postgres(tmp_path) as url:
        yield url


@needs_shipped_model_and_photos
def test_acknowledged_feedback_survives_a_sigkill_and_a_restart(shipped_model_in_store: str, database: str, tmp_path):
    environment = {"KITCHENWARE_FEEDBACK_DB": database, "KITCHENWARE_FEEDBACK_PHOTOS": str(tmp_path / "photos")}
    with serving("service:KitchenwareClassifier", tmp_path / "serve.log", **environment) as (url, _):

        def classify_and_choose(n: int) -> tuple[int, int, str]:
            classified = httpx.post(f"{url}/classify", files={"image": PHOTOS[n % 8]}, timeout=120)
            photo_id = classified.json()["photo_id"]
            answer = {"photo_id": photo_id, "label": ["cup", "fork", "other"][n % 3]}
            return classified.status_code, httpx.post(f"{url}/feedback", json=answer, timeout=120).status_code, photo_id

        with ThreadPoolExecutor(16) as pool:  # 16 clients at once, each classifying then choosing, 3 times
            results = list(pool.map(classify_and_choose, range(48)))
        kill_hard(url)  # right after the burst: no shutdown, no flush
    assert [(classified, chosen) for classified, chosen, _ in results] == [(200, 200)] * 48
    ids = [photo_id for _, _, photo_id in results[:8]]
    assert len(set(ids)) == 8
    store = FeedbackStore(database, tmp_path / "photos")
    assert store.counts() == {"photos": 8, "classifications": 48, "choices": 48}
    with serving("service:KitchenwareClassifier", tmp_path / "again.log", **environment) as (url, _):
        again = httpx.post(f"{url}/classify", files={"image": PHOTOS[0]}, timeout=60).json()
        assert again["photo_id"] == ids[0]
        assert httpx.post(f"{url}/feedback", json={"photo_id": ids[0], "label": "cup"}, timeout=60).status_code == 200
    assert store.counts() == {"photos": 8, "classifications": 49, "choices": 49}


@needs_shipped_model_and_photos
def test_a_database_that_is_down_never_fails_classify(shipped_model_in_store: str, tmp_path: Path):
    down = "postgresql+psycopg://postgres@127.0.0.1:9/kitchenware?connect_timeout=2"  # nothing listens on port 9
    with serving("service:KitchenwareClassifier", tmp_path / "serve.log", KITCHENWARE_FEEDBACK_DB=down) as (url, _):
        for photo in PHOTOS[:3]:
            answer = httpx.post(f"{url}/classify", files={"image": photo}, timeout=60)
            assert answer.status_code == 200 and answer.json()["photo_id"] is None
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert "kitchenware_feedback_storage_failures_total 3.0" in metrics
        refused = httpx.post(f"{url}/feedback", json={"photo_id": "0" * 64, "label": "cup"}, timeout=60)
        assert refused.status_code == 503 and "could not be saved" in refused.json()["error"]
    assert (tmp_path / "serve.log").read_text().count("feedback storage failed") == 1  # logged once a minute
