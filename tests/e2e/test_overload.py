"""Overload and per-client rate limits through a real `bentoml serve` of the shipped model: a burst past a tiny bound
gets quick 503s with Retry-After and the rest answers; a client past its rate gets 429 until its bucket refills.

One server for the module (bound 1; 20 requests a minute in bursts of 2). Uvicorn takes the client's address from
X-Forwarded-For on loopback connections, so each request below names its client there."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sample_data import REAL_PHOTOS, needs_shipped_model_and_photos
from server import serving

PHOTO = REAL_PHOTOS / "images" / "0009.jpg"  # a cup
API_KEY = "overload-test-key"
UNKNOWN_PHOTO = {"photo_id": "0" * 64, "label": "cup"}
PAGE_ORIGIN = "https://shop.example"  # a site whose page calls the service


@pytest.fixture(scope="module")
def url(shipped_model_in_store: str, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("overload")
    environment = {
        "KITCHENWARE_MAX_QUEUED": "1",
        "KITCHENWARE_RATE_LIMIT": "20/min,burst=2",  # a token every 3 s
        "KITCHENWARE_API_KEY": API_KEY,
        "KITCHENWARE_FEEDBACK_DB": f"sqlite:///{folder / 'feedback.db'}",
        "KITCHENWARE_CORS_ORIGINS": PAGE_ORIGIN,
    }
    with serving("service:KitchenwareClassifier", folder / "serve.log", **environment) as (url, _):
        yield url


def classify(url: str, client: str) -> httpx.Response:
    files = {"image": (PHOTO.name, PHOTO.read_bytes(), "image/jpeg")}
    headers = {"X-Forwarded-For": client, "Origin": PAGE_ORIGIN}
    return httpx.post(f"{url}/classify", files=files, headers=headers, timeout=60)


@needs_shipped_model_and_photos
def test_a_burst_past_the_bound_is_shed_with_retry_after_and_the_service_answers_after_it(url: str):
    with ThreadPoolExecutor(12) as pool:  # 12 clients at once, against a bound of 1 request inside
        responses = list(pool.map(lambda n: classify(url, f"198.51.100.{n}"), range(12)))
    statuses = sorted(response.status_code for response in responses)
    assert set(statuses) == {200, 503} and statuses.count(200) >= 1, statuses
    for refused in (response for response in responses if response.status_code == 503):
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"].startswith("the service is busy with all the requests it takes at once: retry")
        # the page on the allowed origin can read the refusal and its Retry-After
        assert refused.headers["access-control-allow-origin"] == PAGE_ORIGIN
        assert refused.headers["access-control-expose-headers"] == "Retry-After"
    for answered in (response for response in responses if response.status_code == 200):
        assert answered.json()["label"] == "cup"
    after = classify(url, "198.51.100.200")
    assert after.status_code == 200 and after.json()["label"] == "cup"


@needs_shipped_model_and_photos
def test_a_client_past_its_rate_gets_429_until_its_bucket_refills(url: str):
    def feedback(client: str, authorization: str = "") -> httpx.Response:
        headers = {"X-Forwarded-For": client, **({"Authorization": authorization} if authorization else {})}
        return httpx.post(f"{url}/feedback", json=UNKNOWN_PHOTO, headers=headers, timeout=60)

    # A burst of 2 goes through to the endpoint (401: neither a token nor the key), the third waits for a token.
    assert [feedback("203.0.113.7").status_code for _ in range(2)] == [401, 401]
    refused = feedback("203.0.113.7")
    retry_after = int(refused.headers["retry-after"])
    assert refused.status_code == 429 and 1 <= retry_after <= 3
    assert refused.json()["error"] == (
        f"too many requests from this client (the limit is 20 a minute, in bursts of 2): retry after {retry_after} s"
    )
    assert classify(url, "203.0.113.7").status_code == 429  # one bucket for all the limited routes
    # A wrong key is no way round it; another address and the right key have buckets of their own.
    assert feedback("203.0.113.7", "Bearer guessed").status_code == 429
    assert feedback("203.0.113.8").status_code == 401
    assert [feedback("203.0.113.7", f"Bearer {API_KEY}").status_code for _ in range(3)] == [404, 404, 429]
    assert httpx.get(f"{url}/readyz", headers={"X-Forwarded-For": "203.0.113.7"}, timeout=10).status_code == 200
    time.sleep(3.1)  # a token back
    assert feedback("203.0.113.7").status_code == 401
