"""`kitchenware evaluate`: a stored or exported model on labelled photos, reported as training reports."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from kitchenware.cli.options import (
    add_command,
    add_labelled_photos,
    add_model_options,
    add_tracking_options,
    add_verbose,
    open_model,
    timestamped,
    tracked_options,
    tracking,
)

if TYPE_CHECKING:
    from kitchenware.training.pipeline import Evaluation


def add_parser(commands: argparse._SubParsersAction) -> None:
    evaluate = add_command(commands, "evaluate", "evaluate a stored or exported model on labelled photos")
    add_model_options(evaluate)
    add_labelled_photos(evaluate, "labelled photos, in either training layout; repeatable")
    evaluate.add_argument("--ood", type=Path, help="a folder of photos of other things: how many are flagged")
    evaluate.add_argument(
        "--validation-of",
        type=Path,
        metavar="SPLIT_CSV",
        help="only the validation photos of a training run (its split.csv): photos the model was not trained on",
    )
    evaluate.add_argument("--out", type=Path, help="report folder (default: runs/<timestamp>-evaluate)")
    add_tracking_options(evaluate)
    add_verbose(evaluate)


def run(args: argparse.Namespace) -> None:
    with tracking(args, f"evaluate {args.model}") as tracker:
        done = _evaluate(args)
        if tracker:
            tracker.log_evaluation(done, tracked_options(args))


def _evaluate(args: argparse.Namespace) -> Evaluation:
    from kitchenware.training.pipeline import evaluate

    classifier = open_model(args)
    done = evaluate(classifier, args.data, args.out or timestamped("-evaluate"), args.validation_of, args.ood)
    report = done.report
    summary = report.decision_summary()
    print(
        f"{classifier.name} on {len(done.samples)} images: accuracy {report.accuracy:.4f}, loss {report.loss:.4f}, "
        f"ECE {summary['ece']}"
    )
    for row in report.per_class():
        print(
            f"  {row['class']:>8}: precision {row['precision']:.3f} recall {row['recall']:.3f} "
            f"f1 {row['f1']:.3f} ({row['support']} images)"
        )
    print(
        "decisions: "
        + ", ".join(f"{name} {share:.1%}" for name, share in summary["decisions"].items())
        + f"; accuracy of the confident answers {summary['confident_accuracy']}"
    )
    for kind, row in (done.out_of_distribution or {}).items():
        print(
            f"  other things ({kind}, {row['photos']} photos): {row['flagged']:.1%} flagged, {row['unknown']:.1%} "
            f"unknown, {row['unsure']:.1%} unsure; AUROC {row['auroc']}, FPR at 95% TPR {row['fpr_at_95_tpr']}"
        )
    if done.explained:
        sheet = done.out / "misclassified_heatmaps.png"
        print(f"where the model looked on {done.explained} misclassified photos: {sheet}")
    print(f"report in {done.out}")
    return done
