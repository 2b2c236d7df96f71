"""``xinxi adopt FILE``: record a file of items (CSV/TSV, XLSX, JSONL, Parquet) in the store.

The file is read by ``training.load_items``, the reader of ``xinxi train``, so
the same headers (标题, 正文, 主题, 类型, 单位, 日期, 采用 ...) and label names
are understood. Its invalid rows are not fatal: every row ends up added,
updated, unchanged or rejected with its row number and the reason; good rows
are stored in transactions of :data:`CHUNK` rows, so an interrupted import
keeps what it stored and running it again adds nothing twice.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.store.repository import Store

CHUNK = 500
LEVEL_COLUMNS = ("adopted_level", "level", "采用级别", "采用层级", "采用情况", "采用单位")


@dataclass
class RowResult:
    row: int | None
    status: str
    id: int | None = None
    reason: str | None = None


@dataclass
class ImportReport:
    path: Path
    rows: list[RowResult] = field(default_factory=list)

    @property
    def counts(self) -> Counter[str]:
        return Counter(row.status for row in self.rows)

    def summary(self) -> str:
        counts = self.counts
        return (
            f"{self.path.name}: {len(self.rows)} rows, {counts['added']} added, {counts['updated']} updated, "
            f"{counts['unchanged']} unchanged, {counts['rejected']} rejected"
        )

    def write_csv(self, path: Path) -> None:
        with path.open("w", encoding="utf-8-sig", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["row", "status", "item_id", "reason"])
            for row in self.rows:
                writer.writerow([row.row, row.status, row.id or "", row.reason or ""])


def _level_of(extra: dict[str, Any], adopted: bool | None, default: str | None) -> Any:
    lowered = {str(key).strip().lower(): value for key, value in extra.items()}
    for name in LEVEL_COLUMNS:
        value = lowered.get(name)
        if value is not None and str(value).strip():
            return value
    if adopted is False:
        return "none"
    if adopted is True and default is None:
        return True  # refused by the store: adopted, but at which level?
    return default


def import_file(
    store: Store,
    path: Path,
    *,
    level: str | None = None,
    recorded_by: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ImportReport:
    """Record every valid row of ``path``; the report has one result per row, in row order.

    Parameters
    ----------
    level : str, optional
        Adopted level of rows whose file names none (``--level``).
    """
    import training

    items, problems = training.load_items(path, skip_invalid=True)
    report = ImportReport(path)
    report.rows.extend(RowResult(row, "rejected", reason=reason) for row, reason in problems)
    records = [
        {
            "id": item.id if not item.id.startswith("row-") else None,
            "title": item.title or None,
            "text": item.text,
            "topics": item.topics,
            "kind": item.kind,
            "unit": item.unit,
            "date": item.date,
            "adopted_level": _level_of(item.extra, item.adopted, level),
        }
        for item in items
    ]
    total = len(records)
    for start in range(0, total, CHUNK):
        chunk = records[start:start + CHUNK]
        answers = store.record_items(chunk, origin="import", recorded_by=recorded_by)
        for item, answer in zip(items[start:start + CHUNK], answers, strict=True):
            report.rows.append(RowResult(item.row, answer["status"], answer["id"], answer["reason"]))
        if progress is not None:
            progress("recording", min(start + CHUNK, total), total)
    report.rows.sort(key=lambda result: (result.row is None, result.row or 0))
    return report
