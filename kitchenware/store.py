"""The BentoML model store: the one place models are saved to and found in.

It sits beside `cli.py`, outside the rooms, because every room meets here: training saves to it, the CLI and
the service read from it, and `build_bento_from_saved_model.py` imports the shipped model into it. It needs
BentoML and `core` only, so importing the shipped ONNX model needs no TensorFlow.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bentoml

from kitchenware.core.card import INT8_FILE, KERAS_FILE, MODEL_FILES, ONNX_FILE, ModelCard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredModel:
    path: Path  # the folder holding model.onnx (and model.keras when the model was trained here)
    card: ModelCard
    tag: str  # the store tag, or the folder of an exported model


def save(card: ModelCard, files: dict[str, Path], labels: dict[str, str]) -> str:
    """Create a store model from its files ({name in the model: path}) and its card; returns the tag."""
    with bentoml.models.create(card.name, labels=labels, metadata=card.to_metadata()) as bento_model:
        for name, path in files.items():
            shutil.copyfile(path, bento_model.path_of(name))
        card.write(Path(bento_model.path))
    return str(bento_model.tag)


def find(source: str) -> StoredModel:
    """A model from a store tag (`name[:version]`) or an exported folder (or a file inside it)."""
    path = Path(source)
    if path.is_dir() or path.suffix in (".onnx", ".keras", ".json"):
        folder = path if path.is_dir() else path.parent
        if not folder.is_dir():
            raise FileNotFoundError(f"model folder {folder} not found: pass a store tag or an exported model folder")
        return StoredModel(folder, ModelCard.read(folder), str(folder))
    try:
        bento_model = bentoml.models.get(source)
    except bentoml.exceptions.NotFound as error:
        raise FileNotFoundError(
            f"model {source!r} is not in the BentoML store ({error}): train one with `python train.py train` "
            "or import the shipped one with `python build_bento_from_saved_model.py`"
        ) from error
    return StoredModel(Path(bento_model.path), ModelCard.from_metadata(bento_model.info.metadata), str(bento_model.tag))


def import_exported(folder: Path) -> tuple[str, bool]:
    """Put an exported model folder (model.onnx + model_card.json, model-int8.onnx and model.keras if present) into
    the store once.

    Returns (tag, newly imported). The SHA-256 of the network files goes into the card, so importing the same
    folder again finds the model already there. A folder of an older export, with model.keras but no model.onnx,
    is exported to ONNX on the way in (that needs TensorFlow: requirements-train.txt)."""
    folder = Path(folder)
    folder = folder.parent if folder.is_file() else folder
    card = ModelCard.read(folder)
    files = {name: folder / name for name in MODEL_FILES if (folder / name).is_file()}
    model_file = files.get(ONNX_FILE) or files.get(KERAS_FILE)
    if model_file is None:
        raise FileNotFoundError(f"{folder} holds neither {ONNX_FILE} nor {KERAS_FILE}: pass an exported model folder")
    digest = hashlib.sha256(model_file.read_bytes())
    if INT8_FILE in files:  # a quantized copy of the same network makes a new model in the store
        digest.update(files[INT8_FILE].read_bytes())
    digest = digest.hexdigest()
    for existing in bentoml.models.list():
        if existing.tag.name == card.name and existing.info.metadata.get("file_sha256") == digest:
            return str(existing.tag), False
    card = card.replace(file_sha256=digest)
    labels = card.config.get("labels", {})
    if ONNX_FILE in files:
        return save(card, files, labels), True
    try:
        import keras

        from kitchenware.training.export import export_folder
    except ImportError as missing:
        raise FileNotFoundError(
            f"{folder} has no {ONNX_FILE}, and exporting one from {KERAS_FILE} needs TensorFlow ({missing}): "
            "`pip install -r requirements-train.txt`, or pass a folder exported with `train.py train --export`"
        ) from None
    log.info("%s has no %s: exporting it from %s", folder, ONNX_FILE, KERAS_FILE)
    with tempfile.TemporaryDirectory() as scratch:
        card = export_folder(keras.models.load_model(files[KERAS_FILE]), card, Path(scratch))
        exported = {name: Path(scratch) / name for name in MODEL_FILES if (Path(scratch) / name).is_file()}
        return save(card, exported, labels), True
