"""`kitchenware feedback report|export|purge`: what sellers chose for the photos the service classified."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from kitchenware.cli.options import HelpFormatter, add_verbose, timestamped

COMMANDS = {
    "report": "live accuracy overall, per class, week and model; the confusion matrix; decisions labelled",
    "export": "copy the photos sellers labelled into DIR/<class>/ (the class-folder layout)",
    "purge": "delete the photos that never got a seller's choice after --keep-days days",
}


def add_parser(commands: argparse._SubParsersAction) -> None:
    feedback = commands.add_parser("feedback", help="what sellers chose for classified photos: report, export")
    feedback_commands = feedback.add_subparsers(dest="feedback_command", required=True)
    for name, text in COMMANDS.items():
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
        add_verbose(command)


def run(args: argparse.Namespace) -> None:
    from kitchenware.feedback.source import export, open_store

    if args.feedback_command == "purge":
        deleted = open_store(args.db, args.photos).purge(args.keep_days)
        print(f"deleted {deleted} photos without a seller's choice, older than {args.keep_days:g} days")
        return
    if args.feedback_command == "export":
        counts = export(args.db, args.folder, args.photos)
        print(f"{sum(counts.values())} labelled photos {counts} -> {args.folder}")
        return
    from kitchenware.training.feedback_report import write

    store = open_store(args.db, args.photos)
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
