"""What `kitchenware train` does, start to end: check and split the photos, cross-validate, train (or sweep), fit
the decision rule, report, write the card, save to the store, export.

The command line parses the options into a TrainConfig and prints the result; this module logs its progress as it
goes (the health check and the split come long before the model).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kitchenware.classifier import Classifier
from kitchenware.core.card import ModelCard
from kitchenware.core.photos import DataError, Sample, drop_unreadable, label_indices, unlabelled_images
from kitchenware.training import export, splits
from kitchenware.training.config import TrainConfig
from kitchenware.training.decisions import FittedRule, fit_rule, held_out_source_thresholds, reliability_diagram
from kitchenware.training.evaluation import (
    Report,
    out_of_distribution,
    write_history,
    write_misclassified_heatmaps,
    write_out_of_distribution,
    write_report,
    write_sweep,
)
from kitchenware.training.sources import find_sources
from kitchenware.training.trainer import (
    Extractor,
    PreparedData,
    SweepResult,
    TrainedModel,
    cross_validate,
    decision_features,
    held_out_parts,
    prepare_data,
    sweep,
    train_model,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingRun:
    """What a training run made: the model in the store, its card, and the figures the command prints."""

    run_dir: Path
    prepared: PreparedData
    trained: TrainedModel
    report: Report  # on the validation split, decided by the fitted rule
    fitted: FittedRule
    card: ModelCard
    tag: str | None  # None: not saved to the store (a challenger of `kitchenware retrain`)
    cross_validation: dict | None = None
    sweep_table: str | None = None  # markdown, best setting first
    sweep: tuple[SweepResult, ...] = ()  # each setting of a sweep, in the order tried


def train(
    config: TrainConfig,
    run_dir: Path,
    settings: list[dict] | None = None,
    folds: int | str | None = None,
    export_to: Path | None = None,
    command_line: str = "",
    extract: Extractor | None = None,
    save: bool = True,
) -> TrainingRun:
    """Train `config`, or sweep the `settings` (changes to it, e.g. [{"probe_c": 1}, {"probe_c": 3}]) and keep the
    best; with `folds`, first cross-validate it (a number of grouped folds, or "sources": each origin held out in
    turn, which then also fits the "unknown" threshold). Save the model to the store (unless not `save`) and, with
    `export_to`, to a folder, with the run's split.csv (which photos it trained on). `extract`: where the backbone's
    features are computed (default: this process)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    prepared = prepare_data(config, extract)
    for source, counts in prepared.photos.counts_by_source().items():
        log.info("%s: %d readable images %s", source, sum(counts.values()), counts)
    log.info("%d skipped; classes %s", len(prepared.skipped), prepared.photos.counts())
    log.info(
        "%s split: %d training, %d validation images -> %s",
        prepared.split,
        len(prepared.train),
        len(prepared.val),
        run_dir / splits.SPLIT_CSV,
    )
    splits.write_split(prepared.train, prepared.val, run_dir / splits.SPLIT_CSV, prepared.groups)
    prepared.health.write(run_dir)
    log.info("data health check: %s\n%s", run_dir / "check.md", prepared.health.markdown().split("\n\n", 1)[1].strip())

    cross_validation, out_of_fold, held_out = None, None, None
    if folds:
        cross_validation, pooled = cross_validate(config, prepared, folds, run_dir)
        out_of_fold = (pooled.probabilities, pooled.labels)
        log.info(
            "cross-validation (%s): accuracy %s ± %s (pooled %s); recall %s; held out: %s",
            "each origin held out" if folds == "sources" else f"grouped, {folds} folds",
            cross_validation["accuracy_mean"],
            cross_validation["accuracy_std"],
            cross_validation["accuracy_pooled"],
            ", ".join(f"{name} {value}" for name, value in cross_validation["recall_pooled"].items()),
            ", ".join(f"{name} {row['accuracy']}" for name, row in cross_validation["held_out"].items()),
        )
        if folds == "sources" and prepared.cache is not None:
            samples = prepared.cross_validated
            parts = held_out_parts(prepared, folds, config.seed)
            held_out = held_out_source_thresholds(prepared.cache.of(samples), parts)
            cross_validation["unknown_thresholds"] = {name: round(value, 4) for name, value in held_out.items()}
        (run_dir / "cross_validation.json").write_text(json.dumps(cross_validation, indent=2))
    sweep_table, results = None, []
    if settings and len(settings) > 1:
        trained, results = sweep(config, settings, prepared, run_dir)
        rows = [
            {
                **r.changes,
                "val_accuracy": round(r.val_accuracy, 4),
                "val_loss": round(r.val_loss, 4),
                "epochs": r.epochs,
                "seconds": round(r.seconds, 1),
            }
            for r in results
        ]
        write_sweep(rows, [(r.name, r.history["val_accuracy"]) for r in results], run_dir)
        sweep_table = (run_dir / "sweep.md").read_text()
    else:
        trained = train_model(config, prepared, run_dir)

    write_history(trained.history, run_dir)
    train_features, val_features = decision_features(trained, prepared)
    report = trained.report
    fitted = fit_rule(
        report.probabilities,
        report.labels,
        val_features,
        train_features,
        out_of_fold,
        held_out,
        "each origin held out in turn" if folds == "sources" else "grouped folds",
    )
    answers = fitted.rule.decide(report.probabilities, val_features)
    reliability_diagram(report.probabilities, answers.probabilities, report.labels, run_dir / "reliability.png")
    report = report.decided(answers)
    write_report(report, prepared.val, run_dir, f"{trained.config.arch} on the validation split")
    card = export.training_card(trained.config, prepared, report, fitted, command_line, cross_validation)
    reference = None if fitted.rule.reference is None else fitted.rule.reference.astype(np.float16)
    tag = export.save_to_store(trained.network.model, card, config.labels, reference) if save else None
    if export_to:
        export.export_folder(trained.network.model, card, export_to, reference)
        shutil.copyfile(run_dir / splits.SPLIT_CSV, export_to / splits.SPLIT_CSV)
    return TrainingRun(
        run_dir, prepared, trained, report, fitted, card, tag, cross_validation, sweep_table, tuple(results)
    )


@dataclass(frozen=True)
class Evaluation:
    """What `kitchenware evaluate` measured: the report on the labelled photos and, with photos of other things,
    how the decision rule treated them."""

    report: Report
    samples: list[Sample]
    out: Path
    explained: int  # misclassified photos drawn with their heat maps
    out_of_distribution: dict[str, dict] | None = None


def evaluate(
    classifier: Classifier, data: list[str], out: Path, validation_of: Path | None = None, ood: Path | None = None
) -> Evaluation:
    """Classify labelled photos (only the validation side of a run's split.csv with `validation_of`) and write the
    report to `out`; with `ood`, a folder of photos of other things, how many the rule flags."""
    class_names = classifier.class_names
    photos = find_sources(*data)
    unknown = sorted(set(photos.class_names) - set(class_names))
    if unknown:
        raise DataError(f"classes {unknown} in {data} are not among the model's {class_names}")
    samples = photos.samples
    if validation_of:
        held_out = splits.validation_photos(validation_of)
        samples = [sample for sample in samples if (sample.source, sample.id) in held_out]
        if len(samples) != len(held_out):
            raise DataError(
                f"{validation_of} lists {len(held_out)} validation photos, {len(samples)} of them found in "
                f"{', '.join(map(str, data))}: pass the same --data folders as the training run"
            )
    samples, _ = drop_unreadable(samples)
    answers = classifier.decide_photos([sample.path for sample in samples])
    report = Report(class_names, label_indices(samples, class_names), answers.probabilities).decided(answers)
    write_report(report, samples, out, f"{classifier.name} on {', '.join(map(str, data))}")
    explained = write_misclassified_heatmaps(report, samples, classifier, out / "misclassified_heatmaps.png")
    figures = None
    if ood:
        others, _ = drop_unreadable(unlabelled_images(ood))
        figures = out_of_distribution(report, others, classifier.decide_photos([s.path for s in others]))
        write_out_of_distribution(figures, out)
    return Evaluation(report, samples, out, explained, figures)
