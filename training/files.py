"""What reading a data file needs before any table library: the error, the encoding, the known headers.

Kept apart from :mod:`training.data` (which reads whole tables with pandas) so
that ``xinxi predict``, which streams files itself, loads neither pandas nor
scikit-learn in its own process.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from model.errors import XinxiError

COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "id": ("id", "编号", "序号", "信息编号"),
    "title": ("title", "标题", "题目", "信息标题"),
    "text": ("text", "body", "content", "正文", "内容", "信息内容", "全文"),
    "topics": ("topics", "topic", "labels", "label", "主题", "标签", "类别", "分类"),
    "kind": ("kind", "type", "类型", "信息类型", "体裁"),
    "unit": ("unit", "单位", "报送单位", "来源"),
    "date": ("date", "日期", "报送日期", "时间"),
    "adopted": ("adopted", "采用", "是否采用"),
}


class DataFileError(XinxiError):
    """A data file cannot be read, or holds invalid rows; the message names them."""

    code = "invalid_data"

    def __init__(self, path: Path | str, problems: Sequence[tuple[int | None, str]]):
        self.path = str(path)
        self.problems = list(problems)
        shown = "; ".join(
            (f"row {row}: {reason}" if row is not None else reason) for row, reason in self.problems[:20]
        )
        more = f" (and {len(self.problems) - 20} more)" if len(self.problems) > 20 else ""
        super().__init__(f"{self.path}: {shown}{more}")


def detect_encoding(raw: bytes, path: Path | str, *, complete: bool = True) -> str:
    """The codec of file bytes: ``utf-8-sig`` (UTF-8 with or without BOM), else ``gb18030`` (a superset of GBK).

    ``complete=False`` says that ``raw`` is only the start of the file, so a
    character cut at its end is not held against it.

    Raises
    ------
    DataFileError
        Naming the line of the first byte that decodes in neither.
    """
    try:
        codecs.getincrementaldecoder("utf-8-sig")().decode(raw, final=complete)
        return "utf-8-sig"
    except UnicodeDecodeError as utf8_error:
        try:
            codecs.getincrementaldecoder("gb18030")().decode(raw, final=complete)
            return "gb18030"
        except UnicodeDecodeError:
            line = raw[: utf8_error.start].count(b"\n") + 1
            raise DataFileError(
                path,
                [(line, f"bytes that are neither UTF-8 nor GBK/GB18030 at byte {utf8_error.start}; "
                        "save the file as UTF-8")],
            ) from None


def decode(raw: bytes, path: Path | str) -> str:
    """Decode file bytes as UTF-8 (with or without BOM), else GB18030 (a superset of GBK).

    Raises
    ------
    DataFileError
        Naming the line of the first byte that decodes in neither.
    """
    return raw.decode(detect_encoding(raw, path))


def find_columns(columns: Iterable[Any]) -> dict[str, Any]:
    """The header of each known field (``text``, ``title``, ``id``, ``unit``, ``date`` ...) among ``columns``.

    Headers are matched case-insensitively against :data:`COLUMN_NAMES`, in
    English or Chinese; the first matching header wins.
    """
    columns = list(columns)
    found: dict[str, Any] = {}
    for canonical, names in COLUMN_NAMES.items():
        for column in columns:
            if str(column).strip().lower() in names and column not in found.values():
                found[canonical] = column
                break
    return found
