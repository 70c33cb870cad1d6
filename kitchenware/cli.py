"""The command line: `train`, `evaluate` and `predict`, each with --help."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import shlex
import sys
from pathlib import Path

import numpy as np

from kitchenware import data, store
from kitchenware.config import DEFAULT_MODEL_NAME, TrainConfig
from kitchenware.evaluation import Report, write_history, write_report, write_sweep
from kitchenware.preprocessing import ImageError
from kitchenware.training import PreparedData, prepare_data, sweep, train_model

PREDICT_BATCH = 16


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="train.py", description="Train, evaluate and use kitchenware photo classifiers."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    defaults = TrainConfig(data=Path("."))

    train = commands.add_parser(
        "train",
        help="train a classifier and save it to the BentoML model store",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    train.add_argument(
        "--data", type=Path, required=True, help="Kaggle layout (train.csv + images/) or one folder per class"
    )
    train.add_argument("--arch", choices=["scratch", "xception"], default=defaults.arch)
    train.add_argument(
        "--weights",
        default=defaults.weights,
        help="Xception backbone: imagenet (downloads), none (random) or a local .weights.h5 path",
    )
    train.add_argument("--input-size", type=int, default=0, help="square input side; 0: 150 scratch, 299 xception")
    train.add_argument("--epochs", type=int, default=defaults.epochs)
    train.add_argument("--batch-size", type=int, default=defaults.batch_size)
    train.add_argument("--lr", type=float, nargs="+", default=[defaults.lr], help="several values run a sweep")
    train.add_argument(
        "--dropout", type=float, nargs="+", default=[defaults.dropout], help="several values run a sweep"
    )
    train.add_argument(
        "--inner-size", type=int, default=defaults.inner_size, help="inner Dense units in the head; 0: none"
    )
    train.add_argument("--augment", action="store_true", help="random flip, rotation, zoom, shift and contrast")
    train.add_argument(
        "--fine-tune",
        type=int,
        default=defaults.fine_tune_epochs,
        dest="fine_tune_epochs",
        metavar="EPOCHS",
        help="then fine-tune the top Xception blocks for this many epochs",
    )
    train.add_argument("--unfreeze", type=int, default=defaults.unfreeze, help="Xception blocks (of 14) to fine-tune")
    train.add_argument("--fine-tune-lr", type=float, default=defaults.fine_tune_lr)
    train.add_argument("--val-fraction", type=float, default=defaults.val_fraction)
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--class-weight", choices=["none", "balanced"], default=defaults.class_weight)
    train.add_argument(
        "--patience",
        type=int,
        default=defaults.patience,
        help="epochs without a better validation accuracy before stopping",
    )
    train.add_argument("--target-accuracy", type=float, help="stop once validation accuracy reaches this")
    train.add_argument("--mixed-precision", choices=["auto", "on", "off"], default=defaults.mixed_precision)
    train.add_argument(
        "--no-cache-features",
        dest="cache_features",
        action="store_false",
        help="train end to end even when the backbone is frozen and augmentation is off",
    )
    train.add_argument("--name", default=DEFAULT_MODEL_NAME, help="model name in the BentoML store")
    train.add_argument("--export", type=Path, help="also write model.keras and its model card to this folder")
    train.add_argument("--run-dir", type=Path, help="reports folder (default: runs/<timestamp>)")
    train.add_argument("--tensorboard", action="store_true", help="write TensorBoard logs to the run folder")

    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a stored or exported model on labelled photos",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    evaluate.add_argument("--model", default=f"{DEFAULT_MODEL_NAME}:latest", help="store tag or exported .keras file")
    evaluate.add_argument("--data", type=Path, required=True, help="labelled photos, in either training layout")
    evaluate.add_argument("--out", type=Path, help="report folder (default: runs/<timestamp>-evaluate)")

    predict = commands.add_parser(
        "predict",
        help="classify a folder of photos (or Kaggle's test set) into a CSV",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    predict.add_argument("--model", default=f"{DEFAULT_MODEL_NAME}:latest", help="store tag or exported .keras file")
    predict.add_argument(
        "--input", type=Path, required=True, help="a folder of photos, or a folder with test.csv + images/"
    )
    predict.add_argument("--output", type=Path, default=Path("submission.csv"), help="CSV with Id,label")
    predict.add_argument("--probabilities", action="store_true", help="add one column per class with its probability")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress lines appear as they happen, also in logs
    args.command_line = "python train.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        {"train": train_command, "evaluate": evaluate_command, "predict": predict_command}[args.command](args)
    except (data.DataError, ImageError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _timestamped(suffix: str = "") -> Path:
    return Path("runs") / (datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + suffix)


def train_command(args: argparse.Namespace) -> None:
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    config = TrainConfig(
        **{key: value for key, value in vars(args).items() if key in fields and key not in ("lr", "dropout")},
        lr=args.lr[0],
        dropout=args.dropout[0],
    )
    run_dir = args.run_dir or _timestamped()
    run_dir.mkdir(parents=True, exist_ok=True)
    prepared = prepare_data(config)
    print(
        f"{prepared.photos.layout} layout: {len(prepared.photos.samples)} readable images, "
        f"{len(prepared.skipped)} skipped; classes {prepared.photos.counts()}"
    )
    print(f"split: {len(prepared.train)} training, {len(prepared.val)} validation images -> {run_dir / 'split.csv'}")
    data.write_split(prepared.train, prepared.val, run_dir / "split.csv")

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
    write_report(report, prepared.val, run_dir, f"{trained.config.arch} on the validation split")
    metadata = model_metadata(trained.config, prepared, report, args.command_line)
    tag = store.save_to_store(trained.network.model, config.name, metadata, config.labels)
    print(f"validation accuracy {report.accuracy:.4f}, loss {report.loss:.4f}; saved to the BentoML store as {tag}")
    if args.export:
        print(f"exported {store.export(trained.network.model, metadata, args.export)} and its model card")
    print(f"reports in {run_dir}")


def model_metadata(config: TrainConfig, prepared: PreparedData, report: Report, command_line: str) -> dict:
    """Everything needed to serve and to trust the model: the store metadata and the model card."""
    train_counts = dict.fromkeys(prepared.class_names, 0)
    for sample in prepared.train:
        train_counts[sample.label] += 1
    return {
        "name": config.name,
        "class_names": prepared.class_names,
        "input_size": config.input_size,
        "architecture": config.arch,
        "weights": config.weights if config.arch == "xception" else "none (trained from scratch)",
        "command": command_line,
        "config": config.as_metadata(),
        "validation": report.summary(),
        "dataset": {
            "root": str(prepared.photos.root),
            "layout": prepared.photos.layout,
            "images": len(prepared.photos.samples),
            "skipped": len(prepared.skipped),
            "counts": prepared.photos.counts(),
            "train_counts": train_counts,
            "fingerprint": prepared.fingerprint,
        },
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _probabilities(loaded: store.StoredModel, samples: list[data.Sample]) -> np.ndarray:
    dataset = data.image_dataset([sample.path for sample in samples], None, loaded.input_size, PREDICT_BATCH)
    return loaded.model.predict(dataset, verbose=0).astype(np.float32)


def evaluate_command(args: argparse.Namespace) -> None:
    loaded = store.load(args.model)
    photos = data.find_photos(args.data)
    unknown = sorted(set(photos.class_names) - set(loaded.class_names))
    if unknown:
        raise data.DataError(f"classes {unknown} in {args.data} are not among the model's {loaded.class_names}")
    samples, _ = data.drop_unreadable(photos.samples)
    report = Report(
        loaded.class_names, data.label_indices(samples, loaded.class_names), _probabilities(loaded, samples)
    )
    out = args.out or _timestamped("-evaluate")
    write_report(report, samples, out, f"{loaded.tag} on {args.data}")
    print(f"{loaded.tag} on {len(samples)} images: accuracy {report.accuracy:.4f}, loss {report.loss:.4f}")
    for row in report.per_class():
        print(
            f"  {row['class']:>8}: precision {row['precision']:.3f} recall {row['recall']:.3f} "
            f"f1 {row['f1']:.3f} ({row['support']} images)"
        )
    print(f"report in {out}")


def predict_command(args: argparse.Namespace) -> None:
    loaded = store.load(args.model)
    samples, _ = data.drop_unreadable(data.unlabelled_images(args.input))
    probabilities = _probabilities(loaded, samples)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["Id", "label", *(loaded.class_names if args.probabilities else [])])
        for sample, row in zip(samples, probabilities):
            extra = [f"{p:.6f}" for p in row] if args.probabilities else []
            writer.writerow([sample.id, loaded.class_names[row.argmax()], *extra])
    print(f"{len(samples)} predictions by {loaded.tag} -> {args.output}")
