"""The one module that reads and writes the feedback database and the photo folder beside it.

A photo is stored once by content: its SHA-256 names its row and its file (no name a user sent reaches the
disk). Each classification adds a row; each choice a seller makes adds a row, the latest one in force.

Durability: a seller's choice (what /feedback acknowledges) is committed to disk before the answer (SQLite
synchronous=FULL, PostgreSQL's default synchronous commit). What /classify keeps, the photo and its answer, is
written without waiting for the disk (SQLite synchronous=NORMAL in WAL mode, PostgreSQL synchronous_commit=off,
the photo file not fsynced): it survives the service being killed, a power loss may take the last moments of
it, and that keeps storage at ~1% of /classify's time (benchmarks/RESULTS.md) instead of 5-10%. Deletions (purge,
erasure, eviction under the quota) wait for the disk: rows go in one transaction, the files after its commit, so a
crash in between leaves files without rows, never rows without their photo.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Select, delete, exists, func, insert, select
from sqlalchemy.exc import IntegrityError

from kitchenware.feedback import review
from kitchenware.feedback.quota import NO_QUOTA, Quota, StoreFull, Totals
from kitchenware.feedback.sampling import keeps
from kitchenware.feedback.schema import check, migrate, open_engine
from kitchenware.feedback.tables import SELLER, choices, classifications, photos

log = logging.getLogger(__name__)

OTHER = "other"  # the seller's choice when the photo is none of the model's classes


PHOTO_ID = re.compile(r"[0-9a-f]{64}")  # the SHA-256 of the photo's bytes, as /classify returns it
DELETE_AT_ONCE = 500  # ids per DELETE statement: well under SQLite's and PostgreSQL's limits on parameters


class UnknownPhoto(LookupError):
    """No photo with that id was classified (or it was deleted)."""


@dataclass(frozen=True)
class Erased:
    """What a deletion removed: the photos' ids and rows, and how many of their files were still on disk."""

    photo_ids: tuple[str, ...]
    classifications: int
    choices: int
    files: int

    def __str__(self) -> str:
        return (
            f"photos: {len(self.photo_ids)}, files: {self.files}, classifications: {self.classifications}, "
            f"choices: {self.choices}"
        )


@dataclass(frozen=True)
class Classified:
    label: str
    confidence: float
    decision: str
    model: str
    margin: float | None = None  # what the review queue ranks by (feedback/review.py)
    ood_score: float | None = None
    signature: str | None = None


@dataclass(frozen=True)
class Answered:
    """A photo a seller labelled, with what the service had answered."""

    photo_id: str
    chosen: str
    chosen_at: datetime.datetime
    predicted: str
    confidence: float
    decision: str
    model: str
    path: Path
    source: str = SELLER  # who chose: the seller, or a reviewer on the review page


def photos_beside(url: str) -> Path:
    """photos/ beside a SQLite file (sqlite:///feedback/kitchenware.db -> feedback/photos); feedback-photos/ else."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///")).parent / "photos"
    return Path("feedback-photos")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class FeedbackStore:
    def __init__(
        self,
        url: str,
        photo_folder: Path,
        quota: Quota = NO_QUOTA,
        read_only: bool = False,
        keep_confident: float = 1.0,
    ):
        """Opens the database and migrates it to the newest revision; read_only (the commands that only read):
        opens it read-only, creates nothing, and refuses one that is missing or not at the newest revision.
        keep_confident: the share of `confident` answers kept (feedback/sampling.py)."""
        self.engine = open_engine(url, read_only=read_only)
        self.version = check(self.engine) if read_only else migrate(self.engine)
        # SQLite sets durability per connection: the classification rows get connections of their own.
        writes_classifications = url.startswith("sqlite") and not read_only
        self._classifications = open_engine(url, durable=False) if writes_classifications else self.engine
        self.photo_folder = Path(photo_folder)
        if not read_only:
            self.photo_folder.mkdir(parents=True, exist_ok=True)
        self.quota = quota
        self.keep_confident = keep_confident
        self._totals = Totals()
        self._evicting = threading.Lock()

    def photo_path(self, photo_id: str) -> Path:
        return self.photo_folder / photo_id[:2] / photo_id

    def record(self, photo: bytes, classified: Classified) -> str | None:
        """Keep the photo (once) and this classification of it; returns the photo's id, or None when the sampling
        rule leaves it out (a share of the confident answers). A new photo that the quota has no room for evicts the
        oldest photos without a seller's choice; StoreFull when they cannot make room."""
        photo_id = hashlib.sha256(photo).hexdigest()
        if not keeps(photo_id, classified.decision, self.keep_confident):
            return None
        if self.quota.limited and not self.photo_path(photo_id).exists():  # a new photo: its file is written below
            self._make_room(len(photo))
        self._write_photo(photo_id, photo)
        with self._without_waiting_for_the_disk() as connection:
            known = connection.execute(select(photos.c.id).where(photos.c.id == photo_id)).first()
            if known is None:
                try:
                    with connection.begin_nested():
                        connection.execute(insert(photos).values(id=photo_id, size=len(photo), first_seen=_now()))
                except IntegrityError:  # the same photo, inserted by a concurrent request meanwhile
                    pass
            connection.execute(insert(classifications).values(photo_id=photo_id, **vars(classified), created=_now()))
        return photo_id

    @contextmanager
    def _without_waiting_for_the_disk(self) -> Iterator[Connection]:
        """A transaction whose commit does not wait for the disk (see the module's docstring)."""
        with self._classifications.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            yield connection

    def choose(self, photo_id: str, label: str, class_names: list[str], source: str = SELLER) -> str:
        """Record the category a seller (or, source="reviewer", a reviewer) chose (a class, or "other"); returns
        what the model had said."""
        if label not in (*class_names, OTHER):
            raise ValueError(f"label {label!r} is not one of the model's classes {class_names} nor {OTHER!r}")
        with self.engine.begin() as connection:
            said = connection.execute(
                select(classifications.c.label)
                .where(classifications.c.photo_id == photo_id)
                .order_by(classifications.c.id.desc())
                .limit(1)
            ).scalar_one_or_none()
            if said is None:
                raise UnknownPhoto(f"no classified photo has the id {photo_id!r}: send the photo_id /classify returned")
            connection.execute(insert(choices).values(photo_id=photo_id, label=label, created=_now(), source=source))
        return said

    def answered(self) -> list[Answered]:
        """Every photo a seller labelled: its current choice, and the last answer the service gave it before."""
        latest_choice = select(choices.c.photo_id, func.max(choices.c.id).label("id")).group_by(choices.c.photo_id)
        latest_choice = latest_choice.subquery()
        rows = select(choices.c.photo_id, choices.c.label, choices.c.created, choices.c.source).join(
            latest_choice, choices.c.id == latest_choice.c.id
        )
        with self.engine.connect() as connection:
            chosen = connection.execute(rows).all()
            said = {
                row.photo_id: row
                for row in connection.execute(
                    select(classifications).order_by(classifications.c.id)
                )  # the last answer per photo wins
            }
        return [
            Answered(
                photo_id=row.photo_id,
                chosen=row.label,
                chosen_at=row.created,
                predicted=said[row.photo_id].label,
                confidence=said[row.photo_id].confidence,
                decision=said[row.photo_id].decision,
                model=said[row.photo_id].model,
                path=self.photo_path(row.photo_id),
                source=row.source,
            )
            for row in chosen
        ]

    def unlabelled(self) -> Iterator[review.Waiting]:
        """The photos without a choice, each with its latest answer, in the review queue's order (review.py); read a
        page at a time, so that the queue reads only as far as it needs."""
        latest = select(func.max(classifications.c.id).label("id")).group_by(classifications.c.photo_id).subquery()
        query = (
            select(*(classifications.c[name] for name in review.Waiting.__dataclass_fields__))
            .join(latest, classifications.c.id == latest.c.id)
            .where(~exists().where(choices.c.photo_id == classifications.c.photo_id))
            .order_by(*review.order_by())
        )
        read = 0
        while True:
            with self.engine.connect() as connection:
                page = connection.execute(query.offset(read).limit(DELETE_AT_ONCE)).all()
            yield from (review.Waiting(**row._mapping) for row in page)
            read += len(page)
            if len(page) < DELETE_AT_ONCE:
                return

    def purge(self, keep_days: float, now: datetime.datetime | None = None) -> int:
        """Delete the photos that never got a seller's choice and were last classified more than keep_days ago
        (rows and files); returns how many. Photos with a choice are training data: they stay."""
        cutoff = (now or _now()) - datetime.timedelta(days=keep_days)
        recent = select(classifications.c.photo_id).where(classifications.c.created >= cutoff)
        stale = select(photos.c.id).where(photos.c.id.not_in(recent))
        return len(self._remove(stale, keep_labelled=True).photo_ids)

    def erase(self, photo_id: str) -> Erased:
        """Remove one photo: its file and every row about it (classifications, choices). UnknownPhoto, without the
        id in its message (it may come from anyone), when no stored photo has it."""
        if not PHOTO_ID.fullmatch(photo_id):
            raise UnknownPhoto("a photo id is the 64 lower-case hexadecimal characters /classify returned")
        erased = self._remove(select(photos.c.id).where(photos.c.id == photo_id))
        if not erased.photo_ids:
            raise UnknownPhoto("no stored photo has this id: it was never stored, or is erased already")
        return erased

    def erase_before(self, moment: datetime.datetime) -> Erased:
        """Remove every photo first stored before `moment` (naive: UTC), labelled or not, with its file and every
        row about it, also the rows written since."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return self._remove(select(photos.c.id).where(photos.c.first_seen < moment.astimezone(datetime.UTC)))

    def _remove(self, chosen: Select | list[str], keep_labelled: bool = False) -> Erased:
        """Delete the photos a query selects (or these ids), in one transaction, then their files. keep_labelled:
        photos with a seller's choice stay, also one chosen meanwhile (the condition is asked again as rows go)."""
        unlabelled = ~exists().where(choices.c.photo_id == photos.c.id)
        removed: list[str] = []
        rows = {"classifications": 0, "choices": 0}
        with self.engine.begin() as connection:
            if isinstance(chosen, Select):
                ids = list(connection.execute(chosen.where(unlabelled) if keep_labelled else chosen).scalars())
            else:
                ids = chosen
            for start in range(0, len(ids), DELETE_AT_ONCE):
                batch = select(photos.c.id).where(photos.c.id.in_(ids[start : start + DELETE_AT_ONCE]))
                batch = batch.where(unlabelled) if keep_labelled else batch
                for table in (classifications, choices):
                    rows[table.name] += connection.execute(delete(table).where(table.c.photo_id.in_(batch))).rowcount
                gone = delete(photos).where(photos.c.id.in_(batch)).returning(photos.c.id)
                removed += connection.execute(gone).scalars()
        files = 0
        for photo_id in removed:  # after the commit: a crash in between leaves files without rows, never the reverse
            try:
                self.photo_path(photo_id).unlink()
                files += 1
            except FileNotFoundError:
                pass
        self._totals.forget()
        return Erased(tuple(removed), rows["classifications"], rows["choices"], files)

    def _make_room(self, size: int) -> None:
        """Count a new photo of `size` bytes in, evicting the oldest photos without a seller's choice if the quota
        needs it (and a little more: quota.SLACK). StoreFull when they are not enough: nothing is evicted then."""
        if not self._totals.stale() and self._totals.fits(self.quota, size):
            return
        with self._evicting:  # one eviction at a time in this process; the others wait and see its result
            with self.engine.connect() as connection:
                held = connection.execute(select(func.count(), func.coalesce(func.sum(photos.c.size), 0))).one()
            self._totals.counted(*held)
            if self._totals.fits(self.quota, size):
                return
            need = self.quota.excess(held[0] + 1, held[1] + size)
            slack = self.quota.slack()
            oldest = self._oldest_unlabelled((need[0] + slack[0], need[1] + slack[1]))
            if len(oldest) < need[0] or sum(oldest.values()) < need[1]:
                raise StoreFull(
                    f"the feedback store holds {held[0]} photos ({held[1] / 2**20:.1f} MB), its quota is reached "
                    f"({self.quota}) and its photos without a seller's choice cannot make room for a new one"
                )
            evicted = self._remove(list(oldest), keep_labelled=True)
            log.info("feedback quota: evicted the %s oldest photos without a seller's choice", evicted)
            freed = sum(oldest[photo_id] for photo_id in evicted.photo_ids)
            self._totals.counted(held[0] - len(evicted.photo_ids), held[1] - freed)
            if not self._totals.fits(self.quota, size):
                raise StoreFull("a photo chosen for eviction got a seller's choice meanwhile: try again")

    def _oldest_unlabelled(self, target: tuple[int, int]) -> dict[str, int]:
        """{id: size} of the oldest photos without a seller's choice, enough to free `target` (photos, bytes) when
        there are enough of them."""
        query = (
            select(photos.c.id, photos.c.size)
            .where(~exists().where(choices.c.photo_id == photos.c.id))
            .order_by(photos.c.first_seen, photos.c.id)
        )
        found: dict[str, int] = {}
        freed = 0
        with self.engine.connect() as connection:
            while True:
                page = connection.execute(query.offset(len(found)).limit(DELETE_AT_ONCE)).all()
                for row in page:
                    if len(found) >= target[0] and freed >= target[1]:
                        return found
                    found[row.id] = row.size
                    freed += row.size
                if len(page) < DELETE_AT_ONCE:
                    return found

    def decisions(self) -> dict[str, int]:
        """Photos by the decision of their latest answer: how much of each kind the service met."""
        latest = select(func.max(classifications.c.id).label("id")).group_by(classifications.c.photo_id).subquery()
        query = (
            select(classifications.c.decision, func.count())
            .join(latest, classifications.c.id == latest.c.id)
            .group_by(classifications.c.decision)
        )
        with self.engine.connect() as connection:
            return {decision: count for decision, count in connection.execute(query).all()}

    def counts(self) -> dict[str, int]:
        """Rows in each table (monitoring and tests)."""
        with self.engine.connect() as connection:
            return {
                table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (photos, classifications, choices)
            }

    def _write_photo(self, photo_id: str, photo: bytes) -> None:
        """Write-then-rename: a killed process leaves a photo file whole or absent (not fsynced: module docstring)."""
        path = self.photo_path(photo_id)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as file:
            file.write(photo)
        os.replace(file.name, path)
