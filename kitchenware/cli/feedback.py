"""`kitchenware feedback report|export|purge|erase|upgrade`: what sellers chose for the photos the service classified,
and the store's upkeep (purge, erase, upgrade: defined in kitchenware/feedback/commands.py, which the service image
has too)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kitchenware.cli.options import HelpFormatter, add_verbose, timestamped
from kitchenware.feedback import commands as upkeep

COMMANDS = {
    "report": "live accuracy overall, per class, week and model; the confusion matrix; decisions labelled",
    "export": "copy the photos sellers labelled into DIR/<class>/ (the class-folder layout)",
}


def add_parser(commands: argparse._SubParsersAction) -> None:
    feedback = commands.add_parser(
        "feedback", help="what sellers chose for classified photos: report, export; the store's upkeep: purge, erase"
    )
    feedback_commands = feedback.add_subparsers(dest="feedback_command", required=True)
    for name, text in COMMANDS.items():
        command = feedback_commands.add_parser(name, help=text, formatter_class=HelpFormatter)
        upkeep.add_store_options(command)
        if name == "report":
            command.add_argument("--out", type=Path, help="report folder (default: runs/<timestamp>-feedback)")
        elif name == "export":
            command.add_argument("folder", type=Path, help="where to write <class>/<photo id>.<format>")
        add_verbose(command)
    for command in upkeep.add_parsers(feedback_commands, formatter_class=HelpFormatter):
        add_verbose(command)


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
    from kitchenware.training.feedback_report import write

    store = open_store(args.db, args.photos, read_only=True)
    answered = store.answered()
    class_names = sorted({row.predicted for row in answered} | {row.chosen for row in answered} - {"other"})
    out = args.out or timestamped("-feedback")
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
