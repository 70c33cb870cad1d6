"""The schema of the first feedback store (its `schema_version` 1): photos, classifications, choices.

A database written before Alembic holds exactly these tables: `schema.migrate` stamps it with this revision
once their columns match. `schema_version` stays as a guard: pre-Alembic code refuses a database whose version
is above 1, so an older service pointed at a migrated database says "upgrade" instead of writing into a schema
it does not know.

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from kitchenware.feedback.tables import PRE_ALEMBIC_GUARD

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    guard = op.create_table("schema_version", sa.Column("version", sa.Integer(), nullable=False))
    op.bulk_insert(guard, [{"version": PRE_ALEMBIC_GUARD}])
    op.create_table(
        "photos",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "classifications",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("photo_id", sa.String(64), sa.ForeignKey("photos.id", ondelete="CASCADE"), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_classifications_photo_id", "classifications", ["photo_id"])
    op.create_table(
        "choices",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("photo_id", sa.String(64), sa.ForeignKey("photos.id", ondelete="CASCADE"), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_choices_photo_id", "choices", ["photo_id"])


def downgrade() -> None:
    for name in ("choices", "classifications", "photos", "schema_version"):
        op.drop_table(name)
