"""The BentoML model store and exported files: save a trained model with everything needed to serve it, load it back."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from kitchenware.config import KERAS_FILE, ONNX_FILE

# The largest difference in probabilities allowed between the ONNX file and the Keras model it comes from.
ONNX_TOLERANCE = 1e-4
CARD_JSON = "model_card.json"
CARD_MARKDOWN = "model_card.md"


@dataclass
class StoredModel:
    model: keras.Model
    metadata: dict  # class_names, input_size, architecture, metrics, training config, data fingerprint, ...
    tag: str  # the store tag, or the file path for an exported model

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata["class_names"])

    @property
    def input_size(self) -> int:
        return int(self.metadata["input_size"])


def save_to_store(model: keras.Model, name: str, metadata: dict, labels: dict[str, str]) -> str:
    """Create a BentoML model holding model.keras and model.onnx; its metadata is the model card. Returns the tag."""
    import bentoml

    with tempfile.TemporaryDirectory() as scratch:
        onnx_file = Path(scratch) / ONNX_FILE
        try:
            onnx_check = export_onnx(model, onnx_file)
        except Exception as problem:  # noqa: BLE001 - a failed export must never lose the trained model
            onnx_check = {"error": str(problem)}
            print(f"warning: no ONNX file ({problem}); the model can be served with KITCHENWARE_RUNTIME=tensorflow")
        with bentoml.models.create(name, labels=labels, metadata={**metadata, "onnx": onnx_check}) as bento_model:
            model.save(bento_model.path_of(KERAS_FILE))
            if "error" not in onnx_check:
                shutil.copyfile(onnx_file, bento_model.path_of(ONNX_FILE))
    return str(bento_model.tag)


def export_onnx(model: keras.Model, path: Path) -> dict:
    """Export the forward pass for ONNX Runtime, then check it against Keras on random pixels.

    Raises ValueError if any probability differs by more than ONNX_TOLERANCE; returns what was checked."""
    import onnxruntime

    size = model.input_shape[1]
    signature = [keras.InputSpec(shape=(None, size, size, 3), dtype="float32", name="pixels")]
    model.export(str(path), format="onnx", input_signature=signature, verbose=False)
    pixels = np.random.default_rng(0).integers(0, 256, (4, size, size, 3)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    difference = float(np.abs(session.run(None, {"pixels": pixels})[0] - model(pixels, training=False)).max())
    if difference > ONNX_TOLERANCE:
        raise ValueError(
            f"the ONNX export differs from the Keras model by {difference:.2e} (limit {ONNX_TOLERANCE:.0e}): "
            "serve this model with KITCHENWARE_RUNTIME=tensorflow and report the layer types it uses"
        )
    return {"max_abs_difference": difference, "checked_on": "4 random images"}


def load(source: str) -> StoredModel:
    """Load a model from a store tag (`name[:version]`) or from an exported `.keras` file with its card beside it."""
    path = Path(source)
    if path.suffix == ".keras":
        return StoredModel(keras.models.load_model(path), exported_card(path), str(path))
    import bentoml

    try:
        bento_model = bentoml.models.get(source)
    except bentoml.exceptions.NotFound as error:
        raise FileNotFoundError(
            f"model {source!r} is not in the BentoML store ({error}): train one with `python train.py train` "
            "or import the shipped one with `python build_bento_from_saved_model.py`"
        ) from error
    model = keras.models.load_model(bento_model.path_of(KERAS_FILE))
    return StoredModel(model, dict(bento_model.info.metadata), str(bento_model.tag))


def exported_card(path: Path) -> dict:
    """The model card (model_card.json) written beside an exported .keras file."""
    if not path.is_file():
        raise FileNotFoundError(
            f"model file {path} not found: pass a .keras file written by `python train.py train --export DIR`"
        )
    card = path.parent / CARD_JSON
    if not card.is_file():
        raise FileNotFoundError(f"{card} not found: the model card written by --export must sit beside {path.name}")
    return json.loads(card.read_text())


def export(model: keras.Model, metadata: dict, folder: Path) -> Path:
    """Write model.keras, model_card.json and model_card.md to `folder`; returns the .keras path."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / KERAS_FILE)
    (folder / CARD_JSON).write_text(json.dumps(metadata, indent=2) + "\n")
    (folder / CARD_MARKDOWN).write_text(model_card_markdown(metadata))
    return folder / KERAS_FILE


def model_card_markdown(metadata: dict) -> str:
    metrics = metadata["validation"]
    names = metadata["class_names"]
    lines = [
        f"# Model card: {metadata['name']}",
        "",
        f"- architecture: {metadata['architecture']} at {metadata['input_size']}x{metadata['input_size']} "
        f"(input: RGB pixels 0-255; scaling is inside the model)",
        f"- backbone weights: {metadata['weights']}",
        f"- classes (output order): {', '.join(names)}",
        f"- trained with: `{metadata['command']}`",
        f"- data: {metadata['dataset']['images']} images ({metadata['dataset']['layout']} layout), "
        f"fingerprint `{metadata['dataset']['fingerprint'][:16]}`, "
        f"skipped unreadable: {metadata['dataset']['skipped']}",
        f"- validation: accuracy {metrics['accuracy']}, loss {metrics['loss']} on {metrics['images']} images",
        "",
        "| class | training images | validation images | precision | recall | F1 |",
        "|---|---|---|---|---|---|",
    ]
    for row in metrics["per_class"]:
        name = row["class"]
        lines.append(
            f"| {name} | {metadata['dataset']['train_counts'][name]} | {row['support']} | "
            f"{row['precision']} | {row['recall']} | {row['f1']} |"
        )
    lines += [
        "",
        "Confusion matrix on the validation split (rows: true class, columns: predicted):",
        "",
        "| true \\ predicted | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    lines += [
        f"| {name} | " + " | ".join(str(v) for v in row) + " |" for name, row in zip(names, metrics["confusion_matrix"])
    ]
    return "\n".join(lines) + "\n"


def import_exported(path: Path) -> tuple[str, bool]:
    """Put an exported model (.keras + model_card.json) into the store once; returns (tag, newly imported).

    The file's SHA-256 goes into the metadata, so importing the same file again finds the same model; a model
    imported before ONNX export existed (no "onnx" in its metadata) is imported again, with its model.onnx."""
    import bentoml

    path = Path(path)
    metadata = exported_card(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for existing in bentoml.models.list():
        same_file = existing.info.metadata.get("file_sha256") == digest and "onnx" in existing.info.metadata
        if existing.tag.name == metadata["name"] and same_file:
            return str(existing.tag), False
    try:
        model = keras.models.load_model(path)
    except (ValueError, OSError) as problem:
        raise ValueError(f"{path} is not a Keras model ({problem}): pass the model.keras written by --export") from None
    labels = metadata.get("config", {}).get("labels", {})
    return save_to_store(model, metadata["name"], {**metadata, "file_sha256": digest}, labels), True
