"""The first store: the adopted_items table that start-up created before migrations existed.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "adopted_items",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("title", sa.Text, nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("topics", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=True),
        sa.Column("unit", sa.String(200), nullable=True),
        sa.Column("date", sa.Date, nullable=True),
        sa.Column("source", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("adopted_items")
