"""MLflow tracking and the model registry on a real `mlflow server` (tests/helpers/mlflow_server.py), read back through
`mlflow.MlflowClient`: what a training run, a sweep, `evaluate` and `quantize` log, `--register`, and a deployment
that follows the `champion` alias."""

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from sample_data import ROOT, SHIPPED_MODEL, write_kaggle
from server import free_port

from build_bento_from_saved_model import main as build_bento_main
from kitchenware import store
from kitchenware.cli import main
from kitchenware.core.card import ModelCard
from kitchenware.training import registry
from kitchenware.training.tracking import HISTORY, card_metrics, tracked

EXPERIMENT = "tracking-tests"
NAME = "tracked_classifier"  # the registered model
# The smallest training there is: the CNN from scratch at 32x32 on 30 one-colour photos (a 2 MB model).
TINY = ["--arch", "scratch", "--input-size", "32", "--batch-size", "8", "--experiment", EXPERIMENT]


@pytest.fixture(scope="module")
def runs(mlflow_server: str, tmp_path_factory) -> Path:
    """Two tracked `kitchenware train` runs, both registered as versions of NAME: a sweep of two learning rates with
    --mlflow and --export (version 1), then one setting with MLFLOW_TRACKING_URI and no --export (version 2)."""
    root = tmp_path_factory.mktemp("tracked")
    photos = write_kaggle(root / "kaggle", {"cup": 12, "fork": 10, "spoon": 8})
    sweep = ["--epochs", "2", "--lr", "0.01", "0.001", "--name", "tracked_sweep", "--run-dir", str(root / "sweep")]
    sweep += ["--export", str(root / "export"), "--mlflow", mlflow_server, "--register", NAME]
    assert main(["train", "--data", str(photos), *TINY, *sweep]) == 0
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        once = ["--epochs", "1", "--name", "tracked_once", "--run-dir", str(root / "once"), "--register", NAME]
        assert main(["train", "--data", str(photos), *TINY, *once]) == 0
    return root


def test_a_sweep_is_tracked_with_its_setting_history_card_figures_reports_and_model(
    runs: Path, mlflow_server: str, tmp_path: Path
):
    client = MlflowClient(mlflow_server)
    run = client.get_run(client.get_model_version(NAME, "1").run_id)
    run_id, card = run.info.run_id, ModelCard.read(runs / "export")
    assert (run.info.run_name, run.info.status) == ("train tracked_sweep", "FINISHED")
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    assert run.data.params == {key: str(value) for key, value in card.config.items()}
    assert run.data.tags["kitchenware.model"] == str(store.get("tracked_sweep:latest").tag)

    history = list(csv.DictReader(open(runs / "sweep" / "history.csv")))
    for column in HISTORY:
        logged = [(metric.step, metric.value) for metric in client.get_metric_history(run_id, column)]
        assert logged == [(int(row["epoch"]), float(row[column])) for row in history], column
    metrics = run.data.metrics
    assert metrics["validation/accuracy"] == card.validation.accuracy
    assert metrics["validation/ece"] == card.validation.ece
    assert metrics["validation/decisions/confident"] == card.validation.decisions["confident"]
    for row in card.validation.per_class:
        assert metrics[f"validation/per_class/{row['class']}/recall"] == row["recall"]
    assert metrics["calibration/temperature"] == card.calibration.temperature
    assert metrics["decision_rule/min_confidence"] == card.min_confidence

    assert {artifact.path for artifact in client.list_artifacts(run_id)} == {
        "report",
        "model",
        "model_card.json",
        "model_card.md",
    }
    report = {Path(artifact.path).name for artifact in client.list_artifacts(run_id, "report")}
    assert report == {path.name for path in (runs / "sweep").iterdir()}
    assert {"training_curves.png", "confusion_matrix.png", "sweep.png", "history.csv", "check.md"} <= report
    model = {Path(artifact.path).name for artifact in client.list_artifacts(run_id, "model")}
    assert model == {path.name for path in (runs / "export").iterdir()} >= {"model.onnx", "model_card.json"}
    logged_card = client.download_artifacts(run_id, "model_card.json", str(tmp_path))
    assert json.loads(Path(logged_card).read_text()) == json.loads((runs / "export" / "model_card.json").read_text())

    nested = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
    assert sorted(child.info.run_name for child in nested) == ["lr=0.001 dropout=0.0", "lr=0.01 dropout=0.0"]
    swept = {float(row["lr"]): row for row in csv.DictReader(open(runs / "sweep" / "sweep.csv"))}
    for child in nested:
        lr = float(child.data.params["lr"])
        assert child.data.metrics["validation/accuracy"] == pytest.approx(float(swept[lr]["val_accuracy"]), abs=1e-4)
        assert child.data.metrics["validation/loss"] == pytest.approx(float(swept[lr]["val_loss"]), abs=1e-4)
        assert [metric.step for metric in client.get_metric_history(child.info.run_id, "val_loss")] == [1, 2]
        assert child.data.tags["kitchenware.kept"] == str(lr == card.config["lr"]).lower()


def test_registered_versions_and_a_deployment_that_follows_the_champion_alias(
    runs: Path, mlflow_tracking_uri: str, capsys
):
    client = MlflowClient(mlflow_tracking_uri)
    versions = {version.version: version for version in client.search_model_versions(f"name='{NAME}'")}
    assert sorted(versions) == ["1", "2"]
    second = client.get_run(versions["2"].run_id)
    assert second.info.run_name == "train tracked_once" and second.data.params["epochs"] == "1"
    assert "model.onnx" in {Path(a.path).name for a in client.list_artifacts(second.info.run_id, "model")}
    # The Python interface outside any run: a run of its own logs the folder.
    assert registry.register(runs / "export", NAME) == "3"
    assert client.get_run(client.get_model_version(NAME, "3").run_id).info.run_name == f"register {NAME}"

    registry.set_alias(NAME, "champion", "1")
    assert registry.version_of(f"models:/{NAME}@champion") == "1"
    assert build_bento_main(["--from-registry", f"models:/{NAME}@champion", "--no-build"]) == 0
    printed = capsys.readouterr().out
    assert f"models:/{NAME}@champion is version 1" in printed
    champion = store.get(printed.split()[-1]).card
    assert champion == ModelCard.read(runs / "export").replace(file_sha256=store.network_digest(runs / "export"))

    registry.set_alias(NAME, "champion", "2")  # promoted: the next build serves version 2
    assert build_bento_main(["--from-registry", f"models:/{NAME}@champion", "--no-build"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"models:/{NAME}@champion is version 2\nimported ")
    assert store.get(printed.split()[-1]).card.config["epochs"] == 1


def test_registry_and_tracking_errors_say_what_to_do(
    runs: Path, mlflow_tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    def build_fails(model_uri: str) -> str:
        assert build_bento_main(["--from-registry", model_uri, "--no-build"]) == 2
        return capsys.readouterr().err

    registry.set_alias(NAME, "champion", "1")
    assert f"registered model '{NAME}' has no alias 'nope' (its aliases: champion -> version 1)" in build_fails(
        f"models:/{NAME}@nope"
    )
    assert "no registered model 'no_such_model'" in build_fails("models:/no_such_model@champion")
    latest = max(int(version.version) for version in MlflowClient().search_model_versions(f"name='{NAME}'"))
    assert f"has no version 99 (the latest is {latest})" in build_fails(f"models:/{NAME}/99")
    assert "write models:/NAME@ALIAS or models:/NAME/VERSION" in build_fails(f"models:/{NAME}")

    # A version whose folder is not an exported model (registered by hand: only a card in it).
    client = MlflowClient(mlflow_tracking_uri)
    card_only = tmp_path / "card_only"
    card_only.mkdir()
    (card_only / "model_card.json").write_text((runs / "export" / "model_card.json").read_text())
    run = client.create_run(client.get_experiment_by_name(EXPERIMENT).experiment_id)
    client.log_artifacts(run.info.run_id, str(card_only), "model")
    client.create_registered_model("card_only")
    client.create_model_version("card_only", f"{run.info.artifact_uri}/model", run.info.run_id)
    assert (
        "version 1 of 'card_only'" in (error := build_fails("models:/card_only/1")) and "holds no model.onnx" in error
    )

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", dead)
    assert f"no MLflow tracking server answers at {dead}" in build_fails(f"models:/{NAME}@champion")
    started = time.monotonic()
    arguments = ["train", "--data", str(runs / "kaggle"), *TINY, "--run-dir", str(tmp_path / "run")]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: no MLflow tracking server answers at {dead}") and "mlflow server" in error
    assert not (tmp_path / "run").exists() and time.monotonic() - started < 20  # before any training

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with pytest.raises(SystemExit):
        main([*arguments, "--register", NAME])
    assert "--register needs an MLflow tracking server" in capsys.readouterr().err


def test_evaluate_and_quantize_log_their_figures_and_reports(runs: Path, mlflow_server: str, tmp_path: Path):
    client = MlflowClient(mlflow_server)
    evaluation = tmp_path / "evaluation"
    arguments = ["evaluate", "--model", str(runs / "export"), "--data", str(runs / "kaggle"), "--out", str(evaluation)]
    assert main([*arguments, "--mlflow", mlflow_server, "--experiment", EXPERIMENT]) == 0
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    run = client.search_runs([experiment], order_by=["attributes.start_time DESC"], max_results=1)[0]
    assert run.info.run_name == f"evaluate {runs / 'export'}"
    assert run.data.params["model"] == str(runs / "export") and run.data.params["data"] == str([str(runs / "kaggle")])
    figures = json.loads((evaluation / "metrics.json").read_text())
    assert run.data.metrics["evaluation/accuracy"] == figures["accuracy"]
    assert run.data.metrics["evaluation/images"] == 30
    assert run.data.metrics["evaluation/per_class/spoon/support"] == 8
    report = {Path(artifact.path).name for artifact in client.list_artifacts(run.info.run_id, "report")}
    assert report == {path.name for path in evaluation.iterdir()}

    # `quantize` logs the int8 section of the card it writes: here the shipped model's, with its fine-tuning.
    card = ModelCard.read(SHIPPED_MODEL)
    (tmp_path / "quantized").mkdir()
    (tmp_path / "quantized" / "int8.json").write_text(json.dumps(card.to_metadata()["int8"]))
    with tracked(mlflow_server, EXPERIMENT, "quantize models", "kitchenware quantize --model models") as tracker:
        tracker.log_quantization(card, tmp_path / "quantized", {"model": "models", "qat_epochs": 8})
    metrics = client.get_run(tracker.run_id).data.metrics
    assert metrics["int8/validation_accuracy/cascade"] == card.int8.validation_accuracy["cascade"]
    assert metrics["int8/band/margin"] == card.int8.band.margin
    validation = card.int8.figures["kitchenware-photos, validation (band chosen here)"]
    assert metrics["int8/figures/kitchenware-photos_ validation _band chosen here_/fallback"] == validation.fallback
    tuned = client.get_metric_history(tracker.run_id, "int8/fine_tuning_loss")
    assert [metric.value for metric in tuned] == list(card.int8.recipe.fine_tuning.loss_per_epoch)
    assert {a.path for a in client.list_artifacts(tracker.run_id)} == {"report", "model_card.json", "model_card.md"}


def test_the_card_figures_include_each_held_out_source():
    card = ModelCard.read(SHIPPED_MODEL)  # trained with --cross-validate sources
    metrics = card_metrics(card)
    for origin, row in card.cross_validation["held_out"].items():
        assert metrics[f"cross_validation/held_out/{origin}/accuracy"] == row["accuracy"]
        assert metrics[f"cross_validation/unknown_thresholds/{origin}"] == card.ood.held_out[origin]
    assert metrics["cross_validation/accuracy_pooled"] == card.cross_validation["accuracy_pooled"]
    assert metrics["decision_rule/ood_threshold"] == card.ood.threshold
    assert not [name for name in metrics if "confusion" in name or "fold_accuracy" in name]  # lists stay out


def test_training_without_tracking_never_imports_mlflow(tmp_path: Path):
    photos = write_kaggle(tmp_path / "kaggle", {"cup": 4, "fork": 4})
    arguments = ["train", "--data", str(photos), *TINY[:6], "--epochs", "1", "--run-dir", str(tmp_path / "run")]
    probe = f"import sys; from kitchenware.cli import main; code = main({arguments}); print('mlflow' in sys.modules)"
    probe += "; sys.exit(code)"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=600, env=environment
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "False"
    assert (tmp_path / "run" / "history.csv").is_file()


def test_a_feedback_database_password_stays_out_of_the_recorded_settings():
    from kitchenware.training.config import TrainConfig

    config = TrainConfig(data=("photos", "feedback:postgresql+psycopg://kitchen:s3cr%40t@db:5432/feedback"))
    assert config.as_metadata()["data"] == ["photos", "feedback:postgresql+psycopg://kitchen:***@db:5432/feedback"]
    assert config.data[1].endswith("kitchen:s3cr%40t@db:5432/feedback")  # training still reads with the password
