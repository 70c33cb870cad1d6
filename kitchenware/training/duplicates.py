"""Near-duplicate photos: groups that must stay on one side of a split, and a contact sheet to look at them.

Two photos are near-duplicates when the cosine similarity of their backbone features (ImageNet Xception,
global average pooling) is at least NEAR_DUPLICATE_COSINE; groups are the connected components. Chosen by
measurement over both shared photo sets (docs/validation.md): on 500 planted copies (half size,
JPEG quality 60, 10 % crop, brightness x1.2, mirrored) it finds 94 %, and no pair of photos of different
classes reaches it (the most alike such pair: 0.906); a perceptual hash (phash, distance <= 2) finds 51 %.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from kitchenware.core.decision import l2_normalise
from kitchenware.core.photos import Sample

NEAR_DUPLICATE_COSINE = 0.92


def near_duplicate_groups(features: np.ndarray, threshold: float = NEAR_DUPLICATE_COSINE) -> np.ndarray:
    """A group number per photo: photos joined by a chain of near-duplicate pairs share one."""
    normalised = l2_normalise(features)
    similar = np.triu(normalised @ normalised.T >= threshold, k=1)
    return connected_components(csr_matrix(similar), directed=False)[1]


def exact_duplicates(samples: list[Sample]) -> list[list[Sample]]:
    """Sets of photos whose files are byte for byte the same (SHA-256)."""
    by_hash: dict[str, list[Sample]] = {}
    for sample in samples:
        by_hash.setdefault(hashlib.sha256(sample.path.read_bytes()).hexdigest(), []).append(sample)
    return [same for same in by_hash.values() if len(same) > 1]


def contact_sheet(
    samples: list[Sample], groups: np.ndarray, path: Path, max_groups: int = 30, per_row: int = 12
) -> None:
    """One row per near-duplicate group (largest first): its size, sources and labels, then thumbnails."""
    sizes = Counter(groups.tolist())
    chosen = [group for group, size in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])) if size > 1][:max_groups]
    thumb, text_width = 72, 170
    sheet = Image.new("RGB", (text_width + per_row * (thumb + 2), max(1, len(chosen)) * (thumb + 14) + 4), "white")
    draw = ImageDraw.Draw(sheet)
    if not chosen:
        draw.text((4, 4), "no near-duplicate groups", fill="black")
    for row, group in enumerate(chosen):
        members = [sample for sample, g in zip(samples, groups) if g == group]
        top = 2 + row * (thumb + 14)
        labels = Counter(sample.label for sample in members)
        draw.text((2, top + 2), f"group {row + 1}: {len(members)} photos", fill="black")
        draw.text(
            (2, top + 16), " ".join(f"{s}:{n}" for s, n in Counter(m.source for m in members).items())[:28], fill="blue"
        )
        draw.text(
            (2, top + 30),
            " ".join(f"{s}:{n}" for s, n in labels.items()),
            fill="darkred" if len(labels) > 1 else "black",
        )
        for column, sample in enumerate(members[:per_row]):
            with Image.open(sample.path) as image:
                image = image.convert("RGB")
                image.thumbnail((thumb, thumb))
                left = text_width + column * (thumb + 2)
                sheet.paste(image, (left, top))
        if len(members) > per_row:
            draw.text(
                (text_width + per_row * (thumb + 2) - 36, top + thumb // 2), f"+{len(members) - per_row}", fill="red"
            )
    sheet.save(path)
