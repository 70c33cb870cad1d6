"""Reports on a labelled set: accuracy, per-class precision/recall/F1, confusion matrix, misclassified photos, plots."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kitchenware.data import Sample


@dataclass
class Report:
    class_names: list[str]
    labels: np.ndarray
    probabilities: np.ndarray

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predictions == self.labels))

    @property
    def loss(self) -> float:
        picked = self.probabilities[np.arange(len(self.labels)), self.labels]
        return float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))

    def confusion_matrix(self) -> np.ndarray:
        """Rows: true class; columns: predicted class."""
        size = len(self.class_names)
        return np.bincount(self.labels * size + self.predictions, minlength=size * size).reshape(size, size)

    def per_class(self) -> list[dict]:
        matrix = self.confusion_matrix()
        rows = []
        for i, name in enumerate(self.class_names):
            hits, predicted, actual = matrix[i, i], matrix[:, i].sum(), matrix[i, :].sum()
            precision = hits / predicted if predicted else 0.0
            recall = hits / actual if actual else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            rows.append(
                {
                    "class": name,
                    "precision": round(float(precision), 4),
                    "recall": round(float(recall), 4),
                    "f1": round(float(f1), 4),
                    "support": int(actual),
                }
            )
        return rows

    def summary(self) -> dict:
        return {
            "accuracy": round(self.accuracy, 4),
            "loss": round(self.loss, 4),
            "images": int(len(self.labels)),
            "per_class": self.per_class(),
            "confusion_matrix": self.confusion_matrix().tolist(),
            "class_names": self.class_names,
        }


def write_report(report: Report, samples: list[Sample], folder: Path, title: str) -> None:
    """metrics.json, per_class.csv, misclassified.csv and confusion_matrix.png in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(report.summary(), indent=2))
    with open(folder / "per_class.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, ["class", "precision", "recall", "f1", "support"])
        writer.writeheader()
        writer.writerows(report.per_class())
    with open(folder / "misclassified.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["Id", "path", "label", "predicted", "confidence"])
        for sample, label, predicted, probabilities in zip(
            samples, report.labels, report.predictions, report.probabilities
        ):
            if label != predicted:
                writer.writerow(
                    [
                        sample.id,
                        sample.path,
                        report.class_names[label],
                        report.class_names[predicted],
                        round(float(probabilities[predicted]), 4),
                    ]
                )
    plot_confusion_matrix(report, folder / "confusion_matrix.png", title)


def _pyplot():
    """matplotlib without a screen (servers, CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(report: Report, path: Path, title: str) -> None:
    plt = _pyplot()
    matrix = report.confusion_matrix()
    size = len(report.class_names)
    figure, axes = plt.subplots(figsize=(1.2 * size + 2, 1.2 * size + 1.5))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(size), report.class_names, rotation=45, ha="right")
    axes.set_yticks(range(size), report.class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(
            column, row, str(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black"
        )
    axes.set_title(f"{title}\naccuracy {report.accuracy:.3f} on {len(report.labels)} images")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_history(history: dict[str, list], folder: Path) -> None:
    """history.csv and training_curves.png (loss and accuracy per epoch, training and validation)."""
    plt = _pyplot()
    columns = list(history)
    with open(folder / "history.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["epoch", *columns])
        writer.writerows([epoch + 1, *values] for epoch, values in enumerate(zip(*history.values())))
    epochs = range(1, len(history["loss"]) + 1)
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(11, 4))
    for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        axes.plot(epochs, history[metric], marker="o", label=f"training {metric}")
        axes.plot(epochs, history[f"val_{metric}"], marker="o", label=f"validation {metric}")
        axes.set_xlabel("epoch")
        axes.set_title(metric)
        axes.legend()
    figure.tight_layout()
    figure.savefig(folder / "training_curves.png", dpi=100)
    plt.close(figure)


def write_sweep(rows: list[dict], histories: list[tuple[str, list[float]]], folder: Path) -> None:
    """sweep.csv, sweep.md (best first) and sweep.png (validation accuracy per epoch, one line per setting)."""
    plt = _pyplot()
    rows = sorted(rows, key=lambda row: (-row["val_accuracy"], row["val_loss"]))
    columns = list(rows[0])
    with open(folder / "sweep.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[column]) for column in columns) + " |" for row in rows]
    (folder / "sweep.md").write_text("\n".join(lines) + "\n")
    figure, axes = plt.subplots(figsize=(8, 5))
    for label, accuracies in histories:
        axes.plot(range(1, len(accuracies) + 1), accuracies, marker="o", label=label)
    axes.set_xlabel("epoch")
    axes.set_ylabel("validation accuracy")
    axes.set_title("Validation accuracy per setting")
    axes.legend()
    figure.tight_layout()
    figure.savefig(folder / "sweep.png", dpi=100)
    plt.close(figure)
