"""The HTTP service in-process (Starlette TestClient on the service's ASGI app): answers, bad input, batching."""

import csv
import hashlib
import importlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
from images import colour_photo, decompression_bomb_png, encode, odd_valid_images, truncated_jpeg
from sample_data import write_kaggle
from starlette.testclient import TestClient

from kitchenware.cli import main

MODEL_NAME = "service_test_model"
UPLOAD_LIMIT_MB = 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A small CNN trained on generated photos of three colours, in the test model store."""
    photos = write_kaggle(tmp_path_factory.mktemp("service") / "photos", {"cup": 10, "fork": 10, "spoon": 10})
    assert (
        main(
            [
                "train",
                "--data",
                str(photos),
                "--arch",
                "scratch",
                "--input-size",
                "32",
                "--epochs",
                "8",
                "--name",
                MODEL_NAME,
                "--run-dir",
                str(photos.parent / "run"),
            ]
        )
        == 0
    )
    return photos


API_KEY = "a-test-key"
SECRET = "a-test-secret"  # signs the feedback tokens


@pytest.fixture(scope="module")
def feedback_db(trained: Path) -> Path:
    return trained.parent / "feedback" / "kitchenware.db"


@pytest.fixture(scope="module")
def client(trained: Path, feedback_db: Path):
    """The service on ONNX Runtime, with feedback storage on (SQLite) and an API key for POST /feedback;
    test_server.py serves the TensorFlow runtime, PostgreSQL and a failing database for real."""
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("KITCHENWARE_MODEL", f"{MODEL_NAME}:latest")
        environment.setenv("KITCHENWARE_MAX_UPLOAD_MB", str(UPLOAD_LIMIT_MB))
        environment.setenv("KITCHENWARE_FEEDBACK_DB", f"sqlite:///{feedback_db}")
        environment.setenv("KITCHENWARE_API_KEY", API_KEY)
        environment.setenv("KITCHENWARE_FEEDBACK_SECRET", SECRET)
        import service

        importlib.reload(service)  # read the settings above
        with TestClient(service.KitchenwareClassifier.to_asgi()) as test_client:
            yield test_client


def classify(client: TestClient, data: bytes, name: str = "photo.jpg"):
    return client.post("/classify", files={"image": (name, data, "application/octet-stream")})


def assert_serves(client: TestClient):
    """The server still answers a good photo with a label."""
    response = classify(client, encode(colour_photo((200, 40, 40)), "JPEG"))
    assert response.status_code == 200 and response.json()["label"] == "cup"


def test_classify_returns_label_confidence_and_sorted_probabilities(client: TestClient):
    response = classify(client, encode(colour_photo((40, 200, 40)), "JPEG"))
    assert response.status_code == 200
    answer = response.json()
    assert answer["label"] == "fork"
    assert list(answer["probabilities"]) == sorted(
        answer["probabilities"], key=answer["probabilities"].get, reverse=True
    )
    assert set(answer["probabilities"]) == {"cup", "fork", "spoon"}
    assert answer["confidence"] == answer["probabilities"]["fork"]
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert answer["model"].startswith(f"{MODEL_NAME}:")


def test_same_photo_same_probabilities_from_cli_predict_and_http(client: TestClient, trained: Path, tmp_path: Path):
    output = tmp_path / "predictions.csv"
    folder = tmp_path / "one"
    folder.mkdir()
    photo = trained / "images" / "0015.jpg"
    (folder / "0015.jpg").write_bytes(photo.read_bytes())
    assert (
        main(
            [
                "predict",
                "--model",
                f"{MODEL_NAME}:latest",
                "--input",
                str(folder),
                "--output",
                str(output),
                "--probabilities",
            ]
        )
        == 0
    )
    row = next(csv.DictReader(open(output)))
    answer = classify(client, photo.read_bytes()).json()
    assert answer["label"] == row["label"]
    for name, probability in answer["probabilities"].items():
        assert probability == pytest.approx(float(row[name]), abs=1e-4)


def test_classify_batch_keeps_the_order(client: TestClient):
    """11 photos: more than one forward pass (8 at most), answered in the order of the uploads."""
    colours = {"cup": (200, 40, 40), "fork": (40, 200, 40), "spoon": (40, 40, 200)}
    labels = ["spoon", "cup", "fork", "spoon", "fork", "cup", "cup", "spoon", "fork", "fork", "cup"]
    files = [
        ("images", (f"{i}.png", encode(colour_photo(colours[label], seed=i), "PNG"), "image/png"))
        for i, label in enumerate(labels)
    ]
    response = client.post("/classify_batch", files=files)
    assert response.status_code == 200
    assert [answer["label"] for answer in response.json()] == labels


def test_the_page_and_its_files_are_served_at_ui(client: TestClient):
    page = client.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>Kitchenware classifier</title>" in page.text and 'accept="image/*' in page.text
    for name, kind in (("page.js", "javascript"), ("page.css", "text/css")):
        response = client.get(f"/ui/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"] and len(response.text) > 500
    assert client.get("/ui", follow_redirects=False).status_code in (307, 308)  # to /ui/


def test_swagger_ui_introduces_this_service_not_bentoml(client: TestClient):
    from importlib.metadata import version

    import kitchenware

    info = client.get("/docs.json").json()["info"]
    # the package's one version: kitchenware.__version__, which pyproject.toml reads into the installed metadata
    assert info["title"] == "Kitchenware classifier"
    assert info["version"] == kitchenware.__version__ == version("kitchenware-classifier")
    for text in ("[open the page at /ui](/ui)", "`unsure`", "`unknown`", "POST /explain", "POST /feedback"):
        assert text in info["description"]
    assert "created with BentoML" not in info["description"] and "img.shields.io" not in info["description"]
    assert "/classify" in client.get("/docs.json").json()["paths"]  # the rest of the document is BentoML's


def test_explain_says_clearly_when_the_model_has_no_map(client: TestClient):
    """The small CNN has no global-average-pooled backbone, so no class activation map."""
    response = client.post("/explain", files={"image": ("a.jpg", encode(colour_photo(), "JPEG"), "image/jpeg")})
    assert response.status_code == 501
    assert "no class activation map" in response.json()["error"]
    assert_serves(client)


def test_model_info_has_the_card(client: TestClient):
    info = client.post("/model_info").json()
    assert info["runtime"] == "onnx"
    assert info["class_names"] == ["cup", "fork", "spoon"]
    assert info["input_size"] == 32 and info["architecture"] == "scratch"
    assert info["model"].startswith(f"{MODEL_NAME}:") and 0 <= info["validation"]["accuracy"] <= 1


@pytest.mark.parametrize("name", sorted(odd_valid_images()))
def test_odd_but_valid_images_get_a_label(client: TestClient, name: str):
    response = classify(client, odd_valid_images()[name], name)
    assert response.status_code == 200, response.text
    assert response.json()["label"] in ("cup", "fork", "spoon")


def test_exif_rotated_photo_classifies_like_the_upright_one(client: TestClient):
    upright = colour_photo((40, 200, 40), size=(48, 36))
    rotated = classify(client, odd_valid_images()["exif_rotated.jpg"]).json()
    assert rotated["label"] == "cup"  # odd_valid_images' photo is red
    straight = classify(client, encode(upright, "JPEG", quality=95)).json()
    assert straight["label"] == "fork"


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.txt", b"this is a text file, not a photo", "not a readable image"),
        ("empty.jpg", b"", "the file is empty"),
        ("cut.jpg", truncated_jpeg(), "truncated or corrupt"),
        ("bomb.png", decompression_bomb_png(), "more than the limit of"),
    ],
)
def test_bad_uploads_get_400_with_the_reason_and_the_server_keeps_serving(client, name, data, message):
    response = classify(client, data, name)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert_serves(client)


def test_missing_field_is_400(client: TestClient):
    response = client.post("/classify", files={"photo": ("a.jpg", b"xx", "image/jpeg")})
    assert response.status_code == 400
    assert response.json() == {
        "error": "no photo in the form field 'image': upload it as image=@photo.jpg (multipart/form-data)"
    }
    assert_serves(client)


def test_wrong_content_type_is_400(client: TestClient):
    response = client.post("/classify", json={"image": "cup.jpg"})
    assert response.status_code == 400
    assert "multipart/form-data" in response.json()["error"]
    assert_serves(client)


def test_upload_over_the_size_limit_is_413(client: TestClient):
    big = np.random.default_rng(0).integers(0, 255, UPLOAD_LIMIT_MB * 1024 * 1024 + 10, dtype=np.uint8).tobytes()
    response = classify(client, big, "huge.jpg")
    assert response.status_code == 413
    assert "larger than the limit of 1 MB" in response.json()["error"]
    assert_serves(client)


def test_a_bad_photo_in_a_batch_is_named(client: TestClient):
    files = [
        ("images", ("good.png", encode(colour_photo(), "PNG"), "image/png")),
        ("images", ("broken.jpg", b"nope", "image/jpeg")),
    ]
    response = client.post("/classify_batch", files=files)
    assert response.status_code == 400
    assert response.json()["error"].startswith("photo 2 of 2: not a readable image")
    assert_serves(client)


def give_feedback(client: TestClient, photo_id: str, label: str, key: str | None = API_KEY, token: str | None = None):
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    choice = {"photo_id": photo_id, "label": label} | ({} if token is None else {"token": token})
    return client.post("/feedback", json=choice, headers=headers)


def test_classified_photos_are_kept_once_by_content_and_feedback_is_saved(client: TestClient, feedback_db: Path):
    from kitchenware.feedback.repository import FeedbackStore

    store = FeedbackStore(f"sqlite:///{feedback_db}", feedback_db.parent / "photos")
    before = store.counts()
    data = encode(colour_photo((40, 40, 200), seed=1234), "PNG")  # a photo no other test sends
    first, second = classify(client, data).json(), classify(client, data, "renamed.png").json()
    assert first["photo_id"] == second["photo_id"] and len(first["photo_id"]) == 64
    assert store.photo_path(first["photo_id"]).read_bytes() == data  # named by its hash, not "renamed.png"
    saved = give_feedback(client, first["photo_id"], "fork")
    assert saved.status_code == 200, saved.text
    assert saved.json() == {"photo_id": first["photo_id"], "label": "fork", "predicted": first["label"]}
    assert give_feedback(client, first["photo_id"], "other").status_code == 200  # replaced, history kept
    after = store.counts()
    assert after["photos"] - before["photos"] == 1
    assert after["classifications"] - before["classifications"] == 2
    assert after["choices"] - before["choices"] == 2


@pytest.mark.parametrize(
    ("photo_id", "label", "key", "status", "message"),
    [
        ("0" * 64, "cup", API_KEY, 404, "no classified photo has this id"),
        (None, "bowl", API_KEY, 400, "'bowl' is not one of the model's classes"),
        (None, "cup", None, 401, "send the feedback_token of the photo's /classify answer as token, or the header"),
        (None, "cup", "wrong-key", 401, "wrong API key"),
    ],
)
def test_bad_feedback_gets_a_json_error_naming_the_problem(client: TestClient, photo_id, label, key, status, message):
    photo_id = photo_id or classify(client, encode(colour_photo(seed=8), "PNG")).json()["photo_id"]
    response = give_feedback(client, photo_id, label, key)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert photo_id not in response.text  # no error echoes the id
    assert_serves(client)


def test_the_answer_s_token_alone_saves_the_choice_for_its_photo_only(client: TestClient, feedback_db: Path):
    """The page's way: no API key, the token of the photo's answer; another photo's, an expired, an altered or a
    malformed token gets 403 saying to classify the photo again, and nothing is written."""
    from kitchenware.feedback.repository import FeedbackStore
    from kitchenware.serving.tokens import FeedbackTokens

    store = FeedbackStore(f"sqlite:///{feedback_db}", feedback_db.parent / "photos")
    cup, other = (classify(client, encode(colour_photo(seed=seed), "PNG")).json() for seed in (4001, 4002))
    an_hour_ago = FeedbackTokens(SECRET.encode(), 60 * 60, clock=lambda: time.time() - 60 * 60 - 1)
    before = store.counts()["choices"]
    refused = {
        "for another photo": other["feedback_token"],
        "has expired (tokens last 60 minutes)": an_hour_ago.issue(cup["photo_id"]),
        "not issued by this service": cup["feedback_token"][:-3] + "abc",
        "malformed": "not-a-token",
    }
    for message, token in refused.items():
        response = give_feedback(client, cup["photo_id"], "fork", key=None, token=token)
        assert response.status_code == 403 and message in response.json()["error"], response.text
        assert "classify the photo again" in response.json()["error"]
    assert store.counts()["choices"] == before
    saved = give_feedback(client, cup["photo_id"], "fork", key=None, token=cup["feedback_token"])
    assert saved.status_code == 200 and saved.json()["label"] == "fork"
    assert store.counts()["choices"] == before + 1


def test_batch_answers_carry_a_token_for_each_photo(client: TestClient):
    photos = [encode(colour_photo(seed=seed), "PNG") for seed in (4101, 4102)]
    files = [("images", (f"{n}.png", photo, "image/png")) for n, photo in enumerate(photos)]
    answers = client.post("/classify_batch", files=files).json()
    assert [answer["photo_id"] for answer in answers] == [hashlib.sha256(photo).hexdigest() for photo in photos]
    for answer in answers:
        assert answer["feedback_token"].startswith(answer["photo_id"] + ".")
        saved = give_feedback(client, answer["photo_id"], "cup", key=None, token=answer["feedback_token"])
        assert saved.status_code == 200


def test_feedback_over_4_kb_is_413_before_it_is_read(client: TestClient):
    photo_id = classify(client, encode(colour_photo(seed=4201), "PNG")).json()["photo_id"]
    padded = json.dumps({"photo_id": photo_id, "label": "cup", "token": "x" * 4096}).encode()
    declared = client.post("/feedback", content=padded, headers={"Content-Type": "application/json"})
    streamed = client.post("/feedback", content=iter([padded[:2000], padded[2000:]]))  # no Content-Length
    message = "the feedback is larger than the limit of 4 KB: send photo_id, label and token"
    for response in (declared, streamed):
        assert response.status_code == 413 and response.json() == {"error": message}
    assert give_feedback(client, photo_id, "cup").status_code == 200
