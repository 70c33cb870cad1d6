"""The feedback store's upkeep from a command line, `purge`, `erase` and `upgrade`: defined here, in the feedback
room, so that the service image, which holds no cli/ (bentofile.yaml), runs them as `python -m kitchenware.feedback`,
and `kitchenware feedback` offers the same commands with the same options."""

from __future__ import annotations

import argparse
import datetime
import os
from pathlib import Path

from kitchenware.core.photos import DataError

COMMANDS = {
    "purge": "delete the photos that never got a seller's choice after --keep-days days",
    "erase": "remove one photo, or every photo first stored before --before DATE: its file and every row about it",
    "upgrade": "bring the database's schema to this version's newest revision (the service does it at start)",
}


def add_store_options(command: argparse.ArgumentParser, photos: bool = True) -> None:
    """--db (default: KITCHENWARE_FEEDBACK_DB, as the service and a CronJob have it) and --photos."""
    url = os.environ.get("KITCHENWARE_FEEDBACK_DB")
    command.add_argument(
        "--db",
        required=not url,
        default=url,
        help="the feedback store's SQLAlchemy URL (default: KITCHENWARE_FEEDBACK_DB, so that no password shows in a "
        "process list)",
    )
    if not photos:
        return
    command.add_argument(
        "--photos",
        type=Path,
        help="its photo folder (default: KITCHENWARE_FEEDBACK_PHOTOS, else photos/ beside a SQLite file)",
    )


def add_parsers(commands: argparse._SubParsersAction, **parser_options) -> list[argparse.ArgumentParser]:
    """Add `purge` and `erase` to a parser's commands; returns their parsers (for the caller's common options)."""
    added = []
    for name, text in COMMANDS.items():
        command = commands.add_parser(name, help=text, description=text, **parser_options)
        add_store_options(command, photos=name != "upgrade")
        if name == "purge":
            command.add_argument(
                "--keep-days",
                type=float,
                default=float(os.environ.get("KITCHENWARE_FEEDBACK_KEEP_DAYS") or 30),
                help="days a photo without a choice is kept (default: KITCHENWARE_FEEDBACK_KEEP_DAYS, else 30)",
            )
        elif name == "erase":
            command.add_argument(
                "photo_id", nargs="?", metavar="PHOTO_ID", help="the photo_id /classify answered for the photo"
            )
            command.add_argument(
                "--before",
                type=_moment,
                metavar="DATE",
                help="instead of one photo: every photo first stored before this date or time (ISO 8601, UTC unless "
                "it says otherwise), labelled or not",
            )
        added.append(command)
    return added


def _moment(text: str) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is no date: write it as 2026-01-31 or 2026-01-31T12:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """erase takes exactly one of PHOTO_ID or --before, and no date in the future (that would erase everything)."""
    if args.feedback_command != "erase":
        return
    if (args.photo_id is None) == (args.before is None):
        parser.error("feedback erase takes exactly one of PHOTO_ID or --before DATE")
    if args.before and args.before > datetime.datetime.now(datetime.UTC):
        parser.error(f"--before {args.before.isoformat()} is in the future: erase up to now at most")


def run(args: argparse.Namespace) -> None:
    """Run purge, erase or upgrade and print what it did; DataError for a photo id the store does not hold or a
    database that cannot be reached."""
    from sqlalchemy.exc import OperationalError  # SQLAlchemy: loaded by the commands that use it

    from kitchenware.feedback.repository import UnknownPhoto
    from kitchenware.feedback.schema import migrate, open_engine
    from kitchenware.feedback.source import open_store

    if args.feedback_command == "upgrade":
        try:
            revision = migrate(open_engine(args.db))
        except OperationalError as problem:
            reason = str(problem.orig or problem).partition("\n")[0]
            raise DataError(f"could not open the feedback database ({reason}): check --db and that it runs") from None
        print(f"the feedback database is at revision {revision}, this version's newest")
        return
    store = open_store(args.db, args.photos)
    if args.feedback_command == "purge":
        deleted = store.purge(args.keep_days)
        print(f"deleted {deleted} photos without a seller's choice, older than {args.keep_days:g} days")
    elif args.before:
        print(f"erased every photo first stored before {args.before.isoformat()}: {store.erase_before(args.before)}")
    else:
        try:
            erased = store.erase(args.photo_id)
        except UnknownPhoto:
            raise DataError(
                f"no stored photo has the id {args.photo_id}: it was never stored, or is erased already"
            ) from None
        print(f"erased photo {args.photo_id}: {erased}")
