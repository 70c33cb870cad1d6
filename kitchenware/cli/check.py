"""`kitchenware check`: the data health check alone (it also runs before every training)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kitchenware.cli.options import add_command, add_labelled_photos, add_verbose, quiet_tensorflow, timestamped
from kitchenware.training.config import TrainConfig


def add_parser(commands: argparse._SubParsersAction) -> None:
    check = add_command(
        commands,
        "check",
        "check labelled photos before training: unreadable, duplicates, near-duplicates, tiny, unbalanced",
    )
    add_labelled_photos(check, "labelled photos, in either training layout; repeatable")
    check.add_argument(
        "--weights",
        default=TrainConfig(data=(Path("."),)).weights,
        help="the Xception backbone whose features find near-duplicates: imagenet (downloads) or a local copy",
    )
    check.add_argument("--out", type=Path, help="report folder (default: runs/<timestamp>-check)")
    add_verbose(check)


def run(args: argparse.Namespace) -> None:
    quiet_tensorflow(args.verbose)
    from kitchenware.training.trainer import inspect_photos

    health, _ = inspect_photos(TrainConfig(data=tuple(args.data), weights=args.weights))
    out = args.out or timestamped("-check")
    health.write(out)
    print(health.markdown())
    print(f"report in {out / 'check.md'}, near-duplicate groups in {out / 'near_duplicates.png'}")
