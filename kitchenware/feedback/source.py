"""The sellers' choices as training data: `--data feedback:<URL>` (the photos with a chosen class, not "other"),
and `kitchenware feedback export` for other tools (the class-folder layout)."""

from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path

from PIL import Image

from kitchenware.core.photos import DataError, Sample
from kitchenware.feedback.repository import OTHER, Answered, FeedbackStore, photos_beside


def open_store(url: str, photos: Path | None = None, read_only: bool = False) -> FeedbackStore:
    """The store at a URL, its photos where the service keeps them: KITCHENWARE_FEEDBACK_PHOTOS, or beside a
    SQLite file. read_only: for reading, never creating or migrating (FeedbackStore)."""
    folder = photos or Path(os.environ.get("KITCHENWARE_FEEDBACK_PHOTOS") or photos_beside(url))
    return FeedbackStore(url, folder, read_only=read_only)


def labelled(url: str, photos: Path | None = None) -> list[Answered]:
    """The photos sellers labelled with one of the classes (not "other"), oldest choice first."""
    answered = [row for row in open_store(url, photos, read_only=True).answered() if row.chosen != OTHER]
    return sorted(answered, key=lambda row: (chosen_at(row), row.photo_id))


def chosen_at(row: Answered) -> datetime.datetime:
    """When the seller chose, as an aware datetime (SQLite gives it back without its zone, UTC)."""
    return row.chosen_at if row.chosen_at.tzinfo else row.chosen_at.replace(tzinfo=datetime.UTC)


def read(url: str, photos: Path | None = None, before: datetime.datetime | None = None) -> tuple[str, list[Sample]]:
    """A `find_photos` reader: ("feedback", one sample per photo a seller labelled with one of the classes; with
    `before`, an aware datetime, only those labelled before that moment)."""
    answered = [row for row in labelled(url, photos) if before is None or chosen_at(row) < before]
    if not answered:
        since = "" if before is None else f" before {before.isoformat()}"
        raise DataError(
            f"the feedback store {url} holds no photo with a seller's category{since} yet: collect some first"
        )
    return "feedback", [Sample(row.photo_id, row.path, row.chosen) for row in answered]


def export(url: str, folder: Path, photos: Path | None = None) -> dict[str, int]:
    """Copy the labelled photos into folder/<class>/<photo id>.<format>; returns the count per class."""
    _, samples = read(url, photos)
    counts: dict[str, int] = {}
    for sample in samples:
        with Image.open(sample.path) as image:
            suffix = (image.format or "jpeg").lower().replace("jpeg", "jpg")
        (folder / sample.label).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sample.path, folder / sample.label / f"{sample.id}.{suffix}")
        counts[sample.label] = counts.get(sample.label, 0) + 1
    return dict(sorted(counts.items()))
