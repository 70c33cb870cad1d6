"""Feedback tokens across the worker processes of one real `bentoml serve`: without KITCHENWARE_FEEDBACK_SECRET
the secret is made once, before the workers start, so a token one worker issued is accepted by the other."""

import re
from pathlib import Path

import httpx
from images import colour_photo, encode
from sample_data import needs_shipped_model_and_photos
from server import serving

PHOTOS = [encode(colour_photo(seed=700 + n, size=(120, 90)), "JPEG") for n in range(12)]
SERVED_BY = re.compile(r"\[entry_service:KitchenwareClassifier:(\d+)\].*path=/(classify|feedback)\W.*status=(\d+)")


@needs_shipped_model_and_photos
def test_a_token_from_one_worker_is_accepted_by_the_other(shipped_model_in_store: str, tmp_path: Path):
    environment = {
        "KITCHENWARE_MODEL": shipped_model_in_store,
        "KITCHENWARE_WORKERS": "2",
        "KITCHENWARE_THREADS": "1",
        "KITCHENWARE_FEEDBACK_DB": f"sqlite:///{tmp_path / 'feedback.db'}",
    }
    log = tmp_path / "serve.log"
    with serving("service:KitchenwareClassifier", log, **environment) as (url, _):
        for photo in PHOTOS:  # one at a time, each on a new connection, which either worker may accept
            answer = httpx.post(f"{url}/classify", files={"image": photo}, timeout=60).json()
            choice = {"photo_id": answer["photo_id"], "label": "cup", "token": answer["feedback_token"]}
            saved = httpx.post(f"{url}/feedback", json=choice, timeout=60)
            assert saved.status_code == 200, saved.text
    served = [match.groups() for match in map(SERVED_BY.search, log.read_text().splitlines()) if match]
    assert [(route, status) for _, route, status in served] == [("classify", "200"), ("feedback", "200")] * 12
    workers = [worker for worker, _, _ in served]
    crossed = [(issued, checked) for issued, checked in zip(workers[::2], workers[1::2]) if issued != checked]
    assert crossed, f"every token was checked by the worker that issued it ({workers}): run the test again"
    assert log.read_text().count("KITCHENWARE_FEEDBACK_SECRET is not set") == 1  # by `bentoml serve`, not each worker
