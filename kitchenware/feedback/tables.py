"""The feedback database's tables, and the version of their schema.

The schema is created and upgraded by `schema.migrate`: SQLAlchemy's own DDL behind a one-row version table,
one code path for SQLite and PostgreSQL, nothing to ship beside the package (Alembic's environment and
scripts would be; it is the tool for a larger schema with many hands on it).
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Float, ForeignKey, Integer, MetaData, String, Table

metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

# One row a photo, by content: the SHA-256 of its bytes names it here and on disk.
photos = Table(
    "photos",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
)

# One row each time the service classified a photo.
classifications = Table(
    "classifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("photo_id", String(64), ForeignKey("photos.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("label", String(64), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("decision", String(16), nullable=False),
    Column("model", String(200), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)

# Every category a seller chose for a photo: the latest is the one in force, the earlier ones are its history.
choices = Table(
    "choices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("photo_id", String(64), ForeignKey("photos.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("label", String(64), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)
