"""The store on SQLite and on the real PostgreSQL server (a schema of its own, dropped afterwards)."""

from __future__ import annotations

import datetime as dt
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import JSON, Column, Date, DateTime, MetaData, String, Table, Text, create_engine, inspect, text

from model.text import content_hash
from service.errors import StoreUnavailableError
from service.store import RejectedItem, Store
from service.store.database import head_revision
from service.store.records import parse_level
from service.store.schema import metadata

POSTGRES_URL = os.environ.get("XINXI_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ITEM = {"title": "某镇召开招商推介会", "text": "3月5日，某镇举办招商推介会，签约项目3个🚒", "topics": ["investment"],
        "kind": "news", "unit": "某某镇", "date": "2024-05-12", "adopted_level": "县级"}


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'sub' / 'xinxi.db'}", keep_predictions=5)
    yield store
    store.close()


def _new_schema() -> str:
    return f"xinxi_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    """A schema of this test alone in the shared ``test`` database, dropped afterwards."""
    schema = _new_schema()
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is needed for this test and not usable: {exc}")
    try:
        yield schema
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_store(postgres_schema: str) -> Iterator[Store]:
    store = Store(POSTGRES_URL, schema=postgres_schema, keep_predictions=5)
    yield store
    store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Store:
    found: Store = request.getfixturevalue(f"{request.param}_store")
    return found


def _clone(store: Store) -> Store:
    """Another connection pool on the same database (as another process would have)."""
    return Store(store.url, schema=store.schema, keep_predictions=store.keep_predictions)


def test_same_text_twice_is_one_item_updated_with_its_history(store: Store) -> None:
    first = store.record_items([ITEM], origin="api", recorded_by="王编辑")
    assert first[0]["status"] == "added"
    item_id = first[0]["id"]
    # Same content with other white space and punctuation, a new unit: the same item, updated.
    again = {"title": ITEM["title"], "text": " 3月5日 某镇举办招商推介会，签约项目3个🚒 ", "unit": "某某镇政府"}
    second = store.record_items([again], origin="page", recorded_by="李编辑")
    assert second[0] == {"status": "updated", "id": item_id, "change_id": first[0]["change_id"] + 1, "reason": None}
    assert store.record_items([again], origin="page")[0]["status"] == "unchanged"
    assert store.count() == 1
    stored = store.get_item(item_id)
    assert stored is not None
    assert stored["text"] == ITEM["text"] and stored["unit"] == "某某镇政府"
    assert stored["topics"] == ["investment"] and stored["kind"] == "news"  # not given again: kept
    assert stored["adopted_level"] == "county" and stored["date"] == dt.date(2024, 5, 12)
    assert stored["content_hash"] == content_hash(ITEM["title"], ITEM["text"])
    assert stored["recorded_by"] == "王编辑" and stored["origin"] == "api"
    assert stored["last_change_id"] == second[0]["change_id"]
    history = store.history(item_id)
    assert [change["action"] for change in history] == ["insert", "update"]
    assert history[1]["before"]["unit"] == "某某镇" and history[1]["after"]["unit"] == "某某镇政府"
    assert history[1]["changed_by"] == "李编辑" and history[1]["origin"] == "page"
    assert history[1]["changed_at"].tzinfo is not None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"text": "   "}, "text is empty"),
        ({"topics": ["industry", "sports"]}, "unknown topic 'sports'"),
        ({"kind": "opinion"}, "unknown kind 'opinion'"),
        ({"adopted_level": "maybe"}, "adopted level 'maybe' is not understood"),
        ({"date": "last week"}, "date 'last week' is not a date"),
    ],
)
def test_bad_items_are_rejected_with_the_reason_and_the_rest_stored(
    sqlite_store: Store, change: dict[str, object], reason: str
) -> None:
    results = sqlite_store.record_items([{**ITEM, **change}, {"text": "另一条正文"}], origin="api")
    assert results[0]["status"] == "rejected" and reason in results[0]["reason"]
    assert results[1]["status"] == "added"
    assert sqlite_store.count() == 1


def test_adopted_levels_in_english_chinese_or_free_text() -> None:
    assert parse_level("city") == ("city", None)
    assert parse_level("省级") == ("province", None)
    assert parse_level("无") == ("none", None)
    assert parse_level("省委办公厅《每日要情》第12期") == ("province", "省委办公厅《每日要情》第12期")
    assert parse_level("市委办《信息快报》") == ("city", "市委办《信息快报》")
    with pytest.raises(RejectedItem, match="not understood"):
        parse_level("头版")
    with pytest.raises(RejectedItem, match="no level"):
        parse_level(True)


def test_a_correction_keeps_the_prediction_it_corrects(store: Store) -> None:
    item_id = store.record_items([{"text": "某县发生山洪，转移群众200人"}], origin="page")[0]["id"]
    assert store.training_items() == []  # not labelled yet
    correction = store.correct(
        item_id, topics=["突发事件"], kind="动态类", predicted_topics=["rural"], predicted_kind="analysis",
        probabilities={"rural": 0.61, "emergency": 0.42, "analysis": 0.7}, model_version="v1", corrected_by="赵",
    )
    assert correction["topics"] == ["emergency"] and correction["kind"] == "news"
    [stored] = store.corrections_of(item_id)
    assert stored["predicted_topics"] == ["rural"] and stored["probabilities"]["emergency"] == 0.42
    assert stored["model_version"] == "v1" and stored["change_id"] == correction["change_id"]
    assert [c["action"] for c in store.history(item_id)] == ["insert", "correction"]
    with pytest.raises(RejectedItem, match="unknown topic"):
        store.correct(item_id, topics=["sports"], kind="news")
    with pytest.raises(KeyError):
        store.correct(item_id + 100, topics=[], kind="news")


def test_training_items_by_change_range(store: Store) -> None:
    assert store.last_change_id() == 0
    store.record_items([{"text": "未标注的条目"}], origin="api")
    labelled = store.record_items([ITEM, {**ITEM, "text": "第二条", "topics": []}], origin="api")
    middle = store.last_change_id()
    store.record_items([{**ITEM, "text": "第三条", "kind": "analysis"}], origin="import")
    # Labelling the first item later moves it after `middle`.
    first = store.list_items(labelled=False)[0][0]
    store.correct(first["id"], topics=["rural"], kind="news")
    everything = store.training_items()
    assert [row["text"] for row in everything] == [ITEM["text"], "第二条", "第三条", "未标注的条目"]
    assert set(everything[0]) == {"id", "content_hash", "title", "text", "topics", "kind", "unit",
                                  "adopted_level", "recorded_at", "change_id"}
    assert everything[1]["topics"] == []
    assert [row["change_id"] for row in store.training_items(up_to_change=middle)] == [
        result["change_id"] for result in labelled
    ]
    assert [row["text"] for row in store.training_items(after_change=middle)] == ["第三条", "未标注的条目"]
    assert store.training_items(after_change=store.last_change_id()) == []


def test_list_items_filters_and_pages(store: Store) -> None:
    store.record_items(
        [
            {**ITEM, "adopted_level": "city"},
            {"text": "农村人居环境整治", "topics": ["rural"], "kind": "analysis", "unit": "农业局", "adopted_level": "无"},
            {"text": "未标注"},
        ],
        origin="api",
    )
    assert store.list_items(adopted=True)[1] == 1
    assert store.list_items(adopted=False)[1] == 2
    assert [r["text"] for r in store.list_items(topic="rural")[0]] == ["农村人居环境整治"]
    assert store.list_items(kind="news")[1] == 1 and store.list_items(unit="农业局")[1] == 1
    assert store.list_items(labelled=False)[0][0]["text"] == "未标注"
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert store.list_items(since=future)[1] == 0
    assert store.list_items(since=future - dt.timedelta(days=1))[1] == 3
    page, total = store.list_items(limit=2, offset=2)
    assert total == 3 and len(page) == 1


def test_scored_items_are_bounded_and_leave_once_labelled(store: Store) -> None:
    for number in range(8):  # keep_predictions is 5
        store.record_prediction(content_hash=f"h{number}", title=None, text=f"正文{number}",
                                probabilities={"rural": 0.5}, analysis_probability=0.5, model_version="v1")
    store.record_prediction(content_hash="h7", title=None, text="正文7", probabilities={"rural": 0.4},
                            analysis_probability=0.4, model_version="v2")
    recent = store.recent_predictions()
    assert store.count_predictions() <= 5
    assert [row["content_hash"] for row in recent][:4] == ["h7", "h6", "h5", "h4"]
    assert recent[0]["model_version"] == "v2"
    labelled_hash = content_hash(None, "正文6")
    store.record_prediction(content_hash=labelled_hash, title=None, text="正文6", probabilities={},
                            analysis_probability=None, model_version="v2")
    store.record_items([{"text": "正文6", "topics": [], "kind": "news"}], origin="page")
    assert labelled_hash not in {row["content_hash"] for row in store.recent_predictions()}


def test_the_tables_are_exactly_what_the_migrations_make(store: Store) -> None:
    store.migrate()
    assert store.revision() == head_revision()
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def _legacy_database(engine_url: str, schema: str | None = None) -> None:
    """The database the service made before migrations: adopted_items by create_all, with rows."""
    old = MetaData()
    table = Table(
        "adopted_items", old,
        Column("id", String(200), primary_key=True), Column("title", Text), Column("text", Text, nullable=False),
        Column("topics", JSON, nullable=False), Column("kind", String(32)), Column("unit", String(200)),
        Column("date", Date), Column("source", String(200)),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    args = {"connect_args": {"options": f"-csearch_path={schema}"}} if schema else {}
    engine = create_engine(engine_url, **args)  # type: ignore[arg-type]
    old.create_all(engine)
    when = dt.datetime(2024, 3, 1, 8, tzinfo=dt.UTC)
    with engine.begin() as connection:
        connection.execute(table.insert(), [
            {"id": "a-1", "title": "标题", "text": "老的条目一", "topics": ["rural"], "kind": "news",
             "unit": "农业局", "date": dt.date(2024, 3, 1), "source": "adopted", "created_at": when},
            {"id": "a-2", "title": None, "text": "老的条目二", "topics": [], "kind": None,
             "unit": None, "date": None, "source": None, "created_at": when + dt.timedelta(minutes=1)},
            # The same content as a-1 again: one item, updated.
            {"id": "a-3", "title": "标题", "text": "老的条目一。", "topics": ["industry"], "kind": "news",
             "unit": "农业局", "date": None, "source": None, "created_at": when + dt.timedelta(minutes=2)},
        ])
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_database_from_before_migrations_is_upgraded_in_place(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url, schema = f"sqlite:///{tmp_path / 'old.db'}", None
    else:
        url, schema = POSTGRES_URL, request.getfixturevalue("postgres_schema")
    _legacy_database(url, schema)
    store = Store(url, schema=schema)
    try:
        assert store.revision() is None
        store.migrate()
        assert store.revision() == head_revision()
        assert "adopted_items" not in inspect(store.engine).get_table_names()
        rows, total = store.list_items()
        assert total == 2
        by_external = {row["external_id"]: row for row in rows}
        assert by_external["a-1"]["topics"] == ["industry"] and by_external["a-1"]["unit"] == "农业局"
        assert by_external["a-1"]["content_hash"] == content_hash("标题", "老的条目一")
        assert by_external["a-2"]["topics"] == [] and by_external["a-2"]["kind"] is None
        assert [c["action"] for c in store.history(by_external["a-1"]["id"])] == ["migrate", "migrate"]
        assert store.last_change_id() == 3
        assert [row["text"] for row in store.training_items()] == ["老的条目一"]
        # Upgrading again changes nothing.
        _clone(store).migrate()
        assert store.list_items()[1] == 2
    finally:
        store.close()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(sqlite_store: Store) -> None:
    sqlite_store.migrate()
    with sqlite_store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_twenty_concurrent_writers_all_land(store: Store) -> None:
    """20 clients, each with its own connection pool, record 10 items each at once: all 200 are stored."""
    store.migrate()
    clients = [_clone(store) for _ in range(20)]
    failures: list[BaseException] = []
    start = threading.Barrier(20)

    def write(number: int, client: Store) -> None:
        try:
            start.wait()
            for item in range(10):
                result = client.record_items([{"text": f"客户{number}的第{item}条信息"}], origin="api")
                assert result[0]["status"] == "added"
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(n, c)) for n, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for client in clients:
        client.close()
    assert failures == []
    assert store.count() == 200
    # Change ids are given in commit order, without gaps or repeats.
    assert sorted(row["last_change_id"] for row in store.list_items(limit=500)[0]) == list(range(1, 201))


def test_an_unreachable_database_raises_store_unavailable() -> None:
    store = Store("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert store.ping() is False
    with pytest.raises(StoreUnavailableError):
        store.record_items([ITEM], origin="api")
    with pytest.raises(StoreUnavailableError):
        store.list_items()
    store.close()
