"""An index on photos.first_seen: the quota evicts the oldest photos first and `feedback erase --before DATE` picks
photos by it; without the index each of them reads the whole table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_photos_first_seen", "photos", ["first_seen"])


def downgrade() -> None:
    op.drop_index("ix_photos_first_seen", table_name="photos")
