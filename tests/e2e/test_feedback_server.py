"""Feedback through a real `bentoml serve`: acknowledged choices survive a SIGKILL, on SQLite and on a real
PostgreSQL server; a database that is down or refused never turns /classify into an error, and /readyz says
503 until it is usable."""

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from images import colour_photo, encode
from postgres import postgres_binaries, start, stop, throwaway_postgres
from sample_data import needs_shipped_model_and_photos
from server import kill_hard, serving
from sqlalchemy import text

from kitchenware.feedback.repository import FeedbackStore
from kitchenware.feedback.schema import head, migrate, open_engine
from kitchenware.serving.tokens import FeedbackTokens

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

        def classify_and_choose(n: int) -> tuple[int, int, str, str]:
            classified = httpx.post(f"{url}/classify", files={"image": PHOTOS[n % 8]}, timeout=120)
            photo_id, token = classified.json()["photo_id"], classified.json()["feedback_token"]
            answer = {"photo_id": photo_id, "label": ["cup", "fork", "other"][n % 3], "token": token}
            chosen = httpx.post(f"{url}/feedback", json=answer, timeout=120)
            return classified.status_code, chosen.status_code, photo_id, token

        with ThreadPoolExecutor(16) as pool:  # 16 clients at once, each classifying then choosing, 3 times
            results = list(pool.map(classify_and_choose, range(48)))
        kill_hard(url)  # right after the burst: no shutdown, no flush
    assert [(classified, chosen) for classified, chosen, _, _ in results] == [(200, 200)] * 48
    ids = [photo_id for _, _, photo_id, _ in results[:8]]
    assert len(set(ids)) == 8
    store = FeedbackStore(database, tmp_path / "photos")
    assert store.counts() == {"photos": 8, "classifications": 48, "choices": 48}
    with serving("service:KitchenwareClassifier", tmp_path / "again.log", **environment) as (url, _):
        again = httpx.post(f"{url}/classify", files={"image": PHOTOS[0]}, timeout=60).json()
        assert again["photo_id"] == ids[0]
        # Without KITCHENWARE_FEEDBACK_SECRET (nor an API key) the secret is made at start-up: older tokens are refused.
        stale = httpx.post(
            f"{url}/feedback", json={"photo_id": ids[0], "label": "cup", "token": results[0][3]}, timeout=60
        )
        assert stale.status_code == 403 and "not issued by this service" in stale.json()["error"]
        fresh = {"photo_id": ids[0], "label": "cup", "token": again["feedback_token"]}
        assert httpx.post(f"{url}/feedback", json=fresh, timeout=60).status_code == 200
    assert "KITCHENWARE_FEEDBACK_SECRET is not set" in (tmp_path / "again.log").read_text()
    assert store.counts() == {"photos": 8, "classifications": 49, "choices": 49}


@needs_shipped_model_and_photos
def test_a_database_that_is_down_never_fails_classify(shipped_model_in_store: str, tmp_path: Path):
    down = "postgresql+psycopg://postgres@127.0.0.1:9/kitchenware?connect_timeout=2"  # nothing listens on port 9
    environment = {"KITCHENWARE_FEEDBACK_DB": down, "KITCHENWARE_FEEDBACK_SECRET": "shared by the replicas"}
    token = FeedbackTokens(b"shared by the replicas", 60).issue("0" * 64)  # as another replica would have issued it
    with serving("service:KitchenwareClassifier", tmp_path / "serve.log", wait_for="/livez", **environment) as (url, _):
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 503  # storage configured but unusable
        for photo in PHOTOS[:3]:
            answer = httpx.post(f"{url}/classify", files={"image": photo}, timeout=60)
            assert answer.status_code == 200 and answer.json()["photo_id"] is None
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert "kitchenware_feedback_storage_failures_total 3.0" in metrics
        choice = {"photo_id": "0" * 64, "label": "cup"}
        unsigned = httpx.post(f"{url}/feedback", json=choice, timeout=60)  # no API key here: the token is required
        assert unsigned.status_code == 401 and "no feedback token" in unsigned.json()["error"]
        refused = httpx.post(f"{url}/feedback", json={**choice, "token": token}, timeout=60)
        assert refused.status_code == 503 and "could not be saved" in refused.json()["error"]
        assert "0" * 64 not in refused.text
    assert (tmp_path / "serve.log").read_text().count("feedback storage failed") == 1  # logged once a minute


def at_revision(database: str, revision: str) -> None:
    with open_engine(database).begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :revision"), {"revision": revision})


@needs_shipped_model_and_photos
def test_readyz_is_503_while_the_database_is_refused_and_200_once_it_is_usable(shipped_model_in_store: str, tmp_path):
    """A database at a revision newer than the code's: the reason in the log at start-up, /readyz 503 (an
    orchestrator sends the replica no traffic), /classify still answering; ready again seconds after it is fixed."""
    database = f"sqlite:///{tmp_path / 'feedback' / 'kitchenware.db'}"
    migrate(open_engine(database))
    at_revision(database, "0999")  # as a newer kitchenware-classifier would have left it
    with serving(
        "service:KitchenwareClassifier", tmp_path / "serve.log", wait_for="/livez", KITCHENWARE_FEEDBACK_DB=database
    ) as (url, _):
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 503
        answer = httpx.post(f"{url}/classify", files={"image": PHOTOS[0]}, timeout=60)
        assert answer.status_code == 200 and answer.json()["label"] and answer.json()["photo_id"] is None
        at_revision(database, head())
        fixed = time.monotonic()
        while httpx.get(f"{url}/readyz", timeout=10).status_code != 200:
            assert time.monotonic() - fixed < 20, "/readyz still 503 20 s after the database was fixed"
            time.sleep(0.5)
        again = httpx.post(f"{url}/classify", files={"image": PHOTOS[0]}, timeout=60)
        assert again.status_code == 200 and again.json()["photo_id"] is not None
    log = (tmp_path / "serve.log").read_text()
    refusal = (
        f"is at revision 0999, newer than this code knows (its newest is {head()}): upgrade kitchenware-classifier"
    )
    assert "feedback storage is unusable, /readyz answers 503 until it is back" in log and refusal in log


@needs_shipped_model_and_photos
def test_a_database_stopped_mid_run_costs_feedback_only_and_both_recover(shipped_model_in_store: str, tmp_path):
    """PostgreSQL stopped under a running service: /classify answers (without photo_id), /feedback says 503 why,
    the replica stays ready (an orchestrator would take every replica out at once); both store again once the
    database is back."""
    if postgres_binaries() is None:
        pytest.skip("PostgreSQL is not installed here: run scripts/install_test_services.sh (as root, with apt-get)")
    with (
        throwaway_postgres(tmp_path) as database,
        serving(
            "service:KitchenwareClassifier",
            tmp_path / "serve.log",
            KITCHENWARE_FEEDBACK_DB=database,
            KITCHENWARE_FEEDBACK_PHOTOS=str(tmp_path / "photos"),
        ) as (url, _),
    ):

        def classify_and_choose(photo: bytes) -> tuple[httpx.Response, httpx.Response]:
            answer = httpx.post(f"{url}/classify", files={"image": photo}, timeout=60)
            choice = {"photo_id": answer.json()["photo_id"] or "0" * 64, "label": "cup"}
            choice["token"] = answer.json().get("feedback_token") or ""
            return answer, httpx.post(f"{url}/feedback", json=choice, timeout=60)

        before = classify_and_choose(PHOTOS[0])
        assert [response.status_code for response in before] == [200, 200] and before[0].json()["photo_id"]
        token = before[0].json()["feedback_token"]
        stop(database)
        answer = httpx.post(f"{url}/classify", files={"image": PHOTOS[1]}, timeout=60)
        assert answer.status_code == 200 and answer.json()["label"] and answer.json()["photo_id"] is None
        choice = {"photo_id": before[0].json()["photo_id"], "label": "fork", "token": token}
        refused = httpx.post(f"{url}/feedback", json=choice, timeout=60)
        assert refused.status_code == 503 and "could not be saved" in refused.json()["error"]
        assert "try again later" in refused.json()["error"]
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
        start(database)
        after = classify_and_choose(PHOTOS[2])
        assert [response.status_code for response in after] == [200, 200] and after[0].json()["photo_id"]
        assert httpx.post(f"{url}/feedback", json=choice, timeout=60).status_code == 200  # the refused one, again
        counts = FeedbackStore(database, tmp_path / "photos").counts()
    assert counts == {"photos": 2, "classifications": 2, "choices": 3}
