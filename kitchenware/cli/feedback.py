"""`kitchenware feedback report|export|queue|purge|erase|upgrade`: what sellers chose for the photos the service
classified, the photos most worth a reviewer's label, and the store's upkeep (purge, erase, upgrade: defined in
kitchenware/feedback/commands.py, which the service image has too)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from kitchenware.cli.options import HelpFormatter, add_verbose, timestamped
from kitchenware.feedback import commands as upkeep

if TYPE_CHECKING:
    from kitchenware.feedback.repository import FeedbackStore

COMMANDS = {
    "report": "live accuracy overall, per class, week and model; the confusion matrix; decisions labelled",
    "export": "copy the photos sellers labelled into DIR/<class>/ (the class-folder layout)",
    "queue": "the photos without a choice, the most worth a reviewer's label first, and why each is there",
}


def add_parser(commands: argparse._SubParsersAction) -> None:
    feedback = commands.add_parser(
        "feedback",
        help="what sellers chose for classified photos: report, export, queue; the store's upkeep: purge, erase",
    )
    feedback_commands = feedback.add_subparsers(dest="feedback_command", required=True)
    for name, text in COMMANDS.items():
        command = feedback_commands.add_parser(name, help=text, formatter_class=HelpFormatter)
        upkeep.add_store_options(command)
        if name == "report":
            command.add_argument("--out", type=Path, help="report folder (default: runs/<timestamp>-feedback)")
        elif name == "export":
            command.add_argument("folder", type=Path, help="where to write <class>/<photo id>.<format>")
        elif name == "queue":
            command.add_argument("--limit", type=_positive, default=20, help="how many photos to list")
        add_verbose(command)
    for command in upkeep.add_parsers(feedback_commands, formatter_class=HelpFormatter):
        add_verbose(command)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of photos (1 or more)")
    return int(text)


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    upkeep.check(parser, args)


def run(args: argparse.Namespace) -> None:
    from kitchenware.feedback.source import export, open_store

    if args.feedback_command in upkeep.COMMANDS:
        upkeep.run(args)
        return
    if args.feedback_command == "export":
        counts = export(args.db, args.folder, args.photos)
        print(f"{sum(counts.values())} labelled photos {counts} -> {args.folder}")
        return
    if args.feedback_command == "queue":
        print_queue(open_store(args.db, args.photos, read_only=True), args.limit)
        return
    from kitchenware.training.feedback_report import write

    store = open_store(args.db, args.photos, read_only=True)
    answered = store.answered()
    class_names = sorted({row.predicted for row in answered} | {row.chosen for row in answered} - {"other"})
    out = args.out or timestamped("-feedback")
    figures = write(store, class_names, out)
    overall = figures["overall"]
    print(
        f"{figures['labelled_photos']} photos labelled (by sellers or reviewers); live accuracy "
        f"{overall['accuracy']} on the {overall['photos']} labelled with a class; {figures['other']['photos']} 'other'"
    )
    for name, row in figures["per_class"].items():
        print(f"  {name:>8}: {row['accuracy']} ({row['photos']} photos)")
    for decision, row in figures["decisions"].items():
        print(
            f"  answered {decision}: {row['photos']} photos, {row['labelled']} labelled ({row['share_labelled']:.0%})"
        )
    print(f"report in {out}")


def print_queue(store: FeedbackStore, limit: int) -> None:
    """The review queue as a table: rank, photo id, the answer, and why the photo is there."""
    from kitchenware.feedback.review import rank

    picks = rank(store.unlabelled(), limit)
    if not picks:
        print("no photo waits for a label: every stored photo has a choice")
        return
    print(f"{'#':>3}  {'photo id':64}  {'decision':9}  {'label':8}  {'conf.':>5}  {'margin':>6}  why")
    for place, pick in enumerate(picks, start=1):
        margin = "" if pick.margin is None else f"{pick.margin:.3f}"
        print(
            f"{place:>3}  {pick.photo_id}  {pick.decision:9}  {pick.label:8}  {pick.confidence:5.3f}  {margin:>6}  "
            f"{pick.reason}"
        )
