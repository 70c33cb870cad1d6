"""The command line: `train`, `evaluate` and `predict`, each with --help.

Each command imports only the rooms it runs: `evaluate` and `predict` classify with ONNX Runtime through the
service's own classifier and never import TensorFlow; `train` (and `--runtime tensorflow`) import it with its
start-up noise silenced unless `--verbose`. Library code logs; only this module prints results.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import json
import logging
import os
import shlex
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from kitchenware.core.card import DEFAULT_MODEL_NAME
from kitchenware.core.decision import DECISIONS, DecisionRule
from kitchenware.core.inference import RUNTIMES, classify_files, open_classifier, preferred_runtime
from kitchenware.core.photos import DataError, drop_unreadable, label_indices, unlabelled_images
from kitchenware.core.preprocessing import ImageError


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one to show (not for flags, required options or None)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, argparse.SUPPRESS) or action.required or "(default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from kitchenware.training.augmentation import ROTATION_FILLS
    from kitchenware.training.config import (
        INPUT_SIZES,
        QAT_EPOCHS,
        QAT_LEARNING_RATE,
        QAT_STEP_LEARNING_RATE,
        TrainConfig,
    )

    parser = argparse.ArgumentParser(
        prog="train.py", description="Train, evaluate and use kitchenware photo classifiers."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    defaults = TrainConfig(data=(Path("."),))
    sizes = ", ".join(f"{size} {arch}" for arch, size in INPUT_SIZES.items())

    train = commands.add_parser(
        "train", help="train a classifier and save it to the BentoML model store", formatter_class=HelpFormatter
    )
    source = train.add_argument_group("data")
    source.add_argument(
        "--data",
        type=str,
        action="append",
        required=True,
        help="Kaggle layout (train.csv + images/), one folder per class, or feedback:<URL> (the sellers' choices); "
        "repeat it to train on several sources",
    )
    source.add_argument(
        "--val-fraction", type=float, default=defaults.val_fraction, help="share held out for validation"
    )
    source.add_argument(
        "--split",
        choices=["grouped", "stratified"],
        default=defaults.split,
        help="grouped: near-duplicate photos stay on one side (Xception with cached features); stratified: one by one",
    )
    source.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed of the split, the shuffling and the weights"
    )
    model = train.add_argument_group("model")
    model.add_argument("--arch", choices=list(INPUT_SIZES), default=defaults.arch, help="network to train")
    model.add_argument(
        "--weights",
        default=defaults.weights,
        help="Xception backbone: imagenet (downloads), none (random) or a local copy of the ImageNet .weights.h5",
    )
    model.add_argument("--input-size", type=int, default=0, help=f"square input side (default: {sizes})")
    model.add_argument(
        "--inner-size", type=int, default=defaults.inner_size, help="inner Dense units in the head; 0: none"
    )
    fit = train.add_argument_group("training")
    fit.add_argument("--epochs", type=int, default=defaults.epochs, help="epochs of the head (stage 1)")
    fit.add_argument("--batch-size", type=int, default=defaults.batch_size, help="photos per training step")
    fit.add_argument(
        "--lr",
        type=float,
        nargs="+",
        default=[defaults.lr],
        help=f"learning rate; several values run a sweep (default: {defaults.lr})",
    )
    fit.add_argument(
        "--dropout",
        type=float,
        nargs="+",
        default=[defaults.dropout],
        help=f"dropout before the output; several values run a sweep (default: {defaults.dropout})",
    )
    fit.add_argument(
        "--augment", action="store_true", help="random flip, rotation, zoom, shift and contrast (end to end)"
    )
    fit.add_argument(
        "--class-weight", choices=["none", "balanced"], default=defaults.class_weight, help="loss weight per class"
    )
    fit.add_argument(
        "--mixed-precision", choices=["auto", "on", "off"], default=defaults.mixed_precision, help="auto: on with a GPU"
    )
    fit.add_argument(
        "--augment-views",
        type=int,
        default=defaults.augment_views,
        help="with cached features: also train on this many augmented views (crop, flip, colour) of each photo",
    )
    fit.add_argument(
        "--augment-min-area",
        type=float,
        default=defaults.augment_min_area,
        help="the augmented views' random crops keep between this share of the photo's area and all of it",
    )
    fit.add_argument(
        "--augment-rotation",
        type=float,
        default=defaults.augment_rotation,
        metavar="DEGREES",
        help="the augmented views first turn the photo by a random angle up to this, either way; 0: not turned",
    )
    fit.add_argument(
        "--augment-fill",
        choices=list(ROTATION_FILLS),
        default=defaults.augment_fill,
        help="the turned photo's corners: crop (keep the largest rectangle inside) or reflect (mirror the photo)",
    )
    fit.add_argument(
        "--no-cache-features",
        dest="cache_features",
        action="store_false",
        help="train end to end even when the backbone is frozen and augmentation is off",
    )
    tune = train.add_argument_group("fine-tuning (Xception)")
    tune.add_argument(
        "--fine-tune",
        type=int,
        default=defaults.fine_tune_epochs,
        dest="fine_tune_epochs",
        metavar="EPOCHS",
        help="then fine-tune the top Xception blocks for this many epochs",
    )
    tune.add_argument("--unfreeze", type=int, default=defaults.unfreeze, help="Xception blocks (of 14) to fine-tune")
    tune.add_argument(
        "--fine-tune-lr", type=float, default=defaults.fine_tune_lr, help="learning rate while fine-tuning"
    )
    stop = train.add_argument_group("stopping")
    stop.add_argument(
        "--patience",
        type=int,
        default=defaults.patience,
        help="epochs without a better validation accuracy before stopping; 0: no early stopping",
    )
    stop.add_argument(
        "--cross-validate",
        type=int,
        default=0,
        metavar="FOLDS",
        help="first measure this setting by grouped k-fold cross-validation on all the photos (cached features)",
    )
    stop.add_argument("--target-accuracy", type=float, help="stop once validation accuracy reaches this")
    output = train.add_argument_group("output")
    output.add_argument("--name", default=DEFAULT_MODEL_NAME, help="model name in the BentoML store")
    output.add_argument(
        "--export", type=Path, help="also write model.onnx, model.keras and the model card to this folder"
    )
    output.add_argument("--run-dir", type=Path, help="reports folder (default: runs/<timestamp>)")
    output.add_argument("--tensorboard", action="store_true", help="write TensorBoard logs to the run folder")
    _add_engine_options(train, "where the frozen backbone's features are extracted (the slow part on a CPU)")
    _add_verbose(train)

    check = commands.add_parser(
        "check",
        help="check labelled photos before training: unreadable, duplicates, near-duplicates, tiny, unbalanced",
        formatter_class=HelpFormatter,
    )
    _add_labelled_photos(check, "labelled photos, in either training layout; repeatable")
    check.add_argument(
        "--weights",
        default=defaults.weights,
        help="the Xception backbone whose features find near-duplicates: imagenet (downloads) or a local copy",
    )
    check.add_argument("--out", type=Path, help="report folder (default: runs/<timestamp>-check)")
    _add_verbose(check)

    feedback = commands.add_parser("feedback", help="what sellers chose for classified photos: report, export")
    feedback_commands = feedback.add_subparsers(dest="feedback_command", required=True)
    for name, text in (
        ("report", "live accuracy overall, per class, week and model; the confusion matrix; decisions labelled"),
        ("export", "copy the photos sellers labelled into DIR/<class>/ (the class-folder layout)"),
        ("purge", "delete the photos that never got a seller's choice after --keep-days days"),
    ):
        command = feedback_commands.add_parser(name, help=text, formatter_class=HelpFormatter)
        command.add_argument(
            "--db", required=True, help="the feedback store's SQLAlchemy URL (KITCHENWARE_FEEDBACK_DB)"
        )
        command.add_argument("--photos", type=Path, help="its photo folder (default: photos/ beside a SQLite file)")
        if name == "report":
            command.add_argument("--out", type=Path, help="report folder (default: runs/<timestamp>-feedback)")
        elif name == "purge":
            command.add_argument(
                "--keep-days",
                type=float,
                default=float(os.environ.get("KITCHENWARE_FEEDBACK_KEEP_DAYS") or 30),
                help="days a photo without a choice is kept (default: KITCHENWARE_FEEDBACK_KEEP_DAYS, else 30)",
            )
        else:
            command.add_argument("folder", type=Path, help="where to write <class>/<photo id>.<format>")
        _add_verbose(command)

    quantize = commands.add_parser(
        "quantize",
        help="write an exported model's int8 network (model-int8.onnx) and its cascade band into the folder",
        formatter_class=HelpFormatter,
    )
    quantize.add_argument("--model", type=Path, required=True, help="an exported model folder (e.g. models)")
    _add_labelled_photos(
        quantize, "the model's labelled photos, in either training layout; repeatable (the sources it was trained on)"
    )
    quantize.add_argument("--ood", type=Path, help="photos of other things: half calibrate, half are held out")
    quantize.add_argument(
        "--split",
        type=Path,
        metavar="SPLIT_CSV",
        help="the training run's split.csv: the band is chosen on its validation photos (default: MODEL/split.csv)",
    )
    quantize.add_argument(
        "--calibration-photos",
        type=int,
        help="calibrate on this many photos, evenly spread (default: every other training and --ood photo)",
    )
    quantize.add_argument(
        "--qat-epochs",
        type=int,
        default=QAT_EPOCHS,
        help="quantization-aware fine-tuning of the int8 network toward the float one, passes over the calibration "
        "photos (about 2 minutes each for 439 photos on 2 cores); 0: none",
    )
    quantize.add_argument(
        "--qat-lr", type=float, default=QAT_LEARNING_RATE, help="learning rate of the quantization-aware fine-tuning"
    )
    quantize.add_argument(
        "--qat-step-lr",
        type=float,
        default=QAT_STEP_LEARNING_RATE,
        help="learning rate of the activations' steps in that fine-tuning (Adam on their logarithms); 0: fixed",
    )
    quantize.add_argument("--out", type=Path, help="report folder (default: runs/<timestamp>-quantize)")
    _add_verbose(quantize)

    evaluate = commands.add_parser(
        "evaluate", help="evaluate a stored or exported model on labelled photos", formatter_class=HelpFormatter
    )
    _add_model_options(evaluate)
    _add_labelled_photos(evaluate, "labelled photos, in either training layout; repeatable")
    evaluate.add_argument("--ood", type=Path, help="a folder of photos of other things: how many are flagged")
    evaluate.add_argument(
        "--validation-of",
        type=Path,
        metavar="SPLIT_CSV",
        help="only the validation photos of a training run (its split.csv): photos the model was not trained on",
    )
    evaluate.add_argument("--out", type=Path, help="report folder (default: runs/<timestamp>-evaluate)")
    _add_verbose(evaluate)

    predict = commands.add_parser(
        "predict",
        help="classify every photo under a folder (or Kaggle's test set) into a CSV",
        formatter_class=HelpFormatter,
    )
    _add_model_options(predict)
    predict.add_argument(
        "--input",
        required=True,
        help="a folder of photos, searched recursively (class folders are scored), or a folder with test.csv + "
        "images/; with --engine ray also a CSV or Parquet list of photos ('path': a path or URI; 'Id' optional)",
    )
    predict.add_argument(
        "--output",
        help="CSV with Id,label (default: submission.csv); with --engine ray a new folder of Parquet or CSV files, "
        "or a URI (s3://...) that every node can write",
    )
    predict.add_argument("--probabilities", action="store_true", help="add one column per class with its probability")
    predict.add_argument("--kaggle", action="store_true", help="write Id,label only (a Kaggle submission)")
    engine = _add_engine_options(predict, "where the photos are classified")
    engine.add_argument(
        "--format", choices=["parquet", "csv"], help="with --engine ray: the files written (default: parquet)"
    )
    _add_verbose(predict)
    return parser


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=f"{DEFAULT_MODEL_NAME}:latest", help="store tag, or an exported model folder (e.g. models)"
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        help="what runs the model, as in the service (KITCHENWARE_RUNTIME) (default: onnx-int8-cascade when the "
        "model has model-int8.onnx from `train.py quantize`, else onnx)",
    )
    parser.add_argument(
        "--min-confidence", type=float, help="'unsure' under this calibrated confidence (default: the model's own)"
    )
    parser.add_argument(
        "--ood-threshold", type=float, help="'unknown' above this out-of-distribution score (default: the model's own)"
    )


def _add_engine_options(parser: argparse.ArgumentParser, what: str) -> argparse._ArgumentGroup:
    engine = parser.add_argument_group("engine")
    engine.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help=f"{what}: local (this process) or ray (Ray Data actors, each loading the model once)",
    )
    engine.add_argument(
        "--address",
        help="with --engine ray: the head of an existing Ray cluster (HOST:PORT), or auto: the cluster this machine "
        "belongs to (default: a Ray started on this machine for the run)",
    )
    engine.add_argument(
        "--actors", type=int, help="with --engine ray: actors in the pool (default: one per --threads-per-actor CPUs)"
    )
    engine.add_argument("--threads-per-actor", type=int, help="with --engine ray: CPUs each actor uses (default: 1)")
    return engine


def _check_engine(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Options that only make sense on the ray engine are refused on the local one, not ignored; on the ray
    engine, their defaults are filled in."""
    engine = getattr(args, "engine", "local")
    if engine == "local":
        ray_only = [name for name in ("address", "actors", "threads_per_actor", "format") if getattr(args, name, None)]
        if ray_only:
            option = "--" + ray_only[0].replace("_", "-")
            parser.error(f"{option} is for --engine ray: add --engine ray, or leave {option} out")
        return
    args.threads_per_actor = args.threads_per_actor or 1
    if args.command == "predict":
        args.format = args.format or "parquet"
        if args.runtime == "tensorflow" or args.kaggle:
            parser.error(
                "--engine ray runs the ONNX networks into files with every column: drop --runtime tensorflow and "
                "--kaggle"
            )
        if args.output is None:
            parser.error("--engine ray writes a folder of files: pass --output DIR (a new folder)")
    elif args.arch != "xception" or args.augment or not args.cache_features:
        parser.error(
            "--engine ray extracts the frozen Xception backbone's features for the head: it needs --arch xception "
            "without --augment and --no-cache-features (or drop --engine ray)"
        )


def _engine(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """Ray for the length of a command that runs on it; nothing otherwise."""
    if getattr(args, "engine", "local") != "ray":
        return contextlib.nullcontext()
    from kitchenware.batch.cluster import connected

    return connected(args.address, args.verbose)


def _add_labelled_photos(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--data", type=str, action="append", required=True, help=help)


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true", help="debug logging, and TensorFlow's start-up messages")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a line is logged (pytest swaps it between tests)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(verbose: bool) -> None:
    """The package's log lines go to stderr as plain messages; each call replaces the previous handler."""
    logger = logging.getLogger("kitchenware")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbose else "%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_engine(parser, args)
    sys.stdout.reconfigure(line_buffering=True)  # progress lines appear as they happen, also in logs
    configure_logging(args.verbose)
    args.command_line = "python train.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        commands = {
            "train": train_command,
            "check": check_command,
            "evaluate": evaluate_command,
            "predict": predict_command,
            "quantize": quantize_command,
            "feedback": feedback_command,
        }
        with _engine(args):
            commands[args.command](args)
    except (DataError, ImageError, FileNotFoundError, ConnectionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _timestamped(suffix: str = "") -> Path:
    return Path("runs") / (datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + suffix)


def train_command(args: argparse.Namespace) -> None:
    from kitchenware.training.accelerators import gpu_count

    gpu_count(args.verbose)  # imports TensorFlow first, quietly unless --verbose
    import dataclasses

    from kitchenware.training import export, splits
    from kitchenware.training.config import TrainConfig
    from kitchenware.training.decisions import fit_rule, reliability_diagram
    from kitchenware.training.evaluation import write_history, write_report, write_sweep
    from kitchenware.training.trainer import cross_validate, decision_features, prepare_data, sweep, train_model

    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    config = TrainConfig(
        **{key: value for key, value in vars(args).items() if key in fields and key not in ("lr", "dropout")},
        lr=args.lr[0],
        dropout=args.dropout[0],
    )
    run_dir = args.run_dir or _timestamped()
    run_dir.mkdir(parents=True, exist_ok=True)
    extract = None
    if args.engine == "ray":
        from kitchenware.batch.features import extract_on_ray

        extract = extract_on_ray(config, args.actors, args.threads_per_actor, args.verbose)
    prepared = prepare_data(config, extract)
    for source, counts in prepared.photos.counts_by_source().items():
        print(f"{source}: {sum(counts.values())} readable images {counts}")
    print(f"{len(prepared.skipped)} skipped; classes {prepared.photos.counts()}")
    print(
        f"{prepared.split} split: {len(prepared.train)} training, {len(prepared.val)} validation images "
        f"-> {run_dir / 'split.csv'}"
    )
    splits.write_split(prepared.train, prepared.val, run_dir / "split.csv", prepared.groups)
    prepared.health.write(run_dir)
    print(f"data health check: {run_dir / 'check.md'}")
    print(prepared.health.markdown().split("\n\n", 1)[1].strip())

    cross_validation, out_of_fold = None, None
    if args.cross_validate:
        cross_validation, pooled = cross_validate(config, prepared, args.cross_validate, run_dir)
        out_of_fold = (pooled.probabilities, pooled.labels)
        (run_dir / "cross_validation.json").write_text(json.dumps(cross_validation, indent=2))
        print(
            f"grouped {args.cross_validate}-fold cross-validation: accuracy {cross_validation['accuracy_mean']} "
            f"± {cross_validation['accuracy_std']} (pooled {cross_validation['accuracy_pooled']}); recall "
            + ", ".join(f"{name} {value}" for name, value in cross_validation["recall_pooled"].items())
        )
    if len(args.lr) * len(args.dropout) > 1:
        trained, results = sweep(config, args.lr, args.dropout, prepared, run_dir)
        rows = [
            {
                "lr": r.lr,
                "dropout": r.dropout,
                "val_accuracy": round(r.val_accuracy, 4),
                "val_loss": round(r.val_loss, 4),
                "epochs": r.epochs,
                "seconds": round(r.seconds, 1),
            }
            for r in results
        ]
        write_sweep(rows, [(f"lr={r.lr} dropout={r.dropout}", r.history["val_accuracy"]) for r in results], run_dir)
        print(f"sweep table: {run_dir / 'sweep.md'}, plot: {run_dir / 'sweep.png'}")
        print((run_dir / "sweep.md").read_text())
    else:
        trained = train_model(config, prepared, run_dir)

    report = trained.report
    write_history(trained.history, run_dir)
    train_features, val_features = decision_features(trained, prepared)
    fitted = fit_rule(report.probabilities, report.labels, val_features, train_features, out_of_fold)
    answers = fitted.rule.decide(report.probabilities, val_features)
    reliability_diagram(report.probabilities, answers.probabilities, report.labels, run_dir / "reliability.png")
    report = report.decided(answers)
    write_report(report, prepared.val, run_dir, f"{trained.config.arch} on the validation split")
    card = export.training_card(trained.config, prepared, report, fitted, args.command_line)
    card = card.replace(cross_validation=cross_validation or {})
    reference = None if fitted.rule.reference is None else fitted.rule.reference.astype(np.float16)
    tag = export.save_to_store(trained.network.model, card, config.labels, reference)
    print(f"validation accuracy {report.accuracy:.4f}, loss {report.loss:.4f}; saved to the BentoML store as {tag}")
    figures = fitted.figures
    print(
        f"decisions on the validation split: temperature {figures['temperature']}, ECE {figures['ece_before']} -> "
        f"{figures['ece_after']}; {figures['confident_share']:.1%} confident (accuracy "
        f"{figures['confident_accuracy']}), {figures['unknown_share']:.1%} unknown"
    )
    if args.export:
        export.export_folder(trained.network.model, card, args.export, reference)
        print(f"exported model.onnx, model.keras and the model card to {args.export}")
    print(f"reports in {run_dir}")


def check_command(args: argparse.Namespace) -> None:
    from kitchenware.training.accelerators import gpu_count

    gpu_count(args.verbose)
    from kitchenware.training.config import TrainConfig
    from kitchenware.training.trainer import inspect_photos

    health, _ = inspect_photos(TrainConfig(data=tuple(args.data), weights=args.weights))
    out = args.out or _timestamped("-check")
    health.write(out)
    print(health.markdown())
    print(f"report in {out / 'check.md'}, near-duplicate groups in {out / 'near_duplicates.png'}")


def feedback_command(args: argparse.Namespace) -> None:
    from kitchenware.feedback.source import export, open_store

    if args.feedback_command == "purge":
        deleted = open_store(args.db, args.photos).purge(args.keep_days)
        print(f"deleted {deleted} photos without a seller's choice, older than {args.keep_days:g} days")
        return
    if args.feedback_command == "export":
        counts = export(args.db, args.folder, args.photos)
        print(f"{sum(counts.values())} labelled photos {counts} -> {args.folder}")
        return
    from kitchenware.feedback.report import write

    store = open_store(args.db, args.photos)
    answered = store.answered()
    class_names = sorted({row.predicted for row in answered} | {row.chosen for row in answered} - {"other"})
    out = args.out or _timestamped("-feedback")
    figures = write(store, class_names, out)
    overall = figures["overall"]
    print(
        f"{figures['labelled_photos']} photos labelled by sellers; live accuracy {overall['accuracy']} on the "
        f"{overall['photos']} labelled with a class; {figures['other']['photos']} 'other'"
    )
    for name, row in figures["per_class"].items():
        print(f"  {name:>8}: {row['accuracy']} ({row['photos']} photos)")
    for decision, row in figures["decisions"].items():
        print(
            f"  answered {decision}: {row['photos']} photos, {row['labelled']} labelled ({row['share_labelled']:.0%})"
        )
    print(f"report in {out}")


def _open(args: argparse.Namespace):
    """The stored or exported model, the classifier the service would run it with, and its decision rule."""
    from kitchenware import store

    if args.runtime == "tensorflow":
        from kitchenware.training.accelerators import gpu_count

        gpu_count(args.verbose)
    model = store.find(args.model)
    rule = DecisionRule.for_model(model.card, model.path, args.min_confidence, args.ood_threshold)
    runtime = args.runtime or preferred_runtime(model.path, model.card.int8)
    classifier = open_classifier(model.path, runtime, 0, model.card.input_size, rule, model.card.int8)
    return model, classifier, rule


def evaluate_command(args: argparse.Namespace) -> None:
    from kitchenware.training.evaluation import (
        Report,
        out_of_distribution,
        write_misclassified_heatmaps,
        write_out_of_distribution,
        write_report,
    )

    model, classifier, rule = _open(args)
    class_names = list(model.card.class_names)
    from kitchenware.training.sources import find_sources

    photos = find_sources(*args.data)
    unknown = sorted(set(photos.class_names) - set(class_names))
    if unknown:
        raise DataError(f"classes {unknown} in {args.data} are not among the model's {class_names}")
    samples = photos.samples
    if args.validation_of:
        with open(args.validation_of, newline="") as file:
            held_out = {(row["source"], row["Id"]) for row in csv.DictReader(file) if row["subset"] == "validation"}
        samples = [sample for sample in samples if (sample.source, sample.id) in held_out]
        if len(samples) != len(held_out):
            raise DataError(
                f"{args.validation_of} lists {len(held_out)} validation photos, {len(samples)} of them found in "
                f"{', '.join(map(str, args.data))}: pass the same --data folders as the training run"
            )
    samples, _ = drop_unreadable(samples)
    answers = classify_files(classifier, rule, [s.path for s in samples], model.card.input_size)
    report = Report(class_names, label_indices(samples, class_names), answers.probabilities).decided(answers)
    out = args.out or _timestamped("-evaluate")
    write_report(report, samples, out, f"{model.tag} on {', '.join(map(str, args.data))}")
    explained = write_misclassified_heatmaps(
        report, samples, classifier, model.card.input_size, out / "misclassified_heatmaps.png"
    )
    summary = report.decision_summary()
    print(
        f"{model.tag} on {len(samples)} images: accuracy {report.accuracy:.4f}, loss {report.loss:.4f}, "
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
    if args.ood:
        others, _ = drop_unreadable(unlabelled_images(args.ood))
        figures = out_of_distribution(
            report, others, classify_files(classifier, rule, [s.path for s in others], model.card.input_size)
        )
        write_out_of_distribution(figures, out)
        for kind, row in figures.items():
            print(
                f"  other things ({kind}, {row['photos']} photos): {row['flagged']:.1%} flagged, {row['unknown']:.1%} "
                f"unknown, {row['unsure']:.1%} unsure; AUROC {row['auroc']}, FPR at 95% TPR {row['fpr_at_95_tpr']}"
            )
    if explained:
        print(f"where the model looked on {explained} misclassified photos: {out / 'misclassified_heatmaps.png'}")
    print(f"report in {out}")


def predict_command(args: argparse.Namespace) -> None:
    if args.engine == "ray":
        predict_on_ray(args)
        return
    args.output = Path(args.output or "submission.csv")
    model, classifier, rule = _open(args)
    class_names = list(model.card.class_names)
    samples, _ = drop_unreadable(unlabelled_images(args.input))
    answers = classify_files(classifier, rule, [s.path for s in samples], model.card.input_size)
    predicted = [class_names[i] for i in answers.labels]
    scores = [""] * len(samples) if answers.ood_scores is None else [f"{v:.6f}" for v in answers.ood_scores]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", newline="") as file:
        writer = csv.writer(file)
        details = [] if args.kaggle else ["confidence", "decision", "ood_score"]
        writer.writerow(["Id", "label", *details, *(class_names if args.probabilities else [])])
        for i, sample in enumerate(samples):
            row = [] if args.kaggle else [f"{answers.confidences[i]:.6f}", answers.decisions[i], scores[i]]
            extra = [f"{p:.6f}" for p in answers.probabilities[i]] if args.probabilities else []
            writer.writerow([sample.id, predicted[i], *row, *extra])
    print(f"{len(samples)} predictions by {model.tag} -> {args.output}")
    shares = Counter(answers.decisions)
    print("decisions: " + ", ".join(f"{name} {shares[name]}" for name in DECISIONS))
    scored = [(sample.label, label) for sample, label in zip(samples, predicted) if sample.label in class_names]
    if scored:
        right = sum(truth == label for truth, label in scored)
        print(f"accuracy against the class folders: {right / len(scored):.4f} ({right} of {len(scored)} photos)")


def predict_on_ray(args: argparse.Namespace) -> None:
    from kitchenware import store
    from kitchenware.batch.predict import classify_catalogue

    model = store.find(args.model)
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


def _validation_photos(split_csv: Path) -> set[tuple[str, str]]:
    with open(split_csv, newline="") as file:
        return {(row["source"], row["Id"]) for row in csv.DictReader(file) if row["subset"] == "validation"}


def quantize_command(args: argparse.Namespace) -> None:
    from kitchenware.core.card import INT8_FILE
    from kitchenware.core.photos import Sample
    from kitchenware.training.quantize import quantize_model
    from kitchenware.training.sources import find_sources

    split_csv = args.split or args.model / "split.csv"
    if not split_csv.is_file():
        raise FileNotFoundError(
            f"{split_csv} not found: pass --split with the training run's split.csv (the band is chosen on its "
            "validation photos)"
        )
    validation = _validation_photos(split_csv)
    labelled, _ = drop_unreadable(find_sources(*args.data).samples)
    missing = validation - {(sample.source, sample.id) for sample in labelled}
    if missing:
        raise DataError(
            f"{len(missing)} validation photos of {split_csv} are not in {', '.join(args.data)} "
            f"(first: {sorted(missing)[0]}): pass the --data folders the model was trained on"
        )
    others = []
    if args.ood:
        found, _ = drop_unreadable(unlabelled_images(args.ood))
        others = [Sample(sample.id, sample.path, "", args.ood.resolve().name) for sample in found]
    out = args.out or _timestamped("-quantize")
    card = quantize_model(
        args.model,
        labelled,
        validation,
        others,
        out,
        args.calibration_photos,
        args.command_line,
        qat_epochs=args.qat_epochs,
        qat_learning_rate=args.qat_lr,
        qat_step_learning_rate=args.qat_step_lr,
    )
    int8 = card.int8
    print(f"{args.model / INT8_FILE}: band {int8['band']} (safety factor {int8['band_safety_factor']})")
    print(f"validation accuracy: {int8['validation_accuracy']}")
    for name, row in int8["figures"].items():
        print(
            f"  {name}: {row['photos']} photos, float network on {row['fallback']:.1%}, final answer = float's on "
            f"{row['final_agreement']:.2%} ({row['final_disagreements']} differ); "
            f"int8 alone {row['int8_alone_agreement']:.2%}"
        )
    print(f"per-layer errors in {out / 'layer_errors.csv'}; the card's int8 section in {out / 'int8.json'}")
