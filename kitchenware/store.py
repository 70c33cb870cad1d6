"""The BentoML model store: the one place models are saved to and found in.

Training saves to it, the CLI, the Python API and the service read from it, and `build_bento_from_saved_model.py`
imports the shipped model into it. It needs BentoML and `core` only, so importing the shipped ONNX model needs no
TensorFlow.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import bentoml

from kitchenware.core.card import (
    INT8_FILE,
    KERAS_FILE,
    MODEL_FILES,
    ONNX_FILE,
    OOD_FEEDBACK_FILE,
    ModelCard,
    StoredModel,
)


def save(card: ModelCard, files: dict[str, Path], labels: dict[str, str]) -> str:
    """Create a store model from its files ({name in the model: path}) and its card; returns the tag."""
    with bentoml.models.create(card.name, labels=labels, metadata=card.to_metadata()) as bento_model:
        for name, path in files.items():
            shutil.copyfile(path, bento_model.path_of(name))
        card.write(Path(bento_model.path))
    return str(bento_model.tag)


def get(tag: str) -> StoredModel:
    """A model of the store by its tag (`name[:version]`)."""
    try:
        bento_model = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound as error:
        raise FileNotFoundError(
            f"model {tag!r} is not in the BentoML store ({error}): train one with `kitchenware train` "
            "or import the shipped one with `python build_bento_from_saved_model.py`"
        ) from error
    return StoredModel(Path(bento_model.path), ModelCard.from_metadata(bento_model.info.metadata), str(bento_model.tag))


def network_digest(folder: Path) -> str:
    """The SHA-256 of an exported folder's network files (model.onnx, else model.keras), and of its int8 network
    and sellers' reference photos when it has them: each makes a new model in the store."""
    network = folder / ONNX_FILE if (folder / ONNX_FILE).is_file() else folder / KERAS_FILE
    digest = hashlib.sha256(network.read_bytes())
    for name in (INT8_FILE, OOD_FEEDBACK_FILE):
        if (folder / name).is_file():
            digest.update((folder / name).read_bytes())
    return digest.hexdigest()


def imported(name: str, digest: str) -> str | None:
    """The tag of the model of this name already imported from these network files, if any."""
    for existing in bentoml.models.list():
        if existing.tag.name == name and existing.info.metadata.get("file_sha256") == digest:
            return str(existing.tag)
    return None


def import_exported(folder: Path) -> tuple[str, bool]:
    """Put an exported model folder (model.onnx + model_card.json, model-int8.onnx and model.keras if present) into
    the store once.

    Returns (tag, newly imported). The SHA-256 of the network files goes into the card, so importing the same
    folder again finds the model already there. (A folder of an older export, with model.keras but no model.onnx,
    is exported to ONNX by training's `import_keras_export`.)"""
    folder = Path(folder)
    folder = folder.parent if folder.is_file() else folder
    card = ModelCard.read(folder)
    if not (folder / ONNX_FILE).is_file():
        raise FileNotFoundError(
            f"{folder} has no {ONNX_FILE}: pass a folder exported with `kitchenware train --export DIR`"
            + (", or export its model.keras to ONNX (needs TensorFlow)" if (folder / KERAS_FILE).is_file() else "")
        )
    digest = network_digest(folder)
    tag = imported(card.name, digest)
    if tag is not None:
        return tag, False
    return save(card.replace(file_sha256=digest), files_of(folder), card.config.get("labels", {})), True


def files_of(folder: Path) -> dict[str, Path]:
    """The model files an exported folder holds, by their name in the model."""
    return {name: Path(folder) / name for name in MODEL_FILES if (Path(folder) / name).is_file()}
