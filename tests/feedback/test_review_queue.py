"""The review queue's rule on a seeded store, on SQLite and PostgreSQL: unsure by margin, then unknown nearest the
threshold, then confident by margin; a near-duplicate pushed back; rows from before revision 0003 still ranked;
`kitchenware feedback queue` prints it; the sampling rule keeps every unsure and unknown answer."""

import datetime
from pathlib import Path

import numpy as np
from alembic import command
from sqlalchemy import insert

from kitchenware.cli import main
from kitchenware.feedback.repository import Classified, FeedbackStore
from kitchenware.feedback.review import NEAR_BITS, rank, signatures
from kitchenware.feedback.schema import alembic_config, open_engine
from kitchenware.feedback.tables import choices, classifications, photos

CLASSES = ["cup", "fork", "glass"]
FAR, NEAR = "0" * 16, f"{(1 << NEAR_BITS) - 1:016x}"  # NEAR differs from FAR in NEAR_BITS bits: a near-duplicate
OTHER_PLACE = "f" * 16


def answer(decision: str, margin: float, ood_score: float, signature: str, label: str = "cup") -> Classified:
    return Classified(label, 0.5 + margin / 2, decision, "model:v1", margin, ood_score, signature)


def seed(store: FeedbackStore) -> dict[str, str]:
    """Seven photos, one with a seller's choice; returns {name: photo id}."""
    answers = {
        "confident": answer("confident", 0.90, 0.50, OTHER_PLACE),
        "far-unknown": answer("unknown", 0.60, 1.40, "00ff00ff00ff00ff"),
        "unsure-wide": answer("unsure", 0.30, 0.70, "0f0f0f0f0f0f0f0f"),
        "near-unknown": answer("unknown", 0.20, 1.05, "ff00ff00ff00ff00"),
        "unsure-close": answer("unsure", 0.02, 0.60, FAR),
        "burst-twin": answer("unsure", 0.05, 0.60, NEAR),  # next in order, but like unsure-close
        "labelled": answer("unsure", 0.01, 0.60, "aaaaaaaaaaaaaaaa"),
    }
    ids = {name: store.record(name.encode(), classified) for name, classified in answers.items()}
    store.choose(ids["labelled"], "glass", CLASSES)
    return ids


def test_the_queue_ranks_unsure_by_margin_then_unknown_nearest_the_threshold_then_confident(store: FeedbackStore):
    ids = seed(store)
    store.record(b"far-unknown", answer("unknown", 0.6, 1.5, "00ff00ff00ff00ff"))  # its latest answer counts
    names = {photo_id: name for name, photo_id in ids.items()}
    picks = rank(store.unlabelled(), 10)
    assert [names[pick.photo_id] for pick in picks] == [
        "unsure-close",
        "unsure-wide",
        "near-unknown",
        "far-unknown",
        "confident",
        "burst-twin",  # pushed back behind every other photo
    ]
    assert [pick.reason for pick in picks] == [
        "unsure: margin 0.02 between its top two classes",
        "unsure: margin 0.30 between its top two classes",
        "unknown: like no training photo (score 1.050; the nearest the threshold first)",
        "unknown: like no training photo (score 1.500; the nearest the threshold first)",
        "confident: margin 0.90 between its top two classes",
        f"unsure: margin 0.05 between its top two classes; pushed back: like photo {ids['unsure-close'][:12]}",
    ]
    assert [names[pick.photo_id] for pick in rank(store.unlabelled(), 2)] == ["unsure-close", "unsure-wide"]


def test_rows_stored_before_revision_0003_are_ranked_by_their_confidence_and_count_as_sellers(
    database: str, tmp_path: Path
):
    day = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)
    with open_engine(database).begin() as connection:
        command.upgrade(alembic_config(connection), "0002")
        connection.execute(insert(photos), [{"id": f"{n}" * 64, "size": 1, "first_seen": day} for n in (1, 2, 3)])
        old = {"label": "cup", "model": "v0", "created": day}  # the columns of revision 0002
        connection.execute(
            insert(classifications),
            [
                {"photo_id": "1" * 64, "confidence": 0.60, "decision": "unsure", **old},
                {"photo_id": "2" * 64, "confidence": 0.52, "decision": "unsure", **old},
                {"photo_id": "3" * 64, "confidence": 0.99, "decision": "confident", **old},
            ],
        )
        connection.execute(insert(choices), [{"photo_id": "3" * 64, "label": "cup", "created": day}])
    store = FeedbackStore(database, tmp_path / "photos")  # migrated to 0003 here
    assert [(pick.photo_id[0], pick.reason) for pick in rank(store.unlabelled(), 5)] == [
        ("2", "unsure: confidence 0.52 (stored before margins were)"),
        ("1", "unsure: confidence 0.60 (stored before margins were)"),
    ]
    assert [(row.photo_id[0], row.source) for row in store.answered()] == [("3", "seller")]


def test_feedback_queue_prints_the_ranked_photos(tmp_path: Path, capsys):
    database = f"sqlite:///{tmp_path / 'feedback.db'}"
    ids = seed(FeedbackStore(database, tmp_path / "photos"))
    assert main(["feedback", "queue", "--db", database, "--photos", str(tmp_path / "photos"), "--limit", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["#", "photo", "id", "decision", "label", "conf.", "margin", "why"]
    assert lines[1].split()[:6] == ["1", ids["unsure-close"], "unsure", "cup", "0.510", "0.020"]
    assert lines[3].split()[:6] == ["3", ids["near-unknown"], "unknown", "cup", "0.600", "0.200"]
    assert lines[3].endswith("unknown: like no training photo (score 1.050; the nearest the threshold first)")
    assert len(lines) == 4


def test_the_sampling_rule_keeps_every_unsure_and_unknown_answer_and_a_share_of_confident_ones(
    database: str, tmp_path: Path
):
    store = FeedbackStore(database, tmp_path / "photos", keep_confident=0.25)
    kept = [store.record(f"photo {n}".encode(), answer("confident", 0.9, 0.5, FAR)) for n in range(200)]
    assert 35 <= sum(photo_id is not None for photo_id in kept) <= 65  # a quarter, give or take the draw
    again = [store.record(f"photo {n}".encode(), answer("confident", 0.9, 0.5, FAR)) for n in range(200)]
    assert again == kept  # the same photo: always kept, or always not
    assert all(store.record(f"photo {n}".encode(), answer("unsure", 0.1, 0.5, FAR)) for n in range(200))
    assert all(store.record(f"photo {n}".encode(), answer("unknown", 0.1, 1.5, FAR)) for n in range(200))
    assert store.counts()["photos"] == 200
    none_kept = FeedbackStore(database, tmp_path / "photos", keep_confident=0)
    assert none_kept.record(b"a new photo", answer("confident", 0.9, 0.5, FAR)) is None
    assert none_kept.counts()["photos"] == 200 and not (tmp_path / "photos").joinpath("ne").exists()


def test_the_signature_of_near_features_is_near_and_of_other_features_far():
    rng = np.random.default_rng(0)
    features = rng.random((2, 2048)).astype(np.float32) * (rng.random((2, 2048)) < 0.2)  # sparse, positive: ReLU's
    twin = features[0] + rng.normal(0, 0.02, 2048).astype(np.float32) * (features[0] > 0)
    one, other, near = signatures(np.stack([features[0], features[1], twin]), 3)
    assert len(one) == 16 and int(one, 16) >= 0
    assert signatures(features[:1] * 3, 1) == [one]  # the scale of the features does not change it
    assert (int(one, 16) ^ int(near, 16)).bit_count() <= NEAR_BITS < (int(one, 16) ^ int(other, 16)).bit_count()
    assert signatures(None, 2) == [None, None]
