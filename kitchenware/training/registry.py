"""The MLflow model registry. A version of a registered model is an exported model folder (model.onnx, the card,
model.keras, ...) logged as a run's `model/` artifacts, so `models:/NAME@champion` names a folder that
`build_bento_from_saved_model.py --from-registry`, `Classifier.open` or `kitchenware quantize` take once fetched.
The server is MLFLOW_TRACKING_URI's (mlflow's own variable).

A plain folder rather than an MLflow model flavour: the folder is the project's model format everywhere else, and it
is served by ONNX Runtime through the card, which no flavour knows; `MlflowClient.create_model_version` registers
any run artifact folder (`mlflow.register_model` would look for an MLmodel file in it).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from kitchenware.core.card import CARD_JSON, ONNX_FILE, ModelCard
from kitchenware.training.model_uri import PREFIX, parts
from kitchenware.training.tracking import MODEL_ARTIFACTS, experiment_id, tracking_uri

log = logging.getLogger(__name__)


def _missing(problem: MlflowException) -> bool:
    """Whether the registry said that what was asked for does not exist (not: refused, or failed)."""
    return problem.error_code == "RESOURCE_DOES_NOT_EXIST"


def register(export_dir: Path, name: str) -> str:
    """Log an exported model folder to the active MLflow run (a new one if none is active) as its `model/` artifacts
    and make them a new version of the registered model `name` (created if new); returns the version."""
    export_dir = Path(export_dir)
    card = ModelCard.read(export_dir)
    if not (export_dir / ONNX_FILE).is_file():
        raise FileNotFoundError(f"{export_dir} has no {ONNX_FILE}: register a folder written by `kitchenware train`")
    tracking_uri()
    active = mlflow.active_run()
    logging_run = (
        contextlib.nullcontext(active)
        if active
        else mlflow.start_run(experiment_id=experiment_id(), run_name=f"register {name}")
    )
    with logging_run as run:
        mlflow.log_artifacts(str(export_dir), MODEL_ARTIFACTS)
        source = mlflow.get_artifact_uri(MODEL_ARTIFACTS)
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException as problem:
        if not _missing(problem):
            raise
        client.create_registered_model(name, description="kitchenware photo classifiers: exported model folders")
    tags = {"architecture": card.architecture, "classes": ",".join(card.class_names)}
    if card.validation:
        tags["validation_accuracy"] = str(card.validation.accuracy)
    version = str(client.create_model_version(name, source, run.info.run_id, tags=tags).version)
    log.info("registered %s as version %s of %s (%s)", export_dir, version, name, source)
    return version


def version_of(model_uri: str) -> str:
    """The version `models:/NAME@ALIAS` points at (or that of `models:/NAME/VERSION`, checked to exist)."""
    name, alias, version = parts(model_uri)
    uri = tracking_uri()
    client = MlflowClient()
    try:
        model = client.get_registered_model(name)
    except MlflowException as problem:
        if not _missing(problem):
            raise
        known = sorted(found.name for found in client.search_registered_models(max_results=50))
        raise FileNotFoundError(
            f"no registered model {name!r} on the MLflow server at {uri} (registered: {', '.join(known) or 'none'}): "
            f"register one with `kitchenware train --register {name}`"
        ) from None
    if alias is not None:
        if alias not in model.aliases:
            aliases = ", ".join(f"{key} -> version {value}" for key, value in sorted(model.aliases.items()))
            raise FileNotFoundError(
                f"registered model {name!r} has no alias {alias!r} (its aliases: {aliases or 'none'}): give a version "
                "the alias in the MLflow UI, or with MlflowClient().set_registered_model_alias"
            )
        return str(model.aliases[alias])
    try:
        client.get_model_version(name, version)
    except MlflowException as problem:
        if not _missing(problem):
            raise
        latest = max((int(found.version) for found in client.search_model_versions(f"name='{name}'")), default=0)
        raise FileNotFoundError(
            f"registered model {name!r} has no version {version} (the latest is {latest or 'none'})"
        ) from None
    return version


def fetch(model_uri: str, destination: Path) -> Path:
    """Download the exported model folder a registry URI points at into `destination`; returns the folder holding
    model.onnx and the card."""
    name, _, _ = parts(model_uri)
    version = version_of(model_uri)
    source = MlflowClient().get_model_version(name, version).source
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    try:
        folder = Path(mlflow.artifacts.download_artifacts(f"{PREFIX}{name}/{version}", dst_path=str(destination)))
    except (MlflowException, OSError) as problem:
        raise FileNotFoundError(
            f"version {version} of {name!r}: its files at {source} did not download: {problem}"
        ) from None
    missing = [file for file in (ONNX_FILE, CARD_JSON) if not (folder / file).is_file()]
    if missing:
        raise FileNotFoundError(
            f"version {version} of {name!r} ({source}) holds no {' and no '.join(missing)}: it is not an exported "
            "model folder; register one with `kitchenware train --register NAME`"
        )
    log.info("fetched version %s of %s from %s into %s", version, name, source, folder)
    return folder


def set_alias(name: str, alias: str, version: str) -> None:
    """Point `models:/NAME@ALIAS` at a version (which must exist), e.g. promote a challenger to champion."""
    version_of(f"{PREFIX}{name}/{version}")
    try:
        MlflowClient().set_registered_model_alias(name, alias, version)
    except MlflowException as problem:
        raise ValueError(f"alias {alias!r} of {name!r}: {problem.message}") from None
    log.info("models:/%s@%s is version %s", name, alias, version)
