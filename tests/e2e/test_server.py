"""The real thing over HTTP: `bentoml serve` with the shipped model, then the bento built from it."""

import csv
import os
import re
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sample_data import (
    NOT_KITCHENWARE,
    REAL_PHOTOS,
    ROOT,
    SHIPPED_MODEL,
    needs_real_data,
    needs_shipped_model_and_photos,
    run,
)
from server import serving

from kitchenware.core.runtimes import CASCADE


def first_photo_of(label: str) -> Path:
    image_id = next(row["Id"] for row in csv.DictReader(open(REAL_PHOTOS / "train.csv")) if row["label"] == label)
    return REAL_PHOTOS / "images" / f"{image_id}.jpg"


def classify(url: str, photo: Path) -> dict:
    response = httpx.post(
        f"{url}/classify", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")}, timeout=60
    )
    assert response.status_code == 200, response.text
    return response.json()


def check_classifies_a_cup(url: str) -> dict:
    answer = classify(url, first_photo_of("cup"))
    assert answer["label"] == "cup" and answer["decision"] == "confident"
    assert set(answer["probabilities"]) == {"cup", "fork", "glass", "knife", "plate", "spoon"}
    text = httpx.post(f"{url}/classify", files={"image": ("notes.txt", b"not a photo", "text/plain")}, timeout=60)
    assert text.status_code == 400 and "not a readable image" in text.json()["error"]
    return answer


def answers_counted(url: str, decision: str, label: str) -> float:
    """kitchenware_answers_total{decision, label} from /metrics (0 before the first such answer)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    pattern = rf'^kitchenware_answers_total{{[^}}]*decision="{decision}"[^}}]*label="{label}"[^}}]*}} (\S+)$'
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@needs_shipped_model_and_photos
def test_bentoml_serve_answers_readyz_classify_and_metrics(shipped_model_in_store: str, tmp_path: Path):
    with serving("service:KitchenwareClassifier", tmp_path / "serve.log") as (url, seconds_to_ready):
        print(f"ready after {seconds_to_ready:.1f} s")
        answer = check_classifies_a_cup(url)
        assert answer["ood_score"] is not None
        assert httpx.get(f"{url}/livez", timeout=10).status_code == 200
        metrics = httpx.get(f"{url}/metrics", timeout=10)
        assert metrics.status_code == 200
        assert 'endpoint="/classify"' in metrics.text and 'http_response_code="200"' in metrics.text
        assert "kitchenware_confidence_bucket" in metrics.text
        before = answers_counted(url, "confident", "cup")
        classify(url, first_photo_of("cup"))
        assert answers_counted(url, "confident", "cup") == before + 1  # the metrics move
        assert httpx.get(f"{url}/", timeout=10).status_code == 200  # Swagger UI
        from_a_page = httpx.options(
            f"{url}/classify", headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in from_a_page.headers  # CORS is off by default


SHOP = "https://shop.example"


@needs_shipped_model_and_photos
def test_explain_draws_where_the_model_looked_and_cors_lets_the_configured_origins_in(
    shipped_model_in_store: str, tmp_path: Path
):
    import io

    import numpy as np
    from PIL import Image

    cup = first_photo_of("cup")
    upload = {"image": (cup.name, cup.read_bytes(), "image/jpeg")}
    origins = f"{SHOP}, https://admin.shop.example"
    with serving("service:KitchenwareClassifier", tmp_path / "serve.log", KITCHENWARE_CORS_ORIGINS=origins) as (url, _):
        picture = httpx.post(f"{url}/explain", files=upload, timeout=60)
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
        drawn, photo = Image.open(io.BytesIO(picture.content)), Image.open(cup)
        assert 299 <= max(drawn.size) <= 512  # the photo as decoded for the network (a JPEG at 1/2 scale here)
        assert abs(drawn.size[0] / drawn.size[1] - photo.size[0] / photo.size[1]) < 0.02  # the photo as it is
        maps = {}
        for label in ("", "glass"):
            answer = httpx.post(f"{url}/explain", data={"grid": "true", "label": label}, files=upload, timeout=60)
            assert answer.status_code == 200, answer.text
            maps[answer.json()["label"]] = np.array(answer.json()["grid"])
        assert set(maps) == {"cup", "glass"}  # the top class by default, or the one named
        assert maps["cup"].shape == (10, 10) and maps["cup"].min() == 0 and maps["cup"].max() == 1
        assert np.abs(maps["cup"] - maps["glass"]).max() > 0.1
        teapot = httpx.post(f"{url}/explain", data={"label": "teapot"}, files=upload, timeout=60)
        assert teapot.status_code == 400 and "not one of the model's classes" in teapot.json()["error"]
        text = httpx.post(f"{url}/explain", files={"image": ("a.txt", b"not a photo", "text/plain")}, timeout=60)
        assert text.status_code == 400 and "not a readable image" in text.json()["error"]

        asking = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
        preflight = httpx.options(f"{url}/feedback", headers={"Origin": SHOP, **asking})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == SHOP
        elsewhere = httpx.options(f"{url}/classify", headers={"Origin": "https://elsewhere.example", **asking})
        assert "access-control-allow-origin" not in elsewhere.headers
        answered = httpx.post(f"{url}/classify", files=upload, headers={"Origin": SHOP}, timeout=60)
        assert answered.json()["label"] == "cup" and answered.headers["access-control-allow-origin"] == SHOP


@needs_shipped_model_and_photos
def test_photos_of_other_things_are_unknown_and_thresholds_can_be_overridden(
    shipped_model_in_store: str, tmp_path: Path
):
    person = NOT_KITCHENWARE / "far-person-035.jpg"
    with serving("service:KitchenwareClassifier", tmp_path / "serve.log") as (url, _):
        answer = classify(url, person)
        info = httpx.post(f"{url}/model_info", timeout=10).json()["decisions"]
        assert answer["decision"] == "unknown" and answer["ood_score"] > info["ood_threshold"]
        assert info["calibrated"] and info["validation"]["confident_accuracy"] >= 0.98
        assert answers_counted(url, "unknown", answer["label"]) == 1
    with serving("service:KitchenwareClassifier", tmp_path / "serve2.log", KITCHENWARE_OOD_THRESHOLD="100") as (url, _):
        assert classify(url, person)["decision"] != "unknown"
        assert httpx.post(f"{url}/model_info", timeout=10).json()["decisions"]["ood_threshold"] == 100


@needs_shipped_model_and_photos
def test_a_model_saved_before_decisions_is_still_served(shipped_model_in_store: str, tmp_path: Path):
    """Its card has none of the decision fields: raw probabilities, a default bar for "confident", no "unknown"."""
    import bentoml

    shipped = bentoml.models.get(shipped_model_in_store)
    old_card = {key: shipped.info.metadata[key] for key in ("name", "class_names", "input_size", "architecture")}
    with bentoml.models.create("old_model", metadata=old_card) as old:
        shutil.copyfile(Path(shipped.path) / "model.onnx", old.path_of("model.onnx"))
    with serving("service:KitchenwareClassifier", tmp_path / "serve.log", KITCHENWARE_MODEL=str(old.tag)) as (url, _):
        answer = check_classifies_a_cup(url)
        assert answer["ood_score"] is None
        assert classify(url, NOT_KITCHENWARE / "far-person-035.jpg")["decision"] != "unknown"
        decisions = httpx.post(f"{url}/model_info", timeout=10).json()["decisions"]
        assert decisions["calibrated"] is False and decisions["ood_threshold"] is None and decisions["temperature"] == 1
        assert "saved before calibration" in decisions["note"]


@needs_real_data()
def test_bentoml_serve_with_the_tensorflow_runtime(real_xception_in_store: str, tmp_path: Path):
    environment = {"KITCHENWARE_RUNTIME": "tensorflow", "KITCHENWARE_MODEL": real_xception_in_store}
    with serving("service:KitchenwareClassifier", tmp_path / "serve.log", **environment) as (url, _):
        check_classifies_a_cup(url)
        info = httpx.post(f"{url}/model_info", timeout=10).json()
        assert info["runtime"] == "tensorflow" and info["model"] == real_xception_in_store


@needs_shipped_model_and_photos
def test_built_bento_serves(shipped_model_in_store: str, tmp_path: Path):
    output = run(sys.executable, "build_bento_from_saved_model.py")
    assert "already in the store" in output and "built bento kitchenware_service:" in output
    tag = re.search(r"built bento (\S+)", output).group(1)
    assert f"name: {tag.split(':')[0]}" in run(str(Path(sys.executable).with_name("bentoml")), "get", tag)
    with serving(tag, tmp_path / "bento.log") as (url, _):
        check_classifies_a_cup(url)
        assert httpx.post(f"{url}/model_info", timeout=10).json()["model"] == shipped_model_in_store
        assert "<title>Kitchenware classifier</title>" in httpx.get(f"{url}/ui/", timeout=10).text  # shipped in it
        cup = first_photo_of("cup")
        heatmap = httpx.post(f"{url}/explain", files={"image": (cup.name, cup.read_bytes())}, timeout=60)
        assert heatmap.status_code == 200 and heatmap.content[:8] == b"\x89PNG\r\n\x1a\n"


def locked_packages(bento_tag: str) -> set[str]:
    """The package names the bento's container will install (BentoML's locked requirements)."""
    import bentoml

    lines = (Path(bentoml.bentos.get(bento_tag).path) / "env" / "python" / "requirements.txt").read_text().splitlines()
    return {line.split("==")[0].lower() for line in lines if "==" in line}


@needs_shipped_model_and_photos
def test_bentos_install_only_their_runtime(shipped_model_in_store: str):
    onnx_tag = re.search(r"built bento (\S+)", run(sys.executable, "build_bento_from_saved_model.py")).group(1)
    assert "onnxruntime" in locked_packages(onnx_tag)
    assert not {"tensorflow", "tensorflow-cpu", "keras"} & locked_packages(onnx_tag)
    output = run(sys.executable, "build_bento_from_saved_model.py", "--runtime", "tensorflow")
    tensorflow_tag = re.search(r"built bento (\S+)", output).group(1)
    assert {"tensorflow-cpu", "keras"} <= locked_packages(tensorflow_tag)
    assert "onnxruntime" not in locked_packages(tensorflow_tag)
    bento = run(str(Path(sys.executable).with_name("bentoml")), "get", tensorflow_tag)
    assert "name: KITCHENWARE_RUNTIME\n  value: tensorflow" in bento  # set in its container


@needs_shipped_model_and_photos
@pytest.mark.skipif(
    not (SHIPPED_MODEL / "model-int8.onnx").is_file(), reason="models/ has no model-int8.onnx (`kitchenware quantize`)"
)
def test_the_int8_cascade_gives_the_float_networks_answers_and_counts_its_fallbacks(
    shipped_model_in_store: str, tmp_path: Path
):
    with open(SHIPPED_MODEL / "split.csv", newline="") as file:
        rows = [row for row in csv.DictReader(file) if row["source"] == "kitchenware-photos"]
    validation = [ROOT / row["path"] for row in rows if row["subset"] == "validation"][:12]
    never_seen = [ROOT / row["path"] for row in rows if row["subset"] == "train"][1::2][:12]  # not calibrated on
    others = sorted(NOT_KITCHENWARE.glob("*.jpg"))[1::2][:6]
    photos = validation + never_seen + others
    # Each server its own BentoML home (the same models): servers of one home share their /metrics files.
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(Path(os.environ["BENTOML_HOME"]) / "models")
    with (
        serving("service:KitchenwareClassifier", tmp_path / "f.log", KITCHENWARE_RUNTIME="onnx") as (exact, _),
        serving(
            "service:KitchenwareClassifier", tmp_path / "c.log", KITCHENWARE_RUNTIME=CASCADE, BENTOML_HOME=str(home)
        ) as (cascade, _),
    ):
        one_by_one = []
        for photo in photos:
            truth, found = classify(exact, photo), classify(cascade, photo)
            assert (found["label"], found["decision"]) == (truth["label"], truth["decision"]), photo.name
            assert found["confidence"] == pytest.approx(truth["confidence"], abs=0.35)
            one_by_one.append(found)
        with ThreadPoolExecutor(8) as clients:  # the cascade runs two photos at once: each keeps its own answer
            assert list(clients.map(lambda photo: classify(cascade, photo), photos)) == one_by_one
        fallbacks = counted(cascade, "kitchenware_float_fallbacks_total")
        # Each photo was sent twice, and gets the same int8 answer each time: the float network ran on some, not all.
        assert 0 < fallbacks < 2 * len(photos) and fallbacks % 2 == 0
        assert counted(exact, "kitchenware_float_fallbacks_total") == 0
        upload = {"image": (photos[0].name, photos[0].read_bytes(), "image/jpeg")}
        grids = [
            httpx.post(f"{url}/explain", files=upload, data={"grid": "true"}, timeout=60).json()
            for url in (exact, cascade)
        ]
        assert grids[0] == grids[1]  # /explain runs the float network
        info = httpx.post(f"{cascade}/model_info", timeout=10).json()
        assert info["runtime"] == CASCADE and set(info["int8"]["band"]) >= {"margin", "ood_low", "ood_high"}


def counted(url: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", httpx.get(f"{url}/metrics", timeout=10).text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0
