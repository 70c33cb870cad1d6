"""`predict --engine ray` as a user runs it: on a real two-node Ray cluster row for row against the local
`predict`, through an actor killed mid-job, and over 5,000 photo paths with the memory of each actor measured."""

import csv
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.csv
import pyarrow.parquet
import pytest
from ray_cluster import ray_cluster
from sample_data import MORE_PHOTOS, REAL_PHOTOS, ROOT, needs_shipped_model_and_photos
from tiny_model import write_tiny_model

from kitchenware.core.preprocessing import ImageError, load_image

CLASSES = ("cup", "fork", "glass", "knife", "plate", "spoon")


def train_py(*arguments: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "train.py", *arguments], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


def peak_memory(stdout: str) -> dict[int, float]:
    """pid -> MB from the line `peak memory of the N actor process(es): host:pid 612 MB, ...`."""
    return {int(pid): float(mb) for pid, mb in re.findall(r":(\d+) (\d+) MB", stdout)}


def photo_list(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="") as file:
        csv.writer(file).writerows([("Id", "path"), *rows])
    return path


@pytest.fixture(scope="module")
def cluster():
    """A head and a worker node of one CPU each: the pool's two actors run one on each."""
    with ray_cluster(workers=1, cpus_per_node=1) as running:
        yield running


@pytest.fixture(scope="module")
def photo_tree(tmp_path_factory) -> Path:
    """Up to six photos of each class of kitchenware-photos-more, and a file that is not a photo."""
    tree = tmp_path_factory.mktemp("tree")
    for name in CLASSES:
        (tree / name).mkdir()
        for photo in sorted((MORE_PHOTOS / name).iterdir())[:6]:
            shutil.copy(photo, tree / name)
    (tree / "cup" / "notes.jpg").write_text("not a photo")
    return tree


@needs_shipped_model_and_photos
def test_two_nodes_give_the_local_predict_rows_and_an_error_row_for_a_bad_photo(cluster, photo_tree, tmp_path):
    predict = ["predict", "--model", "models", "--input", str(photo_tree)]
    local = train_py(*predict, "--output", str(tmp_path / "local.csv"), "--probabilities")
    assert local.returncode == 0, local.stderr
    on_ray = train_py(
        *predict,
        "--output",
        str(tmp_path / "ray"),
        "--engine",
        "ray",
        "--address",
        cluster.address,
        env=cluster.environment(),
    )
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    print(on_ray.stdout)
    photos = len(list(photo_tree.rglob("*.*")))  # the readable ones and notes.jpg
    assert "Ray: 2 node(s), 2 CPUs" in on_ray.stderr
    assert f"{photos} predictions by models on Ray, 2 actor(s) x 1 thread(s)" in on_ray.stdout
    assert "unreadable 1" in on_ray.stdout and len(peak_memory(on_ray.stdout)) == 2

    expected = {row["Id"]: row for row in csv.DictReader(open(tmp_path / "local.csv"))}
    rows = {row["Id"]: row for row in pyarrow.parquet.read_table(tmp_path / "ray").to_pylist()}
    assert len(rows) == photos and len(expected) == photos - 1
    bad = rows.pop("cup/notes")
    assert bad["label"] is None and bad["decision"] is None and bad["confidence"] is None
    with pytest.raises(ImageError) as decoding:
        load_image(photo_tree / "cup" / "notes.jpg")
    assert bad["error"] == str(decoding.value)  # "not a readable image (unknown format): send a JPEG, ..."
    assert rows.keys() == expected.keys()
    for photo_id, row in rows.items():
        written = {name: row[name] if isinstance(row[name], str) else f"{row[name]:.6f}" for name in expected[photo_id]}
        assert written == expected[photo_id] and row["error"] is None


@needs_shipped_model_and_photos
def test_an_actor_killed_mid_job_is_replaced_and_every_photo_is_written_once(cluster, tmp_path):
    photos = sorted((REAL_PHOTOS / "images").iterdir())[:200]
    listing = photo_list(tmp_path / "photos.csv", [(photo.stem, str(photo)) for photo in photos])
    predict = ["predict", "--model", "models", "--input", str(listing), "--output", str(tmp_path / "out")]
    job = subprocess.Popen(
        [sys.executable, "train.py", *predict, "--engine", "ray", "--address", cluster.address],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cluster.environment(),
    )
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and job.poll() is None and time.monotonic() < deadline:
        for process in cluster.processes():
            try:
                # An actor that has loaded the model (~2 s of CPU) and classified some 20 photos since.
                if "ClassifyPhotos" in " ".join(process.cmdline()) and sum(process.cpu_times()[:2]) > 4:
                    process.kill()
                    killed = process.pid
                    break
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.2)
    assert killed is not None, "no actor was seen working before the job ended"
    stdout, stderr = job.communicate(timeout=600)
    assert job.returncode == 0, stderr[-3000:]
    print(stdout)  # each actor's peak memory, for the README (pytest -s)
    rows = pyarrow.parquet.read_table(tmp_path / "out").to_pylist()
    assert sorted(row["Id"] for row in rows) == sorted(photo.stem for photo in photos)
    assert all(row["error"] is None and row["label"] in CLASSES for row in rows)
    processes = peak_memory(stdout)
    assert killed in processes and len(processes) == 3  # the killed actor, its replacement, the other one


def test_5000_photo_paths_finish_with_bounded_memory_per_actor(tmp_path):
    """The shared photos repeated by path, with the tiny model: the batch machinery, not Xception's speed."""
    model = write_tiny_model(tmp_path / "model")
    photos = sorted((REAL_PHOTOS / "images").iterdir())
    if not photos:
        pytest.skip(f"the shared photos ({REAL_PHOTOS}) are absent on this machine")
    rows = [(f"{n:04d}-{photos[n % len(photos)].stem}", str(photos[n % len(photos)])) for n in range(4998)]
    shutil.copy(photos[0], tmp_path / "beside.jpg")
    rows += [("relative", "beside.jpg"), ("missing", str(tmp_path / "missing.jpg"))]
    listing = photo_list(tmp_path / "catalogue.csv", rows)
    predict = ["predict", "--model", str(model), "--input", str(listing), "--output", str(tmp_path / "out")]
    result = train_py(*predict, "--engine", "ray", "--actors", "2", "--format", "csv")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "5000 predictions by" in result.stdout and "unreadable 1" in result.stdout
    print(result.stdout)  # the throughput and each actor's peak memory, for the README (pytest -s)
    options = pyarrow.csv.ConvertOptions(column_types={"Id": "string"}, strings_can_be_null=True)
    written = pyarrow.csv.read_csv(next((tmp_path / "out").iterdir()), convert_options=options).to_pylist()
    assert sorted(row["Id"] for row in written) == sorted(photo_id for photo_id, _ in rows)
    errors = {row["Id"]: row["error"] for row in written if row["error"] is not None}
    assert list(errors) == ["missing"] and errors["missing"].startswith(f"cannot read {tmp_path / 'missing.jpg'}")
    memory = peak_memory(result.stdout)
    assert len(memory) == 2 and max(memory.values()) < 600
