"""The command line as a user runs it: help, quiet start-up, predict on any folder tree, one answer everywhere."""

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import bentoml
import pytest
from sample_data import MORE_PHOTOS, ROOT, needs_shipped_model_and_photos
from server import serving

from kitchenware import Classifier

TENSORFLOW_START_UP = ("absl::InitializeLog", "cudart_stub", "cpu_feature_guard", "oneDNN", "cuInit", "tensorflow")


def train_py(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "train.py", *arguments], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("command", ["train", "retrain", "check", "evaluate", "predict", "quantize"])
def test_help_of_every_command_is_right(command: str):
    result = train_py(command, "--help")
    assert result.returncode == 0 and result.stderr == ""
    text = " ".join(result.stdout.split())  # argparse wraps lines
    assert "(default: None)" not in text and "(default: False)" not in text and "(default: True)" not in text
    for option in text.split(" --")[1:]:
        assert option.count("(default:") <= 1, option
    if command == "train":
        for group in ("data:", "model:", "training:", "fine-tuning (Xception):", "stopping:", "output:", "tracking:"):
            assert group in text
        assert "(default: 150 scratch, 299 xception)" in text and "(default: 0.001)" in text
    elif command == "retrain":
        assert "--champion DIR|models:/NAME@ALIAS" in text and "--holdout-newest FRACTION" in text
        assert "(default: 0.2)" in text and "several values run a sweep (default: the champion's)" in text
    elif command in ("evaluate", "predict"):
        assert "--runtime {onnx,onnx-int8-cascade,tensorflow}" in text
        default = (
            "(default: onnx-int8-cascade when the model has model-int8.onnx from `kitchenware quantize`, else onnx)"
        )
        assert default in text
    elif command == "quantize":
        assert "--model MODEL" in text and "--ood OOD" in text and "(default: MODEL/split.csv)" in text
    if command in ("train", "evaluate", "quantize"):
        assert "--mlflow URI MLflow tracking server, e.g. http://localhost:5000 (default: MLFLOW_TRACKING_URI)" in text


def test_top_level_help_lists_the_commands():
    result = train_py("--help")
    assert result.returncode == 0
    assert all(command in result.stdout for command in ("train", "check", "evaluate", "predict", "quantize"))


def test_the_kitchenware_command_is_train_py():
    """The package's console script (scripts/setup.sh installs the package) runs the same command line."""
    script = Path(sys.executable).with_name("kitchenware")
    for arguments in (["--help"], ["predict", "--help"], ["feedback", "purge", "--help"]):
        result = subprocess.run([str(script), *arguments], cwd=ROOT, capture_output=True, text=True, timeout=120)
        expected = train_py(*arguments)
        assert result.returncode == expected.returncode == 0
        # the same text; argparse wraps the usage lines after the program's name
        assert result.stdout.split() == expected.stdout.replace("usage: train.py", "usage: kitchenware").split()


@pytest.fixture(scope="module")
def class_folder_tree(tmp_path_factory) -> Path:
    """Two photos of each class of kitchenware-photos-more, one of them a level deeper."""
    tree = tmp_path_factory.mktemp("tree")
    for folder in sorted(MORE_PHOTOS.iterdir()):
        if folder.is_dir():
            photos = sorted(folder.iterdir())[:2]
            (tree / folder.name / "deeper").mkdir(parents=True)
            shutil.copy(photos[0], tree / folder.name)
            shutil.copy(photos[1], tree / folder.name / "deeper")
    return tree


@needs_shipped_model_and_photos
def test_predict_scores_a_class_folder_tree_quietly_and_without_tensorflow(
    shipped_model_in_store: str, class_folder_tree: Path, tmp_path: Path
):
    output = tmp_path / "predictions.csv"
    probe = (
        "import sys; from kitchenware.cli import main; "
        f"code = main(['predict', '--model', '{shipped_model_in_store}', '--input', '{class_folder_tree}', "
        f"'--output', '{output}']); print('tensorflow loaded:', 'tensorflow' in sys.modules); sys.exit(code)"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "tensorflow loaded: False" in result.stdout
    assert not [line for line in result.stderr.splitlines() if any(word in line for word in TENSORFLOW_START_UP)]
    rows = list(csv.DictReader(open(output)))
    assert len(rows) == 12
    assert {row["Id"].split("/")[0] for row in rows} == {"cup", "fork", "glass", "knife", "plate", "spoon"}
    assert sum("/deeper/" in row["Id"] for row in rows) == 6
    right = sum(row["Id"].split("/")[0] == row["label"] for row in rows)
    assert f"accuracy against the class folders: {right / 12:.4f} ({right} of 12 photos)" in result.stdout


@needs_shipped_model_and_photos
def test_evaluate_predict_and_the_service_give_the_same_answers(
    shipped_model_in_store: str, class_folder_tree: Path, tmp_path: Path
):
    """Through a real `bentoml serve`, called with BentoML's own client as the README shows, and through the Python
    API."""
    predictions = tmp_path / "predict.csv"
    assert (
        train_py(
            "predict",
            "--model",
            shipped_model_in_store,
            "--input",
            str(class_folder_tree),
            "--output",
            str(predictions),
            "--probabilities",
        ).returncode
        == 0
    )
    assert (
        train_py(
            "evaluate",
            "--model",
            shipped_model_in_store,
            "--data",
            str(class_folder_tree),
            "--out",
            str(tmp_path / "evaluate"),
        ).returncode
        == 0
    )
    predicted = {row["Id"]: row for row in csv.DictReader(open(predictions))}
    evaluated = {
        str(Path(row["Id"]).with_suffix("")): row
        for row in csv.DictReader(open(tmp_path / "evaluate" / "predictions.csv"))
    }
    from_python = Classifier.open(shipped_model_in_store)
    serve_log = tmp_path / "serve.log"
    with serving("service:KitchenwareClassifier", serve_log, KITCHENWARE_MODEL=shipped_model_in_store) as (url, _):
        with bentoml.SyncHTTPClient(url) as client:
            for photo in sorted(class_folder_tree.rglob("*.*")):
                answer = client.classify(image=photo)
                served = {key: value for key, value in answer.items() if key not in ("photo_id", "feedback_token")}
                assert from_python.classify(photo).to_dict() | {"model": shipped_model_in_store} == served
                photo_id = str(photo.relative_to(class_folder_tree).with_suffix(""))
                row = predicted[photo_id]
                assert answer["label"] == row["label"] == evaluated[photo_id]["predicted"]
                assert answer["decision"] == row["decision"] == evaluated[photo_id]["decision"]
                assert answer["probabilities"] == {name: float(row[name]) for name in answer["probabilities"]}
                assert answer["confidence"] == float(row["confidence"]) == float(evaluated[photo_id]["confidence"])
                assert answer["ood_score"] == float(row["ood_score"]) == float(evaluated[photo_id]["ood_score"])
    assert len(evaluated) == len(predicted) == 12
