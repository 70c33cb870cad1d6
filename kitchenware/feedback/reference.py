"""The "unknown" score learns from sellers without retraining: the photos whose category a seller chose join the
model's reference at its next import (`build_bento_from_saved_model.py --reference-from feedback:URL`).

The float network's features of each labelled photo (the ones the training photos' reference holds) go into
ood_feedback.npy beside the model; the decision rule then calls a photo known when it is near one of them, as when
it is near its k-th nearest training photo (core/decision.py). Photos labelled "other" (none of the classes) stay
out. The head is not touched: its answers are the same, only fewer of them are "unknown".
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

import numpy as np

from kitchenware.core.card import CARD_JSON, MODEL_FILES, ONNX_FILE, OOD_FEEDBACK_FILE, ModelCard
from kitchenware.core.decision import l2_normalise
from kitchenware.core.inference import OnnxRuntime, forward_in_batches
from kitchenware.core.photos import DataError
from kitchenware.core.preprocessing import decoded_in_chunks, prepare
from kitchenware.feedback.source import read

log = logging.getLogger(__name__)
SCHEME = "feedback:"
CHUNK = 64  # photos decoded, then run through the network, at a time


def with_sellers_photos(folder: Path, source: str, out: Path, photos: Path | None = None) -> ModelCard:
    """A copy of the exported model in `folder`, written to `out`, whose "unknown" score knows the photos sellers
    labelled with one of its classes in the feedback store `source` ("feedback:<SQLAlchemy URL>"). Returns its
    card, with their count."""
    if not source.startswith(SCHEME):
        raise DataError(f"{source!r} is not a feedback store: pass feedback:<SQLAlchemy URL>, as `train --data` takes")
    card = ModelCard.read(folder)
    if card.ood is None:
        raise DataError(f"{folder}'s model has no 'unknown' score (no backbone features): there is nothing to extend")
    _, labelled = read(source.removeprefix(SCHEME), photos)
    labelled = [sample for sample in labelled if sample.label in card.class_names]
    if not labelled:
        raise DataError(f"no photo of {source} is labelled with one of the model's classes {list(card.class_names)}")
    network = OnnxRuntime(Path(folder) / ONNX_FILE, 0)  # the float network: its features are the reference's
    decoded = decoded_in_chunks(labelled, lambda sample: prepare(sample.path, card.input_size), CHUNK)
    features = np.concatenate([forward_in_batches(network, pixels).features for pixels in decoded])
    out.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        if (Path(folder) / name).is_file() and name != OOD_FEEDBACK_FILE:
            shutil.copyfile(Path(folder) / name, out / name)
    np.save(out / OOD_FEEDBACK_FILE, l2_normalise(features).astype(np.float16))
    card = card.replace(ood=dataclasses.replace(card.ood, feedback_photos=len(labelled)), file_sha256=None)
    card.write(out)
    log.info("%d photos sellers labelled join the 'unknown' score's reference (%s)", len(labelled), out / CARD_JSON)
    return card
