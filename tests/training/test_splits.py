"""Splitting labelled photos, and streaming them to Keras."""

import csv
from pathlib import Path

import pytest
from sample_data import write_kaggle

from kitchenware.core import photos as files
from kitchenware.training import datasets, splits


def test_class_too_small_to_split(tmp_path: Path):
    photos = files.find_photos(write_kaggle(tmp_path / "small", {"cup": 5, "fork": 1}))
    with pytest.raises(files.DataError, match=r"fewer than 2 images .* \{'fork': 1\}"):
        splits.stratified_split(photos.samples, 0.2, seed=1)


def test_split_is_stratified_reproducible_and_saved(kaggle_photos: Path, tmp_path: Path):
    samples = files.find_photos(kaggle_photos).samples
    train, val = splits.stratified_split(samples, 0.25, seed=7)
    assert sorted(s.label for s in val) == ["cup"] * 3 + ["fork"] * 2 + ["spoon"] * 2
    assert not {s.id for s in train} & {s.id for s in val}
    assert len(train) + len(val) == 30
    again_train, again_val = splits.stratified_split(list(reversed(samples)), 0.25, seed=7)
    assert [s.id for s in again_val] == [s.id for s in val]
    other_seed = splits.stratified_split(samples, 0.25, seed=8)[1]
    assert [s.id for s in other_seed] != [s.id for s in val]
    splits.write_split(train, val, tmp_path / "split.csv")
    rows = list(csv.DictReader(open(tmp_path / "split.csv")))
    assert [row["Id"] for row in rows if row["subset"] == "validation"] == [s.id for s in val]


def test_every_class_keeps_an_image_on_each_side(tmp_path: Path):
    photos = files.find_photos(write_kaggle(tmp_path / "few", {"cup": 20, "fork": 2, "spoon": 4}))
    train, val = splits.stratified_split(photos.samples, 0.2, seed=0)
    assert sorted({s.label for s in val}) == sorted({s.label for s in train}) == ["cup", "fork", "spoon"]


def test_image_dataset_gives_resized_pixels_and_labels(kaggle_photos: Path):
    photos = files.find_photos(kaggle_photos)
    labels = files.label_indices(photos.samples, photos.class_names)
    images, batch_labels = next(iter(datasets.image_dataset([s.path for s in photos.samples], labels, 24, 8)))
    assert images.shape == (8, 24, 24, 3) and images.dtype.name == "uint8"
    assert batch_labels.numpy().tolist() == labels[:8].tolist()
