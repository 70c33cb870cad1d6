"""Open the feedback database and bring its schema to this code's newest Alembic revision (migrations/); or, for
the commands that only read, open it read-only and check that it is there, without writing anything.

Alembic runs from the package: its environment and revisions ship in migrations/ and are run here on the
engine's connection, so no alembic.ini is needed where the service or the commands run.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import quote, unquote

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine, create_engine, delete, event, insert, inspect, make_url, select, text
from sqlalchemy.exc import OperationalError

from kitchenware.core.photos import DataError
from kitchenware.feedback.tables import PRE_ALEMBIC_GUARD, schema_version

MIGRATIONS = Path(__file__).with_name("migrations")
FIRST_REVISION = "0001"  # the schema the code before Alembic wrote (its schema_version 1)
FEEDBACK_TABLES = ("photos", "classifications", "choices")
MIGRATION_LOCK = 0x6B697463  # the PostgreSQL advisory lock a migration holds
SQLITE_TIMEOUT = 30  # seconds a SQLite connection waits for another one's lock
# Alembic's `context` and `op` are module-wide proxies: one migration at a time in a process, too.
_MIGRATING = threading.Lock()


class StoreError(DataError):
    """The feedback database cannot be used as it is; the message says why and what to do."""


def open_engine(url: str, durable: bool = True, read_only: bool = False) -> Engine:
    """An engine for a SQLAlchemy URL. SQLite: write-ahead log, a 30 s wait for the lock under concurrent writers,
    and synchronous=FULL, so that a write the service acknowledged survives a crash of the machine; with
    durable=False, synchronous=NORMAL: a commit survives the process being killed, not a power loss.
    read_only=True: an existing SQLite file opened in mode=ro (StoreError when there is none: a mistyped URL
    creates nothing), or PostgreSQL sessions whose transactions are read-only."""
    if url.startswith("sqlite") and read_only:
        return _sqlite_read_only(make_url(url))
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)  # sqlite:///feedback/kitchenware.db
        engine = create_engine(url, connect_args={"timeout": SQLITE_TIMEOUT, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_durability(connection, _record) -> None:
            cursor = connection.cursor()
            _write_ahead_log(cursor)
            cursor.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # A database host that drops packets would hold each connection attempt for minutes, the service's start-up
    # among them (it opens the store there): 10 s unless the URL sets its own connect_timeout.
    timeout = {} if "connect_timeout" in make_url(url).query else {"connect_args": {"connect_timeout": 10}}
    if read_only:
        return create_engine(url, pool_pre_ping=True, execution_options={"postgresql_readonly": True}, **timeout)
    return create_engine(url, pool_pre_ping=True, **timeout)


def _write_ahead_log(cursor: sqlite3.Cursor) -> None:
    """Switch a SQLite database to its write-ahead log. The switch takes the file's exclusive lock, and SQLite
    answers "database is locked" at once, without its busy timeout, to a connection that meets another one
    switching or migrating (workers starting together on a new file): wait for it here, up to the same 30 s."""
    deadline = time.monotonic() + SQLITE_TIMEOUT
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as problem:
            if "locked" not in str(problem) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sqlite_read_only(url: URL) -> Engine:
    in_memory = url.database in (None, "", ":memory:")  # nothing to read there
    path = Path(url.database or "")
    if in_memory or not path.is_file():
        raise StoreError(
            f"no feedback database at {url if in_memory else path.resolve()}: check the URL (--db); the commands "
            "that only read never create one"
        )
    uri = url.set(database=f"file:{quote(str(path.resolve()))}", query={**url.query, "mode": "ro", "uri": "true"})
    return create_engine(uri, connect_args={"timeout": SQLITE_TIMEOUT, "check_same_thread": False})


def describe(url: URL) -> str:
    """The database as a person knows it: a SQLite file's path, or the URL without its password."""
    if url.get_backend_name() == "sqlite":
        return unquote((url.database or "").removeprefix("file:"))
    return url.render_as_string(hide_password=True)


def alembic_config(connection: Connection) -> Config:
    """Alembic's configuration for the package's migrations, running on `connection` (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def head() -> str:
    """The newest revision this code knows."""
    return _scripts().get_current_head()


def revision_of(connection: Connection) -> str | None:
    """The database's Alembic revision (None before Alembic); StoreError when this code does not know it."""
    revision = MigrationContext.configure(connection).get_current_revision()
    if revision is not None and revision not in {script.revision for script in _scripts().walk_revisions()}:
        raise StoreError(
            f"the feedback database {describe(connection.engine.url)} is at revision {revision}, newer than this "
            f"code knows (its newest is {head()}): upgrade kitchenware-classifier, or point KITCHENWARE_FEEDBACK_DB "
            "(--db for the commands) at a database this version wrote"
        )
    return revision


def migrate(engine: Engine) -> str:
    """Bring the database to this code's newest revision: create the tables of an empty one, adopt tables written
    before Alembic, run the revisions it lacks, all in one transaction; refuse a newer database. Returns the
    revision."""
    with _MIGRATING, engine.begin() as connection:
        _one_at_a_time(connection)
        if revision_of(connection) is None and set(FEEDBACK_TABLES) & set(inspect(connection).get_table_names()):
            _adopt(connection)
        command.upgrade(alembic_config(connection), "head")
        return revision_of(connection)


def _one_at_a_time(connection: Connection) -> None:
    """Workers or replicas starting together migrate one after the other; the next ones find the work done."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    elif connection.dialect.name == "sqlite":
        # The write lock now (others wait up to the 30 s timeout), and the DDL inside this transaction: Python's
        # sqlite3 begins a transaction before INSERT and UPDATE only, never before CREATE TABLE.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def check(engine: Engine) -> str:
    """For the commands that only read: the database's revision when it is this code's newest. StoreError when it
    cannot be opened, holds no feedback tables, or must first be upgraded (they never migrate), or is newer."""
    where = describe(engine.url)
    try:
        with engine.connect() as connection:
            revision = revision_of(connection)
            tables = set(inspect(connection).get_table_names())
    except OperationalError as problem:
        raise StoreError(f"cannot open the feedback database {where}: {problem.orig}") from problem
    if revision == head():
        return revision
    if revision is None and not tables & set(FEEDBACK_TABLES):
        raise StoreError(f"{where} holds no feedback tables: check the URL (--db)")
    raise StoreError(
        f"the feedback database {where} is at {f'revision {revision}' if revision else 'the schema before Alembic'}, "
        f"older than this code's {head()}: start the service on it once, or run `kitchenware feedback upgrade "
        "--db <the same URL>`, then try again"
    )


def _columns(connection: Connection) -> dict[str, set[str]]:
    inspector = inspect(connection)
    return {table: {column["name"] for column in inspector.get_columns(table)} for table in inspector.get_table_names()}


@functools.cache
def _first_revision_columns() -> dict[str, set[str]]:
    """The columns of each table of the first revision, from running it on an in-memory SQLite database."""
    with create_engine("sqlite://").begin() as connection:
        command.upgrade(alembic_config(connection), FIRST_REVISION)
        return _columns(connection)


def _adopt(connection: Connection) -> None:
    """Stamp tables written before Alembic (schema_version 1, or no version row at all) with the first revision,
    once all of them are there with its columns; refuse anything else rather than guess. schema_version stays,
    set to the guard that makes the code before Alembic refuse the database (tables.py)."""
    where = describe(connection.engine.url)
    found = _columns(connection)
    missing = [table for table in FEEDBACK_TABLES if table not in found]
    if missing:
        present = [table for table in FEEDBACK_TABLES if table in found]
        raise StoreError(
            f"the feedback database {where} has the tables {present} without {missing} and no Alembic revision: "
            "it is not one kitchenware-classifier wrote; point KITCHENWARE_FEEDBACK_DB at another database"
        )
    version = connection.execute(select(schema_version.c.version)).scalar() if "schema_version" in found else None
    if version not in (None, 1):
        raise StoreError(
            f"the feedback database {where} has schema_version {version} and no Alembic revision: restore its "
            "alembic_version table, or point KITCHENWARE_FEEDBACK_DB at another database"
        )
    expected = _first_revision_columns()
    different = [
        f"{table} lacks {sorted(expected[table] - found[table])} and has {sorted(found[table] - expected[table])}"
        for table in FEEDBACK_TABLES
        if found[table] != expected[table]
    ]
    if different:
        raise StoreError(
            f"the feedback database {where} has no Alembic revision and tables unlike revision {FIRST_REVISION}'s "
            f"({'; '.join(different)}): not adopting them; point KITCHENWARE_FEEDBACK_DB at another database"
        )
    if "schema_version" not in found:
        schema_version.create(connection)
    connection.execute(delete(schema_version))
    connection.execute(insert(schema_version).values(version=PRE_ALEMBIC_GUARD))
    command.stamp(alembic_config(connection), FIRST_REVISION)
