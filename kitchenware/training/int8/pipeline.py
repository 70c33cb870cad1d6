"""`kitchenware quantize`: the int8 network of an exported model and the band of its cascade.

    network_for_int8 -> equalize -> calibrate (chunk by chunk) -> quantize (QDQ, per-channel int8 weights)
        -> quantization-aware fine-tuning toward the float network (qat.py)
        -> the band, chosen on the validation photos (band.py); the figures on every other photo

The int8 network answers probabilities and features only: `/explain` and its class maps stay with the float
model (core/cascade.py), so the int8 file has no class_maps branch.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime

from kitchenware.core.card import CARD_MARKDOWN, INT8_FILE, ONNX_FILE, FineTuning, Int8Recipe, Int8Section, ModelCard
from kitchenware.core.cascade import edges, unclear
from kitchenware.core.decision import DecisionRule
from kitchenware.core.inference import Forward, OnnxRuntime, Runtime, forward_in_batches, joined
from kitchenware.core.photos import DataError, Sample, drop_unreadable, unlabelled_images
from kitchenware.core.preprocessing import decoded_in_chunks, prepare
from kitchenware.training.augmentation import view_pixels
from kitchenware.training.config import QAT_EPOCHS, QAT_LEARNING_RATE, QAT_STEP_LEARNING_RATE
from kitchenware.training.int8.band import cascade_figures, choose_band
from kitchenware.training.int8.calibration import CHUNK, calibrate, layer_errors, quantize
from kitchenware.training.int8.graph import equalize, network_for_int8, residual_additions, stream_readers
from kitchenware.training.model_card import card_markdown
from kitchenware.training.sources import find_sources
from kitchenware.training.splits import SPLIT_CSV, validation_photos

log = logging.getLogger(__name__)

ALPHA = 0.5
PERCENTILE = 99.999
EQUALIZE_PHOTOS = 64  # per-channel ranges for the equalization: the largest values settle within a few dozen photos
ERROR_PHOTOS = 12  # photos the per-layer error report runs on (every activation of one photo at a time)
TARGET_AGREEMENT = 0.999
QAT_PHOTOS = 512  # at most, evenly spread over the calibration photos: their pixels are held in memory (0.3 MB each)


def _decoded(samples: list[Sample], input_size: int) -> Iterator[np.ndarray]:
    """The photos' pixels CHUNK at a time, decoded by the one preprocessing function."""
    return decoded_in_chunks(samples, lambda sample: prepare(sample.path, input_size), CHUNK)


def _spread(samples: list[Sample], count: int) -> list[Sample]:
    """`count` of the samples, evenly spaced (all of them when there are fewer)."""
    if count >= len(samples):
        return list(samples)
    return [samples[int(i)] for i in np.linspace(0, len(samples) - 1, count).round()]


def _fine_tuned(
    int8_file: Path,
    float_network: Runtime,
    samples: list[Sample],
    size: int,
    temperature: float,
    epochs: int,
    learning_rate: float,
    step_learning_rate: float,
) -> FineTuning:
    """Quantization-aware fine-tuning of int8_file toward the float network, on these photos (then a new augmented
    view of each every epoch); what it did."""
    from kitchenware.training.int8.qat import fine_tune  # TensorFlow, only when fine-tuning

    def views(epoch: int) -> np.ndarray:
        pixels = decoded_in_chunks(samples, lambda sample: view_pixels(sample, epoch, size, seed=0), CHUNK)
        return np.concatenate(list(pixels))

    log.info("quantization-aware fine-tuning on %d photos, %d epochs", len(samples), epochs)
    losses = fine_tune(
        int8_file,
        views,
        lambda photos: forward_in_batches(float_network, photos),
        epochs,
        learning_rate,
        temperature,
        step_learning_rate,
    )
    return FineTuning(
        method="quantization-aware: the int8 weights trained through their rounding toward the float network's "
        "features and calibrated probabilities (distillation); the photos, then a new augmented view of each "
        "every epoch" + ("; the activations' steps learned with them (LSQ)" if step_learning_rate else ""),
        photos=len(samples),
        epochs=epochs,
        learning_rate=learning_rate,
        step_learning_rate=step_learning_rate,
        loss_per_epoch=tuple(round(loss, 5) for loss in losses),
    )


def _photos(
    folder: Path, data: list[str], split_csv: Path | None, ood: Path | None
) -> tuple[list[Sample], set[tuple[str, str]], list[Sample]]:
    """(the labelled photos, the (source, Id) of the validation side of the training run's split.csv, the photos of
    other things), each checked."""
    split_csv = split_csv or folder / SPLIT_CSV
    if not split_csv.is_file():
        raise FileNotFoundError(
            f"{split_csv} not found: pass --split with the training run's split.csv (the band is chosen on its "
            "validation photos)"
        )
    validation = validation_photos(split_csv)
    labelled, _ = drop_unreadable(find_sources(*data).samples)
    missing = validation - {(sample.source, sample.id) for sample in labelled}
    if missing:
        raise DataError(
            f"{len(missing)} validation photos of {split_csv} are not in {', '.join(data)} "
            f"(first: {sorted(missing)[0]}): pass the --data folders the model was trained on"
        )
    others = []
    if ood:
        found, _ = drop_unreadable(unlabelled_images(ood))
        others = [Sample(sample.id, sample.path, "", ood.resolve().name) for sample in found]
    return labelled, validation, others


def quantize_model(
    folder: Path,
    data: list[str],
    out: Path,
    split_csv: Path | None = None,
    ood: Path | None = None,
    calibration_photos: int | None = None,
    command: str = "",
    qat_epochs: int = QAT_EPOCHS,
    qat_learning_rate: float = QAT_LEARNING_RATE,
    qat_step_learning_rate: float = QAT_STEP_LEARNING_RATE,
) -> ModelCard:
    """Write folder/model-int8.onnx and the int8 section of its model card (band and figures); reports in `out`.

    `data`: the labelled photos the model was trained on; `split_csv`: its training run's split (default: the
    folder's split.csv); `ood`: a folder of photos of other things. The labelled photos of the split's training
    side are halved (sorted by source and Id, every other one): one half calibrates, the other half is never seen
    and measures; the photos of other things likewise. The band is chosen on the validation side. Returns the
    updated card."""
    labelled, validation, others = _photos(folder, data, split_csv, ood)
    card = ModelCard.read(folder)
    rule = DecisionRule.for_model(card, folder)
    exact_network = OnnxRuntime(folder / ONNX_FILE, 0)  # the float network: teacher, then referee
    order = sorted(labelled, key=lambda sample: (sample.source, sample.id))
    checking = [sample for sample in order if (sample.source, sample.id) in validation]
    rest = [sample for sample in order if (sample.source, sample.id) not in validation]
    others = sorted(others, key=lambda sample: sample.id)
    calibration = rest[::2] + others[::2]
    held_out = rest[1::2] + others[1::2]
    if calibration_photos:
        calibration = _spread(calibration, calibration_photos)
    out.mkdir(parents=True, exist_ok=True)
    size = card.input_size
    log.info(
        "%d photos calibrate, %d choose the band (validation), %d are held out",
        len(calibration),
        len(checking),
        len(held_out),
    )
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        network = network_for_int8(folder / ONNX_FILE, work / "network.onnx")
        equalized = work / "equalized.onnx"
        rescaled = equalize(network, _decoded(_spread(calibration, EQUALIZE_PHOTOS), size), equalized, ALPHA)
        log.info("equalized %d groups of channels; calibrating (percentile %s)", rescaled["groups"], PERCENTILE)
        ranges = calibrate(equalized, _decoded(calibration, size), "percentile", PERCENTILE)
        additions, shortcuts = residual_additions(equalized), stream_readers(equalized)
        quantize(equalized, ranges, work / INT8_FILE, additions + shortcuts)
        fine_tuning = None
        if qat_epochs:
            photos = _spread(calibration, QAT_PHOTOS)
            fine_tuning = _fine_tuned(
                work / INT8_FILE,
                exact_network,
                photos,
                size,
                rule.temperature,
                qat_epochs,
                qat_learning_rate,
                qat_step_learning_rate,
            )
        log.info("quantized; per-layer error against the float network on %d photos", ERROR_PHOTOS)
        errors = layer_errors(equalized, work / INT8_FILE, _decoded(_spread(checking + others, ERROR_PHOTOS), size))
        shutil.copyfile(work / INT8_FILE, folder / INT8_FILE)
    with open(out / "layer_errors.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["tensor", "cumulative_sqnr_db", "local_sqnr_db"])
        writer.writerows(
            [name, round(row["cumulative_db"], 2), round(row["local_db"], 2)] for name, row in errors.items()
        )

    quick_network = OnnxRuntime(folder / INT8_FILE, 0)

    def both(samples: list[Sample]) -> tuple[Forward, Forward]:
        passes = [
            (forward_in_batches(exact_network, p), forward_in_batches(quick_network, p))
            for p in _decoded(samples, size)
        ]
        exact_passes, quick_passes = zip(*passes)
        return joined(exact_passes), joined(quick_passes)

    def subset(forward: Forward, rows: np.ndarray) -> Forward:
        return Forward(forward.probabilities[rows], None if forward.features is None else forward.features[rows])

    log.info("float and int8 forward passes on %d photos", len(checking) + len(held_out) + len(calibration))
    exact, quick = both(checking)
    band, safety, cross_fitted = choose_band(rule, exact, quick, TARGET_AGREEMENT)
    labels = np.array([card.class_names.index(sample.label) for sample in checking])
    refereed = unclear(band, rule, edges(rule, quick))
    cascade_labels = np.where(refereed, exact.probabilities.argmax(1), quick.probabilities.argmax(1))
    validation_accuracy = {
        "float": round(float(np.mean(exact.probabilities.argmax(1) == labels)), 4),
        "cascade": round(float(np.mean(cascade_labels == labels)), 4),
        "int8_alone": round(float(np.mean(quick.probabilities.argmax(1) == labels)), 4),
    }
    figures = {}
    for role, samples in (
        ("validation (band chosen here)", checking),
        ("held out", held_out),
        ("calibration", calibration),
    ):
        role_exact, role_quick = (exact, quick) if samples is checking else both(samples)
        sources = np.array([sample.source or "other things" for sample in samples])
        for source in dict.fromkeys(sources):
            rows = np.flatnonzero(sources == source)
            figures[f"{source}, {role}"] = cascade_figures(
                rule, band, subset(role_exact, rows), subset(role_quick, rows)
            )
    int8 = Int8Section(
        band=band.rounded(),
        band_safety_factor=safety,
        band_chosen_on=f"{len(checking)} validation photos; cross-fitted agreement {cross_fitted:.4f}",
        sha256=hashlib.sha256((folder / INT8_FILE).read_bytes()).hexdigest(),
        command=command,
        recipe=Int8Recipe(
            quantizer=f"onnxruntime {onnxruntime.__version__} quantize_static, QDQ",
            weights="int8, per output channel",
            activations="uint8, per tensor",
            equalization=f"cross-layer, alpha {ALPHA}, on {min(EQUALIZE_PHOTOS, len(calibration))} photos",
            calibration=f"percentile {PERCENTILE}, {len(calibration)} photos in chunks of {CHUNK}",
            calibration_photos=dict(Counter(sample.source or "other things" for sample in calibration)),
            fine_tuning=fine_tuning,
            kept_float={
                "residual additions": additions,
                "shortcut convolutions": shortcuts,
                "head": "global pooling, dense layer, softmax",
            },
        ),
        validation_accuracy=validation_accuracy,
        figures=figures,
        worst_layers=tuple(
            {"tensor": name, "local_sqnr_db": round(row["local_db"], 1)}
            for name, row in sorted(errors.items(), key=lambda item: item[1]["local_db"])[:5]
        ),
    )
    card = card.replace(int8=int8)
    card.write(folder)
    (folder / CARD_MARKDOWN).write_text(card_markdown(card))
    (out / "int8.json").write_text(json.dumps(card.to_metadata()["int8"], indent=2) + "\n")
    return card
