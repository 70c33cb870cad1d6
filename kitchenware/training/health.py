"""A data health check before training (and as `kitchenware check`): what in a photo set would mislead a model or
its validation. Unreadable files, exact and near-duplicate photos, tiny photos, extreme aspect ratios, and
classes too small or too unbalanced; a short report and a contact sheet of the near-duplicate groups."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from kitchenware.core.photos import LabelledPhotos, Sample
from kitchenware.training.duplicates import contact_sheet, exact_duplicates, near_duplicate_groups

TINY_SIDE = 64  # pixels on the short side: below it, a photo holds little for a 150 or 299 px model
EXTREME_ASPECT = 3.0  # long side / short side: the square resize squashes such a photo
FEW_PHOTOS = 10  # a class with fewer photos than this can hardly be learnt or validated
IMBALANCE = 10.0  # largest class / smallest class


@dataclass(frozen=True)
class HealthReport:
    photos: LabelledPhotos
    unreadable: list[tuple[Sample, str]]
    exact_duplicates: list[list[Sample]]
    groups: np.ndarray | None  # near-duplicate group per readable photo; None when not checked
    tiny: list[tuple[Sample, tuple[int, int]]]
    extreme_aspect: list[tuple[Sample, tuple[int, int]]]

    @property
    def near_duplicates(self) -> list[list[Sample]]:
        if self.groups is None:
            return []
        sizes = Counter(self.groups.tolist())
        by_size = sorted((group for group, size in sizes.items() if size > 1), key=lambda g: -sizes[g])
        return [[s for s, g in zip(self.photos.samples, self.groups) if g == group] for group in by_size]

    def class_warnings(self) -> list[str]:
        counts = {name: count for name, count in self.photos.counts().items()}
        warnings = [f"{name}: only {count} photos" for name, count in counts.items() if count < FEW_PHOTOS]
        largest, smallest = max(counts.values()), min(counts.values())
        if smallest and largest / smallest > IMBALANCE:
            warnings.append(
                f"unbalanced: {largest / smallest:.0f}x more photos of the largest class than of the smallest "
                "(train with --class-weight balanced, add photos)"
            )
        return warnings

    def markdown(self) -> str:
        groups = self.near_duplicates
        lines = ["# Data health check", "", "| source | " + " | ".join(self.photos.class_names) + " | total |"]
        lines.append("|---|" + "---|" * (len(self.photos.class_names) + 1))
        for source, counts in self.photos.counts_by_source().items():
            lines.append(f"| {source} | " + " | ".join(map(str, counts.values())) + f" | {sum(counts.values())} |")
        lines += [
            "",
            f"- unreadable files: {len(self.unreadable)}"
            + "".join(f"\n  - {s.source}/{s.id}: {reason}" for s, reason in self.unreadable),
            f"- exact duplicates (same bytes): {len(self.exact_duplicates)} sets"
            + "".join(f"\n  - {', '.join(f'{s.source}/{s.id}' for s in same)}" for same in self.exact_duplicates),
            (
                f"- near-duplicate groups: {len(groups)}, holding {sum(map(len, groups))} photos (largest "
                f"{max(map(len, groups), default=0)}); a split keeps each group on one side (near_duplicates.png)"
                if self.groups is not None
                else "- near-duplicates: not checked (they are found on Xception features; --arch scratch has none)"
            ),
            f"- tiny photos (short side < {TINY_SIDE} px): {len(self.tiny)}"
            + "".join(f"\n  - {s.source}/{s.id}: {w}x{h}" for s, (w, h) in self.tiny),
            f"- extreme aspect ratios (over {EXTREME_ASPECT:g}:1): {len(self.extreme_aspect)}"
            + "".join(f"\n  - {s.source}/{s.id}: {w}x{h}" for s, (w, h) in self.extreme_aspect),
            f"- classes: {'; '.join(self.class_warnings()) or f'none under {FEW_PHOTOS} photos, balanced'}",
        ]
        return "\n".join(lines) + "\n"

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "check.md").write_text(self.markdown())
        if self.groups is not None:
            contact_sheet(self.photos.samples, self.groups, folder / "near_duplicates.png")


def check(photos: LabelledPhotos, unreadable: list[tuple[Sample, str]], features: np.ndarray | None) -> HealthReport:
    """The report for the readable photos (`photos`) and their backbone features (for the near-duplicates)."""
    sizes = {}
    for sample in photos.samples:
        with Image.open(sample.path) as image:
            sizes[sample] = image.size
    return HealthReport(
        photos=photos,
        unreadable=unreadable,
        exact_duplicates=exact_duplicates(photos.samples),
        groups=None if features is None else near_duplicate_groups(features),
        tiny=[(s, size) for s, size in sizes.items() if min(size) < TINY_SIDE],
        extreme_aspect=[(s, size) for s, size in sizes.items() if max(size) / max(min(size), 1) > EXTREME_ASPECT],
    )
