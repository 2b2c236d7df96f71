"""The store on SQLite and on the real PostgreSQL server (schema of its own, dropped afterwards)."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from service.store import Store

# The PostgreSQL server of the development and CI machines; another one via XINXI_TEST_DATABASE_URL.
POSTGRES_URL = os.environ.get("XINXI_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'sub' / 'xinxi.db'}")
    store.create_tables()
    yield store
    store.close()


@pytest.fixture
def postgres_store() -> Iterator[Store]:
    schema = f"xinxi_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is needed for this test and not usable: {exc}")
    store = Store(POSTGRES_URL, schema=schema, table_prefix="t_")
    try:
        store.create_tables()
        yield store
    finally:
        store.close()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Store:
    return request.getfixturevalue(f"{request.param}_store")


def test_save_get_replace_list_and_count(store: Store) -> None:
    assert store.ping() is True
    assert store.count() == 0
    first = store.save_item(
        {
            "id": "seed-0001",
            "title": "某镇召开招商推介会",
            "text": "3月5日，某镇……🚒",
            "topics": ["investment", "rural"],
            "kind": "news",
            "unit": "某某镇",
            "date": "2024-05-12",
            "source": "adopted",
        }
    )
    assert first["topics"] == ["investment", "rural"]
    assert first["date"] == dt.date(2024, 5, 12)
    assert first["text"].endswith("🚒")
    assert first["created_at"] is not None
    store.save_item({"id": "seed-0002", "text": "无主题的条目", "topics": []})
    replaced = store.save_item({"id": "seed-0001", "text": "改正后的正文", "topics": ["industry"], "kind": "analysis"})
    assert replaced["text"] == "改正后的正文" and replaced["topics"] == ["industry"] and replaced["unit"] is None
    assert store.count() == 2
    assert store.get_item("missing") is None
    assert {row["id"] for row in store.list_items()} == {"seed-0001", "seed-0002"}
    assert len(store.list_items(limit=1)) == 1


def test_create_tables_is_idempotent(store: Store) -> None:
    store.save_item({"id": "x", "text": "正文", "topics": []})
    store.create_tables()
    assert store.count() == 1


def test_postgres_tables_live_in_their_own_schema(postgres_store: Store) -> None:
    schema = postgres_store.metadata.schema
    assert inspect(postgres_store.engine).get_table_names(schema=schema) == ["t_adopted_items"]


def test_sqlite_file_is_created_in_the_data_dir(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'data' / 'xinxi.db'}")
    store.create_tables()
    store.close()
    assert (tmp_path / "data" / "xinxi.db").is_file()


def test_ping_is_false_when_the_database_is_unreachable() -> None:
    store = Store("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert store.ping() is False
    store.close()


@pytest.mark.postgres
def test_the_service_runs_on_postgresql(private_data_dir: Path, tmp_path: Path) -> None:
    """The whole app over a database of its own on the real server: ready, tables made, then dropped."""
    from fastapi.testclient import TestClient
    from sqlalchemy.engine import make_url

    from service.app import create_app
    from tests.service.conftest import SAMPLE_ITEM, make_settings, started

    name = f"xinxi_app_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is needed for this test and not usable: {exc}")
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        with TestClient(create_app(make_settings(private_data_dir, tmp_path, database_url=url))) as client:
            started(client)
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).status_code == 200
        tables = inspect(create_engine(url)).get_table_names()
        assert tables, "the service made its tables in PostgreSQL"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
