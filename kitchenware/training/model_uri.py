"""Names of models in MLflow's registry, `models:/NAME@ALIAS` or `models:/NAME/VERSION`, read without mlflow: the
commands check them before any work, and import mlflow (seconds) only to use the registry (registry.py)."""

from __future__ import annotations

PREFIX = "models:/"
FORMS = "models:/NAME@ALIAS or models:/NAME/VERSION"


def is_registry_uri(text: str) -> bool:
    return str(text).startswith(PREFIX)


def parts(model_uri: str) -> tuple[str, str | None, str | None]:
    """(name, alias, version) of models:/NAME@ALIAS (version None) or models:/NAME/VERSION (alias None)."""
    rest = str(model_uri).removeprefix(PREFIX).strip("/") if is_registry_uri(model_uri) else ""
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        if name and alias:
            return name, alias, None
    name, _, version = rest.rpartition("/")
    if not name or not version.isdigit():
        raise ValueError(f"{model_uri!r} names no registered model version: write {FORMS}")
    return name, None, version


def registry_alias(model_uri: str) -> tuple[str, str]:
    """(NAME, ALIAS) of `models:/NAME@ALIAS`: the alias a winning challenger takes over."""
    try:
        name, alias, _ = parts(model_uri)
    except ValueError:
        alias = None
    if alias is None:
        raise ValueError(
            f"{model_uri!r}: a registry champion is named by its alias, models:/NAME@ALIAS (e.g. "
            "models:/kitchenware_classifier@champion): promotion moves that alias"
        )
    return name, alias
