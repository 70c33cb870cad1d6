"""What `kitchenware retrain` judges its challenger on, and how: the photos neither model trained on (the
challenger's held-out validation photos, and the newest photos sellers labelled, kept out of its training by time),
both models' answers through the one Classifier, and the comparison (training/challenger.py)."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kitchenware.classifier import Classifier
from kitchenware.core.card import ModelCard
from kitchenware.core.decision import Answers
from kitchenware.core.photos import DataError, Sample, drop_unreadable, label_indices
from kitchenware.training import splits
from kitchenware.training.challenger import Comparison, PhotoSet, Verdict, compare, judge
from kitchenware.training.sources import find_sources

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldOutFeedback:
    """The newest photos sellers labelled, kept out of the challenger's training: those labelled at or after
    `since`."""

    since: datetime.datetime
    samples: list[Sample]
    labelled: int  # photos labelled in the feedback sources, held out or not


def newest_feedback(data: tuple[str, ...], fraction: float) -> HeldOutFeedback | None:
    """The newest `fraction` of the photos labelled with a class in the `feedback:<URL>` sources of `data` (every
    photo labelled at the moment of the oldest of them too); None without a feedback source or with fraction 0."""
    from kitchenware.feedback.source import chosen_at, labelled

    photos = find_sources(*data)
    when = {}
    for source in (source for source in photos.sources if source.layout == "feedback"):
        url = str(source.root).partition(":")[2]
        when.update({(source.name, row.photo_id): chosen_at(row) for row in labelled(url)})
    samples = sorted((sample for sample in photos.samples if _key(sample) in when), key=lambda s: when[_key(s)])
    if not samples or not fraction:
        return None
    since = when[_key(samples[-max(1, round(len(samples) * fraction))])]
    held_out = [sample for sample in samples if when[_key(sample)] >= since]
    if len(held_out) == len(samples):
        raise DataError(
            f"holding out the newest {fraction:.0%} of the {len(samples)} photos sellers labelled leaves none to train "
            "on: lower --holdout-newest, or collect more"
        )
    return HeldOutFeedback(since, held_out, len(samples))


def _key(sample: Sample) -> tuple[str, str]:
    return sample.source, sample.id


def photo_sets(
    validation: list[Sample], split: str, validate_on: str | None, feedback: HeldOutFeedback | None, champion: Path
) -> list[PhotoSet]:
    """The sets both models are judged on: the challenger's validation photos (the held-out origin with
    `validate_on`) and the held-out feedback photos, each without the photos the champion trained on (its folder's
    split.csv; a champion without one is judged on them all, which can only flatter it)."""
    trained_on = set()
    if (champion / splits.SPLIT_CSV).is_file():
        trained_on = splits.training_photos(champion / splits.SPLIT_CSV)
    else:
        log.warning("%s has no %s: the photos the champion trained on are not known", champion, splits.SPLIT_CSV)
    named = [(f"held-out origin {validate_on}" if validate_on else f"validation split ({split})", validation)]
    if feedback:
        named.append((f"newest feedback (labelled since {feedback.since:%Y-%m-%d %H:%M:%S} UTC)", feedback.samples))
    sets = []
    for name, samples in named:
        unseen = [sample for sample in samples if _key(sample) not in trained_on]
        if len(unseen) < len(samples):
            log.info("%s: %d of its photos left out, the champion trained on them", name, len(samples) - len(unseen))
        readable, _ = drop_unreadable(unseen)
        if readable:
            sets.append(PhotoSet(name, readable))
    return sets


@dataclass(frozen=True)
class Judged:
    """One set of photos and both models' answers on it."""

    photos: PhotoSet
    labels: np.ndarray
    champion: Answers
    challenger: Answers


@dataclass(frozen=True)
class Judgement:
    class_names: list[str]
    champion: ModelCard
    challenger: ModelCard
    sets: list[Judged]
    comparisons: list[Comparison]
    verdict: Verdict


def judge_models(champion: Path, challenger: Path, sets: list[PhotoSet]) -> Judgement:
    """Both models' answers on every set, as the service would give them (Classifier, each model's own runtime and
    decision rule), each figure compared, and the verdict."""
    models = {role: Classifier.open(folder) for role, folder in (("champion", champion), ("challenger", challenger))}
    class_names = models["champion"].class_names
    if models["challenger"].class_names != class_names:
        raise DataError(
            f"the challenger's classes {models['challenger'].class_names} are not the champion's {class_names}: a "
            "model with other classes is a new model, not a challenger; train it with `kitchenware train`"
        )
    judged, comparisons = [], []
    for photos in sets:
        known = [sample for sample in photos.samples if sample.label in class_names]
        labels = label_indices(known, class_names)
        paths = [sample.path for sample in known]
        answers = {role: model.decide_photos(paths) for role, model in models.items()}
        judged.append(Judged(PhotoSet(photos.name, known), labels, answers["champion"], answers["challenger"]))
        comparisons += compare(photos.name, labels, answers["champion"], answers["challenger"], class_names)
    return Judgement(
        class_names, models["champion"].card, models["challenger"].card, judged, comparisons, judge(comparisons)
    )
