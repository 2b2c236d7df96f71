"""Items keyed by content hash, their change history, corrections and recent predictions.

The rows of adopted_items move into items (one per content hash; a later row
with the same content updates the earlier one), each with a ``migrate``
change in item_changes; then adopted_items is dropped.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from model.text import content_hash

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    items = op.create_table(
        "items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("content_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("external_id", sa.String(200), nullable=True),
        sa.Column("title", sa.Text, nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("topics", Json, nullable=True),
        sa.Column("kind", sa.String(16), nullable=True),
        sa.Column("adopted_level", sa.String(16), nullable=True),
        sa.Column("adopted_level_text", sa.String(200), nullable=True),
        sa.Column("unit", sa.String(200), nullable=True),
        sa.Column("date", sa.Date, nullable=True),
        sa.Column("recorded_by", sa.String(200), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("last_change_id", sa.Integer, nullable=True),
    )
    op.create_index("ix_items_last_change_id", "items", ["last_change_id"])
    changes = op.create_table(
        "item_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("before", Json, nullable=True),
        sa.Column("after", Json, nullable=False),
        sa.Column("changed_by", sa.String(200), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
    )
    op.create_index("ix_item_changes_item_id", "item_changes", ["item_id"])
    op.create_table(
        "corrections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
        sa.Column("change_id", sa.Integer, sa.ForeignKey("item_changes.id"), nullable=False),
        sa.Column("topics", Json, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("predicted_topics", Json, nullable=True),
        sa.Column("predicted_kind", sa.String(16), nullable=True),
        sa.Column("probabilities", Json, nullable=True),
        sa.Column("model_version", sa.String(200), nullable=True),
        sa.Column("corrected_by", sa.String(200), nullable=True),
        sa.Column("corrected_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_corrections_item_id", "corrections", ["item_id"])
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("title", sa.Text, nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("probabilities", Json, nullable=False),
        sa.Column("analysis_probability", sa.Float, nullable=True),
        sa.Column("model_version", sa.String(200), nullable=True),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_predictions_content_hash", "predictions", ["content_hash"])
    _move_adopted_items(items, changes)
    op.drop_table("adopted_items")


def _move_adopted_items(items: sa.Table, changes: sa.Table) -> None:
    bind = op.get_bind()
    old = sa.Table("adopted_items", sa.MetaData(), autoload_with=bind)
    by_hash: dict[str, int] = {}
    for row in bind.execute(sa.select(old).order_by(old.c.created_at, old.c.id)).mappings():
        created = row["created_at"] or dt.datetime.now(dt.UTC)
        values = {
            "external_id": row["id"],
            "title": row["title"],
            "text": row["text"],
            "topics": list(row["topics"]) if row["topics"] is not None else None,
            "kind": row["kind"],
            "unit": row["unit"],
            "date": row["date"],
        }
        key = content_hash(row["title"], row["text"])
        after = {**values, "date": None if row["date"] is None else str(row["date"]), "source": row["source"]}
        if key in by_hash:
            item_id = by_hash[key]
            # As recording does: the same content updates its item with what the later row says.
            newer = {k: v for k, v in values.items() if v is not None and k not in ("external_id", "title", "text")}
            bind.execute(sa.update(items).where(items.c.id == item_id).values(**newer, updated_at=created))
        else:
            inserted = bind.execute(
                sa.insert(items).values(
                    **values, content_hash=key, recorded_at=created, updated_at=created, origin="import"
                )
            ).inserted_primary_key
            assert inserted is not None
            item_id = inserted[0]
            by_hash[key] = item_id
        change = bind.execute(
            sa.insert(changes).values(
                item_id=item_id, action="migrate", before=None, after=after, changed_at=created, origin="import"
            )
        ).inserted_primary_key
        assert change is not None
        change_id = change[0]
        bind.execute(sa.update(items).where(items.c.id == item_id).values(last_change_id=change_id))


def downgrade() -> None:
    op.drop_table("predictions")
    op.drop_table("corrections")
    op.drop_table("item_changes")
    op.drop_table("items")
    op.create_table(
        "adopted_items",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("title", sa.Text, nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("topics", Json, nullable=False),
        sa.Column("kind", sa.String(32), nullable=True),
        sa.Column("unit", sa.String(200), nullable=True),
        sa.Column("date", sa.Date, nullable=True),
        sa.Column("source", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
