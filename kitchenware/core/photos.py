"""Photos on disk: find labelled ones (Kaggle CSV or class folders) or any tree of them, and check they decode.

Training, evaluation, prediction and batch jobs all list photos through here, so they agree on what a
photo, its Id and its label are.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kitchenware.core.preprocessing import ImageError, load_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".heic", ".heif"}
KAGGLE_CSV = "train.csv"


class DataError(ValueError):
    """The data folder cannot be used as it is; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Sample:
    """One labelled photo; `id` is the Kaggle Id or the path relative to its data folder, `source` that folder's
    name (unique among the sources of one run), `origin` where the photo was taken or found when the folder mixes
    several such places (`--origins`; empty: the source is its origin)."""

    id: str
    path: Path
    label: str
    source: str = ""
    origin: str = ""

    @property
    def where(self) -> str:
        """The photo's origin: its own when given, else its source's."""
        return self.origin or self.source


@dataclass(frozen=True)
class Source:
    """One --data folder: where it is, its layout and how many photos of each class it holds."""

    name: str
    root: Path | str  # the folder, or the source as given (`feedback:<URL>`)
    layout: str  # "kaggle", "folders" or a reader's own ("feedback")
    counts: dict[str, int]


@dataclass(frozen=True)
class LabelledPhotos:
    samples: list[Sample]
    class_names: list[str]
    sources: tuple[Source, ...]

    @property
    def layout(self) -> str:
        return "+".join(dict.fromkeys(source.layout for source in self.sources))

    def counts(self) -> dict[str, int]:
        counts = Counter(sample.label for sample in self.samples)
        return {name: counts[name] for name in self.class_names}

    def counts_by_source(self) -> dict[str, dict[str, int]]:
        counts = Counter((sample.source, sample.label) for sample in self.samples)
        return {source.name: {name: counts[source.name, name] for name in self.class_names} for source in self.sources}

    def keep(self, samples: list[Sample]) -> LabelledPhotos:
        """The same sources with only these samples (e.g. the readable ones)."""
        return LabelledPhotos(samples, self.class_names, self.sources)


SourceReader = Callable[[str], tuple[str, list[Sample]]]  # "feedback:<URL>" -> (layout, samples)


def find_photos(*data_dirs: str | Path, readers: dict[str, SourceReader] | None = None) -> LabelledPhotos:
    """Read one or more data sources, each a folder in the Kaggle layout (train.csv + images/) or one folder per
    class, or `scheme:location` for a reader given in `readers` (the feedback store: `feedback:<URL>`);
    the class names are the union of theirs."""
    if not data_dirs:
        raise DataError("no data folder given: pass --data with a folder of labelled photos")
    samples, sources = [], []
    for source in map(str, data_dirs):
        scheme, _, location = source.partition(":")
        reader = (readers or {}).get(scheme) if location else None
        root = Path(source)
        name = scheme if reader else root.resolve().name
        name = name if name not in {source.name for source in sources} else f"{name}-{len(sources) + 1}"
        layout, found = reader(location) if reader else _read_source(root)
        found = [Sample(sample.id, sample.path, sample.label, name) for sample in found]
        samples += found
        sources.append(
            Source(
                name,
                source if reader else root,
                layout,
                dict(sorted(Counter(sample.label for sample in found).items())),
            )
        )
    class_names = sorted({sample.label for sample in samples})
    if len(class_names) < 2:
        raise DataError(
            f"{', '.join(map(str, data_dirs))}: {len(class_names)} class(es) ({', '.join(class_names) or 'none'}); "
            "a classifier needs at least two"
        )
    return LabelledPhotos(samples, class_names, tuple(sources))


def _read_source(root: Path) -> tuple[str, list[Sample]]:
    if not root.is_dir():
        raise DataError(
            f"data folder {root} does not exist: pass --data with the folder holding train.csv and images/, "
            "or one folder per class"
        )
    if (root / KAGGLE_CSV).is_file():
        return "kaggle", _read_kaggle(root)
    if any(child.is_dir() for child in root.iterdir()):
        return "folders", _read_class_folders(root)
    raise DataError(
        f"{root} has neither {KAGGLE_CSV} (Kaggle layout: train.csv with Id,label and images/<Id>.jpg) "
        "nor class folders (<label>/*.jpg): point --data at one of those layouts"
    )


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
    """<label>/**/<photo>: every image under a class folder, in subfolders too, labelled by the class folder."""
    samples = []
    for folder in sorted(child for child in root.iterdir() if child.is_dir() and not child.name.startswith(".")):
        for path in sorted(folder.rglob("*")):
            hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and not hidden:
                samples.append(Sample(str(path.relative_to(root)), path, folder.name))
    if not samples:
        raise DataError(f"the class folders in {root} hold no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return samples


def drop_unreadable(samples: list[Sample], workers: int = 4) -> tuple[list[Sample], list[tuple[Sample, str]]]:
    """Decode every photo once; return the readable ones and (sample, reason) for each one skipped,
    each of which is also logged as a warning so that training goes on without losing track of it."""

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
        log.warning("skipped unreadable image %s: %s", sample.path, reason)
    return readable, skipped


def fingerprint(samples: list[Sample]) -> str:
    """SHA-256 over every (source, Id, label, file bytes), in that order: the same photos and labels give the
    same value."""
    digest = hashlib.sha256()
    for sample in sorted(samples, key=lambda sample: (sample.source, sample.id)):
        digest.update(f"{sample.source}\t{sample.id}\t{sample.label}\n".encode())
        digest.update(sample.path.read_bytes())
    return digest.hexdigest()


def label_indices(samples: list[Sample], class_names: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(class_names)}
    return np.array([index[sample.label] for sample in samples], dtype=np.int32)


def unlabelled_images(source: str | Path) -> list[Sample]:
    """Photos to classify: one photo, Kaggle's test.csv + images/, or every image file under a folder, recursively.

    The Id is the path relative to the folder, without its suffix ("0042" or "cup/0042"; a single photo's is its name
    without the suffix). A photo inside a first-level folder gets that folder's name as its label, so a class-folder
    tree can be scored; photos lying at the top level get an empty label.
    """
    root = Path(source)
    if root.is_file():
        if root.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(
                f"{root} is not a photo ({', '.join(sorted(IMAGE_SUFFIXES))}): pass a photo, a folder of photos or "
                "Kaggle's folder with test.csv"
            )
        return [Sample(root.stem, root, "")]
    if not root.is_dir():
        raise DataError(f"{root} does not exist: pass a photo, a folder of photos or Kaggle's folder with test.csv")
    if (root / "test.csv").is_file():
        with open(root / "test.csv", newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            if "Id" not in (reader.fieldnames or []):
                raise DataError(f"{root / 'test.csv'} has no 'Id' column (Kaggle's test.csv has one)")
            return [Sample(row["Id"].strip(), root / "images" / f"{row['Id'].strip()}.jpg", "") for row in reader]
    samples = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        hidden = any(part.startswith(".") for part in relative.parts)
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and not hidden:
            label = relative.parts[0] if len(relative.parts) > 1 else ""
            samples.append(Sample(str(relative.with_suffix("")), path, label))
    if not samples:
        raise DataError(
            f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}), in any subfolder, and no test.csv"
        )
    return samples
