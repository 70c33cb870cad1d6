"""Where labelled photos come from: the --data sources of `train`, `check` and `evaluate`."""

from __future__ import annotations

from pathlib import Path

from kitchenware.core.photos import LabelledPhotos, Sample, find_photos


def _feedback(url: str) -> tuple[str, list[Sample]]:
    from kitchenware.feedback.source import read  # SQLAlchemy only when a feedback source is asked for

    return read(url)


def find_sources(*sources: str | Path) -> LabelledPhotos:
    """Folders in either layout, and `feedback:<SQLAlchemy URL>`: the photos sellers labelled with a class."""
    return find_photos(*sources, readers={"feedback": _feedback})
