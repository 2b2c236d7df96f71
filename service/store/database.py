"""Connecting to the store's database and bringing its tables to the newest migration.

SQLite (the default, a file in the data directory) runs in WAL mode with a
busy timeout, set on every connection, so readers never wait for a writer
and concurrent writers queue instead of failing. Write transactions start
with ``BEGIN IMMEDIATE``: a deferred transaction that reads and then writes
can fail at once with "database is locked" whatever the timeout. On
PostgreSQL, ``schema`` (a test's or a deployment's own) is put first on the
search path, so tables and Alembic's version table live there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
FIRST_REVISION = "0001"
LEGACY_TABLE = "adopted_items"
WRITE = {"xinxi_write": True}
"""Execution options of a write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Any constant: every writer takes this transaction lock, so change ids are given in commit order.
_WRITE_LOCK = 7_316_201


def make_engine(url: str, *, schema: str | None = None, busy_seconds: float = 30.0) -> Engine:
    """An engine for ``url``: SQLite with WAL and a busy timeout, or PostgreSQL (in ``schema`` if given)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if schema is not None:
            raise ValueError("a schema applies to PostgreSQL only; SQLite keeps one store per file")
        if parsed.database and parsed.database != ":memory:":
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError:
                pass  # connecting fails then, and is reported as the store being unavailable
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_seconds})
        _sqlite_events(engine, busy_seconds)
        return engine
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        connect_args["connect_timeout"] = 3
        if schema is not None:
            if not _SCHEMA_NAME.match(schema):
                raise ValueError(f"schema {schema!r} is not a plain lower-case name")
            connect_args["options"] = f"-csearch_path={schema}"
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args=connect_args)


def _sqlite_events(engine: Engine, busy_seconds: float) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own transaction handling is off; the "begin" event below starts them.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
        # FULL: a commit is on disk when it returns, so an acknowledged item survives a power cut too.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("xinxi_write")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def lock_for_write(connection: Any) -> None:
    """Serialise writers on PostgreSQL (SQLite's ``BEGIN IMMEDIATE`` already does)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _WRITE_LOCK})


def upgrade(engine: Engine, schema: str | None = None) -> None:
    """Bring the database to the newest revision; a database made before migrations is adopted first.

    Safe to run from several processes at once: the whole upgrade is one
    transaction under the write lock.
    """
    if schema is not None and engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect().execution_options(**WRITE) as connection, connection.begin():
        lock_for_write(connection)
        tables = set(inspect(connection).get_table_names())
        config.attributes["connection"] = connection
        if LEGACY_TABLE in tables and "alembic_version" not in tables:
            # Made by create_all before migrations existed: that is revision 0001's schema.
            command.stamp(config, FIRST_REVISION)
        command.upgrade(config, "head")


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None before the first upgrade)."""
    with engine.connect() as connection:
        if "alembic_version" not in inspect(connection).get_table_names():
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head
