"""Where labelled photos come from: the --data sources of `train`, `check` and `evaluate`, and the origin of each
photo (`--origins`), which source-held-out validation holds out one at a time."""

from __future__ import annotations

import csv
import dataclasses
import datetime
from pathlib import Path

from kitchenware.core.photos import DataError, LabelledPhotos, Sample, find_photos

ORIGIN_COLUMNS = ("source", "Id", "origin")


def find_sources(
    *sources: str | Path, origins: str | Path | None = None, feedback_before: datetime.datetime | None = None
) -> LabelledPhotos:
    """Folders in either layout, and `feedback:<SQLAlchemy URL>`: the photos sellers labelled with a class (with
    `feedback_before`, those labelled before that moment). With `origins`, a CSV of source,Id,origin (the source
    and Id as split.csv names them), the photos it lists get their origin; the others keep their source as origin,
    and rows of sources not given are ignored."""

    def feedback(url: str) -> tuple[str, list[Sample]]:
        from kitchenware.feedback.source import read  # SQLAlchemy only when a feedback source is asked for

        return read(url, before=feedback_before)

    photos = find_photos(*sources, readers={"feedback": feedback})
    return photos if origins is None else with_origins(photos, Path(origins))


def with_origins(photos: LabelledPhotos, origins_csv: Path) -> LabelledPhotos:
    """The photos, each listed in `origins_csv` with its origin set."""
    if not origins_csv.is_file():
        columns = ", ".join(ORIGIN_COLUMNS)
        raise DataError(f"origins file {origins_csv} not found: pass a CSV with the columns {columns}")
    with open(origins_csv, newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        if not set(ORIGIN_COLUMNS) <= set(reader.fieldnames or []):
            raise DataError(
                f"{origins_csv} has columns {reader.fieldnames}; it needs {', '.join(ORIGIN_COLUMNS)} (source and Id "
                "as the run's split.csv names the photo, origin: where it comes from)"
            )
        listed = {(row["source"], row["Id"]): row["origin"].strip() for row in reader}
    known = {(sample.source, sample.id) for sample in photos.samples}
    names = {source.name for source in photos.sources}  # one file may list the photos of other folders too
    unknown = sorted(key for key in set(listed) - known if key[0] in names)
    if unknown:
        raise DataError(
            f"{len(unknown)} photos of {origins_csv} are not among the --data photos (first: {unknown[0]}): check its "
            "source and Id columns against the run's split.csv"
        )
    samples = [
        dataclasses.replace(sample, origin=listed.get((sample.source, sample.id), "")) for sample in photos.samples
    ]
    return photos.keep(samples)
