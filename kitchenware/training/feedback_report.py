"""How the model does on the photos sellers really take: its answers against the categories they chose
(`kitchenware feedback report`)."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from kitchenware.feedback.repository import OTHER, Answered, FeedbackStore
from kitchenware.training.evaluation import Report, plot_confusion_matrix


def _accuracy(rows: list[Answered]) -> dict:
    right = sum(row.predicted == row.chosen for row in rows)
    return {"photos": len(rows), "accuracy": round(right / len(rows), 4) if rows else None}


def summary(store: FeedbackStore) -> dict:
    """Live accuracy overall, per chosen class, per ISO week and per model tag (photos labelled with a class);
    how many were "none of these"; and, per decision, how many photos the service met and sellers labelled."""
    rows = store.answered()
    classed = [row for row in rows if row.chosen != OTHER]
    grouped: dict[str, dict[str, list[Answered]]] = {
        "class": defaultdict(list),
        "week": defaultdict(list),
        "model": defaultdict(list),
    }
    for row in classed:
        grouped["class"][row.chosen].append(row)
        grouped["week"]["{}-W{:02d}".format(*row.chosen_at.isocalendar()[:2])].append(row)
        grouped["model"][row.model].append(row)
    met = store.decisions()
    labelled = Counter(row.decision for row in rows)
    return {
        "labelled_photos": len(rows),
        "overall": _accuracy(classed),
        **{
            f"per_{key}": {name: _accuracy(group) for name, group in sorted(groups.items())}
            for key, groups in grouped.items()
        },
        "other": {
            "photos": len(rows) - len(classed),
            "answered_unknown": sum(r.decision == "unknown" for r in rows if r.chosen == OTHER),
        },
        "decisions": {
            decision: {
                "photos": count,
                "labelled": labelled[decision],
                "share_labelled": round(labelled[decision] / count, 4),
            }
            for decision, count in sorted(met.items())
        },
    }


def write(store: FeedbackStore, class_names: list[str], folder: Path) -> dict:
    """report.json, confusion.csv and confusion.png (rows: the seller's choice; columns: the model's answer)."""
    folder.mkdir(parents=True, exist_ok=True)
    figures = summary(store)
    (folder / "report.json").write_text(json.dumps(figures, indent=2, default=str))
    names = [*class_names, OTHER]
    rows = [row for row in store.answered() if row.predicted in names and row.chosen in names]
    chosen = np.array([names.index(row.chosen) for row in rows], dtype=int)
    predicted = np.eye(len(names))[[names.index(row.predicted) for row in rows]] if rows else np.zeros((0, len(names)))
    report = Report(names, chosen, predicted)
    with open(folder / "confusion.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["chosen \\ answered", *names])
        writer.writerows([name, *row] for name, row in zip(names, report.confusion_matrix().tolist()))
    if rows:
        title = "the model's answers against the sellers' choices\n(true: the seller's; 'other' photos count as misses)"
        plot_confusion_matrix(report, folder / "confusion.png", title)
    return figures
