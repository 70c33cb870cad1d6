"""Reports on a labelled set: accuracy, per-class precision/recall/F1, confusion matrix, calibration, decisions,
risk-coverage, misclassified photos, plots."""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kitchenware.classifier import Classifier
from kitchenware.core.decision import CONFIDENT, DECISIONS, Answers
from kitchenware.core.photos import Sample
from kitchenware.training.decisions import expected_calibration_error, pick_unknown_threshold


@dataclass
class Report:
    class_names: list[str]
    labels: np.ndarray
    probabilities: np.ndarray
    decisions: list[str] | None = None  # with the model's decision rule (calibrated probabilities then)
    ood_scores: np.ndarray | None = None

    def decided(self, answers: Answers) -> Report:
        """The same photos with the decision rule's calibrated probabilities, decisions and OOD scores."""
        return dataclasses.replace(
            self, probabilities=answers.probabilities, decisions=answers.decisions, ood_scores=answers.ood_scores
        )

    @property
    def expected_calibration_error(self) -> float:
        return expected_calibration_error(self.probabilities, self.labels)

    def risk_coverage(self) -> list[dict]:
        """Accuracy of the photos answered above each confidence, against their share: the curve a site reads its
        own "confident" threshold from (sorted by decreasing confidence, one row per photo)."""
        confidence = self.probabilities.max(axis=1)
        order = np.argsort(-confidence, kind="stable")
        correct = (self.predictions == self.labels)[order]
        answered = np.arange(1, len(order) + 1)
        return [
            {
                "confidence": round(float(confidence[i]), 6),
                "coverage": round(n / len(order), 4),
                "accuracy": round(float(hits / n), 4),
            }
            for i, n, hits in zip(order, answered, np.cumsum(correct))
        ]

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

    def decision_summary(self) -> dict:
        if self.decisions is None:
            return {}
        decisions = np.array(self.decisions)
        confident = decisions == CONFIDENT
        correct = self.predictions == self.labels
        return {
            "decisions": {name: round(float(np.mean(decisions == name)), 4) for name in DECISIONS},
            "confident_accuracy": round(float(correct[confident].mean()), 4) if confident.any() else None,
            "ece": round(self.expected_calibration_error, 4),
        }

    def summary(self) -> dict:
        return {
            **self.decision_summary(),
            "accuracy": round(self.accuracy, 4),
            "loss": round(self.loss, 4),
            "images": int(len(self.labels)),
            "per_class": self.per_class(),
            "confusion_matrix": self.confusion_matrix().tolist(),
            "class_names": self.class_names,
        }


def write_report(report: Report, samples: list[Sample], folder: Path, title: str) -> None:
    """metrics.json, per_class.csv, predictions.csv, misclassified.csv and confusion_matrix.png in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(report.summary(), indent=2))
    with open(folder / "per_class.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, ["class", "precision", "recall", "f1", "support"])
        writer.writeheader()
        writer.writerows(report.per_class())
    columns = ["Id", "path", "label", "predicted", "confidence", "decision", "ood_score"]
    decisions = report.decisions or [""] * len(samples)
    scores = [""] * len(samples) if report.ood_scores is None else [round(float(v), 6) for v in report.ood_scores]
    rows = [
        [sample.id, sample.path, report.class_names[label], report.class_names[predicted]]
        + [round(float(row[predicted]), 6), decision, score]
        for sample, label, predicted, row, decision, score in zip(
            samples, report.labels, report.predictions, report.probabilities, decisions, scores
        )
    ]
    for name, subset in (("predictions.csv", rows), ("misclassified.csv", [r for r in rows if r[2] != r[3]])):
        with open(folder / name, "w", newline="") as file:
            csv.writer(file).writerows([columns, *subset])
    plot_confusion_matrix(report, folder / "confusion_matrix.png", title)
    write_risk_coverage(report, folder)


def write_risk_coverage(report: Report, folder: Path) -> None:
    """risk_coverage.csv and .png: accuracy of the photos answered, against the share answered, as the confidence
    threshold falls; the point of the model's own "unsure" threshold is marked."""
    rows = report.risk_coverage()
    with open(folder / "risk_coverage.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, ["confidence", "coverage", "accuracy"])
        writer.writeheader()
        writer.writerows(rows)
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot([r["coverage"] for r in rows], [r["accuracy"] for r in rows], label="answered above a threshold")
    if report.decisions is not None:
        share = float(np.mean(np.array(report.decisions) == CONFIDENT))
        accuracy = report.decision_summary()["confident_accuracy"]
        if accuracy is not None:
            axes.plot([share], [accuracy], "o", color="red", label=f"'confident': {share:.1%} at {accuracy:.3f}")
    axes.set(
        xlabel="coverage (share of photos answered)",
        ylabel="accuracy of the answered photos",
        ylim=(max(0.0, min(r["accuracy"] for r in rows) - 0.05), 1.005),
    )
    axes.set_title("Risk-coverage")
    axes.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(folder / "risk_coverage.png", dpi=100)
    plt.close(figure)


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


def out_of_distribution(report: Report, samples: list[Sample], answers: Answers) -> dict[str, dict]:
    """How the decision rule treats photos of other things, all of them and by kind (the first word of a file name,
    e.g. "far" / "near" in ../shared/data/not-kitchenware): shares flagged (unknown or unsure), unknown and unsure,
    and how well the OOD score separates them from the labelled photos (AUROC; FPR at 95 % TPR, the share of them
    under the score that accepts 95 % of the labelled photos)."""
    from sklearn.metrics import roc_auc_score

    kinds = {"all": np.ones(len(samples), bool)}
    for kind in sorted({sample.path.name.split("-")[0] for sample in samples}):
        kinds[kind] = np.array([sample.path.name.split("-")[0] == kind for sample in samples])
    decisions = np.array(answers.decisions)
    figures = {}
    for kind, chosen in kinds.items():
        if not chosen.any() or (kind != "all" and chosen.all()):
            continue
        row = {
            "photos": int(chosen.sum()),
            "flagged": round(float(np.mean(decisions[chosen] != CONFIDENT)), 4),
            "unknown": round(float(np.mean(decisions[chosen] == "unknown")), 4),
            "unsure": round(float(np.mean(decisions[chosen] == "unsure")), 4),
            "auroc": None,
            "fpr_at_95_tpr": None,
        }
        if answers.ood_scores is not None and report.ood_scores is not None:
            inside, outside = report.ood_scores, answers.ood_scores[chosen]
            truth = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
            row["auroc"] = round(float(roc_auc_score(truth, np.r_[inside, outside])), 4)
            row["fpr_at_95_tpr"] = round(float(np.mean(outside <= pick_unknown_threshold(inside, 0.95))), 4)
        figures[kind] = row
    return figures


def write_out_of_distribution(figures: dict[str, dict], folder: Path) -> None:
    (folder / "out_of_distribution.json").write_text(json.dumps(figures, indent=2))


MAX_EXPLAINED = 48  # misclassified photos drawn on the sheet, most confident mistakes first


def write_misclassified_heatmaps(report: Report, samples: list[Sample], classifier: Classifier, path: Path) -> int:
    """A contact sheet of the misclassified photos, each with the heat map of the class the model wrongly chose
    (where it looked when it went wrong), captioned "true -> predicted (probability)". Returns how many photos it
    shows; writes nothing when there is no mistake or the model has no class maps (core/explain.py)."""
    from PIL import Image, ImageDraw

    wrong = [i for i in range(len(samples)) if report.predictions[i] != report.labels[i]]
    wrong = sorted(wrong, key=lambda i: -report.probabilities[i].max())[:MAX_EXPLAINED]
    if not wrong or not classifier.has_class_maps:
        return 0
    tile, caption, per_row = 220, 30, 6
    rows = -(-len(wrong) // per_row)
    sheet = Image.new("RGB", (per_row * (tile + 4), rows * (tile + caption + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    for n, i in enumerate(wrong):
        predicted = int(report.predictions[i])
        shown = classifier.explain(samples[i].path, report.class_names[predicted]).overlay()
        shown.thumbnail((tile, tile))
        left, top = (n % per_row) * (tile + 4), (n // per_row) * (tile + caption + 4)
        sheet.paste(shown, (left, top))
        truth, guess = report.class_names[report.labels[i]], report.class_names[predicted]
        draw.text((left + 2, top + tile + 2), f"{samples[i].id}: {truth} -> {guess}", fill="black")
        draw.text((left + 2, top + tile + 15), f"p={report.probabilities[i, predicted]:.2f}", fill="darkred")
    sheet.save(path)
    return len(wrong)
