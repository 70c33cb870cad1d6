"""MLflow tracking of `kitchenware train`, `evaluate` and `quantize`, opt-in: on when MLFLOW_TRACKING_URI is set or
`--mlflow URI` is given. The command line imports this module only then, so that without tracking nothing imports
mlflow (the serving set has none).

A training run logs its setting (the TrainConfig, as the card records it) as parameters, the training history per
epoch (`loss`, `accuracy`, `val_loss`, `val_accuracy`, step = epoch), the card's validation figures (validation
split, calibration, cross-validation with each held-out fold or source) as metrics, the run folder's reports and
plots under `report/`, the model card, and the exported model folder under `model/`; a sweep logs one nested run per
setting under it. The history is logged once a setting has trained, from the numbers history.csv and the card hold,
rather than by a Keras callback or autologging: the probe head (fit by scikit-learn in one go) is covered like the
dense one, the server gets exactly the figures the card has, and training never waits on the server between epochs.
Autologging would log a run or a model for every `fit` (each cross-validation fold, each setting of a sweep, the
head alone rather than the network that is served), and save a model copy each time.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow.exceptions import MlflowException

from kitchenware import store
from kitchenware.core.card import CARD_JSON, CARD_MARKDOWN, ModelCard
from kitchenware.training.model_card import card_markdown

if TYPE_CHECKING:
    from kitchenware.training.pipeline import Evaluation, TrainingRun

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "kitchenware"  # unless --experiment or MLFLOW_EXPERIMENT_NAME says otherwise
HEALTH_TIMEOUT = 10  # seconds a tracking server has to answer /health before a command starts its work
MODEL_ARTIFACTS = "model"  # where a run keeps the exported model folder; registered versions point at it
REPORT_ARTIFACTS = "report"  # where a run keeps its report folder (plots, CSVs, check.md, ...)
HISTORY = ("loss", "accuracy", "val_loss", "val_accuracy")  # the per-epoch columns of history.csv
START_SERVER = "mlflow server --backend-store-uri sqlite:///mlflow.db --port 5000"


def check_server(uri: str) -> None:
    """Raise ConnectionError, saying what to do, unless the tracking server at `uri` answers: before a command starts
    hours of work, not after. A local store (a file: or sqlite: URI) has no server to ask."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        answer = requests.get(f"{uri.rstrip('/')}/health", timeout=HEALTH_TIMEOUT)
    except requests.RequestException as problem:
        raise ConnectionError(
            f"no MLflow tracking server answers at {uri} ({type(problem).__name__}): start one (`{START_SERVER}`), "
            "correct --mlflow or MLFLOW_TRACKING_URI, or unset both to run without tracking"
        ) from None
    if answer.status_code != 200:
        raise ConnectionError(
            f"{uri}/health answered HTTP {answer.status_code}: is {uri} an MLflow tracking server? Correct --mlflow or "
            "MLFLOW_TRACKING_URI, or unset both to run without tracking"
        )


def tracking_uri() -> str:
    """The tracking server the registry uses: MLFLOW_TRACKING_URI (mlflow's own variable; `--mlflow` sets it for the
    length of a command), checked to answer."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise ConnectionError(
            f"no MLflow tracking server: set MLFLOW_TRACKING_URI (e.g. http://localhost:5000, a server started with "
            f"`{START_SERVER}`)"
        )
    check_server(uri)
    return uri


def experiment_id(name: str | None = None) -> str:
    """The id of the experiment `name` (default: MLFLOW_EXPERIMENT_NAME, else "kitchenware"), created if new."""
    name = name or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    try:
        found = mlflow.get_experiment_by_name(name)
        return found.experiment_id if found else mlflow.create_experiment(name)
    except MlflowException as problem:
        raise ConnectionError(
            f"the MLflow tracking server at {mlflow.get_tracking_uri()} refused experiment {name!r}: {problem.message}"
        ) from None


@contextmanager
def tracked(uri: str, experiment: str | None, run_name: str, command_line: str) -> Iterator[Tracker]:
    """An MLflow run of one command on the server at `uri`, checked to answer before any work; the run ends FAILED
    if the command raises. `uri` is mlflow's tracking URI for the length of the command only (the tests run several
    commands in one process)."""
    check_server(uri)
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    # The registry reads the variable, which set_tracking_uri writes only when the URI changes: not when someone
    # else (a test's monkeypatch) has since removed it.
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        tags = {"kitchenware.command": command_line}
        with mlflow.start_run(experiment_id=experiment_id(experiment), run_name=run_name, tags=tags) as run:
            log.info("tracking in MLflow at %s: experiment %s, run %s", uri, run.info.experiment_id, run.info.run_id)
            try:
                yield Tracker(run.info.run_id, run.info.experiment_id)
            except MlflowException as problem:
                raise ConnectionError(
                    f"logging to the MLflow tracking server at {uri} failed ({problem.message}); what the command "
                    "made before is saved (see above)"
                ) from None
    finally:
        mlflow.set_tracking_uri(previous)
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous


@dataclass(frozen=True)
class Tracker:
    """Logs a command's results to its active MLflow run."""

    run_id: str
    experiment_id: str

    def log_training(self, done: TrainingRun, export_to: Path | None) -> None:
        """The setting, history, card figures, reports and card of a training run, and the exported model folder
        when given; each setting of a sweep as a nested run (the one kept tagged `kitchenware.kept`)."""
        card = store.get(done.tag).card if done.tag else done.card  # the store's has the ONNX export's check
        _log_setting(card.config, done.trained.history)
        mlflow.log_metrics(card_metrics(card))
        mlflow.set_tags({"kitchenware.model": done.tag or "not saved", "kitchenware.split": done.prepared.split})
        mlflow.log_artifacts(str(done.run_dir), REPORT_ARTIFACTS)
        _log_card(card)
        if export_to:
            mlflow.log_artifacts(str(export_to), MODEL_ARTIFACTS)
        kept = done.trained.config
        for result in done.sweep:
            setting = dataclasses.replace(kept, **result.changes)
            with mlflow.start_run(experiment_id=self.experiment_id, run_name=result.name, nested=True):
                _log_setting(setting.as_metadata(), result.history)
                mlflow.log_metrics(
                    {
                        "validation/accuracy": result.val_accuracy,
                        "validation/loss": result.val_loss,
                        "epochs": result.epochs,
                        "seconds": result.seconds,
                    }
                )
                mlflow.set_tag("kitchenware.kept", str(setting == kept).lower())

    def log_evaluation(self, done: Evaluation, options: dict[str, Any]) -> None:
        """The command's options, the report's figures (and the out-of-distribution ones) and the report folder."""
        mlflow.log_params(options)
        figures = {"evaluation": done.report.summary(), "out_of_distribution": done.out_of_distribution or {}}
        mlflow.log_metrics(numbers(figures))
        mlflow.log_artifacts(str(done.out), REPORT_ARTIFACTS)

    def log_quantization(self, card: ModelCard, out: Path, options: dict[str, Any]) -> None:
        """The command's options, the int8 section's figures (accuracy, band, the cascade's figures per set of
        photos; the fine-tuning's loss per epoch), the report folder and the updated card."""
        mlflow.log_params(options)
        int8 = card.int8
        sections = {
            "validation_accuracy": int8.validation_accuracy,
            "band": dataclasses.asdict(int8.band),
            "band_safety_factor": int8.band_safety_factor,
            "figures": {name: dataclasses.asdict(row) for name, row in int8.figures.items()},
        }
        mlflow.log_metrics(numbers({"int8": sections}))
        tuned = int8.recipe.fine_tuning if int8.recipe else None
        for epoch, loss in enumerate(tuned.loss_per_epoch if tuned else (), start=1):
            mlflow.log_metric("int8/fine_tuning_loss", loss, step=epoch)
        mlflow.log_artifacts(str(out), REPORT_ARTIFACTS)
        _log_card(card)


def _log_setting(config: dict[str, Any], history: dict[str, list]) -> None:
    """A training setting as parameters and its history as metrics, one step per epoch (numbered as history.csv)."""
    mlflow.log_params(config)
    for epoch, values in enumerate(zip(*(history[column] for column in HISTORY)), start=1):
        mlflow.log_metrics(dict(zip(HISTORY, values)), step=epoch)


def _log_card(card: ModelCard) -> None:
    mlflow.log_dict(card.to_metadata(), CARD_JSON)
    mlflow.log_text(card_markdown(card), CARD_MARKDOWN)


def card_metrics(card: ModelCard) -> dict[str, float]:
    """The card's figures as metrics: `validation/...` (the validation split: accuracy, loss, ECE, decisions, per
    class), `calibration/...` (temperature, ECE and shares before and after), `decision_rule/...` and
    `cross_validation/...` (mean, spread and pooled figures, and each fold or held-out source's own)."""
    return numbers(
        {
            "validation": dataclasses.asdict(card.validation) if card.validation else {},
            "calibration": dataclasses.asdict(card.calibration) if card.calibration else {},
            "decision_rule": {"min_confidence": card.min_confidence, "ood_threshold": card.ood and card.ood.threshold},
            "cross_validation": card.cross_validation,
        }
    )


def numbers(value: Any, name: str = "") -> dict[str, float]:
    """The numbers in nested dicts as {"a/b/c": value}; rows of per-class figures are keyed by their class; other
    lists (the confusion matrix, ...) and text are left out. Names keep letters, digits, _, - and spaces (MLflow
    takes a few more, but dots could make a name resolve to another as a path)."""
    if isinstance(value, bool) or value is None:
        return {}
    if isinstance(value, (int, float)):
        return {name: float(value)}
    if isinstance(value, (list, tuple)) and value and all(isinstance(row, dict) and "class" in row for row in value):
        value = {row["class"]: {key: item for key, item in row.items() if key != "class"} for row in value}
    if not isinstance(value, dict):
        return {}
    found = {}
    for key, item in value.items():
        part = re.sub(r"[^\w\- ]+", "_", str(key)).strip(" ") or "_"
        found |= numbers(item, f"{name}/{part}" if name else part)
    return found
