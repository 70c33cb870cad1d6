"""Where each shared development photo comes from, as `kitchenware train --origins` reads it.

    python -m benchmarks.shared_origins      # writes benchmarks/shared_origins.csv

Both shared sets name their photos' provenance in SOURCES.tsv, each in its own columns; this turns them into the
origins source-held-out validation holds out one at a time: `kaggle` (the Kaggle competition's own photos, the
closest here to what sellers upload), `web-scraped`, `conveyor-belt` (bursts of near-duplicates), `studio-forks`,
`platesv2` (top-down plates of another competition), `phone`, and `other`.
"""

from __future__ import annotations

import csv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "shared_origins.csv"


def kitchenware_photos() -> dict[str, str]:
    """Id -> origin, from kitchenware-photos/SOURCES.tsv (Id, label, source)."""
    with open(DATA / "kitchenware-photos" / "SOURCES.tsv", newline="") as file:
        rows = list(csv.DictReader(file, delimiter="\t"))
    origins = {}
    for row in rows:
        source = row["source"]
        if source.startswith("kaggle"):  # kaggle-train:..., kaggle image rendered in a public notebook
            origins[row["Id"]] = "kaggle"
        elif source.startswith(("web-scraped", "conveyor-belt")):
            origins[row["Id"]] = source.split()[0]
        else:  # photos labelled by file name in public repositories
            origins[row["Id"]] = "other"
    return origins


def kitchenware_photos_more() -> dict[str, str]:
    """class/file -> origin, from kitchenware-photos-more/SOURCES.tsv (file, ..., source_repo, ...)."""
    with open(DATA / "kitchenware-photos-more" / "SOURCES.tsv", newline="") as file:
        rows = list(csv.DictReader(file, delimiter="\t"))
    repositories = {"platesv2": "platesv2", "kitchenUtensils": "studio-forks", "Bottle-Cup-Vision": "phone"}
    origins = {}
    for row in rows:
        found = [origin for part, origin in repositories.items() if part in row["source_repo"]]
        kaggle = row["kaggle_competition_image"].strip() == "yes"
        origins[row["file"]] = "kaggle" if kaggle else (found[0] if found else "other")
    return origins


def main() -> None:
    rows = [("kitchenware-photos", photo, origin) for photo, origin in sorted(kitchenware_photos().items())]
    rows += [("kitchenware-photos-more", photo, origin) for photo, origin in sorted(kitchenware_photos_more().items())]
    with open(OUT, "w", newline="") as file:
        csv.writer(file).writerows([("source", "Id", "origin"), *rows])
    counts: dict[str, int] = {}
    for _, _, origin in rows:
        counts[origin] = counts.get(origin, 0) + 1
    print(f"{len(rows)} photos -> {OUT}: " + ", ".join(f"{name} {count}" for name, count in sorted(counts.items())))


if __name__ == "__main__":
    main()
