"""The feedback schema under Alembic, on SQLite and on a real PostgreSQL server: a fresh database gets the newest
revision, a database written by the code before Alembic is upgraded in place with its rows, a newer or foreign one
is refused saying what to do, and the commands that only read open the database read-only and create nothing."""

import datetime
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError

from kitchenware.cli import main
from kitchenware.feedback.repository import FeedbackStore
from kitchenware.feedback.schema import StoreError, check, head, migrate, open_engine
from kitchenware.feedback.source import read
from kitchenware.feedback.tables import PRE_ALEMBIC_GUARD, metadata, photos

# The tables as the code before Alembic defined them (kitchenware/feedback/tables.py at its schema_version 1),
# frozen here: what it wrote is what an upgrade meets.
VERSION_1 = MetaData()
Table("schema_version", VERSION_1, Column("version", Integer, nullable=False))
Table(
    "photos",
    VERSION_1,
    Column("id", String(64), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
)
Table(
    "classifications",
    VERSION_1,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("photo_id", String(64), ForeignKey("photos.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("label", String(64), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("decision", String(16), nullable=False),
    Column("model", String(200), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)
Table(
    "choices",
    VERSION_1,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("photo_id", String(64), ForeignKey("photos.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("label", String(64), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)
MODEL = "kitchenware_classifier:v1"
DAY = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)
ROWS = {
    "photos": [{"id": f"{n}" * 64, "size": 1000 + n, "first_seen": DAY} for n in (1, 2, 3)],
    "classifications": [
        {"photo_id": "1" * 64, "label": "cup", "confidence": 0.97, "decision": "confident", "model": MODEL},
        {"photo_id": "2" * 64, "label": "fork", "confidence": 0.61, "decision": "unsure", "model": MODEL},
        {"photo_id": "3" * 64, "label": "knife", "confidence": 0.40, "decision": "unknown", "model": MODEL},
        {"photo_id": "1" * 64, "label": "cup", "confidence": 0.98, "decision": "confident", "model": MODEL},
    ],
    "choices": [{"photo_id": "1" * 64, "label": "glass"}, {"photo_id": "2" * 64, "label": "fork"}],
}


def write_version_1(url: str, *, version_row: bool = True, tables: MetaData = VERSION_1) -> None:
    """A database as the code before Alembic left it: its `migrate` (create_all, then the version row 1), then
    photos, classifications and choices as its repository wrote them."""
    with open_engine(url).begin() as connection:
        tables.create_all(connection)
        if version_row:
            connection.execute(insert(tables.tables["schema_version"]).values(version=1))
        for name, rows in ROWS.items():
            if name in tables.tables:
                stamped = [{"created": DAY, **row} if name != "photos" else row for row in rows]
                connection.execute(insert(tables.tables[name]), stamped)


def contents(url: str) -> dict[str, list[tuple]]:
    with open_engine(url).connect() as connection:
        return {
            name: [tuple(row) for row in connection.execute(select(VERSION_1.tables[name]).order_by(text("1")))]
            for name in ROWS
        }


def drift(url: str) -> list:
    """What Alembic's autogenerate finds between the database and kitchenware/feedback/tables.py: nothing, when
    the revisions and the tables agree."""
    with open_engine(url).connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), metadata)


def alembic_revision(url: str) -> str | None:
    with open_engine(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def guard(url: str) -> list[int]:
    with open_engine(url).connect() as connection:
        return list(connection.execute(text("SELECT version FROM schema_version")).scalars())


def test_a_fresh_database_gets_the_newest_revision_whose_tables_are_the_codes(database: str):
    assert migrate(open_engine(database)) == head() == alembic_revision(database)
    assert drift(database) == []
    assert guard(database) == [PRE_ALEMBIC_GUARD]
    assert migrate(open_engine(database)) == head()  # again: nothing to do
    assert guard(database) == [PRE_ALEMBIC_GUARD]


def test_workers_starting_together_migrate_one_after_the_other(database: str):
    """Four processes, as four workers or replicas starting at once: one migrates, the others find it done.
    (Without the lock, three of four fail on tables that already exist.)"""
    program = (
        "import sys; from kitchenware.feedback.schema import migrate, open_engine; "
        f"engine = open_engine({database!r}); print('ready', flush=True); sys.stdin.readline(); print(migrate(engine))"
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", program], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    assert [worker.stdout.readline() for worker in workers] == ["ready\n"] * 4  # all imported: go together
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    assert [worker.communicate(timeout=60)[0].strip() for worker in workers] == [head()] * 4
    assert guard(database) == [PRE_ALEMBIC_GUARD]


def test_a_version_1_database_is_upgraded_in_place_with_its_rows(database: str, tmp_path: Path):
    write_version_1(database)
    before = contents(database)
    store = FeedbackStore(database, tmp_path / "photos")
    assert store.version == head() and alembic_revision(database) == head()
    assert contents(database) == before  # every row, as it was
    assert drift(database) == []  # the same schema as a fresh database's
    assert guard(database) == [PRE_ALEMBIC_GUARD]  # the code before Alembic now refuses it, saying "upgrade"
    assert [(row.photo_id[0], row.chosen, row.predicted) for row in store.answered()] == [
        ("1", "glass", "cup"),
        ("2", "fork", "fork"),
    ]
    store.choose("3" * 64, "knife", ["cup", "fork", "glass", "knife"])  # and the store goes on writing
    assert store.counts() == {"photos": 3, "classifications": 4, "choices": 3}


def test_tables_without_a_version_row_are_adopted_when_their_columns_are_the_first_revisions(database: str):
    write_version_1(database, version_row=False)
    assert migrate(open_engine(database)) == head() and guard(database) == [PRE_ALEMBIC_GUARD]
    assert contents(database)["choices"][1][1:3] == ("2" * 64, "fork")


def unlike_ours() -> MetaData:
    """Tables named like the feedback store's, one column renamed: someone else's."""
    tables = MetaData()
    for table in [table for name, table in VERSION_1.tables.items() if name != "schema_version"]:
        columns = [column.copy() for column in table.columns]
        if table.name == "choices":
            columns[2] = Column("category", String(64))
        Table(table.name, tables, *columns)
    return tables


def only_photos() -> MetaData:
    tables = MetaData()
    VERSION_1.tables["photos"].to_metadata(tables)
    return tables


@pytest.mark.parametrize(
    ("tables", "refusal"),
    [
        (unlike_ours, r"tables unlike revision 0001's \(choices lacks \['label'\] and has \['category'\]\)"),
        (only_photos, r"has the tables \['photos'\] without \['classifications', 'choices'\]"),
    ],
)
def test_foreign_tables_are_refused_not_stamped(database: str, tables, refusal: str):
    write_version_1(database, version_row=False, tables=tables())
    with pytest.raises(StoreError, match=refusal + ".*point KITCHENWARE_FEEDBACK_DB at another database"):
        migrate(open_engine(database))
    assert alembic_revision(database) is None
    assert "schema_version" not in inspect(open_engine(database)).get_table_names()  # nothing was written


def test_a_newer_revision_is_refused_saying_what_to_do(database: str, tmp_path: Path):
    migrate(open_engine(database))
    with open_engine(database).begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    expected = (
        rf"is at revision 0999, newer than this code knows \(its newest is {head()}\): upgrade "
        "kitchenware-classifier, or point KITCHENWARE_FEEDBACK_DB"
    )
    with pytest.raises(StoreError, match=expected):
        FeedbackStore(database, tmp_path / "photos")
    with pytest.raises(StoreError, match=expected):
        FeedbackStore(database, tmp_path / "photos", read_only=True)
    assert alembic_revision(database) == "0999"


def test_a_read_only_open_cannot_write(database: str, tmp_path: Path):
    FeedbackStore(database, tmp_path / "photos")  # created, at the newest revision
    reader = FeedbackStore(database, tmp_path / "photos", read_only=True)
    assert reader.version == head()
    with pytest.raises(DBAPIError, match="read-only|readonly"), reader.engine.begin() as connection:
        connection.execute(insert(photos).values(id="f" * 64, size=1, first_seen=DAY))
    assert reader.counts() == {"photos": 0, "classifications": 0, "choices": 0}


def test_the_reading_commands_refuse_a_missing_sqlite_file_and_create_nothing(tmp_path: Path, capsys):
    typo = tmp_path / "feedbak" / "kitchenware.db"
    url = f"sqlite:///{typo}"
    assert main(["feedback", "report", "--db", url, "--out", str(tmp_path / "report")]) == 2
    assert f"error: no feedback database at {typo}: check the URL (--db)" in capsys.readouterr().err
    assert main(["feedback", "export", "--db", url, str(tmp_path / "exported")]) == 2
    assert f"no feedback database at {typo}" in capsys.readouterr().err
    with pytest.raises(StoreError, match=f"no feedback database at {typo}"):
        read(url)  # --data feedback:<URL>
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_the_reading_commands_never_migrate_and_say_how_to(database: str, tmp_path: Path, capsys):
    if database.startswith("sqlite"):
        open_engine(database).connect().close()  # an empty SQLite file: it exists, without tables
    with pytest.raises(StoreError, match="holds no feedback tables: check the URL"):
        check(open_engine(database, read_only=True))
    write_version_1(database)
    photos_folder = str(tmp_path / "photos")
    report = ["feedback", "report", "--db", database, "--photos", photos_folder, "--out", str(tmp_path / "report")]
    assert main(report) == 2
    refused = capsys.readouterr().err
    assert f"is at the schema before Alembic, older than this code's {head()}: start the service on it once" in refused
    assert "run `kitchenware feedback upgrade --db <the same URL>`" in refused
    assert alembic_revision(database) is None and guard(database) == [1]  # untouched
    assert main(["feedback", "upgrade", "--db", database]) == 0
    assert f"at revision {head()}, this version's newest" in capsys.readouterr().out
    assert main(report) == 0
    assert "2 photos labelled (by sellers or reviewers)" in capsys.readouterr().out


def test_the_service_image_upgrades_and_says_when_the_database_cannot_be_reached(database: str, capsys):
    """`python -m kitchenware.feedback upgrade`, what a Kubernetes Job runs from the service image."""
    from kitchenware.feedback.__main__ import main as image_main

    write_version_1(database)
    assert image_main(["upgrade", "--db", database]) == 0
    assert f"at revision {head()}, this version's newest" in capsys.readouterr().out
    assert alembic_revision(database) == head()
    nowhere = "postgresql+psycopg://postgres@127.0.0.1:9/kitchenware?connect_timeout=2"  # nothing listens on port 9
    assert image_main(["upgrade", "--db", nowhere]) == 2
    assert "could not open the feedback database (" in capsys.readouterr().err
