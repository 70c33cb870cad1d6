"""The feedback database's tables: what the code reads and writes, at the newest revision of migrations/.

Alembic, the tool SQLAlchemy users know, creates and upgrades them (`schema.migrate`): each change to these
tables is a new revision in migrations/versions/, written by hand or drafted with
`alembic.command.revision(schema.alembic_config(connection), "what changes", autogenerate=True)` against a
database at the newest revision; tests/feedback/test_migrations.py checks that these tables and the revisions
agree, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Float, ForeignKey, Integer, MetaData, String, Table

metadata = MetaData()

# The version row of the code before Alembic, kept as a guard: that code refuses a version above its own 1, so an
# older service pointed at a database Alembic manages says "upgrade kitchenware-classifier" instead of writing.
schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))
PRE_ALEMBIC_GUARD = 2

# One row a photo, by content: the SHA-256 of its bytes names it here and on disk.
photos = Table(
    "photos",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False, index=True),  # the oldest go first (quota)
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
    # What the review queue ranks by (feedback/review.py), since revision 0003; null in older rows.
    Column("margin", Float),  # the top class's probability minus the second's
    Column("ood_score", Float),  # the answer's "unknown" score
    Column("signature", String(16)),  # 64 bits of the photo's features, hexadecimal: near-duplicates share most
)

# Every category chosen for a photo, by its seller or by a reviewer (the review page): the latest is the one in
# force, the earlier ones are its history.
SELLER, REVIEWER = "seller", "reviewer"
choices = Table(
    "choices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("photo_id", String(64), ForeignKey("photos.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("label", String(64), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("source", String(16), nullable=False, server_default=SELLER),  # since revision 0003
)
