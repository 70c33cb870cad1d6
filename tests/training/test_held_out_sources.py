"""Validation that sees a shift: each origin held out in turn, or one (`--validate-on`), on real photos of two
sources (ImageNet Xception at 71x71: real features, so that near-duplicates are real ones)."""

import csv
import json
import shutil
from pathlib import Path

import bentoml
import numpy as np
import pytest
from sample_data import IMAGENET_WEIGHTS, REAL_PHOTOS, needs_real_data

from kitchenware.cli import main
from kitchenware.core.card import ModelCard
from kitchenware.core.photos import DataError, Sample
from kitchenware.training.splits import origin_rows

pytestmark = needs_real_data()
PER_CLASS = {"cup": 8, "knife": 8, "spoon": 8}


def class_folders(destination: Path, skip: int) -> Path:
    """8 real photos of three classes from the shared set, from the `skip`-th of each class on."""
    with open(REAL_PHOTOS / "train.csv") as file:
        rows = list(csv.DictReader(file))
    for label, count in PER_CLASS.items():
        (destination / label).mkdir(parents=True)
        for row in [row for row in rows if row["label"] == label and len(row["Id"]) > 4][skip : skip + count]:
            shutil.copy(REAL_PHOTOS / "images" / f"{row['Id']}.jpg", destination / label)
    return destination


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sources")
    return class_folders(root / "studio", 0), class_folders(root / "market", 40)


def train(sources: tuple[Path, ...], name: str, run_dir: Path, *options: str) -> ModelCard:
    data = [argument for source in sources for argument in ("--data", str(source))]
    small = ["--weights", str(IMAGENET_WEIGHTS), "--input-size", "71", "--augment-views", "0"]
    assert main(["train", *data, *small, "--name", name, "--run-dir", str(run_dir), *options]) == 0
    return ModelCard.from_metadata(bentoml.models.get(f"{name}:latest").info.metadata)


def test_each_source_held_out_in_turn_fits_the_unknown_threshold(two_sources, tmp_path: Path):
    card = train(two_sources, "held_out_sources", tmp_path, "--cross-validate", "sources")
    figures = json.loads((tmp_path / "cross_validation.json").read_text())
    assert figures["folds"] == "sources" and set(figures["held_out"]) == {"studio", "market"}
    assert {row["photos"] for row in figures["held_out"].values()} == {24}  # each source once, whole
    assert figures["photos"] == 48 and 0 <= figures["accuracy_pooled"] <= 1
    assert card.cross_validation == figures
    held_out = figures["unknown_thresholds"]
    assert card.ood.held_out == held_out and card.ood.k == 10 and card.ood.accept == 0.97
    assert card.ood.threshold == pytest.approx(np.median(list(held_out.values())), abs=1e-4)
    assert "each held out in turn" in card.ood.fit_on
    assert "each origin held out in turn" in card.calibration.temperature_and_unsure_fit_on


def test_validate_on_one_origin_trains_on_the_others(two_sources, tmp_path: Path):
    origins = tmp_path / "origins.csv"
    photos = sorted(path.relative_to(two_sources[0]) for path in two_sources[0].rglob("*.jpg"))
    with open(origins, "w", newline="") as file:  # half of studio's photos were taken at a fair
        csv.writer(file).writerows([("source", "Id", "origin"), *(("studio", str(p), "fair") for p in photos[::2])])
    options = ["--origins", str(origins), "--validate-on", "fair", "--cross-validate", "sources"]
    card = train(two_sources, "validated_on_fair", tmp_path, *options)
    rows = list(csv.DictReader(open(tmp_path / "split.csv")))
    validation = {row["Id"] for row in rows if row["subset"] == "validation"}
    assert validation == {str(p) for p in photos[::2]}
    assert {row["origin"] for row in rows if row["subset"] == "train"} == {"studio", "market"}
    assert card.dataset["split"] == "origin" and card.validation.images == len(validation)
    # The held-out origin stays unseen: neither cross-validation nor the thresholds fit on it.
    assert set(card.cross_validation["held_out"]) == set(card.ood.held_out) == {"studio", "market"}
    assert card.cross_validation["photos"] == 48 - len(validation)


def test_a_held_out_origin_keeps_its_near_duplicates_off_the_training_side():
    samples = [Sample(str(n), Path(f"{n}.jpg"), "cup" if n % 2 else "fork", "a" if n < 4 else "b") for n in range(8)]
    groups = np.array([0, 1, 2, 3, 3, 5, 6, 7])  # photo 4 (of b) is a near-duplicate of photo 3 (of a)
    train_rows, val_rows = origin_rows(samples, "a", groups)
    assert val_rows == [0, 1, 2, 3] and train_rows == [5, 6, 7]
    with pytest.raises(DataError, match="no photo comes from 'c': the origins of these photos are a, b"):
        origin_rows(samples, "c", groups)
    only_forks = [s for s in samples if s.label == "fork" or s.source == "a"]
    with pytest.raises(DataError, match="holding out 'a' leaves no training photo of cup"):
        origin_rows(only_forks, "a", None)


def test_options_that_do_not_go_together_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--data", "x", "--cross-validate", "three"])
    assert "--cross-validate takes a number of folds or 'sources', not 'three'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--data", "x", "--augment"])
    assert "the probe head is fit on cached backbone features" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--data", "x", "--tensorboard"])
    assert "--tensorboard logs Keras epochs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--data", "x", "--lr", "0.1", "0.01"])
    assert "--lr and --dropout sweeps train the dense head" in capsys.readouterr().err
