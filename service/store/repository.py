"""The store: items editors recorded, their history and corrections, and recently scored items.

One item per content (:func:`model.text.content_hash`): recording the same
text again updates that item and adds a change to its history. Every write is
one transaction; a client is answered only after it committed, so an
acknowledged item survives a crash. A database that does not answer raises
:class:`service.errors.StoreUnavailableError` (503 ``store_unavailable``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, OperationalError

from service.errors import StoreUnavailableError
from service.store import database
from service.store.records import RejectedItem, clean_item, parse_kind, parse_topics
from service.store.schema import corrections, item_changes, items, predictions

log = logging.getLogger("xinxi.store")

SNAPSHOT_FIELDS = (
    "external_id", "title", "text", "topics", "kind", "adopted_level", "adopted_level_text", "unit", "date",
)
# Same content hash, so the same text: title and text are kept as first recorded, and a file's
# fallback ids (row-12) do not make a re-run an "update".
_NOT_COMPARED = {"content_hash", "title", "text", "external_id"}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite returns naive datetimes; everything stored is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None, "an INSERT returns the new row's key"
    return int(key[0])


def _snapshot(row: Mapping[Any, Any]) -> dict[str, Any]:
    values = {name: row.get(name) for name in SNAPSHOT_FIELDS}
    if values["date"] is not None:
        values["date"] = values["date"].isoformat()
    return values


def _item_out(row: Mapping[Any, Any]) -> dict[str, Any]:
    item = dict(row)
    for name in ("recorded_at", "updated_at"):
        item[name] = _utc(item[name])
    return item


class Store:
    """The database at ``url``; tables are brought to the newest migration on first use.

    Parameters
    ----------
    url : str
        SQLAlchemy URL: ``sqlite:///path`` or ``postgresql+psycopg://...``.
    schema : str, optional
        PostgreSQL schema of its own (tests, several deployments in one database).
    keep_predictions : int
        How many recently scored items the review queue keeps.
    """

    def __init__(
        self, url: str, *, schema: str | None = None, keep_predictions: int = 5000, busy_seconds: float = 30.0
    ) -> None:
        self.url = url
        self.schema = schema
        self.keep_predictions = keep_predictions
        self.engine = database.make_engine(url, schema=schema, busy_seconds=busy_seconds)
        self._migrated = False
        self._migrate_lock = threading.Lock()

    # -- connection and migration -------------------------------------------------------------

    @property
    def display_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def migrate(self) -> None:
        """Upgrade the database to the newest revision (once per process; again after a failure)."""
        with self._migrate_lock:
            if self._migrated:
                return
            try:
                database.upgrade(self.engine, self.schema)
            except (OperationalError, DBAPIError) as exc:
                raise self._unavailable(exc) from exc
            self._migrated = True

    def revision(self) -> str | None:
        return database.current_revision(self.engine)

    def ping(self) -> bool:
        """Whether the database answers a trivial query."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            return False
        return True

    def _unavailable(self, exc: Exception) -> StoreUnavailableError:
        log.error("the store at %s is not usable: %s", self.display_url, exc)
        return StoreUnavailableError()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        self.migrate()
        try:
            with self.engine.connect() as connection:
                yield connection
        except (OperationalError, DBAPIError) as exc:
            raise self._unavailable(exc) from exc

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        self.migrate()
        try:
            with self.engine.connect().execution_options(**database.WRITE) as connection, connection.begin():
                database.lock_for_write(connection)
                yield connection
        except (OperationalError, DBAPIError) as exc:
            raise self._unavailable(exc) from exc

    def close(self) -> None:
        self.engine.dispose()

    # -- recording ---------------------------------------------------------------------------

    def record_items(
        self, records: Sequence[Mapping[str, Any]], *, origin: str, recorded_by: str | None = None
    ) -> list[dict[str, Any]]:
        """Add or update items, in one transaction; one result per record, in order.

        Each result has ``status`` (``added``, ``updated``, ``unchanged`` or
        ``rejected``), ``id`` and ``change_id`` of the item, or ``reason``.
        Values a record leaves out keep what the item had.
        """
        results: list[dict[str, Any]] = [{} for _ in records]
        cleaned: dict[int, dict[str, Any]] = {}
        for index, record in enumerate(records):
            try:
                cleaned[index] = clean_item(record)
            except RejectedItem as exc:
                results[index] = {"status": "rejected", "id": None, "change_id": None, "reason": str(exc)}
        if not cleaned:
            return results
        now = _now()
        pending = list(cleaned.items())
        with self._write() as connection:
            while pending:
                # The same content twice in one call: the second is applied after the first.
                batch: list[tuple[int, dict[str, Any]]] = []
                later: list[tuple[int, dict[str, Any]]] = []
                seen: set[str] = set()
                for index, values in pending:
                    (later if values["content_hash"] in seen else batch).append((index, values))
                    seen.add(values["content_hash"])
                self._record_batch(connection, batch, results, origin=origin, who=recorded_by, now=now)
                pending = later
        return results

    def _record_batch(
        self, connection: Connection, batch: list[tuple[int, dict[str, Any]]], results: list[dict[str, Any]],
        *, origin: str, who: str | None, now: dt.datetime,
    ) -> None:
        """Items of distinct content: inserts, updates and their changes in a few executemany statements."""
        hashes = [values["content_hash"] for _, values in batch]
        known: dict[str, dict[str, Any]] = {}
        for start in range(0, len(hashes), 500):
            query = select(items).where(items.c.content_hash.in_(hashes[start:start + 500]))
            known.update({row["content_hash"]: dict(row) for row in connection.execute(query).mappings()})
        added: list[tuple[int, dict[str, Any]]] = []
        updated: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
        for index, values in batch:
            current = known.get(values["content_hash"])
            if current is None:
                row = {name: values.get(name) for name in SNAPSHOT_FIELDS}
                row.update(content_hash=values["content_hash"], recorded_by=who, recorded_at=now, updated_at=now,
                           origin=origin)
                added.append((index, row))
                continue
            changed = {
                name: value for name, value in values.items()
                if name not in _NOT_COMPARED and current.get(name) != value
            }
            if not current.get("external_id") and values.get("external_id"):
                changed["external_id"] = values["external_id"]
            if changed:
                updated.append((index, current, {**current, **changed}))
            else:
                results[index] = {"status": "unchanged", "id": current["id"],
                                  "change_id": current["last_change_id"], "reason": None}
        if added:
            ids = connection.execute(
                insert(items).returning(items.c.id, sort_by_parameter_order=True), [row for _, row in added]
            ).scalars().all()
            for (_, row), item_id in zip(added, ids, strict=True):
                row["id"] = item_id
        changes = [
            {"item_id": row["id"], "action": "insert", "before": None, "after": _snapshot(row)} for _, row in added
        ] + [
            {"item_id": current["id"], "action": "update", "before": _snapshot(current), "after": _snapshot(after)}
            for _, current, after in updated
        ]
        if not changes:
            return
        for change in changes:
            change.update(changed_by=who, changed_at=now, origin=origin)
        change_ids = connection.execute(
            insert(item_changes).returning(item_changes.c.id, sort_by_parameter_order=True), changes
        ).scalars().all()
        added_changes, updated_changes = change_ids[:len(added)], change_ids[len(added):]
        if added:
            connection.execute(
                update(items).where(items.c.id == bindparam("b_id")).values(last_change_id=bindparam("b_change")),
                [{"b_id": row["id"], "b_change": change_id} for (_, row), change_id in zip(added, added_changes,
                                                                                          strict=True)],
            )
            for (index, row), change_id in zip(added, added_changes, strict=True):
                results[index] = {"status": "added", "id": row["id"], "change_id": change_id, "reason": None}
        if updated:
            mutable = [name for name in SNAPSHOT_FIELDS if name not in ("title", "text")]
            connection.execute(
                update(items).where(items.c.id == bindparam("b_id")).values(
                    {name: bindparam(f"b_{name}") for name in [*mutable, "updated_at", "last_change_id"]}
                ),
                [
                    {"b_id": current["id"], **{f"b_{name}": after[name] for name in mutable},
                     "b_updated_at": now, "b_last_change_id": change_id}
                    for (_, current, after), change_id in zip(updated, updated_changes, strict=True)
                ],
            )
            for (index, current, _), change_id in zip(updated, updated_changes, strict=True):
                results[index] = {"status": "updated", "id": current["id"], "change_id": change_id, "reason": None}

    @staticmethod
    def _change(
        connection: Connection, item_id: int, action: str, before: Mapping[Any, Any] | None,
        after: Mapping[Any, Any], who: str | None, origin: str, when: dt.datetime,
    ) -> int:
        change_id = _new_id(connection.execute(
            insert(item_changes).values(
                item_id=item_id, action=action, before=None if before is None else _snapshot(before),
                after=_snapshot(after), changed_by=who, changed_at=when, origin=origin,
            )
        ))
        if action == "insert":
            connection.execute(update(items).where(items.c.id == item_id).values(last_change_id=change_id))
        return change_id

    def correct(
        self,
        item_id: int,
        *,
        topics: Sequence[str],
        kind: str,
        predicted_topics: Sequence[str] | None = None,
        predicted_kind: str | None = None,
        probabilities: Mapping[str, float] | None = None,
        model_version: str | None = None,
        corrected_by: str | None = None,
        origin: str = "api",
    ) -> dict[str, Any]:
        """Set an item's topics and kind, keeping the prediction they correct; returns the correction.

        Raises ``RejectedItem`` for unknown labels and ``KeyError`` for an unknown item.
        """
        clean_topics = parse_topics(list(topics))
        clean_kind = parse_kind(kind)
        if clean_topics is None or clean_kind is None:
            raise RejectedItem("a correction needs topics (a list, empty for none) and a kind")
        now = _now()
        with self._write() as connection:
            current = connection.execute(select(items).where(items.c.id == item_id)).mappings().first()
            if current is None:
                raise KeyError(item_id)
            after = {**current, "topics": clean_topics, "kind": clean_kind}
            change_id = self._change(connection, item_id, "correction", current, after, corrected_by, origin, now)
            connection.execute(
                update(items).where(items.c.id == item_id).values(
                    topics=clean_topics, kind=clean_kind, updated_at=now, last_change_id=change_id
                )
            )
            row = {
                "item_id": item_id, "change_id": change_id, "topics": clean_topics, "kind": clean_kind,
                "predicted_topics": None if predicted_topics is None else list(predicted_topics),
                "predicted_kind": predicted_kind,
                "probabilities": None if probabilities is None else dict(probabilities),
                "model_version": model_version, "corrected_by": corrected_by, "corrected_at": now,
            }
            row["id"] = _new_id(connection.execute(insert(corrections).values(**row)))
        return row

    # -- reading -----------------------------------------------------------------------------

    def get_item(self, item_id: int) -> dict[str, Any] | None:
        with self._read() as connection:
            row = connection.execute(select(items).where(items.c.id == item_id)).mappings().first()
        return None if row is None else _item_out(row)

    def find_item(self, content_hash: str) -> dict[str, Any] | None:
        with self._read() as connection:
            row = connection.execute(select(items).where(items.c.content_hash == content_hash)).mappings().first()
        return None if row is None else _item_out(row)

    def list_items(
        self,
        *,
        adopted: bool | None = None,
        level: str | None = None,
        topic: str | None = None,
        kind: str | None = None,
        unit: str | None = None,
        since: dt.datetime | None = None,
        labelled: bool | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Items matching every filter given, newest change first, and how many match in all.

        ``adopted`` is true for items adopted at some level (county, city,
        province); ``since`` compares with the time of the item's last change.
        """
        conditions: list[ColumnElement[bool]] = []
        if adopted is True:
            conditions.append(items.c.adopted_level.in_(("county", "city", "province")))
        elif adopted is False:
            conditions.append(or_(items.c.adopted_level.is_(None), items.c.adopted_level == "none"))
        if level is not None:
            conditions.append(items.c.adopted_level == level)
        if kind is not None:
            conditions.append(items.c.kind == kind)
        if unit is not None:
            conditions.append(items.c.unit == unit)
        if since is not None:
            conditions.append(items.c.updated_at >= since)
        if labelled is True:
            conditions.append(and_(items.c.topics.is_not(None), items.c.kind.is_not(None)))
        elif labelled is False:
            conditions.append(or_(items.c.topics.is_(None), items.c.kind.is_(None)))
        where = and_(*conditions) if conditions else None
        query = select(items).order_by(items.c.last_change_id.desc(), items.c.id.desc())
        counting = select(func.count()).select_from(items)
        if where is not None:
            query, counting = query.where(where), counting.where(where)
        with self._read() as connection:
            if topic is None:
                total = int(connection.execute(counting).scalar_one())
                rows = [_item_out(r) for r in connection.execute(query.limit(limit).offset(offset)).mappings()]
                return rows, total
            # JSON containment differs per database; topics are few, so filter them here.
            matching = [_item_out(r) for r in connection.execute(query).mappings() if topic in (r["topics"] or [])]
        return matching[offset:offset + limit], len(matching)

    def history(self, item_id: int) -> list[dict[str, Any]]:
        """The item's changes, oldest first."""
        query = select(item_changes).where(item_changes.c.item_id == item_id).order_by(item_changes.c.id)
        with self._read() as connection:
            rows = [dict(row) for row in connection.execute(query).mappings()]
        for row in rows:
            row["changed_at"] = _utc(row["changed_at"])
        return rows

    def corrections_of(self, item_id: int) -> list[dict[str, Any]]:
        query = select(corrections).where(corrections.c.item_id == item_id).order_by(corrections.c.id)
        with self._read() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def count(self) -> int:
        with self._read() as connection:
            return int(connection.execute(select(func.count()).select_from(items)).scalar_one())

    def training_items(self, after_change: int | None = None, up_to_change: int | None = None) -> list[dict[str, Any]]:
        """Labelled items (topics and kind set) whose latest change id is in ``(after_change, up_to_change]``.

        Each is a dict with ``id, content_hash, title, text, topics, kind,
        unit, adopted_level, recorded_at, change_id``, in change order.
        """
        query = (
            select(items)
            .where(items.c.topics.is_not(None), items.c.kind.is_not(None))
            .order_by(items.c.last_change_id)
        )
        if after_change is not None:
            query = query.where(items.c.last_change_id > after_change)
        if up_to_change is not None:
            query = query.where(items.c.last_change_id <= up_to_change)
        with self._read() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            {
                "id": row["id"], "content_hash": row["content_hash"], "title": row["title"] or "",
                "text": row["text"], "topics": list(row["topics"]), "kind": row["kind"], "unit": row["unit"],
                "adopted_level": row["adopted_level"], "recorded_at": _utc(row["recorded_at"]),
                "change_id": row["last_change_id"],
            }
            for row in rows
        ]

    def last_change_id(self) -> int:
        """The newest change id of the store; 0 when nothing was recorded."""
        with self._read() as connection:
            return int(connection.execute(select(func.max(item_changes.c.id))).scalar() or 0)

    # -- recently scored items (the review queue) --------------------------------------------

    def record_prediction(
        self,
        *,
        content_hash: str,
        title: str | None,
        text: str,
        probabilities: Mapping[str, float],
        analysis_probability: float | None,
        model_version: str | None,
    ) -> int:
        """Keep a scored item for the review queue; the same content scored again replaces the older row.

        Only the newest ``keep_predictions`` rows are kept.
        """
        with self._write() as connection:
            connection.execute(delete(predictions).where(predictions.c.content_hash == content_hash))
            new_id = _new_id(connection.execute(
                insert(predictions).values(
                    content_hash=content_hash, title=title, text=text, probabilities=dict(probabilities),
                    analysis_probability=analysis_probability, model_version=model_version, scored_at=_now(),
                )
            ))
            connection.execute(delete(predictions).where(predictions.c.id <= new_id - self.keep_predictions))
        return new_id

    def recent_predictions(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Scored items not yet labelled in the store, newest first."""
        labelled = select(items.c.content_hash).where(items.c.topics.is_not(None), items.c.kind.is_not(None))
        query = (
            select(predictions)
            .where(predictions.c.content_hash.not_in(labelled))
            .order_by(predictions.c.id.desc())
            .limit(limit)
        )
        with self._read() as connection:
            rows = [dict(row) for row in connection.execute(query).mappings()]
        for row in rows:
            row["scored_at"] = _utc(row["scored_at"])
        return rows

    def count_predictions(self) -> int:
        with self._read() as connection:
            return int(connection.execute(select(func.count()).select_from(predictions)).scalar_one())
