"""The command line, `kitchenware <command>` (or `python train.py <command>`): train, retrain, check, evaluate,
predict, quantize, feedback; each with --help.

One module per command parses its options and prints its results; the work is in the rooms (training/pipeline.py,
training/int8/, the Classifier, batch/). Each command imports only what it runs: `evaluate` and `predict` classify
with ONNX Runtime and never import TensorFlow; `train` (and `--runtime tensorflow`) import it with its start-up noise
silenced unless `--verbose`. Library code logs; only these modules print.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shlex
import sys
from pathlib import Path

from kitchenware.cli import check, evaluate, feedback, predict, quantize, retrain, train
from kitchenware.core.photos import DataError
from kitchenware.core.preprocessing import ImageError

COMMANDS = {
    "train": train,
    "retrain": retrain,
    "check": check,
    "evaluate": evaluate,
    "predict": predict,
    "quantize": quantize,
    "feedback": feedback,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train, evaluate and use kitchenware photo classifiers.")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS.values():
        command.add_parser(commands)
    return parser


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Options that only make sense on the ray engine are refused on the local one, not ignored; on the ray
    engine, their defaults are filled in. Then the command checks its own combinations."""
    if getattr(args, "engine", "local") == "local":
        ray_only = [name for name in ("address", "actors", "threads_per_actor", "format") if getattr(args, name, None)]
        if ray_only:
            option = "--" + ray_only[0].replace("_", "-")
            parser.error(f"{option} is for --engine ray: add --engine ray, or leave {option} out")
    else:
        args.threads_per_actor = args.threads_per_actor or 1
    check = getattr(COMMANDS[args.command], "check", None)
    if check:
        check(parser, args)


def _engine(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """Ray for the length of a command that runs on it; nothing otherwise."""
    if getattr(args, "engine", "local") != "ray":
        return contextlib.nullcontext()
    from kitchenware.batch.cluster import connected

    return connected(args.address, args.verbose)


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


def _command_line(argv: list[str]) -> str:
    """How the command was run, for the model card: `python train.py ...` or `kitchenware ...`."""
    program = "python train.py" if Path(sys.argv[0]).name == "train.py" else "kitchenware"
    return f"{program} {shlex.join(argv)}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    sys.stdout.reconfigure(line_buffering=True)  # progress lines appear as they happen, also in logs
    configure_logging(args.verbose)
    args.command_line = _command_line(sys.argv[1:] if argv is None else argv)
    try:
        with _engine(args):
            COMMANDS[args.command].run(args)
    except (DataError, ImageError, FileNotFoundError, ConnectionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
