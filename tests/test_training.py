"""Training end to end on generated photos: both architectures, the CLI, the store, the reports."""

import csv
import json
import shutil
from pathlib import Path

import bentoml
import keras
import numpy as np
import pytest

from kitchenware import store
from kitchenware.cli import main
from kitchenware.config import TrainConfig
from kitchenware.preprocessing import prepare
from kitchenware.training import (
    FeatureCache,
    balanced_class_weights,
    precision_policy,
    prepare_data,
    train_model,
)

SMALL_XCEPTION = ["--arch", "xception", "--weights", "none", "--input-size", "71", "--batch-size", "8"]


def train_small_xception(photos: Path, name: str, run_dir: Path, *options: str) -> int:
    """`train.py train` with a small random-weight Xception (71x71)."""
    return main(["train", "--data", str(photos), *SMALL_XCEPTION, "--name", name, "--run-dir", str(run_dir), *options])


def test_head_on_cached_features_equals_the_saved_full_model(kaggle_photos: Path, tmp_path: Path):
    config = TrainConfig(data=kaggle_photos, weights="none", input_size=71, epochs=3, batch_size=8)
    prepared = prepare_data(config)
    cache = FeatureCache()
    trained = train_model(config, prepared, tmp_path, cache)
    _, val_features = cache.features
    assert trained.history["stage"] == ["head"] * len(trained.history["loss"])
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
    )
    trained = train_model(config, prepare_data(config), tmp_path)
    assert trained.history["stage"] == ["head", "fine-tune"]
    assert trained.network.model.get_layer("augmentation") is not None
    trainable = [w.path for w in trained.network.backbone.trainable_weights]
    assert trainable and all("block14" in path for path in trainable), trainable


def test_train_cli_saves_to_the_store_with_metadata_and_writes_the_run(kaggle_photos: Path, tmp_path: Path):
    run, export = tmp_path / "run", tmp_path / "export"
    code = train_small_xception(
        kaggle_photos, "cli_model", run, "--epochs", "2", "--export", str(export), "--tensorboard"
    )
    assert code == 0
    stored = bentoml.models.get("cli_model:latest")
    metadata = stored.info.metadata
    assert metadata["class_names"] == ["cup", "fork", "spoon"]
    assert metadata["input_size"] == 71
    assert metadata["architecture"] == "xception"
    assert metadata["config"]["epochs"] == 2 and metadata["config"]["weights"] == "none"
    assert metadata["dataset"]["images"] == 30 and len(metadata["dataset"]["fingerprint"]) == 64
    assert metadata["dataset"]["counts"] == {"cup": 12, "fork": 10, "spoon": 8}
    assert 0 <= metadata["validation"]["accuracy"] <= 1 and metadata["validation"]["images"] == 6
    assert metadata["command"].startswith("python train.py train --data")
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
    assert json.loads((export / "model_card.json").read_text())["class_names"] == ["cup", "fork", "spoon"]
    assert "| true \\ predicted | cup | fork | spoon |" in (export / "model_card.md").read_text()

    from_store, from_file = store.load("cli_model:latest"), store.load(str(export / "model.keras"))
    pixels = prepare(kaggle_photos / "images" / "0000.jpg", 71)[None]
    np.testing.assert_allclose(
        from_store.model.predict(pixels, verbose=0), from_file.model.predict(pixels, verbose=0), atol=1e-6
    )
    assert metadata["validation"]["accuracy"] == json.loads((run / "metrics.json").read_text())["accuracy"]


def test_a_corrupt_photo_is_reported_and_training_goes_on(kaggle_photos: Path, tmp_path: Path, capsys):
    (kaggle_photos / "images" / "0005.jpg").write_bytes(b"GIF89a broken")
    code = train_small_xception(kaggle_photos, "skip_model", tmp_path / "run", "--epochs", "1")
    assert code == 0
    assert "skipped unreadable image" in capsys.readouterr().err
    assert bentoml.models.get("skip_model:latest").info.metadata["dataset"]["skipped"] == 1


def test_sweep_writes_table_and_plot_and_keeps_the_best(kaggle_photos: Path, tmp_path: Path):
    run = tmp_path / "sweep"
    code = train_small_xception(
        kaggle_photos, "sweep_model", run, "--epochs", "2", "--lr", "0.01", "0.0001", "--dropout", "0", "0.5"
    )
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


def test_evaluate_and_predict_write_report_and_submission(kaggle_photos: Path, tmp_path: Path, capsys):
    assert train_small_xception(kaggle_photos, "eval_model", tmp_path / "run", "--epochs", "1") == 0
    evaluation = tmp_path / "eval"
    assert (
        main(["evaluate", "--model", "eval_model:latest", "--data", str(kaggle_photos), "--out", str(evaluation)]) == 0
    )
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert metrics["images"] == 30 and sum(map(sum, metrics["confusion_matrix"])) == 30

    test_dir = tmp_path / "kaggle_test"
    (test_dir / "images").mkdir(parents=True)
    for image_id in ("0000", "0013", "0027"):
        shutil.copy(kaggle_photos / "images" / f"{image_id}.jpg", test_dir / "images")
    (test_dir / "test.csv").write_text("Id\n0000\n0013\n0027\n")
    output = tmp_path / "submission.csv"
    assert main(["predict", "--model", "eval_model:latest", "--input", str(test_dir), "--output", str(output)]) == 0
    rows = list(csv.reader(open(output)))
    assert rows[0] == ["Id", "label"]
    assert [row[0] for row in rows[1:]] == ["0000", "0013", "0027"]
    assert all(row[1] in ("cup", "fork", "spoon") for row in rows[1:])


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


def test_mixed_precision_keeps_float32_probabilities(kaggle_photos: Path, tmp_path: Path):
    config = TrainConfig(
        data=kaggle_photos, weights="none", input_size=71, epochs=1, batch_size=8, mixed_precision="on"
    )
    trained = train_model(config, prepare_data(config), tmp_path)
    assert trained.network.model.output.dtype == "float32"
    np.testing.assert_allclose(trained.report.probabilities.sum(axis=1), 1.0, atol=1e-3)
    # A model trained on a GPU in mixed precision still gets its checked ONNX file for serving.
    stored = bentoml.models.get(store.save_to_store(trained.network.model, "mixed_precision_model", {}, {}))
    assert stored.info.metadata["onnx"]["max_abs_difference"] <= store.ONNX_TOLERANCE
    assert (Path(stored.path) / "model.onnx").is_file()


def test_balanced_class_weights():
    weights = balanced_class_weights(np.array([0, 0, 0, 1]), 2)
    assert weights == pytest.approx({0: 4 / 6, 1: 2.0})


def tiny_model() -> keras.Model:
    """8x8 photos, 2 classes: for what is about the files, not the training."""
    return keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")]
    )


def test_a_failed_onnx_export_keeps_the_trained_model(monkeypatch: pytest.MonkeyPatch, capsys):
    from kitchenware.inference import open_classifier

    def refuse(model, path):
        raise ValueError("the ONNX export differs from the Keras model by 3.00e-01")

    monkeypatch.setattr(store, "export_onnx", refuse)
    stored = bentoml.models.get(store.save_to_store(tiny_model(), "no_onnx_model", {}, {}))
    assert "differs" in stored.info.metadata["onnx"]["error"]
    assert "KITCHENWARE_RUNTIME=tensorflow" in capsys.readouterr().out
    assert (Path(stored.path) / "model.keras").is_file() and not (Path(stored.path) / "model.onnx").exists()
    with pytest.raises(FileNotFoundError, match="KITCHENWARE_RUNTIME=tensorflow"):
        open_classifier(stored.path, "onnx", threads=1, input_size=8)
    assert open_classifier(stored.path, "tensorflow", threads=1, input_size=8).probabilities(
        np.zeros((1, 8, 8, 3), np.uint8)
    ).shape == (1, 2)


def test_a_model_imported_before_onnx_export_is_imported_again_with_it(tmp_path: Path):
    import hashlib

    import keras

    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")]
    )
    model.save(tmp_path / "model.keras")
    (tmp_path / "model_card.json").write_text(json.dumps({"name": "imported_model", "input_size": 8}))
    digest = hashlib.sha256((tmp_path / "model.keras").read_bytes()).hexdigest()
    with bentoml.models.create("imported_model", metadata={"input_size": 8, "file_sha256": digest}) as old:
        shutil.copyfile(tmp_path / "model.keras", old.path_of("model.keras"))  # as the first version stored it

    tag, imported = store.import_exported(tmp_path / "model.keras")
    assert imported and tag != str(old.tag)
    assert (Path(bentoml.models.get(tag).path) / "model.onnx").is_file()
    assert store.import_exported(tmp_path / "model.keras") == (tag, False)
