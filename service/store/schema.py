"""The tables of the store at the newest migration (what the code reads and writes).

Alembic's revisions in ``migrations/versions`` build exactly these tables; a
test compares the two, so a change here without a revision is caught.

- ``items``: one row per item (``content_hash`` unique); ``topics``/``kind``
  NULL mean "not labelled", ``last_change_id`` is its newest change.
- ``item_changes``: every insert, update and correction, with the values
  before and after; its autoincrement id orders all changes of the store.
- ``corrections``: an editor's labels with the prediction they correct.
- ``predictions``: recently scored items (the editor page's), for the review queue.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

# none_as_null: a Python None is SQL NULL ("not labelled"), not the JSON value null.
Json = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

metadata = MetaData()

items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("content_hash", String(64), nullable=False, unique=True),
    Column("external_id", String(200), nullable=True),
    Column("title", Text, nullable=True),
    Column("text", Text, nullable=False),
    Column("topics", Json, nullable=True),
    Column("kind", String(16), nullable=True),
    Column("adopted_level", String(16), nullable=True),
    Column("adopted_level_text", String(200), nullable=True),
    Column("unit", String(200), nullable=True),
    Column("date", Date, nullable=True),
    Column("recorded_by", String(200), nullable=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("origin", String(16), nullable=False),
    Column("last_change_id", Integer, nullable=True, index=True),
)

item_changes = Table(
    "item_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False, index=True),
    Column("action", String(16), nullable=False),
    Column("before", Json, nullable=True),
    Column("after", Json, nullable=False),
    Column("changed_by", String(200), nullable=True),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("origin", String(16), nullable=False),
)

corrections = Table(
    "corrections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False, index=True),
    Column("change_id", Integer, ForeignKey("item_changes.id"), nullable=False),
    Column("topics", Json, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("predicted_topics", Json, nullable=True),
    Column("predicted_kind", String(16), nullable=True),
    Column("probabilities", Json, nullable=True),
    Column("model_version", String(200), nullable=True),
    Column("corrected_by", String(200), nullable=True),
    Column("corrected_at", DateTime(timezone=True), nullable=False),
)

predictions = Table(
    "predictions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("content_hash", String(64), nullable=False, index=True),
    Column("title", Text, nullable=True),
    Column("text", Text, nullable=False),
    Column("probabilities", Json, nullable=False),
    Column("analysis_probability", Float, nullable=True),
    Column("model_version", String(200), nullable=True),
    Column("scored_at", DateTime(timezone=True), nullable=False),
)
