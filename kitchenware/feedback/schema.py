"""Open the feedback database, create its tables, and upgrade an older schema to this one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, insert, inspect, make_url, select

from kitchenware.feedback.tables import metadata, schema_version

SCHEMA_VERSION = 1
# Upgrades from version N to N + 1, in order: each a function of a connection inside the migration's transaction.
UPGRADES: dict[int, Callable[[Connection], None]] = {}


def open_engine(url: str, durable: bool = True) -> Engine:
    """An engine for a SQLAlchemy URL. SQLite: write-ahead log, a 30 s wait for the lock under concurrent writers,
    and synchronous=FULL, so that a write the service acknowledged survives a crash of the machine; with
    durable=False, synchronous=NORMAL: a commit survives the process being killed, not a power loss."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)  # sqlite:///feedback/kitchenware.db
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_durability(connection, _record) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> int:
    """Create the tables of an empty database, or upgrade them to SCHEMA_VERSION; returns the version."""
    with engine.begin() as connection:
        if not inspect(connection).has_table("schema_version"):
            metadata.create_all(connection)
            connection.execute(insert(schema_version).values(version=SCHEMA_VERSION))
            return SCHEMA_VERSION
        version = connection.execute(select(schema_version.c.version)).scalar_one()
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"the feedback database has schema version {version}, newer than this code's {SCHEMA_VERSION}: "
                "upgrade kitchenware-classifier"
            )
        while version < SCHEMA_VERSION:
            UPGRADES[version](connection)
            version += 1
            connection.execute(schema_version.update().values(version=version))
        return version
