"""`kitchenware predict`: classify every photo under a folder into a CSV, here or on Ray (--engine ray)."""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from pathlib import Path

from kitchenware.classifier import answer_rows, find_model
from kitchenware.cli.options import add_command, add_engine_options, add_model_options, add_verbose, open_model
from kitchenware.core.decision import DECISIONS
from kitchenware.core.photos import drop_unreadable, unlabelled_images


def add_parser(commands: argparse._SubParsersAction) -> None:
    predict = add_command(commands, "predict", "classify every photo under a folder (or Kaggle's test set) into a CSV")
    add_model_options(predict)
    predict.add_argument(
        "--input",
        required=True,
        help="a photo, a folder of photos, searched recursively (class folders are scored), or a folder with "
        "test.csv + images/; with --engine ray also a CSV or Parquet list of photos ('path': a path or URI; 'Id' "
        "optional)",
    )
    predict.add_argument(
        "--output",
        help="CSV with Id,label (default: submission.csv); with --engine ray a new folder of Parquet or CSV files, "
        "or a URI (s3://...) that every node can write",
    )
    predict.add_argument("--probabilities", action="store_true", help="add one column per class with its probability")
    predict.add_argument("--kaggle", action="store_true", help="write Id,label only (a Kaggle submission)")
    engine = add_engine_options(predict, "where the photos are classified")
    engine.add_argument(
        "--format", choices=["parquet", "csv"], help="with --engine ray: the files written (default: parquet)"
    )
    add_verbose(predict)


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.engine != "ray":
        return
    args.format = args.format or "parquet"
    if args.runtime == "tensorflow" or args.kaggle:
        parser.error(
            "--engine ray runs the ONNX networks into files with every column: drop --runtime tensorflow and --kaggle"
        )
    if args.output is None:
        parser.error("--engine ray writes a folder of files: pass --output DIR (a new folder)")


def _cell(value: object) -> object:
    """A CSV cell: figures with 6 decimals, nothing for a missing one."""
    if value is None:
        return ""
    return f"{value:.6f}" if isinstance(value, float) else value


def run(args: argparse.Namespace) -> None:
    if args.engine == "ray":
        run_on_ray(args)
        return
    output = Path(args.output or "submission.csv")
    classifier = open_model(args)
    class_names = classifier.class_names
    samples, _ = drop_unreadable(unlabelled_images(args.input))
    answers = classifier.answers(classifier.decide_photos([sample.path for sample in samples]))
    details = [] if args.kaggle else ["confidence", "decision", "ood_score"]
    columns = ["Id", "label", *details, *(class_names if args.probabilities else [])]
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", newline="") as file:
        writer = csv.DictWriter(file, columns, extrasaction="ignore")
        writer.writeheader()
        for row in answer_rows([sample.id for sample in samples], answers, class_names):
            writer.writerow({key: _cell(value) for key, value in row.items()})
    print(f"{len(samples)} predictions by {classifier.name} -> {output}")
    shares = Counter(answer.decision for answer in answers)
    print("decisions: " + ", ".join(f"{name} {shares[name]}" for name in DECISIONS))
    scored = [(sample.label, answer.label) for sample, answer in zip(samples, answers) if sample.label in class_names]
    if scored:
        right = sum(truth == label for truth, label in scored)
        print(f"accuracy against the class folders: {right / len(scored):.4f} ({right} of {len(scored)} photos)")


def run_on_ray(args: argparse.Namespace) -> None:
    from kitchenware.batch.predict import classify_catalogue

    model = find_model(args.model)
    job = classify_catalogue(
        model.path,
        args.input,
        args.output,
        args.format,
        args.actors,
        args.threads_per_actor,
        args.min_confidence,
        args.ood_threshold,
        args.runtime or "",
    )
    print(
        f"{job.photos} predictions by {model.tag} on Ray, {job.actors} actor(s) x {job.threads_per_actor} "
        f"thread(s), in {job.seconds:.1f} s ({job.photos_per_second:.2f} photos/s) -> {args.output}"
    )
    print(
        "decisions: "
        + ", ".join(f"{name} {job.decisions.get(name, 0)}" for name in DECISIONS)
        + f"; unreadable {job.errors}"
    )
    print(
        f"peak memory of the {len(job.actor_usage)} actor process(es): "
        + ", ".join(f"{process} {megabytes:.0f} MB" for process, (megabytes, _) in job.actor_usage.items())
        + f"; CPU {job.cpu_seconds_per_photo * 1000:.0f} core-ms a photo"
    )
