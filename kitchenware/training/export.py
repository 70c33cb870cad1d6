"""Turn a trained Keras model into what serves it: model.onnx (checked against Keras), model.keras and the card."""

from __future__ import annotations

import datetime
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np

from kitchenware import store
from kitchenware.core.card import (
    CARD_MARKDOWN,
    KERAS_FILE,
    ONNX_FILE,
    OOD_REFERENCE_FILE,
    CalibrationSection,
    ModelCard,
    OodSection,
    ValidationSection,
)
from kitchenware.training.decisions import UNSURE_TARGET, FittedRule
from kitchenware.training.model_card import card_markdown

if TYPE_CHECKING:
    from kitchenware.core.photos import Sample
    from kitchenware.training.config import TrainConfig
    from kitchenware.training.evaluation import Report
    from kitchenware.training.trainer import PreparedData

log = logging.getLogger(__name__)

# The largest difference in probabilities allowed between the ONNX file and the Keras model it comes from.
ONNX_TOLERANCE = 1e-4


def training_card(
    config: TrainConfig,
    prepared: PreparedData,
    report: Report,
    fitted: FittedRule,
    command_line: str,
    cross_validation: dict | None = None,
) -> ModelCard:
    """Everything needed to serve and to trust a model trained here."""
    train_counts = dict.fromkeys(prepared.class_names, 0)
    for sample in prepared.train:
        train_counts[sample.label] += 1
    weights, weights_sha256 = config.weights_record()
    rule = fitted.rule
    held_out = (
        f"the validation split: {len(prepared.val)} photos the head was not trained on "
        f"({'near-duplicate groups kept on one side' if prepared.split == 'grouped' else 'stratified random split'})"
    )
    return ModelCard(
        name=config.name,
        class_names=tuple(prepared.class_names),
        input_size=config.input_size,
        architecture=config.arch,
        weights=weights,
        weights_sha256=weights_sha256,
        command=command_line,
        config=config.as_metadata(),
        validation=ValidationSection.from_dict(report.summary()),
        dataset={
            "sources": [
                {"name": source.name, "root": str(source.root), "layout": source.layout, "counts": counts}
                for source, counts in zip(prepared.photos.sources, prepared.photos.counts_by_source().values())
            ],
            "layout": prepared.photos.layout,
            "images": len(prepared.photos.samples),
            "skipped": len(prepared.skipped),
            "counts": prepared.photos.counts(),
            "train_counts": train_counts,
            "split": prepared.split,
            "near_duplicate_groups": _group_sizes(prepared.health.near_duplicates) if prepared.groups else None,
            "fingerprint": prepared.fingerprint,
        },
        temperature=rule.temperature,
        min_confidence=rule.min_confidence,
        ood=None
        if rule.ood_threshold is None
        else OodSection(
            rule.ood_threshold,
            "knn",
            rule.k,
            fitted.unknown_accept,
            len(prepared.train),
            fitted.unknown_fit_on,
            (cross_validation or {}).get("unknown_thresholds") or None,
        ),
        calibration=CalibrationSection.from_dict(
            {"fit_on": held_out, "unsure_target": UNSURE_TARGET, **fitted.figures}
        ),
        cross_validation=cross_validation or {},
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )


def serving_model(model: keras.Model) -> keras.Model:
    """The trained model with further outputs of the same forward pass: the backbone's pooled features, which the
    "unknown" score reads, and, when the head is one linear layer, the class activation maps (`class_maps`: the
    head's layer applied to each cell of the backbone's last grid, 10x10 at 299; a class's map averages to its
    logit). For the probe, whose Dense layer reads the unit-length features, each cell is divided by the pooled
    features' length first, so the maps still average to the logits. The service asks ONNX Runtime for the maps only
    in /explain. The scratch CNN gives probabilities only; a head with an inner Dense layer has no exact map, so no
    `class_maps`."""
    names = {layer.name for layer in model.layers}
    if not {"xception_backbone", "head"} <= names:
        return model
    backbone, head = model.get_layer("xception_backbone"), model.get_layer("head")
    rescaling, base, pooling = (
        next(layer for layer in backbone.layers if isinstance(layer, kind))
        for kind in (keras.layers.Rescaling, keras.Model, keras.layers.GlobalAveragePooling2D)
    )
    inputs = keras.Input(model.input_shape[1:], name="pixels")
    grid = base(rescaling(inputs), training=False)
    features = pooling(grid)
    outputs = {"probabilities": head(features), "features": keras.ops.cast(features, "float32")}
    dense = [layer for layer in head.layers if isinstance(layer, keras.layers.Dense)]
    if len(dense) == 1:  # linear head (dropout is off at inference): the map is exact
        cells = keras.layers.Dense(dense[0].units, dtype="float32", name="class_maps_dense")
        cells.build(grid.shape)
        cells.set_weights(dense[0].get_weights())
        grid = keras.ops.cast(grid, "float32")
        if any(isinstance(layer, keras.layers.UnitNormalization) for layer in head.layers):
            length = keras.ops.norm(keras.ops.cast(features, "float32"), axis=-1, keepdims=True)
            grid = grid / keras.ops.expand_dims(keras.ops.expand_dims(length, 1), 1)
        outputs["class_maps"] = cells(grid)
    return keras.Model(inputs, outputs, name=model.name)


def _group_sizes(groups: list[list[Sample]]) -> dict[str, int]:
    return {"photos_in_groups": sum(map(len, groups)), "groups": len(groups)}


def export_onnx(model: keras.Model, path: Path) -> dict:
    """Export the forward pass for ONNX Runtime, then check it against Keras on random pixels.

    Raises ValueError if any output differs by more than ONNX_TOLERANCE; returns what was checked."""
    import onnxruntime

    size = model.input_shape[1]
    signature = [keras.InputSpec(shape=(None, size, size, 3), dtype="float32", name="pixels")]
    model.export(str(path), format="onnx", input_signature=signature, verbose=False)
    pixels = np.random.default_rng(0).integers(0, 256, (4, size, size, 3)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    results = session.run(None, {"pixels": pixels})
    from_keras = model(pixels, training=False)
    if isinstance(from_keras, dict):
        from_onnx = dict(zip([output.name for output in session.get_outputs()], results))
    else:  # one output: the probabilities, whatever the exporter named it
        from_keras, from_onnx = {"probabilities": from_keras}, {"probabilities": results[0]}
    differences = {
        name: float(np.abs(np.asarray(from_onnx.get(name, np.inf)) - np.asarray(value)).max())
        for name, value in from_keras.items()
    }
    if max(differences.values()) > ONNX_TOLERANCE:
        raise ValueError(
            f"the ONNX export differs from the Keras model by {differences} (limit {ONNX_TOLERANCE:.0e}): "
            "serve this model with KITCHENWARE_RUNTIME=tensorflow and report the layer types it uses"
        )
    return {
        "max_abs_difference": differences["probabilities"],
        "outputs": sorted(from_onnx),
        **({"features_max_abs_difference": differences["features"]} if "features" in differences else {}),
        "checked_on": "4 random images",
    }


def export_folder(model: keras.Model, card: ModelCard, folder: Path, reference: np.ndarray | None = None) -> ModelCard:
    """Write model.keras and model.onnx (both with the features output, see serving_model), ood_reference.npy (the
    "unknown" score's training features, when given), model_card.json and model_card.md.

    A failed ONNX export never loses the trained model: the card records the error and model.keras is kept."""
    folder.mkdir(parents=True, exist_ok=True)
    model = serving_model(model)
    model.save(folder / KERAS_FILE)
    if reference is not None:
        np.save(folder / OOD_REFERENCE_FILE, reference)
    try:
        onnx_check = export_onnx(model, folder / ONNX_FILE)
    except Exception as problem:  # noqa: BLE001 - whatever the exporter raises, the Keras model is kept
        (folder / ONNX_FILE).unlink(missing_ok=True)
        onnx_check = {"error": str(problem)}
        log.warning("no ONNX file (%s); the model can be served with KITCHENWARE_RUNTIME=tensorflow", problem)
    card = card.replace(onnx=onnx_check)
    card.write(folder)
    (folder / CARD_MARKDOWN).write_text(card_markdown(card))
    return card


def save_to_store(
    model: keras.Model, card: ModelCard, labels: dict[str, str], reference: np.ndarray | None = None
) -> str:
    """Export the model and put its files and card into the BentoML store; returns the tag."""
    with tempfile.TemporaryDirectory() as scratch:
        card = export_folder(model, card, Path(scratch), reference)
        return store.save(card, store.files_of(Path(scratch)), labels)


def import_keras_export(folder: Path) -> tuple[str, bool]:
    """Import a folder exported before ONNX files were (model.keras and its card) into the store once, exporting
    model.onnx on the way in. Returns (tag, newly imported), as `store.import_exported`."""
    card = ModelCard.read(folder)
    digest = store.network_digest(folder)
    tag = store.imported(card.name, digest)
    if tag is not None:
        return tag, False
    log.info("%s has no %s: exporting it from %s", folder, ONNX_FILE, KERAS_FILE)
    with tempfile.TemporaryDirectory() as scratch:
        model = keras.models.load_model(Path(folder) / KERAS_FILE)
        card = export_folder(model, card.replace(file_sha256=digest), Path(scratch))
        return store.save(card, store.files_of(Path(scratch)), card.config.get("labels", {})), True
