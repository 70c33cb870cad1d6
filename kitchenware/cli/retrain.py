"""`kitchenware retrain`: train a challenger as `train` does, judge it against the champion on photos neither
trained on, and promote it only when it wins (the rule: kitchenware/training/challenger.py)."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path
from typing import TYPE_CHECKING

from kitchenware.cli import train
from kitchenware.cli.options import (
    add_command,
    add_engine_options,
    add_tracking_options,
    add_verbose,
    timestamped,
    tracking,
    tracking_uri,
)
from kitchenware.core.card import CARD_JSON, ModelCard
from kitchenware.training.config import TrainConfig
from kitchenware.training.model_uri import is_registry_uri, registry_alias

if TYPE_CHECKING:
    from kitchenware.training.retrain import Judgement
    from kitchenware.training.tracking import Tracker

# The newest fifth of the photos sellers labelled is kept out of the challenger's training to judge it on: the share
# `train` validates on, taken by time, since the newest photos are the most like what sellers upload next.
HOLDOUT_NEWEST = 0.2
# What a challenger learns from (--data, --origins) is given; how it learns, when not given, is the champion's.
NOT_INHERITED = {"data", "origins", "feedback_before", "tensorboard"}
INHERITED = tuple(field.name for field in dataclasses.fields(TrainConfig) if field.name not in NOT_INHERITED)
SWEPT = ("lr", "dropout", "probe_c")  # options that take a list of values (a sweep)


def add_parser(commands: argparse._SubParsersAction) -> None:
    retrain = add_command(
        commands, "retrain", "train a challenger on newer photos and promote it only if it beats the champion"
    )
    retrain.description = (
        "Train a challenger (the options of `train`; those left out are the champion's, as its model card records "
        "them, then train's defaults), judge both models on photos neither trained on (the challenger's validation "
        "photos and the newest photos sellers labelled), write a side-by-side report and promote the challenger "
        "only when it is worse beyond the noise on no figure and better beyond the noise on one at least. Exit "
        "code 0 whether it is promoted or the champion is kept; 2 on an error."
    )
    champion = retrain.add_argument_group("champion")
    champion.add_argument(
        "--champion",
        required=True,
        metavar="DIR|models:/NAME@ALIAS",
        help="the model in service: an exported model folder (`train --export DIR`), or a registered model's alias "
        "in the MLflow model registry of MLFLOW_TRACKING_URI (or --mlflow)",
    )
    champion.add_argument(
        "--holdout-newest",
        type=float,
        default=HOLDOUT_NEWEST,
        metavar="FRACTION",
        help="the share of the photos sellers labelled (the newest, by when they chose) kept out of the "
        "challenger's training to judge both models on; 0: judge on the validation photos alone",
    )
    train.add_training_options(retrain)
    output = retrain.add_argument_group("output")
    output.add_argument("--name", help="the challenger's model name (default: the champion's)")
    output.add_argument(
        "--export",
        type=Path,
        help="where a winning challenger's exported folder goes (default: in place of a --champion folder; a "
        "registry champion's alias moves to it in any case)",
    )
    output.add_argument("--report", type=Path, help="report folder (default: the run folder)")
    output.add_argument(
        "--run-dir",
        type=Path,
        help="the challenger's training reports and exported folder, a registry champion's files (default: "
        "runs/<timestamp>-retrain)",
    )
    add_engine_options(retrain, "where the frozen backbone's features are extracted (the slow part on a CPU)")
    add_tracking_options(retrain)
    add_verbose(retrain)
    # Left out: the champion's (inherit), so "not given" must be told from train's defaults.
    retrain.set_defaults(**dict.fromkeys(INHERITED), cross_validate=None)
    for action in retrain._actions:
        if action.dest in (*INHERITED, "cross_validate") and action.help:
            action.help = re.sub(r" ?\(default: .*\)$", "", action.help) + " (default: the champion's)"


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not 0 <= args.holdout_newest < 1:
        parser.error(
            f"--holdout-newest is a share of the labelled photos, from 0 to under 1, not {args.holdout_newest}"
        )
    if args.feedback_before:
        parser.error(
            "retrain keeps the newest feedback photos out of training itself (--holdout-newest): drop --feedback-before"
        )
    if is_registry_uri(args.champion):
        try:
            registry_alias(args.champion)
        except ValueError as problem:
            parser.error(str(problem))
        if not tracking_uri(args):
            parser.error(
                f"--champion {args.champion} is in an MLflow registry: set MLFLOW_TRACKING_URI or add --mlflow URI"
            )
    elif not (Path(args.champion) / CARD_JSON).is_file():
        parser.error(
            f"--champion {args.champion}: no exported model folder there (model.onnx and {CARD_JSON}, written by "
            "`kitchenware train --export DIR`); a registered model is named models:/NAME@ALIAS"
        )


def inherit(parser: argparse.ArgumentParser, args: argparse.Namespace, card: ModelCard) -> None:
    """Fill the training options left out with the champion's settings, then train's defaults."""
    defaults = TrainConfig(data=(".",))
    if args.weights is None and card.weights_sha256:
        parser.error(
            f"the champion was trained from a local copy of the ImageNet weights (SHA-256 {card.weights_sha256}): "
            "pass the file as --weights PATH, or --weights imagenet to download the same weights through Keras"
        )
    same_network = args.arch in (None, card.architecture)
    for name in INHERITED:
        if getattr(args, name) is not None:
            continue
        value = card.config.get(name, getattr(defaults, name))
        if (name == "weights" and value not in ("imagenet", "none")) or (name == "input_size" and not same_network):
            value = getattr(defaults, name)
        setattr(args, name, [value] if name in SWEPT else value)
    folds = card.cross_validation.get("folds")
    if args.cross_validate is None and folds:
        args.cross_validate = str(folds)


def _champion_folder(champion: str, destination: Path) -> Path:
    if not is_registry_uri(champion):
        return Path(champion)
    from kitchenware.training.registry import fetch

    return fetch(champion, destination)


def run(args: argparse.Namespace) -> None:
    run_dir = args.run_dir or timestamped("-retrain")
    challenger = run_dir / "challenger"
    registered = is_registry_uri(args.champion)
    target = args.export or (None if registered else Path(args.champion))
    with tracking(args, f"retrain {args.champion}") as tracker:
        champion = _champion_folder(args.champion, run_dir / "champion")
        judgement = _challenge(args, champion, challenger, run_dir, tracker)
        verdict = judgement.verdict
        from kitchenware.training import challenger_report

        report = args.report or run_dir
        outcome = _outcome(args.champion, target) if verdict.promote else f"the challenger stays in {challenger}"
        challenger_report.write(judgement, report, args.champion, str(challenger), outcome)
        for comparison in judgement.comparisons:
            print(f"  {comparison}: {comparison.verdict}")
        if verdict.promote:
            from kitchenware.training.promotion import promote_in_registry, replace_folder

            if registered:
                version = promote_in_registry(challenger, args.champion)
                print(f"registered the challenger as version {version}; {args.champion} now points at it")
            if target:
                replace_folder(challenger, target)
                print(f"the challenger's exported folder is now {target}")
            print(f"promoted: {verdict.reason}")
        else:
            print(f"kept the champion: {verdict.reason}")
        print(f"report in {report / 'report.md'}")


def _challenge(
    args: argparse.Namespace, champion: Path, challenger: Path, run_dir: Path, tracker: Tracker | None
) -> Judgement:
    """Train the challenger (the champion's settings, with the options given) without the newest feedback photos,
    and judge both models."""
    # The champion is known only now: its settings fill the options left out, and the whole is checked as `train`
    # checks its options (an error exits with status 2, as a bad option does).
    refuse = argparse.ArgumentParser(prog="kitchenware retrain")
    inherit(refuse, args, ModelCard.read(champion))
    train.check(refuse, args)
    from kitchenware.training.retrain import judge_models, newest_feedback, photo_sets

    held_out = newest_feedback(tuple(args.data), args.holdout_newest)
    if held_out:
        args.feedback_before = held_out.since.isoformat()
        print(
            f"{len(held_out.samples)} of the {held_out.labelled} photos sellers labelled, since "
            f"{held_out.since:%Y-%m-%d %H:%M:%S} UTC, are kept out of training to judge both models on"
        )
    done = train.trained(args, run_dir / "training", challenger, save=False)
    train.print_training(done)
    if tracker:
        tracker.log_training(done, None)
    sets = photo_sets(done.prepared.val, done.prepared.split, done.trained.config.validate_on, held_out, champion)
    print("judged on " + ", ".join(f"{photos.name}: {len(photos.samples)} photos" for photos in sets))
    return judge_models(champion, challenger, sets)


def _outcome(champion: str, target: Path | None) -> str:
    """What promoting the challenger does, for the report."""
    moves = []
    if is_registry_uri(champion):
        name, alias = registry_alias(champion)
        moves.append(f"registered as a new version of {name}, which the alias {alias} moves to")
    if target:
        moves.append(f"its exported folder replaces {target}")
    return "promotion: " + "; ".join(moves)
