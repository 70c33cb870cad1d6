"""`kitchenware train --engine ray`: the backbone's features extracted by Ray Data actors are the ones the local
extraction computes (the photos and their augmented views), so the head trains to the same model."""

import dataclasses
from pathlib import Path

import bentoml
import pytest

from kitchenware.cli import main
from kitchenware.core.card import ModelCard

SMALL_XCEPTION = ["--weights", "none", "--input-size", "71", "--batch-size", "8", "--split", "stratified"]


def card(name: str) -> ModelCard:
    return ModelCard.from_metadata(bentoml.models.get(f"{name}:latest").info.metadata)


def test_training_on_ray_saves_the_model_local_training_saves(kaggle_photos: Path, tmp_path: Path, capsys):
    common = ["train", "--data", str(kaggle_photos), *SMALL_XCEPTION, "--epochs", "2", "--augment-views", "1"]
    assert main([*common, "--name", "local_features", "--run-dir", str(tmp_path / "local")]) == 0
    assert main([*common, "--name", "ray_features", "--run-dir", str(tmp_path / "ray"), "--engine", "ray"]) == 0
    log = capsys.readouterr().err
    # The health check's pass over every photo, then the augmented views of the training photos.
    assert "features of 30 photos on Ray (2 actors)" in log and "features of 24 photos on Ray (2 actors)" in log
    local, on_ray = card("local_features"), card("ray_features")
    assert on_ray.validation == local.validation and on_ray.dataset == local.dataset
    # The actors run the backbone one thread each, on batches of another size: on some CPUs oneDNN then takes other
    # kernels and the features differ in float32's last bits, which the "unknown" threshold (a distance) shows in its
    # ninth digit (0.17531142993852017 against 0.17531143045801048 on an AVX2 machine, 2026-12-07), and the probe,
    # fit exactly on them, passes on to the temperature.
    assert on_ray.temperature == pytest.approx(local.temperature, rel=1e-6)
    assert on_ray.ood.threshold == pytest.approx(local.ood.threshold, rel=1e-6)
    assert dataclasses.replace(on_ray.ood, threshold=local.ood.threshold) == local.ood
