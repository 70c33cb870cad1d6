"""What the review queue needs: each classification's margin, "unknown" score and feature signature (nullable:
rows written before have none, and the queue falls back on their confidence), and who made each choice (a seller,
or a reviewer on the review page; the rows written before were all sellers').

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("classifications", sa.Column("margin", sa.Float(), nullable=True))
    op.add_column("classifications", sa.Column("ood_score", sa.Float(), nullable=True))
    op.add_column("classifications", sa.Column("signature", sa.String(16), nullable=True))
    op.add_column("choices", sa.Column("source", sa.String(16), nullable=False, server_default="seller"))


def downgrade() -> None:
    with op.batch_alter_table("choices") as choices:
        choices.drop_column("source")
    with op.batch_alter_table("classifications") as classifications:
        for name in ("signature", "ood_score", "margin"):
            classifications.drop_column(name)
