"""Several data sources, the data health check and the grouped split, on photos the tests make."""

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sample_data import photo, write_folders, write_kaggle

from kitchenware.core.photos import find_photos
from kitchenware.training.duplicates import near_duplicate_groups
from kitchenware.training.health import check
from kitchenware.training.splits import grouped_split


def test_sources_of_both_layouts_merge_with_the_union_of_their_classes(tmp_path: Path):
    kaggle = write_kaggle(tmp_path / "kaggle", {"cup": 4, "fork": 3})
    folders = write_folders(tmp_path / "folders", {"fork": 2, "spoon": 5})
    photos = find_photos(kaggle, folders)
    assert photos.class_names == ["cup", "fork", "spoon"]
    assert photos.counts() == {"cup": 4, "fork": 5, "spoon": 5}
    assert photos.counts_by_source() == {
        "kaggle": {"cup": 4, "fork": 3, "spoon": 0},
        "folders": {"cup": 0, "fork": 2, "spoon": 5},
    }
    assert photos.layout == "kaggle+folders"
    assert len({(s.source, s.id) for s in photos.samples}) == 14


def test_one_source_may_hold_a_single_class_when_another_completes_it(tmp_path: Path):
    only_forks = write_folders(tmp_path / "forks", {"fork": 3})
    photos = find_photos(write_folders(tmp_path / "more", {"cup": 2, "spoon": 2}), only_forks)
    assert photos.counts() == {"cup": 2, "fork": 3, "spoon": 2}


def test_near_duplicate_groups_join_chains_of_similar_features():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(4, 32))
    features = np.concatenate([base, base[:2] + rng.normal(0, 0.01, (2, 32))])  # photos 4, 5 copy 0, 1
    groups = near_duplicate_groups(features)
    assert groups[4] == groups[0] and groups[5] == groups[1] and len(set(groups.tolist())) == 4


def test_grouped_split_keeps_every_group_on_one_side(tmp_path: Path):
    photos = find_photos(write_kaggle(tmp_path / "kaggle", {"cup": 20, "fork": 20, "spoon": 20}))
    groups = np.arange(60) // 3  # 20 groups of 3 photos, each group within one class
    train, val = grouped_split(photos.samples, groups, 0.2, seed=1)
    group_of = dict(zip(photos.samples, groups.tolist()))
    assert not {group_of[s] for s in train} & {group_of[s] for s in val}
    assert len(val) == 12 and sorted({s.label for s in val}) == ["cup", "fork", "spoon"]
    assert grouped_split(photos.samples, groups, 0.2, seed=1) == (train, val)  # seeded


def test_too_few_groups_to_split_is_a_clear_error(tmp_path: Path):
    photos = find_photos(write_kaggle(tmp_path / "kaggle", {"cup": 6, "fork": 6}))
    with pytest.raises(ValueError, match="only 2 groups of near-duplicates.*--split stratified"):
        grouped_split(photos.samples, np.array([0] * 6 + [1] * 6), 0.2, seed=0)


def test_health_check_finds_planted_duplicates_a_tiny_photo_a_wide_one_and_an_unreadable_file(tmp_path: Path):
    root = write_folders(tmp_path / "photos", {"cup": 6, "fork": 6})
    for path in root.rglob("*.png"):  # photo-sized, not the generated 40x32
        Image.open(path).resize((120, 90)).save(path)
    (root / "cup" / "copy.png").write_bytes((root / "cup" / "0.png").read_bytes())  # exact duplicate
    photo((200, 40, 40), 99, size=(30, 20)).save(root / "cup" / "tiny.png")
    photo((200, 40, 40), 98, size=(400, 100)).save(root / "fork" / "wide.png")
    (root / "fork" / "broken.jpg").write_bytes(b"not a photo")
    from kitchenware.core.photos import drop_unreadable

    photos = find_photos(root)
    readable, unreadable = drop_unreadable(photos.samples)
    photos = photos.keep(readable)
    features = np.random.default_rng(0).normal(size=(len(readable), 16))
    row = {s.id: i for i, s in enumerate(readable)}
    features[row["cup/copy.png"]] = features[row["cup/0.png"]]  # the same bytes, the same features
    features[row["fork/1.png"]] = features[row["fork/0.png"]] * 1.01  # as a resized copy would be
    report = check(photos, unreadable, features)
    assert [s.id for s, _ in report.unreadable] == ["fork/broken.jpg"]
    assert [sorted(s.id for s in same) for same in report.exact_duplicates] == [["cup/0.png", "cup/copy.png"]]
    assert sorted(s.id for group in report.near_duplicates for s in group) == [
        "cup/0.png",
        "cup/copy.png",
        "fork/0.png",
        "fork/1.png",
    ]
    assert [s.id for s, _ in report.tiny] == ["cup/tiny.png"]
    assert [s.id for s, _ in report.extreme_aspect] == ["fork/wide.png"]
    markdown = report.markdown()
    assert "exact duplicates (same bytes): 1 sets" in markdown and "cup/tiny.png: 30x20" in markdown
    report.write(tmp_path / "report")
    assert Image.open(tmp_path / "report" / "near_duplicates.png").size[0] > 100


def test_train_check_and_cross_validate_commands_run_as_the_readme_shows(tmp_path: Path):
    from kitchenware.cli import main

    one = write_kaggle(tmp_path / "one", {"cup": 10, "fork": 10, "spoon": 10})
    two = write_folders(tmp_path / "two", {"cup": 5, "fork": 5, "spoon": 5})
    small = ["--arch", "xception", "--weights", "none", "--input-size", "71", "--batch-size", "8", "--epochs", "2"]
    assert (
        main(["check", "--data", str(one), "--data", str(two), "--weights", "none", "--out", str(tmp_path / "c")]) == 0
    )
    assert "| two | 5 | 5 | 5 | 15 |" in (tmp_path / "c" / "check.md").read_text()
    run = tmp_path / "run"
    arguments = [
        "train",
        "--data",
        str(one),
        "--data",
        str(two),
        *small,
        "--split",
        "stratified",
        "--run-dir",
        str(run),
    ]
    assert main([*arguments, "--name", "two_sources"]) == 0
    rows = list(csv.DictReader(open(run / "split.csv")))
    assert {row["source"] for row in rows} == {"one", "two"} and len(rows) == 45
