"""Training and validation splits: stratified by class, reproducible, written down with the run; grouped so that
near-duplicate photos never sit on both sides."""

from __future__ import annotations

import csv
import random
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from kitchenware.core.photos import DataError, Sample

SPLIT_CSV = "split.csv"  # in a run folder and beside an exported model: which photos it trained and validated on


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


def grouped_split(
    samples: list[Sample], groups: np.ndarray, val_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Like stratified_split, but every group of near-duplicates lands whole on one side (scikit-learn's
    StratifiedGroupKFold with 1/val_fraction folds; its first fold is the validation split)."""
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0 < val_fraction < 1:
        raise DataError(f"the validation fraction must be between 0 and 1, not {val_fraction}")
    labels = [sample.label for sample in samples]
    small = {label: count for label, count in Counter(labels).items() if count < 2}
    if small:
        raise DataError(
            f"classes with fewer than 2 images cannot be split into training and validation: {small}; "
            "add photos to them or remove those classes"
        )
    n_splits = max(2, round(1 / val_fraction))
    if len(set(groups.tolist())) < n_splits:
        raise DataError(
            f"the {len(samples)} photos form only {len(set(groups.tolist()))} groups of near-duplicates, too few to "
            f"hold out {val_fraction:.0%} of them: add more varied photos, or pass --split stratified to split the "
            "photos one by one (validation will then flatter the model)"
        )
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train_rows, val_rows = next(folds.split(np.zeros(len(samples)), labels, groups))
    return [samples[i] for i in train_rows], [samples[i] for i in val_rows]


def origin_rows(samples: list[Sample], origin: str, groups: np.ndarray | None) -> tuple[list[int], list[int]]:
    """(training rows, validation rows): the photos of `origin` validate; the others train, except those of a
    near-duplicate group that has a photo on the validation side (a copy would flatter the held-out figure)."""
    origins = sorted({sample.where for sample in samples})
    if origin not in origins:
        raise DataError(f"no photo comes from {origin!r}: the origins of these photos are {', '.join(origins)}")
    val_rows = [i for i, sample in enumerate(samples) if sample.where == origin]
    held_groups = set() if groups is None else {groups[i] for i in val_rows}
    train_rows = [
        i
        for i, sample in enumerate(samples)
        if sample.where != origin and (groups is None or groups[i] not in held_groups)
    ]
    missing = {samples[i].label for i in val_rows} - {samples[i].label for i in train_rows}
    if missing:
        raise DataError(
            f"holding out {origin!r} leaves no training photo of {', '.join(sorted(missing))}: add photos of them "
            "from another origin, or hold out another one"
        )
    return train_rows, val_rows


def origin_split(samples: list[Sample], origin: str, groups: np.ndarray | None) -> tuple[list[Sample], list[Sample]]:
    """The photos of other origins to train on, those of `origin` to validate on (`--validate-on`)."""
    train_rows, val_rows = origin_rows(samples, origin, groups)
    return [samples[i] for i in train_rows], [samples[i] for i in val_rows]


def write_split(train: list[Sample], val: list[Sample], path: Path, groups: dict[Sample, int] | None = None) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["source", "Id", "label", "subset", "group", "path", "origin"])
        for subset, samples in (("train", train), ("validation", val)):
            writer.writerows(
                [s.source, s.id, s.label, subset, "" if groups is None else groups[s], str(s.path), s.where]
                for s in samples
            )


def validation_photos(split_csv: Path) -> set[tuple[str, str]]:
    """(source, Id) of the validation side of a training run's split.csv: photos the model was not trained on."""
    return _photos_of(split_csv, "validation")


def training_photos(split_csv: Path) -> set[tuple[str, str]]:
    """(source, Id) of the training side of a training run's split.csv: photos the model was trained on."""
    return _photos_of(split_csv, "train")


def _photos_of(split_csv: Path, subset: str) -> set[tuple[str, str]]:
    with open(split_csv, newline="") as file:
        return {(row["source"], row["Id"]) for row in csv.DictReader(file) if row["subset"] == subset}
