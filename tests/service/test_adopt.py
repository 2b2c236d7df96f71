"""`xinxi adopt FILE`: a 10,000-row import with 37 broken rows, re-run without duplicates; every file format."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from service.cli import app
from service.settings import get_settings
from service.store import Store

BREAKS = [
    ("正文", "", "text is empty"),
    ("主题", "体育", "unknown topic '体育'"),
    ("类型", "评论", "kind '评论' is not news/动态类 or analysis/综合类"),
    ("采用级别", "看情况", "adopted level '看情况' is not understood"),
    ("日期", "上周", "date '上周' is not a date"),
]
HEADER = ["标题", "正文", "主题", "类型", "单位", "日期", "采用级别"]
TOPICS = ["产业发展", "招商引资", "农村发展", "热点难点", "突发事件", "无"]
LEVELS = ["县级", "市级", "省级", "无", "市委办《信息快报》"]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "data"
    monkeypatch.setenv("XINXI_DATA_DIR", str(root))
    get_settings.cache_clear()
    yield root
    get_settings.cache_clear()


def _row(number: int) -> dict[str, str]:
    return {
        "标题": f"第{number}号信息",
        "正文": f"青溪县第{number}期工作动态：围绕重点任务推进落实，完成项目{number % 97}个。",
        "主题": TOPICS[number % len(TOPICS)],
        "类型": "动态类" if number % 3 else "综合类",
        "单位": f"第{number % 12}局",
        "日期": f"2024-{number % 12 + 1:02d}-{number % 28 + 1:02d}",
        "采用级别": LEVELS[number % len(LEVELS)],
    }


def _store(root: Path) -> Store:
    return Store(f"sqlite:///{root / 'xinxi.db'}")


def test_ten_thousand_rows_with_37_broken_ones(data_dir: Path, tmp_path: Path) -> None:
    rows = [_row(number) for number in range(10_000)]
    broken: dict[int, str] = {}  # file row (header is row 1) -> expected reason
    for position, index in enumerate(range(100, 10_000, 270)):
        column, value, reason = BREAKS[position % len(BREAKS)]
        rows[index][column] = value
        broken[index + 2] = reason
    assert len(broken) == 37
    source = tmp_path / "adopted.csv"
    with source.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, HEADER)
        writer.writeheader()
        writer.writerows(rows)
    # Stored before the import: one item the file holds too (row 2), one it does not.
    before = _store(data_dir)
    kept = before.record_items(
        [{"title": "第0号信息", "text": rows[0]["正文"], "adopted_level": "county"},
         {"text": "导入前已记录的另一条信息", "topics": ["rural"], "kind": "news"}],
        origin="api",
    )
    before.close()

    runner = CliRunner()
    report = tmp_path / "report.csv"
    result = runner.invoke(app, ["adopt", str(source), "--report", str(report), "--recorded-by", "信息科"])
    assert result.exit_code == 1, result.output  # some rows were rejected
    assert "adopted.csv: 10000 rows, 9962 added, 1 updated, 0 unchanged, 37 rejected" in result.stdout
    lines = list(csv.DictReader(report.open(encoding="utf-8-sig")))
    assert len(lines) == 10_000
    rejected = {int(line["row"]): line["reason"] for line in lines if line["status"] == "rejected"}
    assert rejected.keys() == broken.keys()
    for row, reason in broken.items():
        assert reason in rejected[row], (row, rejected[row])
        assert f"rejected row {row}:" in " ".join(result.output.split())

    store = _store(data_dir)
    try:
        assert store.count() == 9963 + 1
        first = store.get_item(kept[0]["id"])
        assert first is not None  # recorded before, then updated by row 2 with the file's labels
        assert first["topics"] == ["industry"] and first["kind"] == "analysis" and first["adopted_level"] == "county"
        assert [c["action"] for c in store.history(first["id"])] == ["insert", "update"]
        other = store.get_item(kept[1]["id"])
        assert other is not None and other["topics"] == ["rural"]
        last_change = store.last_change_id()

        again = runner.invoke(app, ["adopt", str(source)])
        assert again.exit_code == 1
        assert "10000 rows, 0 added, 0 updated, 9963 unchanged, 37 rejected" in again.stdout
        assert store.count() == 9964
        assert store.last_change_id() == last_change  # nothing rewritten
        sample = store.list_items(unit="第5局", limit=1)[0][0]
        assert sample["recorded_by"] == "信息科" and sample["origin"] == "import"
    finally:
        store.close()


def test_every_format_the_train_readers_read(data_dir: Path, tmp_path: Path) -> None:
    frame = pd.DataFrame([_row(number) for number in range(5)])
    frame.loc[3, "正文"] = ""
    paths = {
        "xlsx": tmp_path / "items.xlsx",
        "jsonl": tmp_path / "items.jsonl",
        "parquet": tmp_path / "items.parquet",
    }
    frame.to_excel(paths["xlsx"], index=False)
    frame.to_parquet(paths["parquet"], index=False)
    paths["jsonl"].write_text(
        "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in frame.to_dict(orient="records")),
        encoding="utf-8",
    )
    runner = CliRunner()
    first_row = {"xlsx": 2, "jsonl": 1, "parquet": 1}
    for name, path in paths.items():
        result = runner.invoke(app, ["adopt", str(path)])
        assert result.exit_code == 1, result.output
        assert f"rejected row {3 + first_row[name]}: text is empty" in result.output
    store = _store(data_dir)
    try:
        assert store.count() == 4  # the same four items from each file
        [item] = store.list_items(unit="第1局")[0]
        assert item["topics"] == ["investment"] and item["kind"] == "news" and item["adopted_level"] == "city"
        assert [c["action"] for c in store.history(item["id"])] == ["insert"]
    finally:
        store.close()


def test_a_level_for_rows_that_name_none_and_a_bad_level_option(data_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "plain.csv"
    source.write_text("标题,正文\n一,县里召开防汛会议\n", encoding="utf-8")
    runner = CliRunner()
    bad = runner.invoke(app, ["adopt", str(source), "--level", "sometimes"])
    assert bad.exit_code == 2 and "--level: adopted level 'sometimes' is not understood" in " ".join(bad.output.split())
    good = runner.invoke(app, ["adopt", str(source), "--level", "市级"])
    assert good.exit_code == 0, good.output
    store = _store(data_dir)
    try:
        [item] = store.list_items()[0]
        assert item["adopted_level"] == "city" and item["topics"] is None
    finally:
        store.close()
    missing = runner.invoke(app, ["adopt", str(tmp_path / "nothing.csv")])
    assert missing.exit_code == 2 and "file not found" in missing.output
