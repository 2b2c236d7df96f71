"""The service's database: SQLite in the data directory by default, PostgreSQL by URL.

For now it holds the items that were adopted (采用) or corrected by an editor,
which later issues record and retrain on. Tables are created on start-up;
``schema`` (PostgreSQL) and ``table_prefix`` let tests and several
deployments share one database without touching each other's tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url

ITEM_FIELDS = ("id", "title", "text", "topics", "kind", "unit", "date", "source", "created_at")


def _engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
    connect_args = {"connect_timeout": 3} if parsed.get_backend_name() == "postgresql" else {}
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args=connect_args)


class Store:
    """Adopted and corrected items, in the database at ``url``."""

    def __init__(self, url: str, *, schema: str | None = None, table_prefix: str = "") -> None:
        self.url = url
        self.engine = _engine(url)
        self.metadata = MetaData(schema=schema)
        self.items = Table(
            f"{table_prefix}adopted_items",
            self.metadata,
            Column("id", String(200), primary_key=True),
            Column("title", Text, nullable=True),
            Column("text", Text, nullable=False),
            Column("topics", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
            Column("kind", String(32), nullable=True),
            Column("unit", String(200), nullable=True),
            Column("date", Date, nullable=True),
            Column("source", String(200), nullable=True),
            Column("created_at", DateTime(timezone=True), nullable=False),
        )

    def create_tables(self) -> None:
        """Create missing tables; existing ones are left as they are."""
        self.metadata.create_all(self.engine)

    def ping(self) -> bool:
        """Whether the database answers a trivial query."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            return False
        return True

    def save_item(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """Insert an item, or replace the one with the same id; returns the stored row."""
        row = {
            "id": str(item["id"]),
            "title": item.get("title"),
            "text": item["text"],
            "topics": list(item.get("topics") or []),
            "kind": item.get("kind"),
            "unit": item.get("unit"),
            "date": _as_date(item.get("date")),
            "source": item.get("source"),
            "created_at": item.get("created_at") or dt.datetime.now(dt.UTC),
        }
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        statement = insert(self.items).values(**row)
        statement = statement.on_conflict_do_update(
            index_elements=[self.items.c.id], set_={k: v for k, v in row.items() if k != "id"}
        )
        with self.engine.begin() as connection:
            connection.execute(statement)
        stored = self.get_item(row["id"])
        assert stored is not None
        return stored

    def get_item(self, item_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            found = (
                connection.execute(select(self.items).where(self.items.c.id == item_id)).mappings().first()
            )
        return None if found is None else dict(found)

    def list_items(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Items, newest first."""
        query = (
            select(self.items)
            .order_by(self.items.c.created_at.desc(), self.items.c.id)
            .limit(limit)
            .offset(offset)
        )
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def count(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(self.items)).scalar_one())

    def drop_tables(self) -> None:
        self.metadata.drop_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()


def _as_date(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))
