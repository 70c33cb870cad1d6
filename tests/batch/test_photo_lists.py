"""What a job classifies: a folder as the local `predict` lists it, or a CSV/Parquet list, read by Ray Data."""

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet
import pytest

from kitchenware.batch.cluster import connected
from kitchenware.batch.photo_lists import photo_list
from kitchenware.batch.predict import classify_catalogue
from kitchenware.core.photos import DataError, unlabelled_images


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    with connected(None):
        yield


def rows(source: Path) -> list[dict]:
    return sorted(photo_list(str(source), actors=2).take_all(), key=lambda row: row["Id"])


def test_a_folder_gets_the_ids_of_the_local_predict_and_absolute_paths(folder_photos: Path):
    listed = rows(folder_photos)
    local = sorted(unlabelled_images(folder_photos), key=lambda sample: sample.id)
    assert [row["Id"] for row in listed] == [sample.id for sample in local]
    assert [row["path"] for row in listed] == [str(sample.path.resolve()) for sample in local]


def test_a_csv_list_keeps_ids_as_text_and_reads_relative_paths_beside_the_list(tmp_path: Path):
    with open(tmp_path / "list.csv", "w", newline="") as file:
        csv.writer(file).writerows(
            [("Id", "path"), ("0042", "photos/a.jpg"), ("0043", "/data/b.jpg"), ("7", "s3://bucket/c.jpg")]
        )
    assert rows(tmp_path / "list.csv") == [
        {"Id": "0042", "path": str(tmp_path / "photos" / "a.jpg")},
        {"Id": "0043", "path": "/data/b.jpg"},
        {"Id": "7", "path": "s3://bucket/c.jpg"},
    ]


def test_a_parquet_list_without_ids_names_each_photo_by_its_path(tmp_path: Path):
    pyarrow.parquet.write_table(pa.table({"path": ["/data/a.jpg", "gs://bucket/b.png"]}), tmp_path / "list.parquet")
    assert rows(tmp_path / "list.parquet") == [
        {"Id": "/data/a.jpg", "path": "/data/a.jpg"},
        {"Id": "gs://bucket/b.png", "path": "gs://bucket/b.png"},
    ]


def test_a_list_without_a_path_column_says_what_it_needs(tmp_path: Path):
    (tmp_path / "list.csv").write_text("Id,file\n1,a.jpg\n")
    with pytest.raises(DataError, match=r"list.csv has columns \['Id', 'file'\]; a photo list needs 'path'"):
        photo_list(str(tmp_path / "list.csv"), actors=1)


def test_a_list_without_rows_says_so(tmp_path: Path):
    (tmp_path / "list.csv").write_text("Id,path\n")
    with pytest.raises(DataError, match="list.csv lists no photos: add a row with a 'path' for each photo"):
        photo_list(str(tmp_path / "list.csv"), actors=1)


def test_a_job_never_writes_into_an_existing_folder(folder_photos: Path, tmp_path: Path):
    (tmp_path / "out").mkdir()
    with pytest.raises(DataError, match="out already exists: choose a new folder for the results, or remove it"):
        classify_catalogue(Path("models"), str(folder_photos), str(tmp_path / "out"))
