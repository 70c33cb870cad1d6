"""Labelled photos: find them (Kaggle CSV or class folders), check them, split them, stream them with tf.data."""

from __future__ import annotations

import csv
import hashlib
import random
import sys
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kitchenware.preprocessing import ImageError, load_image, prepare

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
KAGGLE_CSV = "train.csv"


class DataError(ValueError):
    """The data folder cannot be used as it is; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Sample:
    """One labelled photo; `id` is the Kaggle Id or the path relative to the data folder."""

    id: str
    path: Path
    label: str


@dataclass(frozen=True)
class LabelledPhotos:
    root: Path
    layout: str  # "kaggle" or "folders"
    samples: list[Sample]
    class_names: list[str]

    def counts(self) -> dict[str, int]:
        counts = Counter(sample.label for sample in self.samples)
        return {name: counts[name] for name in self.class_names}


def find_photos(data_dir: str | Path) -> LabelledPhotos:
    """Read a data folder in the Kaggle layout (train.csv + images/) or one folder per class."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(
            f"data folder {root} does not exist: pass --data with the folder holding train.csv and images/, "
            "or one folder per class"
        )
    if (root / KAGGLE_CSV).is_file():
        samples, layout = _read_kaggle(root), "kaggle"
    elif any(child.is_dir() for child in root.iterdir()):
        samples, layout = _read_class_folders(root), "folders"
    else:
        raise DataError(
            f"{root} has neither {KAGGLE_CSV} (Kaggle layout: train.csv with Id,label and images/<Id>.jpg) "
            "nor class folders (<label>/*.jpg): point --data at one of those layouts"
        )
    class_names = sorted({sample.label for sample in samples})
    if len(class_names) < 2:
        raise DataError(
            f"{root} has {len(class_names)} class(es) ({', '.join(class_names) or 'none'}): "
            "a classifier needs at least two"
        )
    return LabelledPhotos(root, layout, samples, class_names)


def _read_kaggle(root: Path) -> list[Sample]:
    with open(root / KAGGLE_CSV, newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)  # values stay strings: Ids such as "0560" keep their zeros
        columns = reader.fieldnames or []
        if "Id" not in columns or "label" not in columns:
            raise DataError(
                f"{root / KAGGLE_CSV} has columns {columns}; it needs 'Id' and 'label' (as Kaggle's train.csv)"
            )
        rows = [(row["Id"].strip(), row["label"].strip()) for row in reader]
    if not rows:
        raise DataError(f"{root / KAGGLE_CSV} lists no images: add rows of Id,label")
    samples = [Sample(image_id, root / "images" / f"{image_id}.jpg", label) for image_id, label in rows]
    missing = [sample.id for sample in samples if not sample.path.is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(samples)} Ids in {root / KAGGLE_CSV} have no image in {root / 'images'} "
            f"(first: {', '.join(missing[:5])}): download the images again or remove those rows"
        )
    return samples


def _read_class_folders(root: Path) -> list[Sample]:
    samples = []
    for folder in sorted(child for child in root.iterdir() if child.is_dir() and not child.name.startswith(".")):
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                samples.append(Sample(str(path.relative_to(root)), path, folder.name))
    if not samples:
        raise DataError(f"the class folders in {root} hold no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return samples


def drop_unreadable(samples: list[Sample], workers: int = 4) -> tuple[list[Sample], list[tuple[Sample, str]]]:
    """Decode every photo once; return the readable ones and (sample, reason) for each one skipped,
    each of which is also reported on stderr so that training goes on without losing track of it."""

    def problem(sample: Sample) -> str | None:
        try:
            load_image(sample.path)
        except ImageError as error:
            return str(error)
        return None

    with ThreadPoolExecutor(workers) as pool:
        problems = list(pool.map(problem, samples))
    readable = [sample for sample, reason in zip(samples, problems) if reason is None]
    skipped = [(sample, reason) for sample, reason in zip(samples, problems) if reason is not None]
    for sample, reason in skipped:
        print(f"skipped unreadable image {sample.path}: {reason}", file=sys.stderr)
    return readable, skipped


def stratified_split(samples: list[Sample], val_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Split each class with the same fraction, reproducibly; every class gets at least one image on each side."""
    if not 0 < val_fraction < 1:
        raise DataError(f"the validation fraction must be between 0 and 1, not {val_fraction}")
    by_label: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_label[sample.label].append(sample)
    too_small = {label: len(group) for label, group in by_label.items() if len(group) < 2}
    if too_small:
        raise DataError(
            f"classes with fewer than 2 images cannot be split into training and validation: {too_small}; "
            "add photos to them or remove those classes"
        )
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda sample: sample.id)
        rng.shuffle(group)
        n_val = min(max(1, round(len(group) * val_fraction)), len(group) - 1)
        val += group[:n_val]
        train += group[n_val:]
    return train, val


def write_split(train: list[Sample], val: list[Sample], path: Path) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["Id", "label", "subset", "path"])
        for subset, samples in (("train", train), ("validation", val)):
            writer.writerows([sample.id, sample.label, subset, str(sample.path)] for sample in samples)


def fingerprint(samples: list[Sample]) -> str:
    """SHA-256 over every (Id, label, file bytes), in Id order: the same photos and labels give the same value."""
    digest = hashlib.sha256()
    for sample in sorted(samples, key=lambda sample: sample.id):
        digest.update(f"{sample.id}\t{sample.label}\n".encode())
        digest.update(sample.path.read_bytes())
    return digest.hexdigest()


def label_indices(samples: list[Sample], class_names: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(class_names)}
    return np.array([index[sample.label] for sample in samples], dtype=np.int32)


def image_dataset(
    paths: list[Path], labels: np.ndarray | None, input_size: int, batch_size: int, shuffle_seed: int | None = None
):
    """tf.data batches of uint8 pixels (with class indices when `labels` is given):
    parallel decode + resize with the shared preprocessing, cached, optionally shuffled, prefetched."""
    import tensorflow as tf

    def decode(path: bytes) -> np.ndarray:
        return prepare(path.decode(), input_size)

    def load(path):
        pixels = tf.numpy_function(decode, [path], tf.uint8, stateful=False)
        return tf.ensure_shape(pixels, (input_size, input_size, 3))

    dataset = tf.data.Dataset.from_tensor_slices([str(path) for path in paths])
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if labels is not None:
        dataset = tf.data.Dataset.zip(dataset, tf.data.Dataset.from_tensor_slices(labels))
    dataset = dataset.cache()
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def unlabelled_images(input_dir: str | Path) -> list[Sample]:
    """Photos to classify: Kaggle's test.csv + images/, or every image file in a folder (label left empty)."""
    root = Path(input_dir)
    if not root.is_dir():
        raise DataError(f"input folder {root} does not exist: pass a folder of photos or Kaggle's folder with test.csv")
    if (root / "test.csv").is_file():
        with open(root / "test.csv", newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            if "Id" not in (reader.fieldnames or []):
                raise DataError(f"{root / 'test.csv'} has no 'Id' column (Kaggle's test.csv has one)")
            return [Sample(row["Id"].strip(), root / "images" / f"{row['Id'].strip()}.jpg", "") for row in reader]
    samples = [
        Sample(path.stem, path, "")
        for path in sorted(root.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    ]
    if not samples:
        raise DataError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}) and no test.csv")
    return samples
