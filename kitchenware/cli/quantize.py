"""`kitchenware quantize`: the int8 network of an exported model and its cascade band (training/int8/)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kitchenware.cli.options import (
    add_command,
    add_labelled_photos,
    add_tracking_options,
    add_verbose,
    timestamped,
    tracked_options,
    tracking,
)
from kitchenware.core.card import ModelCard
from kitchenware.training.config import QAT_EPOCHS, QAT_LEARNING_RATE, QAT_STEP_LEARNING_RATE


def add_parser(commands: argparse._SubParsersAction) -> None:
    quantize = add_command(
        commands,
        "quantize",
        "write an exported model's int8 network (model-int8.onnx) and its cascade band into the folder",
    )
    quantize.add_argument("--model", type=Path, required=True, help="an exported model folder (e.g. models)")
    add_labelled_photos(
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
    add_tracking_options(quantize)
    add_verbose(quantize)


def run(args: argparse.Namespace) -> None:
    out = args.out or timestamped("-quantize")
    with tracking(args, f"quantize {args.model}") as tracker:
        card = _quantize(args, out)
        if tracker:
            tracker.log_quantization(card, out, tracked_options(args))


def _quantize(args: argparse.Namespace, out: Path) -> ModelCard:
    from kitchenware.training.int8.pipeline import quantize_model

    card = quantize_model(
        args.model,
        args.data,
        out,
        args.split,
        args.ood,
        args.calibration_photos,
        args.command_line,
        qat_epochs=args.qat_epochs,
        qat_learning_rate=args.qat_lr,
        qat_step_learning_rate=args.qat_step_lr,
    )
    int8 = card.int8
    print(f"{args.model / int8.file}: band {int8.band} (safety factor {int8.band_safety_factor})")
    print(f"validation accuracy: {int8.validation_accuracy}")
    for name, row in int8.figures.items():
        print(
            f"  {name}: {row.photos} photos, float network on {row.fallback:.1%}, final answer = float's on "
            f"{row.final_agreement:.2%} ({row.final_disagreements} differ); int8 alone {row.int8_alone_agreement:.2%}"
        )
    print(f"per-layer errors in {out / 'layer_errors.csv'}; the card's int8 section in {out / 'int8.json'}")
    return card
