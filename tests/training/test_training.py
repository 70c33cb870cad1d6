"""Training end to end on generated photos: both architectures, the CLI, the store, the reports."""

import csv
import json
import shutil
from pathlib import Path

import bentoml
import keras
import numpy as np
import pytest

from build_bento_from_saved_model import import_folder
from build_bento_from_saved_model import main as build_bento_main
from kitchenware import store
from kitchenware.classifier import find_model
from kitchenware.cli import main
from kitchenware.core.card import ModelCard
from kitchenware.core.preprocessing import prepare
from kitchenware.core.runtimes import open_runtime
from kitchenware.training import export
from kitchenware.training.accelerators import precision_policy
from kitchenware.training.config import TrainConfig
from kitchenware.training.trainer import balanced_class_weights, prepare_data, train_model

# Random weights see the generated one-colour photos of a class as near-duplicates: split them one by one.
SMALL_XCEPTION = [
    "--arch",
    "xception",
    "--weights",
    "none",
    "--input-size",
    "71",
    "--batch-size",
    "8",
    "--split",
    "stratified",
]


def train_small_xception(photos: Path, name: str, run_dir: Path, *options: str) -> int:
    """`kitchenware train` with a small random-weight Xception (71x71)."""
    return main(["train", "--data", str(photos), *SMALL_XCEPTION, "--name", name, "--run-dir", str(run_dir), *options])


@pytest.mark.parametrize(("head", "stage"), [("dense", "head"), ("probe", "probe")])
def test_head_on_cached_features_equals_the_saved_full_model(
    head: str, stage: str, kaggle_photos: Path, tmp_path: Path
):
    config = TrainConfig(
        data=kaggle_photos, weights="none", input_size=71, epochs=3, batch_size=8, split="stratified", head=head
    )
    prepared = prepare_data(config)
    trained = train_model(config, prepared, tmp_path)
    val_features = prepared.cache.of(prepared.val)
    assert trained.history["stage"] == [stage] * len(trained.history["loss"])
    pixels = np.stack([prepare(sample.path, 71) for sample in prepared.val])
    full_model = trained.network.model.predict(pixels, verbose=0)
    np.testing.assert_allclose(full_model, trained.network.head.predict(val_features, verbose=0), atol=1e-5)
    np.testing.assert_allclose(full_model, trained.report.probabilities, atol=1e-5)
    trained.network.model.save(tmp_path / "model.keras")
    import keras

    reloaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(reloaded.predict(pixels, verbose=0), full_model, atol=1e-5)


def test_scratch_cnn_learns_separable_classes(folder_photos: Path, tmp_path: Path):
    config = TrainConfig(
        data=folder_photos, arch="scratch", input_size=32, epochs=15, batch_size=8, lr=1e-3, patience=15
    )
    trained = train_model(config, prepare_data(config), tmp_path)
    assert trained.network.model.input_shape == (None, 32, 32, 3)
    assert trained.report.accuracy == 1.0


def test_augmentation_and_fine_tuning_train_end_to_end(kaggle_photos: Path, tmp_path: Path):
    config = TrainConfig(
        data=kaggle_photos,
        weights="none",
        input_size=71,
        epochs=1,
        batch_size=8,
        augment=True,
        fine_tune_epochs=1,
        unfreeze=1,
        class_weight="balanced",
        head="dense",
    )
    trained = train_model(config, prepare_data(config), tmp_path)
    assert trained.history["stage"] == ["head", "fine-tune"]
    assert trained.network.model.get_layer("augmentation") is not None
    trainable = [w.path for w in trained.network.backbone.trainable_weights]
    assert trainable and all("block14" in path for path in trainable), trainable


def test_train_cli_saves_to_the_store_with_metadata_and_writes_the_run(kaggle_photos: Path, tmp_path: Path):
    run, export_dir = tmp_path / "run", tmp_path / "export"
    code = train_small_xception(
        kaggle_photos,
        "cli_model",
        run,
        "--head",
        "dense",
        "--epochs",
        "2",
        "--export",
        str(export_dir),
        "--tensorboard",
    )
    assert code == 0
    stored = bentoml.models.get("cli_model:latest")
    card = ModelCard.from_metadata(stored.info.metadata)
    assert card.class_names == ("cup", "fork", "spoon")
    assert card.input_size == 71
    assert card.architecture == "xception" and card.weights == "none"
    assert card.config["epochs"] == 2 and card.config["weights"] == "none"
    assert card.dataset["images"] == 30 and len(card.dataset["fingerprint"]) == 64
    assert card.dataset["counts"] == {"cup": 12, "fork": 10, "spoon": 8}
    assert 0 <= card.validation.accuracy <= 1 and card.validation.images == 6
    assert card.command.startswith("kitchenware train --data")
    assert card.onnx["max_abs_difference"] <= export.ONNX_TOLERANCE
    assert {path.name for path in Path(stored.path).iterdir()} >= {"model.onnx", "model.keras", "model_card.json"}
    assert stored.info.labels == {"owner": "kitchenware-classifier", "project": "kitchenware"}
    for name in (
        "history.csv",
        "training_curves.png",
        "confusion_matrix.png",
        "per_class.csv",
        "misclassified.csv",
        "split.csv",
        "metrics.json",
    ):
        assert (run / name).stat().st_size > 0, name
    assert any((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert json.loads((export_dir / "model_card.json").read_text())["class_names"] == ["cup", "fork", "spoon"]
    assert "| true \\ predicted | cup | fork | spoon |" in (export_dir / "model_card.md").read_text()
    assert {"model.onnx", "model.keras"} <= {path.name for path in export_dir.iterdir()}

    from_store, from_folder = store.get("cli_model:latest"), find_model(export_dir)
    pixels = prepare(kaggle_photos / "images" / "0000.jpg", 71)[None]
    for runtime in ("onnx", "tensorflow"):
        a = open_runtime(from_store.path, runtime, 1, 71).forward(pixels)
        b = open_runtime(from_folder.path, runtime, 1, 71).forward(pixels)
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-4)
        np.testing.assert_allclose(a.features, b.features, atol=1e-4)
    assert card.validation.accuracy == json.loads((run / "metrics.json").read_text())["accuracy"]


def test_a_corrupt_photo_is_reported_and_training_goes_on(kaggle_photos: Path, tmp_path: Path, capsys):
    (kaggle_photos / "images" / "0005.jpg").write_bytes(b"GIF89a broken")
    code = train_small_xception(kaggle_photos, "skip_model", tmp_path / "run", "--epochs", "1")
    assert code == 0
    assert "skipped unreadable image" in capsys.readouterr().err
    assert bentoml.models.get("skip_model:latest").info.metadata["dataset"]["skipped"] == 1


def test_sweep_writes_table_and_plot_and_keeps_the_best(kaggle_photos: Path, tmp_path: Path):
    run = tmp_path / "sweep"
    sweep = ["--head", "dense", "--epochs", "2", "--lr", "0.01", "0.0001", "--dropout", "0", "0.5"]
    code = train_small_xception(kaggle_photos, "sweep_model", run, *sweep)
    assert code == 0
    rows = list(csv.DictReader(open(run / "sweep.csv")))
    assert sorted((float(r["lr"]), float(r["dropout"])) for r in rows) == [
        (0.0001, 0.0),
        (0.0001, 0.5),
        (0.01, 0.0),
        (0.01, 0.5),
    ]
    accuracies = [float(r["val_accuracy"]) for r in rows]
    assert accuracies == sorted(accuracies, reverse=True)
    assert (run / "sweep.md").read_text().count("\n") == 6
    assert (run / "sweep.png").stat().st_size > 0
    config = bentoml.models.get("sweep_model:latest").info.metadata["config"]
    assert (config["lr"], config["dropout"]) == (float(rows[0]["lr"]), float(rows[0]["dropout"]))


def test_a_probe_sweep_tries_each_strength_and_keeps_the_best(kaggle_photos: Path, tmp_path: Path):
    run = tmp_path / "sweep"
    assert train_small_xception(kaggle_photos, "probe_sweep", run, "--probe-c", "0.01", "1", "100") == 0
    rows = list(csv.DictReader(open(run / "sweep.csv")))
    assert sorted(float(r["probe_c"]) for r in rows) == [0.01, 1.0, 100.0] and {r["epochs"] for r in rows} == {"1"}
    best = sorted(rows, key=lambda r: (-float(r["val_accuracy"]), float(r["val_loss"])))[0]
    config = bentoml.models.get("probe_sweep:latest").info.metadata["config"]
    assert config["head"] == "probe" and config["probe_c"] == float(best["probe_c"])


def test_evaluate_and_predict_write_report_and_submission(kaggle_photos: Path, tmp_path: Path, capsys):
    assert train_small_xception(kaggle_photos, "eval_model", tmp_path / "run", "--head", "dense", "--epochs", "1") == 0
    evaluation = tmp_path / "eval"
    assert (
        main(["evaluate", "--model", "eval_model:latest", "--data", str(kaggle_photos), "--out", str(evaluation)]) == 0
    )
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert metrics["images"] == 30 and sum(map(sum, metrics["confusion_matrix"])) == 30
    wrong = len(list(csv.reader(open(evaluation / "misclassified.csv")))) - 1
    assert wrong > 0  # one epoch of a random-weight network: mistakes to draw
    from PIL import Image

    with Image.open(evaluation / "misclassified_heatmaps.png") as sheet:  # 6 tiles of 224 x 254 a row
        assert sheet.size == (6 * 224, -(-wrong // 6) * 254)
    assert f"where the model looked on {wrong} misclassified photos" in capsys.readouterr().out

    test_dir = tmp_path / "kaggle_test"
    (test_dir / "images").mkdir(parents=True)
    for image_id in ("0000", "0013", "0027"):
        shutil.copy(kaggle_photos / "images" / f"{image_id}.jpg", test_dir / "images")
    (test_dir / "test.csv").write_text("Id\n0000\n0013\n0027\n")
    output = tmp_path / "submission.csv"
    assert main(["predict", "--model", "eval_model:latest", "--input", str(test_dir), "--output", str(output)]) == 0
    rows = list(csv.reader(open(output)))
    assert rows[0] == ["Id", "label", "confidence", "decision", "ood_score"]
    assert [row[0] for row in rows[1:]] == ["0000", "0013", "0027"]
    assert all(row[1] in ("cup", "fork", "spoon") and row[3] in ("confident", "unsure", "unknown") for row in rows[1:])
    kaggle = tmp_path / "kaggle.csv"
    assert (
        main(["predict", "--model", "eval_model:latest", "--input", str(test_dir), "--output", str(kaggle), "--kaggle"])
        == 0
    )
    assert [row[:2] for row in csv.reader(open(kaggle))] == [row[:2] for row in rows]


def test_cli_reports_bad_data_without_a_traceback(tmp_path: Path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing"), *SMALL_XCEPTION]) == 2
    assert capsys.readouterr().err.startswith(f"error: data folder {tmp_path / 'missing'} does not exist")
    assert main(["evaluate", "--model", "no_such_model:latest", "--data", str(tmp_path)]) == 2
    assert "is not in the BentoML store" in capsys.readouterr().err


def test_missing_weights_file_is_a_clear_error(kaggle_photos: Path, tmp_path: Path, capsys):
    assert main(["train", "--data", str(kaggle_photos), "--weights", str(tmp_path / "nope.h5")]) == 2
    assert "weights file" in capsys.readouterr().err


def test_mixed_precision_only_with_a_gpu_unless_asked():
    assert precision_policy("auto", gpu_count=0) == "float32"
    assert precision_policy("auto", gpu_count=1) == "mixed_float16"
    assert precision_policy("on", gpu_count=0) == "mixed_float16"
    assert precision_policy("off", gpu_count=4) == "float32"


@pytest.mark.parametrize("head", ["dense", "probe"])
def test_mixed_precision_keeps_float32_probabilities(head: str, kaggle_photos: Path, tmp_path: Path):
    config = TrainConfig(
        data=kaggle_photos,
        weights="none",
        input_size=71,
        epochs=1,
        batch_size=8,
        mixed_precision="on",
        split="stratified",
        head=head,
        augment_views=0,
    )
    trained = train_model(config, prepare_data(config), tmp_path)
    assert trained.network.model.output.dtype == "float32"
    np.testing.assert_allclose(trained.report.probabilities.sum(axis=1), 1.0, atol=1e-3)  # float16 squares: no NaN
    if head == "probe":
        return  # its export is checked in float32 above; a random backbone's float16 features are rounded coarsely
    # A model trained on a GPU in mixed precision still gets its checked ONNX file for serving.
    card = ModelCard("mixed_precision_model", ("cup", "fork", "spoon"), 71)
    stored = bentoml.models.get(export.save_to_store(trained.network.model, card, {}))
    assert stored.info.metadata["onnx"]["max_abs_difference"] <= export.ONNX_TOLERANCE
    assert (Path(stored.path) / "model.onnx").is_file()


def test_balanced_class_weights():
    weights = balanced_class_weights(np.array([0, 0, 0, 1]), 2)
    assert weights == pytest.approx({0: 4 / 6, 1: 2.0})


def tiny_model() -> keras.Model:
    """8x8 photos, 2 classes: for what is about the files, not the training."""
    return keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")]
    )


def test_a_failed_onnx_export_keeps_the_trained_model(monkeypatch: pytest.MonkeyPatch, caplog):
    def refuse(model, path):
        raise ValueError("the ONNX export differs from the Keras model by 3.00e-01")

    monkeypatch.setattr(export, "export_onnx", refuse)
    stored = bentoml.models.get(export.save_to_store(tiny_model(), ModelCard("no_onnx_model", ("a", "b"), 8), {}))
    assert "differs" in stored.info.metadata["onnx"]["error"]
    assert "KITCHENWARE_RUNTIME=tensorflow" in caplog.text
    assert (Path(stored.path) / "model.keras").is_file() and not (Path(stored.path) / "model.onnx").exists()
    with pytest.raises(FileNotFoundError, match="KITCHENWARE_RUNTIME=tensorflow"):
        open_runtime(stored.path, "onnx", threads=1, input_size=8)
    forward = open_runtime(stored.path, "tensorflow", threads=1, input_size=8).forward(np.zeros((1, 8, 8, 3), np.uint8))
    assert forward.probabilities.shape == (1, 2) and forward.features is None


def test_an_older_export_without_model_onnx_is_exported_on_import(tmp_path: Path):
    """A folder written by --export before ONNX files were exported holds model.keras and its card only."""
    tiny_model().save(tmp_path / "model.keras")
    (tmp_path / "model_card.json").write_text(
        json.dumps({"name": "imported_model", "class_names": ["a", "b"], "input_size": 8})
    )
    assert build_bento_main(["--model", str(tmp_path), "--no-build"]) == 0
    tag, imported = import_folder(tmp_path)  # the second time: the model the script imported
    assert not imported
    stored = store.get(tag)
    assert stored.card.schema_version == 1  # the old card, read and kept as it was
    assert stored.card.onnx["max_abs_difference"] <= export.ONNX_TOLERANCE
    assert {"model.onnx", "model.keras"} <= {path.name for path in stored.path.iterdir()}


def test_an_exported_folder_is_imported_once(tmp_path: Path):
    card = export.export_folder(tiny_model(), ModelCard("folder_model", ("a", "b"), 8), tmp_path)
    tag, imported = store.import_exported(tmp_path)
    assert imported and store.get(tag).card == card.replace(file_sha256=store.get(tag).card.file_sha256)
    assert store.import_exported(tmp_path) == (tag, False)


def test_cross_validation_predicts_every_photo_once_with_a_head_that_did_not_train_on_it(
    kaggle_photos: Path, tmp_path: Path
):
    import dataclasses

    from kitchenware.training.trainer import cross_validate

    config = TrainConfig(data=kaggle_photos, weights="none", input_size=71, epochs=2, batch_size=8, split="stratified")
    prepared = prepare_data(config)
    # Random weights see one-colour photos as near-duplicates: give every photo its own group here.
    prepared = dataclasses.replace(prepared, health=dataclasses.replace(prepared.health, groups=np.arange(30)))
    figures, pooled = cross_validate(config, prepared, 3, tmp_path)
    assert figures["folds"] == 3 and figures["photos"] == 30 and len(figures["fold_accuracy"]) == 3
    assert np.bincount(pooled.labels).tolist() == [12, 10, 8]  # every photo once: 12 cups, 10 forks, 8 spoons
    assert figures["accuracy_pooled"] == round(pooled.accuracy, 4)
    assert set(figures["recall_pooled"]) == {"cup", "fork", "spoon"}
