"""Fixtures of every test: a private BentoML store, generated photo sets, the shipped model in the store."""

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Before anything imports bentoml: tests never touch the user's model store. The store grows to ~2 GB over a run
# (models, bentos), so it goes when the run ends: left behind, a few runs fill the disk.
os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="kitchenware-test-bentoml-")
atexit.register(shutil.rmtree, os.environ["BENTOML_HOME"], ignore_errors=True)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
from sample_data import run, write_folders, write_kaggle  # noqa: E402


@pytest.fixture
def kaggle_photos(tmp_path: Path) -> Path:
    return write_kaggle(tmp_path / "kaggle", {"cup": 12, "fork": 10, "spoon": 8})


@pytest.fixture
def folder_photos(tmp_path: Path) -> Path:
    return write_folders(tmp_path / "folders", {"cup": 10, "fork": 10, "spoon": 10})


@pytest.fixture(scope="session")
def shipped_model_in_store() -> str:
    """The shipped model imported into the test store by the user's command (twice: the second run reuses it)."""
    output = run(sys.executable, "build_bento_from_saved_model.py", "--no-build")
    again = run(sys.executable, "build_bento_from_saved_model.py", "--no-build")
    tag = output.split()[-1]
    assert again.strip() == f"already in the store: {tag}"
    return tag


@pytest.fixture(scope="session")
def real_xception_in_store(tmp_path_factory) -> str:
    """Xception with the ImageNet weights, its head trained on the 824 shared photos by the user's command:
    a model with both model.onnx and model.keras (the shipped one has model.onnx only)."""
    from sample_data import IMAGENET_WEIGHTS, REAL_PHOTOS

    from kitchenware.cli import main

    run = tmp_path_factory.mktemp("real-xception")
    # The photos alone (no augmented views): 5 minutes less on a CPU, and these tests need a trained model, not the
    # best one.
    arguments = [
        "--data",
        str(REAL_PHOTOS),
        "--weights",
        str(IMAGENET_WEIGHTS),
        "--epochs",
        "10",
        "--augment-views",
        "0",
    ]
    assert main(["train", *arguments, "--name", "real_xception", "--run-dir", str(run)]) == 0
    import bentoml

    return str(bentoml.models.get("real_xception:latest").tag)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    """The URL of a real MLflow tracking server (SQLite backend, artifacts it serves), started once for the tests
    that ask for it and removed at the end (tests/helpers/mlflow_server.py). MLFLOW_TRACKING_URI stays unset."""
    from mlflow_server import tracking_server

    with tracking_server(tmp_path_factory.mktemp("mlflow")) as url:
        yield url


@pytest.fixture
def mlflow_tracking_uri(mlflow_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """MLFLOW_TRACKING_URI set to the test server for this test only: its commands track, and the registry is there."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    return mlflow_server
