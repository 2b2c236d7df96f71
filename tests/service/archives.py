"""Small archives made from the seed corpus, in the layouts offices keep them."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from training.data import Item

HEADER = ["编号", "标题", "正文", "报送单位", "日期", "备注"]
UNITS = ["白沙镇", "青溪县农业农村局", "县应急管理局", "城关街道"]


def archive_rows(corpus: list[Item], count: int = 40) -> list[list[str]]:
    """``count`` rows in the corpus's order: id, title, text, unit, date, a note; row 4 has an empty text."""
    rows = []
    for n, item in enumerate(corpus[:count]):
        rows.append([
            item.id, item.title, "" if n == 3 else item.text, UNITS[n % len(UNITS)],
            f"2024年{n % 12 + 1}月{n % 28 + 1}日", f"备注{n}",
        ])
    return rows


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8", delimiter: str = ",",
              header: list[str] = HEADER) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "CSV output starts with a UTF-8 BOM"
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    return rows[0], rows[1:]
