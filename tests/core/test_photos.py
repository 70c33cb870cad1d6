"""Finding and checking photos: both labelled layouts, any folder tree, unreadable files."""

from pathlib import Path

import pytest
from sample_data import write_kaggle

from kitchenware.core import photos as files


def test_kaggle_layout_keeps_zero_padded_ids(kaggle_photos: Path):
    photos = files.find_photos(kaggle_photos)
    assert photos.layout == "kaggle"
    assert photos.class_names == ["cup", "fork", "spoon"]
    assert photos.counts() == {"cup": 12, "fork": 10, "spoon": 8}
    assert photos.samples[0].id == "0000"
    assert photos.samples[0].path == kaggle_photos / "images" / "0000.jpg"


def test_class_folder_layout(folder_photos: Path):
    photos = files.find_photos(folder_photos)
    assert photos.layout == "folders"
    assert photos.class_names == ["cup", "fork", "spoon"]
    assert photos.samples[0].id == "cup/0.png"
    assert len(photos.samples) == 30


def test_missing_folder_is_a_clear_error(tmp_path: Path):
    with pytest.raises(files.DataError, match="does not exist"):
        files.find_photos(tmp_path / "nowhere")


def test_folder_without_csv_or_class_folders(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(files.DataError, match="neither train.csv"):
        files.find_photos(tmp_path)


def test_csv_without_id_and_label_columns(kaggle_photos: Path):
    (kaggle_photos / "train.csv").write_text("image,class\n0000,cup\n")
    with pytest.raises(files.DataError, match=r"columns \['image', 'class'\]; it needs 'Id' and 'label'"):
        files.find_photos(kaggle_photos)


def test_missing_images_are_counted_and_named(kaggle_photos: Path):
    for image_id in ("0003", "0007", "0011"):
        (kaggle_photos / "images" / f"{image_id}.jpg").unlink()
    with pytest.raises(files.DataError, match=r"3 of 30 Ids .* have no image .* \(first: 0003, 0007, 0011\)"):
        files.find_photos(kaggle_photos)


def test_fewer_than_two_classes(tmp_path: Path):
    with pytest.raises(files.DataError, match=r"1 class\(es\) \(cup\)"):
        files.find_photos(write_kaggle(tmp_path / "one", {"cup": 5}))


def test_corrupt_and_truncated_images_are_reported_and_skipped(kaggle_photos: Path):
    (kaggle_photos / "images" / "0001.jpg").write_bytes(b"this is not a jpeg")
    whole = (kaggle_photos / "images" / "0002.jpg").read_bytes()
    (kaggle_photos / "images" / "0002.jpg").write_bytes(whole[: len(whole) // 2])
    readable, skipped = files.drop_unreadable(files.find_photos(kaggle_photos).samples)
    assert len(readable) == 28
    assert [(sample.id, "readable" in reason or "truncated" in reason) for sample, reason in skipped] == [
        ("0001", True),
        ("0002", True),
    ]


def test_fingerprint_changes_with_a_label(kaggle_photos: Path):
    samples = files.find_photos(kaggle_photos).samples
    relabelled = [files.Sample(s.id, s.path, "fork" if s.id == "0000" else s.label) for s in samples]
    assert files.fingerprint(samples) == files.fingerprint(list(reversed(samples)))
    assert files.fingerprint(samples) != files.fingerprint(relabelled)


def test_any_folder_tree_is_listed_recursively_with_folder_labels(folder_photos: Path):
    (folder_photos / "cup" / "more").mkdir()
    (folder_photos / "cup" / "0.png").rename(folder_photos / "cup" / "more" / "0.png")
    (folder_photos / "loose.png").write_bytes((folder_photos / "fork" / "1.png").read_bytes())
    (folder_photos / ".hidden").mkdir()
    (folder_photos / ".hidden" / "x.png").write_bytes(b"")
    samples = files.unlabelled_images(folder_photos)
    assert len(samples) == 31
    ids = {sample.id: sample.label for sample in samples}
    assert ids["cup/more/0"] == "cup" and ids["fork/1"] == "fork" and ids["loose"] == ""


def test_class_folders_are_read_with_their_subfolders(folder_photos: Path):
    (folder_photos / "cup" / "2024").mkdir()
    (folder_photos / "cup" / "0.png").rename(folder_photos / "cup" / "2024" / "0.png")
    photos = files.find_photos(folder_photos)
    assert len(photos.samples) == 30 and photos.counts()["cup"] == 10
    assert files.Sample("cup/2024/0.png", folder_photos / "cup" / "2024" / "0.png", "cup", "folders") in photos.samples


def test_one_photo_is_listed_by_its_name_and_a_file_that_is_not_a_photo_is_refused(folder_photos: Path):
    assert files.unlabelled_images(folder_photos / "cup" / "0.png") == [
        files.Sample("0", folder_photos / "cup" / "0.png", "")
    ]
    (folder_photos / "notes.txt").write_text("hello")
    with pytest.raises(files.DataError, match=r"notes.txt is not a photo .*: pass a photo, a folder of photos"):
        files.unlabelled_images(folder_photos / "notes.txt")
    with pytest.raises(files.DataError, match=r"nowhere.jpg does not exist: pass a photo, a folder of photos"):
        files.unlabelled_images(folder_photos / "nowhere.jpg")


def test_iphone_photos_are_listed_like_any_other(folder_photos: Path):
    from images import colour_photo, encode

    (folder_photos / "cup" / "iphone.heic").write_bytes(encode(colour_photo(size=(64, 48)), "HEIF", quality=90))
    listed = {sample.id for sample in files.unlabelled_images(folder_photos)}
    found = {sample.id for sample in files.find_photos(folder_photos).samples}
    assert "cup/iphone" in listed and "cup/iphone.heic" in found
    readable, skipped = files.drop_unreadable(files.find_photos(folder_photos).samples)
    assert not skipped and len(readable) == 31
