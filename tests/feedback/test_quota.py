"""The storage quota on SQLite and on a real PostgreSQL server: a new photo over the limit of photos or bytes
evicts the oldest photos without a seller's choice (rows and files), never a labelled one; when only labelled
photos are left, the new photo is not stored at all."""

import datetime
import itertools

import pytest
from images import colour_photo, encode

from kitchenware.feedback import repository
from kitchenware.feedback.quota import Quota, StoreFull
from kitchenware.feedback.repository import Classified, FeedbackStore

CLASSES = ["cup", "fork", "spoon"]
ANSWER = Classified("cup", 0.97, "confident", "kitchenware_classifier:test")


def photo(seed: int) -> bytes:
    return encode(colour_photo(seed=seed), "JPEG")


@pytest.fixture
def clock(monkeypatch):
    """Each row a second after the previous one: "oldest" is unambiguous on both databases."""
    seconds = itertools.count()
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    monkeypatch.setattr(repository, "_now", lambda: start + datetime.timedelta(seconds=next(seconds)))


def limited(store: FeedbackStore, **limits: int) -> FeedbackStore:
    """The same database and folder, opened as the service opens it with a quota."""
    url = store.engine.url.render_as_string(hide_password=False)
    return FeedbackStore(url, store.photo_folder, Quota(**limits))


def stored(store: FeedbackStore) -> set[str]:
    return {path.name for path in store.photo_folder.rglob("*") if path.is_file()}


def test_the_oldest_unlabelled_photos_go_first_and_labelled_ones_stay(store: FeedbackStore, clock):
    store = limited(store, max_photos=3)
    labelled, first, second = (store.record(photo(n), ANSWER) for n in (70, 71, 72))
    store.choose(labelled, "cup", CLASSES)
    store.record(photo(71), ANSWER)  # a known photo again: no new photo, nothing evicted
    assert store.counts() == {"photos": 3, "classifications": 4, "choices": 1}
    third = store.record(photo(73), ANSWER)
    assert stored(store) == {labelled, second, third}  # `first`, the oldest without a choice, went: file and rows
    assert store.counts() == {"photos": 3, "classifications": 3, "choices": 1}
    fourth = store.record(photo(74), ANSWER)
    assert stored(store) == {labelled, third, fourth}
    assert store.counts() == {"photos": 3, "classifications": 3, "choices": 1}
    assert first not in {row.photo_id for row in store.answered()} and store.answered()[0].photo_id == labelled


def test_a_limit_of_bytes_evicts_as_many_photos_as_the_new_one_needs(store: FeedbackStore, clock):
    small = [photo(n) for n in (75, 76, 77)]
    large = encode(colour_photo(seed=78, size=(72, 54)), "JPEG")  # 1.5 of the others
    store = limited(store, max_bytes=sum(map(len, small)) + 10)
    ids = [store.record(picture, ANSWER) for picture in small]
    store.choose(ids[2], "fork", CLASSES)
    assert len(large) > len(small[0]) + 10 and len(large) <= len(small[0]) + len(small[1]) + 10
    new = store.record(large, ANSWER)
    assert stored(store) == {ids[2], new}
    assert store.counts()["photos"] == 2


def test_over_the_quota_with_only_labelled_photos_the_new_one_is_not_stored(store: FeedbackStore, clock):
    store = limited(store, max_photos=2)
    for n in (80, 81):
        store.choose(store.record(photo(n), ANSWER), "cup", CLASSES)
    before = stored(store)
    with pytest.raises(StoreFull, match=r"holds 2 photos .* quota is reached \(at most 2 photos\) .* cannot make room"):
        store.record(photo(82), ANSWER)
    assert stored(store) == before and store.counts() == {"photos": 2, "classifications": 2, "choices": 2}
    assert store.record(photo(80), ANSWER) in before  # a photo it holds is classified again as before
    store.erase(sorted(before)[0])
    store.record(photo(82), ANSWER)  # room again
    assert store.counts()["photos"] == 2


def test_an_eviction_makes_room_for_the_next_uploads_too():
    quota = Quota(max_photos=1000, max_bytes=500_000_000)
    assert quota.excess(1001, 1) == (1, 0) and quota.excess(1000, 500_000_001) == (0, 1)
    assert quota.slack() == (10, 5_000_000)  # 1 %: a full store evicts once every ~10 new photos, not on each
    assert not Quota().limited and Quota().excess(10**9, 10**12) == (0, 0)
