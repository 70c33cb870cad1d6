"""The real thing over HTTP: `bentoml serve` with the shipped model, then the bento built from it."""

import csv
import re
import sys
from pathlib import Path

import httpx
from conftest import REAL_PHOTOS, needs_shipped_model_and_photos, run
from server import serving


def first_photo_of(label: str) -> Path:
    image_id = next(row["Id"] for row in csv.DictReader(open(REAL_PHOTOS / "train.csv")) if row["label"] == label)
    return REAL_PHOTOS / "images" / f"{image_id}.jpg"


def check_classifies_a_cup(url: str) -> None:
    photo = first_photo_of("cup")
    response = httpx.post(
        f"{url}/classify", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")}, timeout=60
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["label"] == "cup"
    assert set(answer["probabilities"]) == {"cup", "fork", "glass", "knife", "plate", "spoon"}
    text = httpx.post(f"{url}/classify", files={"image": ("notes.txt", b"not a photo", "text/plain")}, timeout=60)
    assert text.status_code == 400 and "not a readable image" in text.json()["error"]


@needs_shipped_model_and_photos
def test_bentoml_serve_answers_readyz_classify_and_metrics(shipped_model_in_store: str, tmp_path: Path):
    with serving("service:KitchenwareClassifier", tmp_path / "serve.log") as (url, seconds_to_ready):
        print(f"ready after {seconds_to_ready:.1f} s")
        check_classifies_a_cup(url)
        assert httpx.get(f"{url}/livez", timeout=10).status_code == 200
        metrics = httpx.get(f"{url}/metrics", timeout=10)
        assert metrics.status_code == 200
        assert 'endpoint="/classify"' in metrics.text and 'http_response_code="200"' in metrics.text
        assert httpx.get(f"{url}/", timeout=10).status_code == 200  # Swagger UI


@needs_shipped_model_and_photos
def test_bentoml_serve_with_the_tensorflow_runtime(shipped_model_in_store: str, tmp_path: Path):
    with serving("service:KitchenwareClassifier", tmp_path / "serve.log", KITCHENWARE_RUNTIME="tensorflow") as (url, _):
        check_classifies_a_cup(url)
        info = httpx.post(f"{url}/model_info", timeout=10).json()
        assert info["runtime"] == "tensorflow" and info["model"] == shipped_model_in_store


@needs_shipped_model_and_photos
def test_built_bento_serves(shipped_model_in_store: str, tmp_path: Path):
    output = run(sys.executable, "build_bento_from_saved_model.py")
    assert "already in the store" in output and "built bento kitchenware_service:" in output
    tag = re.search(r"built bento (\S+)", output).group(1)
    assert f"name: {tag.split(':')[0]}" in run(str(Path(sys.executable).with_name("bentoml")), "get", tag)
    with serving(tag, tmp_path / "bento.log") as (url, _):
        check_classifies_a_cup(url)
        assert httpx.post(f"{url}/model_info", timeout=10).json()["model"] == shipped_model_in_store


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
