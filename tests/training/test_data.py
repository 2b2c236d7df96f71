from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from training import DataFileError, load_items

ROWS = [
    {"编号": "a1", "标题": "县里召开招商推介会", "正文": "县委召开招商推介会，签约项目5个。", "主题": "招商引资", "类型": "动态类"},
    {"编号": "a2", "标题": "山洪续报", "正文": "受强降雨影响，某镇发生山洪，转移群众300人。", "主题": "突发事件、农村发展", "类型": "动态"},
    {"编号": "a3", "标题": "党建工作综述", "正文": "今年以来，县直机关党建工作一是……二是……", "主题": "", "类型": "综合类"},
]


def test_csv_with_chinese_headers(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    items, problems = load_items(path, require_labels=True)
    assert problems == []
    assert [i.id for i in items] == ["a1", "a2", "a3"]
    assert items[0].topics == ["investment"] and items[0].kind == "news"
    assert items[1].topics == ["emergency", "rural"]
    assert items[2].topics == [] and items[2].kind == "analysis"


def test_gbk_csv_is_read(tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes(pd.DataFrame(ROWS).to_csv(index=False).encode("gbk"))
    items, _ = load_items(path)
    assert items[0].title == "县里召开招商推介会"


def test_undecodable_bytes_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "\xff\xfe\xff\x80\x80"}\n')
    with pytest.raises(DataFileError, match=r"bad.jsonl: row 2: bytes that are neither UTF-8 nor GBK"):
        load_items(path)


def test_xlsx_and_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame(ROWS)
    frame.to_excel(tmp_path / "items.xlsx", index=False)
    frame.to_parquet(tmp_path / "items.parquet")
    for name in ("items.xlsx", "items.parquet"):
        items, _ = load_items(tmp_path / name, require_labels=True)
        assert [i.topics for i in items] == [["investment"], ["emergency", "rural"], []]


def test_broken_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(DataFileError, match="broken.xlsx: cannot read the file"):
        load_items(tmp_path / "broken.xlsx")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1garbage")
    with pytest.raises(DataFileError, match="broken.parquet: cannot read the file"):
        load_items(tmp_path / "broken.parquet")
    with pytest.raises(DataFileError, match="unsupported file type .doc"):
        load_items(tmp_path / "items.doc")
    with pytest.raises(DataFileError, match="file not found"):
        load_items(tmp_path / "missing.csv")


def test_invalid_rows_are_reported_by_row_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    lines = [
        json.dumps({"id": "1", "text": "正常的一条信息", "topics": ["rural"], "kind": "news"}, ensure_ascii=False),
        "{not json",
        json.dumps({"id": "3", "text": "", "topics": []}),
        json.dumps({"id": "4", "text": "信息", "kind": "新闻"}, ensure_ascii=False),
        json.dumps({"id": "1", "text": "重复编号", "topics": []}, ensure_ascii=False),
        json.dumps({"id": "6", "text": 42}),
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataFileError, match=r"row 2: not valid JSON"):
        load_items(path)
    path.write_text("\n".join(line for i, line in enumerate(lines) if i != 1), encoding="utf-8")
    with pytest.raises(DataFileError) as caught:
        load_items(path)
    reasons = dict(caught.value.problems)
    assert reasons[2] == "text is empty"
    assert "is not news/动态类 or analysis/综合类" in reasons[3]
    assert "id 1 repeats row 1" in reasons[4]
    assert "text must be text, got int" in reasons[5]
    items, skipped = load_items(path, skip_invalid=True)
    assert [i.id for i in items] == ["1"] and len(skipped) == 4


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = tmp_path / "no-text.csv"
    pd.DataFrame([{"标题": "只有标题"}]).to_csv(path, index=False)
    with pytest.raises(DataFileError, match="no text column: expected one of text"):
        load_items(path)
    path = tmp_path / "no-topics.csv"
    pd.DataFrame([{"正文": "只有正文"}]).to_csv(path, index=False)
    with pytest.raises(DataFileError, match="no topics column"):
        load_items(path, require_labels=True)


def test_text_tab_label_layout_with_label_names(tmp_path: Path) -> None:
    path = tmp_path / "news.txt"
    path.write_text("股市今日大涨\t0\n球队赢得冠军\t1\n", encoding="utf-8")
    items, _ = load_items(path, label_names=["财经", "体育"])
    assert [i.topics for i in items] == [["财经"], ["体育"]]
    with pytest.raises(DataFileError, match="label '7' is not in the label-names file"):
        path.write_text("某新闻\t7\n", encoding="utf-8")
        load_items(path, label_names=["财经", "体育"])


def test_missing_topics_are_a_row_error_when_labels_are_required(tmp_path: Path) -> None:
    path = tmp_path / "partial.jsonl"
    path.write_text(
        '{"id": "1", "text": "有标签", "topics": []}\n{"id": "2", "text": "无标签"}\n{"id": "3", "text": "空", "topics": null}\n',
        encoding="utf-8",
    )
    with pytest.raises(DataFileError) as caught:
        load_items(path, require_labels=True)
    assert [row for row, _ in caught.value.problems] == [2, 3]
    assert "topics is missing" in caught.value.problems[0][1]
    assert [i.topics for i in load_items(path)[0]] == [[], None, None]


def test_numeric_ids_and_label_names_with_spaces_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "ids.jsonl"
    path.write_text('{"id": 12345678901234567, "text": "甲", "topics": "science and technology"}\n{"text": "乙", "topics": "财经/股票、体育"}\n', encoding="utf-8")
    items, _ = load_items(path)
    assert items[0].id == "12345678901234567"
    assert items[0].topics == ["science and technology"]
    assert items[1].topics == ["财经/股票", "体育"]
