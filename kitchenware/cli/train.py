"""`kitchenware train`: train a classifier and save it to the BentoML model store (training/pipeline.py)."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from kitchenware.cli.options import (
    add_command,
    add_engine_options,
    add_tracking_options,
    add_verbose,
    quiet_tensorflow,
    timestamped,
    tracking,
    tracking_uri,
)
from kitchenware.core.card import DEFAULT_MODEL_NAME
from kitchenware.training.augmentation import ROTATION_FILLS
from kitchenware.training.config import HEADS, INPUT_SIZES, TrainConfig

if TYPE_CHECKING:
    from kitchenware.training.pipeline import TrainingRun


def add_parser(commands: argparse._SubParsersAction) -> None:
    train = add_command(commands, "train", "train a classifier and save it to the BentoML model store")
    add_training_options(train)
    output = train.add_argument_group("output")
    output.add_argument("--name", default=DEFAULT_MODEL_NAME, help="model name in the BentoML store")
    output.add_argument(
        "--export", type=Path, help="also write model.onnx, model.keras and the model card to this folder"
    )
    output.add_argument("--run-dir", type=Path, help="reports folder (default: runs/<timestamp>)")
    output.add_argument("--tensorboard", action="store_true", help="write TensorBoard logs to the run folder")
    add_engine_options(train, "where the frozen backbone's features are extracted (the slow part on a CPU)")
    add_tracking_options(train).add_argument(
        "--register",
        metavar="NAME",
        help="register the exported model folder (--export, or a temporary one) as a new version of this model in "
        "MLflow's model registry",
    )
    add_verbose(train)


def add_training_options(train: argparse.ArgumentParser) -> None:
    """What a run trains on and how (data, validation, model, training, fine-tuning, stopping): `train`'s options,
    which `retrain` shares for its challenger."""
    defaults = TrainConfig(data=(Path("."),))
    sizes = ", ".join(f"{size} {arch}" for arch, size in INPUT_SIZES.items())
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
        "--seed", type=int, default=defaults.seed, help="seed of the split, the shuffling and the weights"
    )
    source.add_argument(
        "--origins",
        metavar="CSV",
        help="where each photo comes from, for folders that mix several places: a CSV of source,Id,origin (source "
        "and Id as split.csv names them; default: each --data source is one origin)",
    )
    source.add_argument(
        "--feedback-before",
        metavar="DATE",
        help="of feedback:<URL> sources, only the photos sellers labelled before this moment (ISO 8601, e.g. "
        "2026-12-07 or 2026-12-07T18:30:00+01:00; UTC without a zone): a run the growing store can repeat",
    )
    held_out = train.add_argument_group("validation")
    held_out.add_argument(
        "--val-fraction", type=float, default=defaults.val_fraction, help="share held out for validation"
    )
    held_out.add_argument(
        "--split",
        choices=["grouped", "stratified"],
        default=defaults.split,
        help="grouped: near-duplicate photos stay on one side (Xception with cached features); stratified: one by one",
    )
    held_out.add_argument(
        "--validate-on",
        metavar="ORIGIN",
        help="validate on the photos of this origin (a --data source's name, or an origin of --origins), train on "
        "the others: what the model does on a source it never saw",
    )
    held_out.add_argument(
        "--cross-validate",
        metavar="FOLDS|sources",
        help="first measure this setting on all the photos, by grouped k-fold cross-validation, or with 'sources' by "
        "holding out each origin in turn; the temperature and the 'unsure' bar are then fit on those held-out "
        "answers, and with 'sources' the 'unknown' threshold too (cached features)",
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
        "--head",
        choices=list(HEADS),
        default=defaults.head,
        help="Xception's head: probe (L2-normalised features, logistic regression fit by scikit-learn) or dense "
        "(a softmax layer trained by Keras: --lr, --dropout, --inner-size, --epochs)",
    )
    model.add_argument(
        "--probe-c",
        type=float,
        nargs="+",
        default=[defaults.probe_c],
        help=f"the probe's inverse L2 strength (scikit-learn's C); several values run a sweep (default: "
        f"{defaults.probe_c})",
    )
    model.add_argument(
        "--inner-size", type=int, default=defaults.inner_size, help="dense head: inner Dense units; 0: none"
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
    stop.add_argument("--target-accuracy", type=float, help="stop once validation accuracy reaches this")


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    try:
        configuration(args)  # TrainConfig refuses the settings that do not go together
    except ValueError as problem:
        parser.error(str(problem))
    probe = args.head == "probe" and args.arch == "xception"
    if probe and len(args.lr) * len(args.dropout) > 1:
        parser.error("--lr and --dropout sweeps train the dense head: add --head dense, or sweep --probe-c")
    if not probe and len(args.probe_c) > 1:
        parser.error("--probe-c sweeps the probe head: drop --head dense (the probe is the default)")
    if args.cross_validate not in (None, "sources") and not args.cross_validate.isdigit():
        parser.error(f"--cross-validate takes a number of folds or 'sources', not {args.cross_validate!r}")
    if args.engine == "ray" and (args.arch != "xception" or args.augment or not args.cache_features):
        parser.error(
            "--engine ray extracts the frozen Xception backbone's features for the head: it needs --arch xception "
            "without --augment and --no-cache-features (or drop --engine ray)"
        )
    if getattr(args, "register", None) and not tracking_uri(args):
        parser.error("--register needs an MLflow tracking server: set MLFLOW_TRACKING_URI or add --mlflow URI")


def configuration(args: argparse.Namespace) -> tuple[TrainConfig, list[dict]]:
    """The training setting the options describe (the first of a sweep) and the sweep's settings."""
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    swept = ("lr", "dropout", "probe_c")
    config = TrainConfig(**{key: value for key, value in vars(args).items() if key in fields and key not in swept})
    if config.head == "probe":
        settings = [{"probe_c": c} for c in args.probe_c]
    else:
        settings = [{"lr": lr, "dropout": dropout} for lr, dropout in itertools.product(args.lr, args.dropout)]
    return dataclasses.replace(config, **settings[0]), settings


def trained(args: argparse.Namespace, run_dir: Path, export_to: Path | None, save: bool = True) -> TrainingRun:
    """Train what the options say (a sweep, cross-validation first, on the engine asked for) into `run_dir`."""
    quiet_tensorflow(args.verbose)
    from kitchenware.training.pipeline import train

    config, settings = configuration(args)
    folds = int(args.cross_validate) if args.cross_validate and args.cross_validate.isdigit() else args.cross_validate
    extract = None
    if args.engine == "ray":
        from kitchenware.batch.features import extract_on_ray

        extract = extract_on_ray(config, args.actors, args.threads_per_actor, args.verbose)
    return train(config, run_dir, settings, folds, export_to, args.command_line, extract, save)


def run(args: argparse.Namespace) -> None:
    with tracking(args, f"train {args.name}") as tracker, tempfile.TemporaryDirectory() as scratch:
        export = args.export or (Path(scratch) / "export" if args.register else None)
        run_dir = args.run_dir or timestamped()
        done = trained(args, run_dir, export)
        print_training(done)
        if args.export:
            print(f"exported model.onnx, model.keras and the model card to {args.export}")
        print(f"reports in {run_dir}")
        if tracker:
            tracker.log_training(done, None if args.register else export)  # register logs the folder itself
        if args.register:
            from kitchenware.training.registry import register

            version = register(export, args.register)
            print(f"registered as version {version} of {args.register} in MLflow: models:/{args.register}/{version}")


def print_training(done: TrainingRun) -> None:
    """The sweep's table, the validation figures and the decision rule fit on them."""
    if done.sweep_table:
        print(f"sweep table: {done.run_dir / 'sweep.md'}, plot: {done.run_dir / 'sweep.png'}")
        print(done.sweep_table)
    report, figures = done.report, done.fitted.figures
    stored = f"; saved to the BentoML store as {done.tag}" if done.tag else ""
    print(f"validation accuracy {report.accuracy:.4f}, loss {report.loss:.4f}{stored}")
    print(
        f"decisions on the validation split: temperature {figures['temperature']}, ECE {figures['ece_before']} -> "
        f"{figures['ece_after']}; {figures['confident_share']:.1%} confident (accuracy "
        f"{figures['confident_accuracy']}), {figures['unknown_share']:.1%} unknown"
    )
