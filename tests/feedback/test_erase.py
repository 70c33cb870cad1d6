"""Erasure on SQLite and on a real PostgreSQL server: one photo, or every photo first stored before a date, goes
with its file and every row about it; the other photos stay whole. Also through `kitchenware feedback erase` and
`python -m kitchenware.feedback erase` (the command the service image has)."""

import datetime
import subprocess
import sys

import pytest
from images import colour_photo, encode
from sample_data import ROOT

from kitchenware.cli import main
from kitchenware.feedback import repository
from kitchenware.feedback.repository import Classified, FeedbackStore, UnknownPhoto
from kitchenware.feedback.tables import choices, classifications, photos

CLASSES = ["cup", "fork", "spoon"]
ANSWER = Classified("cup", 0.97, "confident", "kitchenware_classifier:test")
JANUARY = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def photo(seed: int) -> bytes:
    return encode(colour_photo(seed=seed), "JPEG")


def rows_about(store: FeedbackStore, photo_id: str) -> dict[str, int]:
    with store.engine.connect() as connection:
        return {
            table.name: len(connection.execute(table.select().where(column == photo_id)).all())
            for table, column in ((photos, photos.c.id), (classifications, classifications.c.photo_id))
            + ((choices, choices.c.photo_id),)
        }


def three_photos(store: FeedbackStore) -> list[str]:
    """Three photos, each classified twice; the first two with a seller's choice."""
    ids = [store.record(photo(n), ANSWER) for n in (60, 61, 62, 60, 61, 62)]
    store.choose(ids[0], "fork", CLASSES)
    store.choose(ids[1], "cup", CLASSES)
    return ids[:3]


def test_erasing_a_photo_removes_its_file_and_every_row_and_nothing_else(store: FeedbackStore):
    erased, *others = three_photos(store)
    removed = store.erase(erased)
    assert removed.photo_ids == (erased,) and (removed.classifications, removed.choices, removed.files) == (2, 1, 1)
    assert not store.photo_path(erased).exists()
    assert rows_about(store, erased) == {"photos": 0, "classifications": 0, "choices": 0}
    assert [rows_about(store, other) for other in others] == [
        {"photos": 1, "classifications": 2, "choices": 1},
        {"photos": 1, "classifications": 2, "choices": 0},
    ]
    assert all(store.photo_path(other).read_bytes() for other in others)
    assert store.counts() == {"photos": 2, "classifications": 4, "choices": 1}


def test_an_unknown_or_malformed_id_is_refused_without_echoing_it(store: FeedbackStore):
    kept = store.record(photo(63), ANSWER)
    store.erase(kept)
    for wrong in (kept, "0" * 64, "../../etc/passwd", kept.upper()):
        with pytest.raises(UnknownPhoto) as refused:
            store.erase(wrong)
        assert wrong not in str(refused.value)
    assert "never stored, or is erased already" in str(pytest.raises(UnknownPhoto, store.erase, kept).value)


def test_erasing_before_a_date_removes_the_photos_first_stored_before_it(store: FeedbackStore, monkeypatch):
    monkeypatch.setattr(repository, "_now", lambda: JANUARY)
    old_labelled, old = store.record(photo(64), ANSWER), store.record(photo(65), ANSWER)
    store.choose(old_labelled, "cup", CLASSES)
    monkeypatch.setattr(repository, "_now", lambda: JANUARY + datetime.timedelta(days=10))
    recent = store.record(photo(66), ANSWER)
    store.record(photo(64), ANSWER)  # the old photo again, later: its rows since then go with it
    assert store.erase_before(JANUARY).photo_ids == ()  # strictly before
    removed = store.erase_before(datetime.datetime(2026, 1, 5))  # naive: UTC
    assert sorted(removed.photo_ids) == sorted([old_labelled, old])
    assert (removed.classifications, removed.choices, removed.files) == (3, 1, 2)
    assert not store.photo_path(old_labelled).exists() and not store.photo_path(old).exists()
    assert store.photo_path(recent).exists() and rows_about(store, recent)["classifications"] == 1
    assert store.counts() == {"photos": 1, "classifications": 1, "choices": 0}


def erase(*arguments: str) -> subprocess.CompletedProcess:
    """`python -m kitchenware.feedback erase ...`, as the CronJob and an operator in the service image run it."""
    command = [sys.executable, "-m", "kitchenware.feedback", "erase", *arguments]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_the_erase_command_of_the_service_image(store: FeedbackStore):
    url = store.engine.url.render_as_string(hide_password=False)
    erased, *others = three_photos(store)
    done = erase("--db", url, "--photos", str(store.photo_folder), erased)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"erased photo {erased}: photos: 1, files: 1, classifications: 2, choices: 1"
    assert store.counts() == {"photos": 2, "classifications": 4, "choices": 1}
    again = erase("--db", url, "--photos", str(store.photo_folder), erased)
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.strip() == (
        f"error: no stored photo has the id {erased}: it was never stored, or is erased already"
    )
    assert "Traceback" not in again.stderr


def test_kitchenware_feedback_erase_before_and_its_refusals(store: FeedbackStore, capsys):
    url = store.engine.url.render_as_string(hide_password=False)
    three_photos(store)
    tomorrow = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)).date().isoformat()
    with pytest.raises(SystemExit) as refused:
        main(["feedback", "erase", "--db", url, "--before", tomorrow])
    assert refused.value.code == 2 and "is in the future" in capsys.readouterr().err
    assert store.counts()["photos"] == 3
    now = datetime.datetime.now(datetime.UTC).isoformat()
    assert main(["feedback", "erase", "--db", url, "--photos", str(store.photo_folder), "--before", now]) == 0
    assert (
        capsys.readouterr().out.strip().startswith(f"erased every photo first stored before {now}: photos: 3, files: 3")
    )
    assert store.counts() == {"photos": 0, "classifications": 0, "choices": 0}
    assert not [path for path in store.photo_folder.rglob("*") if path.is_file()]
    for wrong in (["--before", "yesterday"], [], ["0" * 64, "--before", now]):
        with pytest.raises(SystemExit) as refused:
            main(["feedback", "erase", "--db", url, *wrong])
        assert refused.value.code == 2
    assert "exactly one of PHOTO_ID or --before" in capsys.readouterr().err
