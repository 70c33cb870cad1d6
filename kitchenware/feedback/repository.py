"""The one module that reads and writes the feedback database and the photo folder beside it.

A photo is stored once by content: its SHA-256 names its row and its file (no name a user sent reaches the
disk). Each classification adds a row; each choice a seller makes adds a row, the latest one in force.

Durability: a seller's choice (what /feedback acknowledges) is committed to disk before the answer (SQLite
synchronous=FULL, PostgreSQL's default synchronous commit). What /classify keeps, the photo and its answer, is
written without waiting for the disk (SQLite synchronous=NORMAL in WAL mode, PostgreSQL synchronous_commit=off,
the photo file not fsynced): it survives the service being killed, a power loss may take the last moments of
it, and that keeps storage at ~1% of /classify's time (benchmarks/RESULTS.md) instead of 5-10%.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from kitchenware.feedback.schema import migrate, open_engine
from kitchenware.feedback.tables import choices, classifications, photos

OTHER = "other"  # the seller's choice when the photo is none of the model's classes


class UnknownPhoto(LookupError):
    """No photo with that id was classified (or it was deleted)."""


@dataclass(frozen=True)
class Classified:
    label: str
    confidence: float
    decision: str
    model: str


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


def photos_beside(url: str) -> Path:
    """photos/ beside a SQLite file (sqlite:///feedback/kitchenware.db -> feedback/photos); feedback-photos/ else."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///")).parent / "photos"
    return Path("feedback-photos")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class FeedbackStore:
    def __init__(self, url: str, photo_folder: Path):
        self.engine = open_engine(url)
        self.version = migrate(self.engine)
        # SQLite sets durability per connection: the classification rows get connections of their own.
        self._classifications = open_engine(url, durable=False) if url.startswith("sqlite") else self.engine
        self.photo_folder = Path(photo_folder)
        self.photo_folder.mkdir(parents=True, exist_ok=True)

    def photo_path(self, photo_id: str) -> Path:
        return self.photo_folder / photo_id[:2] / photo_id

    def record(self, photo: bytes, classified: Classified) -> str:
        """Keep the photo (once) and this classification of it; returns the photo's id."""
        photo_id = hashlib.sha256(photo).hexdigest()
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

    def choose(self, photo_id: str, label: str, class_names: list[str]) -> str:
        """Record the category a seller chose (a class, or "other"); returns what the model had said."""
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
            connection.execute(insert(choices).values(photo_id=photo_id, label=label, created=_now()))
        return said

    def answered(self) -> list[Answered]:
        """Every photo a seller labelled: its current choice, and the last answer the service gave it before."""
        latest_choice = select(choices.c.photo_id, func.max(choices.c.id).label("id")).group_by(choices.c.photo_id)
        latest_choice = latest_choice.subquery()
        rows = select(choices.c.photo_id, choices.c.label, choices.c.created).join(
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
            )
            for row in chosen
        ]

    def purge(self, keep_days: float, now: datetime.datetime | None = None) -> int:
        """Delete the photos that never got a seller's choice and were last classified more than keep_days ago
        (rows and files); returns how many. Photos with a choice are training data: they stay."""
        cutoff = (now or _now()) - datetime.timedelta(days=keep_days)
        chosen = select(choices.c.photo_id)
        recent = select(classifications.c.photo_id).where(classifications.c.created >= cutoff)
        stale = select(photos.c.id).where(photos.c.id.not_in(chosen), photos.c.id.not_in(recent))
        with self.engine.begin() as connection:
            ids = list(connection.execute(stale).scalars())
            for start in range(0, len(ids), 500):
                batch = ids[start : start + 500]
                connection.execute(delete(classifications).where(classifications.c.photo_id.in_(batch)))
                connection.execute(delete(photos).where(photos.c.id.in_(batch)))
        for photo_id in ids:  # after the commit: a crash in between leaves files without rows, never the reverse
            self.photo_path(photo_id).unlink(missing_ok=True)
        return len(ids)

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
