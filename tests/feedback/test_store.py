"""The feedback store on SQLite and on a real PostgreSQL server: photos once by content, every classification,
the sellers' choices with their history, the schema's version, concurrent writers."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from images import colour_photo, encode

from kitchenware.feedback.repository import OTHER, Classified, FeedbackStore, UnknownPhoto
from kitchenware.feedback.schema import head

CLASSES = ["cup", "fork", "spoon"]
ANSWER = Classified("cup", 0.97, "confident", "kitchenware_classifier:test")


def photo(seed: int) -> bytes:
    return encode(colour_photo(seed=seed), "JPEG")


def test_a_photo_is_kept_once_by_content_and_each_classification_is_a_row(store: FeedbackStore):
    first = store.record(photo(1), ANSWER)
    again = store.record(photo(1), ANSWER)
    other = store.record(photo(2), ANSWER)
    assert first == again != other and len(first) == 64
    assert store.counts() == {"photos": 2, "classifications": 3, "choices": 0}
    assert store.photo_path(first).read_bytes() == photo(1)
    assert sorted(path.name for path in store.photo_folder.rglob("*") if path.is_file()) == sorted([first, other])


def test_a_choice_is_recorded_replaced_and_its_history_kept(store: FeedbackStore):
    photo_id = store.record(photo(3), ANSWER)
    assert store.choose(photo_id, "fork", CLASSES) == "cup"  # what the model had said
    assert store.choose(photo_id, OTHER, CLASSES) == "cup"
    assert store.counts()["choices"] == 2


def test_an_unknown_photo_or_a_label_that_is_no_class_is_refused(store: FeedbackStore):
    photo_id = store.record(photo(4), ANSWER)
    with pytest.raises(UnknownPhoto, match="no classified photo has the id 'nope'"):
        store.choose("nope", "cup", CLASSES)
    with pytest.raises(ValueError, match="'bowl' is not one of the model's classes"):
        store.choose(photo_id, "bowl", CLASSES)
    assert store.counts()["choices"] == 0


def test_the_schema_is_created_once_and_versioned(store: FeedbackStore):
    assert store.version == head()
    reopened = FeedbackStore(str(store.engine.url.render_as_string(hide_password=False)), store.photo_folder)
    assert reopened.version == head() and reopened.counts() == store.counts()


def test_sixteen_concurrent_writers_lose_no_row(store: FeedbackStore):
    def classify_and_choose(n: int) -> str:
        photo_id = store.record(photo(100 + n % 8), ANSWER)  # 8 photos, each sent twice
        store.choose(photo_id, CLASSES[n % 3], CLASSES)
        return photo_id

    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(classify_and_choose, range(64)))
    assert len(set(ids)) == 8
    assert store.counts() == {"photos": 8, "classifications": 64, "choices": 64}


def test_photos_without_a_choice_are_purged_after_the_days_kept_on_a_fake_clock(store: FeedbackStore, monkeypatch):
    import datetime

    from kitchenware.feedback import repository

    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    monkeypatch.setattr(repository, "_now", lambda: start)  # every row written "on" 1 January
    old_unlabelled = store.record(photo(20), ANSWER)
    old_labelled = store.record(photo(21), ANSWER)
    store.choose(old_labelled, "cup", CLASSES)
    monkeypatch.setattr(repository, "_now", lambda: start + datetime.timedelta(days=25))
    recent = store.record(photo(22), ANSWER)
    assert store.purge(30, now=start + datetime.timedelta(days=29)) == 0  # nothing is old enough yet
    assert store.purge(30, now=start + datetime.timedelta(days=31)) == 1
    assert not store.photo_path(old_unlabelled).exists()
    assert store.photo_path(old_labelled).exists() and store.photo_path(recent).exists()
    assert store.counts() == {"photos": 2, "classifications": 2, "choices": 1}


def test_choices_wait_for_the_disk_and_classifications_do_not(store: FeedbackStore):
    """What /feedback acknowledges is synchronous; what /classify keeps is not (repository's docstring)."""
    sqlite = store.engine.dialect.name == "sqlite"
    setting = "PRAGMA synchronous" if sqlite else "SHOW synchronous_commit"
    with store.engine.begin() as connection:
        assert connection.exec_driver_sql(setting).scalar() == (2 if sqlite else "on")  # 2: FULL
    with store._without_waiting_for_the_disk() as connection:
        assert connection.exec_driver_sql(setting).scalar() == (1 if sqlite else "off")  # 1: NORMAL
    with store.engine.begin() as connection:  # the relaxed setting does not leak into other transactions
        assert connection.exec_driver_sql(setting).scalar() == (2 if sqlite else "on")
