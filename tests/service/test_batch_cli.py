"""`xinxi predict --input --output` as the archive tool: formats, encodings, columns, workers, bad input."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from model import Predictor
from service.batch import added_columns
from service.cli import app
from tests.service.archives import HEADER, archive_rows, read_csv, write_csv
from training.data import Item


def run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["predict", *map(str, args)])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def rows(corpus: list[Item]) -> list[list[str]]:
    return archive_rows(corpus)


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]], model_dir: Path) -> Path:
    """The archive in GBK, scored once to CSV with the report: the reference output of these tests."""
    folder = tmp_path_factory.mktemp("scored")
    source = write_csv(folder / "archive.csv", rows, encoding="gbk")
    code, output = run("--model", model_dir, "--input", source, "--output", folder / "out.csv",
                       "--report", folder / "report.html")
    assert code == 0, output
    return folder / "out.csv"


def test_every_row_and_column_is_kept_in_order_and_scored_as_the_predictor_does(
    scored: Path, rows: list[list[str]], predictor: Predictor
) -> None:
    header, out = read_csv(scored)
    added = added_columns(predictor.topic_labels)
    assert header == HEADER + added
    assert [row[: len(HEADER)] for row in out] == rows
    values = [dict(zip(header, row, strict=True)) for row in out]
    assert values[3]["xinxi_error"] == "text is empty (column 正文)" and values[3]["xinxi_topics"] == ""
    expected = predictor.predict([{"id": r[0], "title": r[1], "text": r[2]} for n, r in enumerate(rows) if n != 3])
    got = [v for n, v in enumerate(values) if n != 3]
    for result, row in zip(expected, got, strict=True):
        assert row["xinxi_error"] == ""
        assert row["xinxi_topics"] == ",".join(t.label for t in result.topics if t.selected)
        assert [float(row[f"xinxi_p_{t.label}"]) for t in result.topics] == [t.probability for t in result.topics]
        assert row["xinxi_kind"] == result.kind.label
        assert int(row["xinxi_quality_score"]) == result.quality_score
        assert row["xinxi_kind_terms"] == "、".join(result.kind.terms)


def test_outputs_get_the_usual_permissions(scored: Path) -> None:
    previous = os.umask(0o022)
    os.umask(previous)
    expected = 0o666 & ~previous
    assert stat.S_IMODE(scored.stat().st_mode) == expected
    assert stat.S_IMODE((scored.parent / "report.html").stat().st_mode) == expected
    assert not (scored.parent / "out.csv.resume.json").exists(), "a finished run leaves no resume file"


def test_the_report_shows_topics_kinds_units_months_and_scores(scored: Path) -> None:
    page = (scored.parent / "report.html").read_text(encoding="utf-8")
    for heading in ("质量分分布", "以动态类为主的单位", "各单位的主题与类型", "各月的主题与类型", "未评分的条目"):
        assert heading in page
    assert "白沙镇" in page and "2024-01" in page and "招商引资" in page
    assert "<script" not in page


@pytest.mark.parametrize("suffix", [".xlsx", ".jsonl", ".parquet", ".tsv"])
def test_every_format_holds_the_same_rows_and_numbers(
    scored: Path, model_dir: Path, tmp_path: Path, suffix: str
) -> None:
    header, reference = read_csv(scored)
    output = tmp_path / f"out{suffix}"
    code, text = run("--model", model_dir, "--input", scored.parent / "archive.csv", "--output", output)
    assert code == 0, text
    if suffix == ".xlsx":
        sheet = openpyxl.load_workbook(output, read_only=True).active
        got = [list(row) for row in sheet.iter_rows(values_only=True)]
    elif suffix == ".jsonl":
        records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
        got = [list(records[0])] + [list(r.values()) for r in records]
    elif suffix == ".tsv":
        frame = pd.read_csv(output, sep="\t", dtype=str, keep_default_na=False)
        got = [list(frame.columns)] + frame.values.tolist()
    else:
        frame = pd.read_parquet(output).astype(object)
        got = [list(frame.columns)] + frame.values.tolist()
    assert got[0] == header
    assert [normal(header, row) for row in got[1:]] == [normal(header, row) for row in reference]


def normal(header: list[str], row: list) -> list:
    """Cells as each format gives them back: numbers as numbers, empty as None."""
    out = []
    for column, value in zip(header, row, strict=True):
        if value is None or value == "" or (isinstance(value, float) and value != value):
            out.append(None)
        elif column.startswith("xinxi_p_") or column == "xinxi_quality_score":
            out.append(float(value))
        else:
            out.append(str(value))
    return out


def test_chinese_and_named_columns(model_dir: Path, tmp_path: Path, rows: list[list[str]]) -> None:
    source = write_csv(tmp_path / "a.csv", rows[:6], header=["号", "题", "文", "处", "时", "注"])
    code, output = run("--model", model_dir, "--input", source, "--output", tmp_path / "o.csv")
    assert code == 2
    assert "no text column" in output and "号, 题, 文, 处, 时, 注" in output
    code, output = run("--model", model_dir, "--input", source, "--output", tmp_path / "o.csv",
                       "--text-col", "文", "--title-col", "题", "--id-col", "号")
    assert code == 0, output
    code, output = run("--model", model_dir, "--input", source, "--output", tmp_path / "o.csv", "--text-col", "正文")
    assert code == 2 and "no column '正文' (--text-col); the columns are 号, 题, 文, 处, 时, 注" in output


def test_two_workers_write_the_same_file_as_one(scored: Path, model_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "two.csv"
    code, text = run("--model", model_dir, "--input", scored.parent / "archive.csv", "--output", output,
                     "--workers", "2", "--chunk-size", "7")
    assert code == 0, text
    assert output.read_bytes() == scored.read_bytes()


def test_utf8_bom_and_gb18030_inputs_and_the_encoding_option(
    scored: Path, model_dir: Path, tmp_path: Path, rows: list[list[str]]
) -> None:
    for encoding in ("utf-8-sig", "gb18030"):
        source = write_csv(tmp_path / f"{encoding}.csv", rows, encoding=encoding)
        code, text = run("--model", model_dir, "--input", source, "--output", tmp_path / f"{encoding}-out.csv")
        assert code == 0, text
        assert (tmp_path / f"{encoding}-out.csv").read_bytes() == scored.read_bytes()
    source = write_csv(tmp_path / "gbk.csv", rows[:3], encoding="gbk")
    code, text = run("--model", model_dir, "--input", source, "--output", tmp_path / "x.csv", "--encoding", "utf-8")
    assert code == 2 and "bytes that are not utf-8" in text and "--encoding" in text


def test_a_file_that_is_not_what_its_extension_says(scored: Path, model_dir: Path, tmp_path: Path) -> None:
    workbook = tmp_path / "archive.xlsx"
    book = openpyxl.Workbook()
    book.active.append(HEADER)
    book.save(workbook)
    disguised = tmp_path / "archive.csv"
    disguised.write_bytes(workbook.read_bytes())
    code, text = run("--model", model_dir, "--input", disguised, "--output", tmp_path / "o.csv")
    assert code == 2 and "should be CSV but its contents look like a ZIP archive (an XLSX workbook?)" in text
    fake = tmp_path / "fake.xlsx"
    fake.write_bytes((scored.parent / "archive.csv").read_bytes())
    code, text = run("--model", model_dir, "--input", fake, "--output", tmp_path / "o.csv")
    assert code == 2 and "should be XLSX but its contents look like text" in text
    code, text = run("--model", model_dir, "--input", fake, "--output", tmp_path / "o.csv", "--input-format", "csv")
    assert code == 0, text


def test_ragged_rows_are_kept_with_their_error(model_dir: Path, tmp_path: Path, rows: list[list[str]]) -> None:
    source = tmp_path / "ragged.csv"
    lines = [",".join(HEADER)] + [",".join(f'"{v}"' for v in row) for row in rows[:5]]
    lines[2] += ',"extra"'
    lines[3] = lines[3].rsplit(",", 2)[0]
    lines[5] += ",,"  # empty trailing fields, as spreadsheets write them: no problem
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, text = run("--model", model_dir, "--input", source, "--output", tmp_path / "o.csv")
    assert code == 0, text
    header, out = read_csv(tmp_path / "o.csv")
    errors = [row[header.index("xinxi_error")] for row in out]
    assert len(out) == 5
    assert errors[1].startswith("ragged row: 7 fields where the header has 6")
    assert errors[2].startswith("ragged row: 4 fields where the header has 6")
    assert errors[0] == errors[4] == "" and out[4][: len(HEADER)] == rows[4]


def test_a_cell_of_500000_characters_is_scored_on_its_start_with_a_warning(
    model_dir: Path, tmp_path: Path, rows: list[list[str]]
) -> None:
    huge = (rows[0][2] * (500_000 // len(rows[0][2]) + 1))[:500_000]
    source = write_csv(tmp_path / "huge.csv", [[*rows[0][:2], huge, *rows[0][3:]], rows[1]])
    code, text = run("--model", model_dir, "--input", source, "--output", tmp_path / "o.csv")
    assert code == 0, text
    header, out = read_csv(tmp_path / "o.csv")
    assert len(out[0][2]) == 500_000, "the input cell is kept whole"
    assert "text has 500000 characters; only the first 20000 were used" in out[0][header.index("xinxi_warnings")]
    assert out[0][header.index("xinxi_quality_score")] != ""


def test_empty_files_are_refused_by_name(model_dir: Path, tmp_path: Path) -> None:
    for name, content in (("empty.csv", b""), ("blank.csv", b"\n\n"), ("empty.jsonl", b"\n")):
        (tmp_path / name).write_bytes(content)
        code, text = run("--model", model_dir, "--input", tmp_path / name, "--output", tmp_path / "o.csv")
        assert code == 2 and name in text, text
        assert "empty" in text or "no header" in text or "no items" in text, text
    assert not (tmp_path / "o.csv").exists()


def test_a_workbook_of_several_sheets_needs_sheet(model_dir: Path, tmp_path: Path, rows: list[list[str]]) -> None:
    book = openpyxl.Workbook()
    book.active.title = "说明"
    book.active.append(["本表为 2024 年信息汇总"])
    data = book.create_sheet("信息")
    data.append(HEADER)
    for row in rows[:4]:
        data.append(row)
    book.save(tmp_path / "book.xlsx")
    code, text = run("--model", model_dir, "--input", tmp_path / "book.xlsx", "--output", tmp_path / "o.csv")
    assert code == 2 and "the workbook has 2 sheets (说明, 信息); choose one with --sheet" in text
    code, text = run("--model", model_dir, "--input", tmp_path / "book.xlsx", "--output", tmp_path / "o.csv",
                     "--sheet", "汇总")
    assert code == 2 and "no sheet '汇总'; the sheets are 说明, 信息" in text
    code, text = run("--model", model_dir, "--input", tmp_path / "book.xlsx", "--output", tmp_path / "o.csv",
                     "--sheet", "信息")
    assert code == 0, text
    header, out = read_csv(tmp_path / "o.csv")
    assert [row[: len(HEADER)] for row in out] == rows[:4]


def test_broken_json_lines_are_kept_with_their_error(model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "items.jsonl"
    source.write_text('{"id": "a", "text": "某镇发生山体滑坡，转移群众50人。"}\n{oops\n[1, 2]\n', encoding="utf-8")
    code, text = run("--model", model_dir, "--input", source, "--output", tmp_path / "o.jsonl")
    assert code == 0, text
    records = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == ["a", None, None]
    assert records[0]["xinxi_error"] == "" and records[0]["xinxi_kind"] in ("news", "analysis")
    assert records[1]["xinxi_error"].startswith("not valid JSON")
    assert records[2]["xinxi_error"].startswith("expected a JSON object, got list")


def test_a_scored_file_is_not_scored_again(scored: Path, model_dir: Path, tmp_path: Path) -> None:
    code, text = run("--model", model_dir, "--input", scored, "--output", tmp_path / "again.csv")
    assert code == 2 and "already has xinxi's columns" in text


def test_format_option_tsv_input_and_standard_output(
    scored: Path, model_dir: Path, tmp_path: Path, rows: list[list[str]]
) -> None:
    source = write_csv(tmp_path / "archive.tsv", rows[:5], delimiter="\t")
    code, text = run("--model", model_dir, "--input", source, "--output", tmp_path / "scored.txt", "--format", "csv")
    assert code == 0, text
    header, out = read_csv(tmp_path / "scored.txt")
    _, reference = read_csv(scored)
    assert out == reference[:5]
    code, text = run("--model", model_dir, "--input", source, "--output", tmp_path / "scored.txt")
    assert code == 2 and "cannot tell the output format from the extension .txt" in text and "--format" in text
    result = CliRunner().invoke(app, ["predict", "--model", str(model_dir), "--input", str(source)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [line["编号"] for line in lines] == [row[0] for row in rows[:5]]
    assert [line["xinxi_quality_score"] for line in lines] == [
        None if row[header.index("xinxi_quality_score")] == "" else int(row[header.index("xinxi_quality_score")])
        for row in out
    ]


def test_one_item_from_text_still_works_and_its_file_is_readable_by_others(model_dir: Path, tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        code, text = run("--model", model_dir, "--text", "某镇发生山体滑坡，转移群众50人。", "--title", "滑坡",
                         "--output", tmp_path / "one.json")
    finally:
        os.umask(previous)
    assert code == 0, text
    assert json.loads((tmp_path / "one.json").read_text(encoding="utf-8"))["kind"]["label"] in ("news", "analysis")
    assert stat.S_IMODE((tmp_path / "one.json").stat().st_mode) == 0o644
