"""Finding, checking and splitting labelled photos."""

import csv
from pathlib import Path

import pytest
from conftest import write_kaggle

from kitchenware import data


def test_kaggle_layout_keeps_zero_padded_ids(kaggle_photos: Path):
    photos = data.find_photos(kaggle_photos)
    assert photos.layout == "kaggle"
    assert photos.class_names == ["cup", "fork", "spoon"]
    assert photos.counts() == {"cup": 12, "fork": 10, "spoon": 8}
    assert photos.samples[0].id == "0000"
    assert photos.samples[0].path == kaggle_photos / "images" / "0000.jpg"


def test_class_folder_layout(folder_photos: Path):
    photos = data.find_photos(folder_photos)
    assert photos.layout == "folders"
    assert photos.class_names == ["cup", "fork", "spoon"]
    assert photos.samples[0].id == "cup/0.png"
    assert len(photos.samples) == 30


def test_missing_folder_is_a_clear_error(tmp_path: Path):
    with pytest.raises(data.DataError, match="does not exist"):
        data.find_photos(tmp_path / "nowhere")


def test_folder_without_csv_or_class_folders(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(data.DataError, match="neither train.csv"):
        data.find_photos(tmp_path)


def test_csv_without_id_and_label_columns(kaggle_photos: Path):
    (kaggle_photos / "train.csv").write_text("image,class\n0000,cup\n")
    with pytest.raises(data.DataError, match=r"columns \['image', 'class'\]; it needs 'Id' and 'label'"):
        data.find_photos(kaggle_photos)


def test_missing_images_are_counted_and_named(kaggle_photos: Path):
    for image_id in ("0003", "0007", "0011"):
        (kaggle_photos / "images" / f"{image_id}.jpg").unlink()
    with pytest.raises(data.DataError, match=r"3 of 30 Ids .* have no image .* \(first: 0003, 0007, 0011\)"):
        data.find_photos(kaggle_photos)


def test_fewer_than_two_classes(tmp_path: Path):
    with pytest.raises(data.DataError, match=r"1 class\(es\) \(cup\)"):
        data.find_photos(write_kaggle(tmp_path / "one", {"cup": 5}))


def test_class_too_small_to_split(tmp_path: Path):
    photos = data.find_photos(write_kaggle(tmp_path / "small", {"cup": 5, "fork": 1}))
    with pytest.raises(data.DataError, match=r"fewer than 2 images .* \{'fork': 1\}"):
        data.stratified_split(photos.samples, 0.2, seed=1)


def test_corrupt_and_truncated_images_are_reported_and_skipped(kaggle_photos: Path):
    (kaggle_photos / "images" / "0001.jpg").write_bytes(b"this is not a jpeg")
    whole = (kaggle_photos / "images" / "0002.jpg").read_bytes()
    (kaggle_photos / "images" / "0002.jpg").write_bytes(whole[: len(whole) // 2])
    readable, skipped = data.drop_unreadable(data.find_photos(kaggle_photos).samples)
    assert len(readable) == 28
    assert [(sample.id, "readable" in reason or "truncated" in reason) for sample, reason in skipped] == [
        ("0001", True),
        ("0002", True),
    ]


def test_split_is_stratified_reproducible_and_saved(kaggle_photos: Path, tmp_path: Path):
    samples = data.find_photos(kaggle_photos).samples
    train, val = data.stratified_split(samples, 0.25, seed=7)
    assert sorted(s.label for s in val) == ["cup"] * 3 + ["fork"] * 2 + ["spoon"] * 2
    assert not {s.id for s in train} & {s.id for s in val}
    assert len(train) + len(val) == 30
    again_train, again_val = data.stratified_split(list(reversed(samples)), 0.25, seed=7)
    assert [s.id for s in again_val] == [s.id for s in val]
    other_seed = data.stratified_split(samples, 0.25, seed=8)[1]
    assert [s.id for s in other_seed] != [s.id for s in val]
    data.write_split(train, val, tmp_path / "split.csv")
    rows = list(csv.DictReader(open(tmp_path / "split.csv")))
    assert [row["Id"] for row in rows if row["subset"] == "validation"] == [s.id for s in val]


def test_every_class_keeps_an_image_on_each_side(tmp_path: Path):
    photos = data.find_photos(write_kaggle(tmp_path / "few", {"cup": 20, "fork": 2, "spoon": 4}))
    train, val = data.stratified_split(photos.samples, 0.2, seed=0)
    assert sorted({s.label for s in val}) == sorted({s.label for s in train}) == ["cup", "fork", "spoon"]


def test_fingerprint_changes_with_a_label(kaggle_photos: Path):
    samples = data.find_photos(kaggle_photos).samples
    relabelled = [data.Sample(s.id, s.path, "fork" if s.id == "0000" else s.label) for s in samples]
    assert data.fingerprint(samples) == data.fingerprint(list(reversed(samples)))
    assert data.fingerprint(samples) != data.fingerprint(relabelled)


def test_image_dataset_gives_resized_pixels_and_labels(kaggle_photos: Path):
    photos = data.find_photos(kaggle_photos)
    labels = data.label_indices(photos.samples, photos.class_names)
    images, batch_labels = next(iter(data.image_dataset([s.path for s in photos.samples], labels, 24, 8)))
    assert images.shape == (8, 24, 24, 3) and images.dtype.name == "uint8"
    assert batch_labels.numpy().tolist() == labels[:8].tolist()
