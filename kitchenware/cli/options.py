"""The options several commands share, and the help text's format."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
from pathlib import Path
from typing import Any

from kitchenware.classifier import Classifier
from kitchenware.core.card import DEFAULT_MODEL_NAME
from kitchenware.core.runtimes import RUNTIMES


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one to show (not for flags, required options, None, or a help text that
    says its own default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        hidden = action.default in (None, False, argparse.SUPPRESS) or isinstance(action, argparse._StoreFalseAction)
        if hidden or action.required or "(default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def add_command(commands: argparse._SubParsersAction, name: str, help: str) -> argparse.ArgumentParser:
    return commands.add_parser(name, help=help, formatter_class=HelpFormatter)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=f"{DEFAULT_MODEL_NAME}:latest", help="store tag, or an exported model folder (e.g. models)"
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        help="what runs the model, as in the service (KITCHENWARE_RUNTIME) (default: onnx-int8-cascade when the "
        "model has model-int8.onnx from `kitchenware quantize`, else onnx)",
    )
    parser.add_argument(
        "--min-confidence", type=float, help="'unsure' under this calibrated confidence (default: the model's own)"
    )
    parser.add_argument(
        "--ood-threshold", type=float, help="'unknown' above this out-of-distribution score (default: the model's own)"
    )


def add_engine_options(parser: argparse.ArgumentParser, what: str) -> argparse._ArgumentGroup:
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


def add_labelled_photos(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--data", type=str, action="append", required=True, help=help)


def add_tracking_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    tracking = parser.add_argument_group(
        "tracking", "log the run to MLflow: on when MLFLOW_TRACKING_URI is set or --mlflow is given"
    )
    tracking.add_argument(
        "--mlflow",
        metavar="URI",
        help="MLflow tracking server, e.g. http://localhost:5000 (default: MLFLOW_TRACKING_URI)",
    )
    tracking.add_argument(
        "--experiment",
        metavar="NAME",
        help="MLflow experiment of the run (default: MLFLOW_EXPERIMENT_NAME, else kitchenware)",
    )
    return tracking


def tracking_uri(args: argparse.Namespace) -> str | None:
    """Where the command's run is tracked: --mlflow, else MLFLOW_TRACKING_URI; None: not tracked."""
    return args.mlflow or os.environ.get("MLFLOW_TRACKING_URI") or None


def tracking(args: argparse.Namespace, run_name: str) -> contextlib.AbstractContextManager:
    """The command's MLflow run, yielding its Tracker, when tracking is on (the server is checked first); otherwise
    None, and mlflow is never imported."""
    uri = tracking_uri(args)
    if uri is None:
        return contextlib.nullcontext()
    from kitchenware.training.tracking import tracked

    return tracked(uri, args.experiment, run_name, args.command_line)


def tracked_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options a command was given, as an MLflow run's parameters (not those of tracking and logging)."""
    internal = {"command", "command_line", "verbose", "mlflow", "experiment"}
    return {key: value for key, value in vars(args).items() if key not in internal and value is not None}


def add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true", help="debug logging, and TensorFlow's start-up messages")


def timestamped(suffix: str = "") -> Path:
    """runs/<date-time><suffix>: the default folder of a command's reports."""
    return Path("runs") / (datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + suffix)


def quiet_tensorflow(verbose: bool) -> None:
    """Import TensorFlow with its start-up noise silenced unless verbose (and count the GPUs it sees)."""
    from kitchenware.training.accelerators import gpu_count

    gpu_count(verbose)


def open_model(args: argparse.Namespace) -> Classifier:
    """The model of --model, run as --runtime says (default: as the service would), with the thresholds given."""
    if args.runtime == "tensorflow":
        quiet_tensorflow(args.verbose)
    return Classifier.open(args.model, args.runtime, 0, args.min_confidence, args.ood_threshold)
