"""What a batch run counts as it goes, the summary at the end, and the HTML report.

Only counts are kept (per topic, kind, unit and month, and a histogram of the
quality score), never the rows, so a report over millions of items costs as
little memory as one over ten. The counts are saved with every checkpoint, so
a resumed run reports on the whole file.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from model.labels import describe

UNKNOWN = "（未填）"
_MONTH = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})")
MOSTLY_NEWS = 0.8  # a unit whose items are at least this share 动态类 is listed
MIN_ITEMS_FOR_UNIT = 5


def month_of(value: Any) -> str:
    """``YYYY-MM`` of a date cell (2024-03-05, 2024/3/5, 2024年3月5日, a datetime), else the unknown mark."""
    if value is None:
        return UNKNOWN
    if hasattr(value, "year") and hasattr(value, "month"):
        return f"{value.year:04d}-{value.month:02d}"
    return _month_of_text(str(value))


@lru_cache(maxsize=4096)
def _month_of_text(value: str) -> str:
    """An archive repeats its dates many times over: each distinct one is parsed once."""
    match = _MONTH.search(value)
    if not match or not 1 <= int(match.group(2)) <= 12:
        return UNKNOWN
    return f"{match.group(1)}-{int(match.group(2)):02d}"


def _group() -> dict[str, Any]:
    return {"items": 0, "topics": {}, "kinds": {}}


@dataclass
class Tally:
    """Counts over the rows written so far."""

    topic_labels: list[str]
    rows: int = 0
    errors: int = 0
    topics: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    scores: list[int] = field(default_factory=lambda: [0] * 10)
    units: dict[str, dict[str, Any]] = field(default_factory=dict)
    months: dict[str, dict[str, Any]] = field(default_factory=dict)
    first_errors: list[list[Any]] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, start: int, added: Sequence[Sequence[Any]], units: Sequence[Any], dates: Sequence[Any]) -> None:
        """Count one chunk: ``added`` holds the values of the added columns (see ``scoring.added_columns``)."""
        count = len(self.topic_labels)
        for offset, values in enumerate(added):
            self.rows += 1
            error = values[-1]
            if error:
                self.errors += 1
                if len(self.first_errors) < 10:
                    self.first_errors.append([start + offset + 1, error])
                continue
            selected = [label for label in str(values[0]).split(",") if label] or ["none"]
            kind = values[2 + count] or "none"
            score = values[4 + count]
            for label in selected:
                self.topics[label] = self.topics.get(label, 0) + 1
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            if score is not None:
                self.scores[min(int(score) // 10, 9)] += 1
            unit = str(units[offset]).strip() if units[offset] not in (None, "") else UNKNOWN
            for key, groups in ((unit, self.units), (month_of(dates[offset]), self.months)):
                group = groups.setdefault(key, _group())
                group["items"] += 1
                group["kinds"][kind] = group["kinds"].get(kind, 0) + 1
                for label in selected:
                    group["topics"][label] = group["topics"].get(label, 0) + 1

    @property
    def scored(self) -> int:
        return self.rows - self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic_labels": self.topic_labels, "rows": self.rows, "errors": self.errors, "topics": self.topics,
            "kinds": self.kinds, "scores": self.scores, "units": self.units, "months": self.months,
            "first_errors": self.first_errors, "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tally:
        return cls(**data)

    def mostly_news(self) -> list[tuple[str, int, float]]:
        """Units with at least ``MIN_ITEMS_FOR_UNIT`` items of which ``MOSTLY_NEWS`` or more are 动态类."""
        found = []
        for unit, group in self.units.items():
            judged = group["kinds"].get("news", 0) + group["kinds"].get("analysis", 0)
            if judged >= MIN_ITEMS_FOR_UNIT and group["kinds"].get("news", 0) / judged >= MOSTLY_NEWS:
                found.append((unit, judged, group["kinds"].get("news", 0) / judged))
        return sorted(found, key=lambda entry: (-entry[2], -entry[1], entry[0]))

    def summary(self) -> dict[str, Any]:
        """Rows, per topic, per kind, errors and time: the end-of-run summary (and the API job's)."""
        rate = self.rows / self.seconds if self.seconds > 0 else None
        return {
            "rows": self.rows, "scored": self.scored, "errors": self.errors,
            "topics": {label: self.topics.get(label, 0) for label in [*self.topic_labels, "none"]},
            "kinds": dict(sorted(self.kinds.items())), "seconds": round(self.seconds, 2),
            "items_per_second": None if rate is None else round(rate, 1), "first_errors": self.first_errors,
        }


def _name(label: str) -> str:
    if label == "none":
        return "无主题"
    return describe(label).name


def _kind_name(label: str) -> str:
    return {"news": "动态类", "analysis": "综合类", "none": "—"}.get(label, label)


def _cell(count: int, total: int) -> str:
    share = count / total if total else 0.0
    return (f'<td class="n"><span class="bar" style="width:{share * 100:.0f}%"></span>'
            f"<span>{count:,}</span></td>")


def _groups_table(title: str, key_name: str, groups: dict[str, dict[str, Any]], labels: list[str],
                  kinds: list[str], order: str) -> str:
    keys = sorted(groups) if order == "key" else sorted(groups, key=lambda k: (-groups[k]["items"], k))
    head = "".join(f"<th>{html.escape(_name(label))}</th>" for label in labels)
    head += "".join(f"<th>{html.escape(_kind_name(kind))}</th>" for kind in kinds)
    body = []
    for key in keys:
        group = groups[key]
        cells = "".join(_cell(group["topics"].get(label, 0), group["items"]) for label in labels)
        cells += "".join(_cell(group["kinds"].get(kind, 0), group["items"]) for kind in kinds)
        body.append(f'<tr><th scope="row">{html.escape(key)}</th><td class="n">{group["items"]:,}</td>{cells}</tr>')
    return (f"<h2>{html.escape(title)}</h2><div class=\"scroll\"><table><thead><tr><th>{key_name}</th><th>条数</th>"
            f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


STYLE = """
body{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei","Microsoft YaHei",sans-serif;margin:2rem;color:#1f2933}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.9rem}
th,td{border-bottom:1px solid #e4e7eb;padding:.3rem .6rem;text-align:left}
td.n{position:relative;text-align:right;min-width:4.5rem}td.n span{position:relative}
.bar{position:absolute!important;left:0;top:15%;height:70%;background:#c7dcf5}
.scroll{overflow-x:auto}.muted{color:#616e7c}.stats{display:flex;gap:2rem;flex-wrap:wrap}
.stats div{background:#f5f7fa;padding:.6rem 1rem;border-radius:6px}.stats b{display:block;font-size:1.3rem}
.hist{display:flex;align-items:flex-end;gap:4px;height:140px}.hist div{background:#3e7cb1;width:36px}
.hist-labels{display:flex;gap:4px}.hist-labels span{width:36px;font-size:.75rem;text-align:center}
"""


def render_html(tally: Tally, title: str, model_version: str | None = None) -> str:
    """A self-contained page (no script, no external asset): the archive at a glance."""
    labels = [*tally.topic_labels, "none"]
    kinds: list[str] = [k for k in ("news", "analysis") if k in tally.kinds] or ["news", "analysis"]
    stats = [("条目", tally.rows), ("已评分", tally.scored), ("未评分（见 xinxi_error）", tally.errors)]
    stats += [(_name(label), tally.topics.get(label, 0)) for label in labels]
    stats += [(_kind_name(kind), tally.kinds.get(kind, 0)) for kind in kinds]
    stat_html = "".join(f"<div><b>{count:,}</b>{html.escape(name)}</div>" for name, count in stats)
    peak = max(tally.scores) or 1
    bars = "".join(
        f'<div title="{10 * i}-{10 * i + 9 if i < 9 else 100} 分：{n:,} 条" style="height:{100 * n / peak:.0f}%"></div>'
        for i, n in enumerate(tally.scores)
    )
    ticks = "".join(f"<span>{10 * i}</span>" for i in range(10))
    news_units = tally.mostly_news()
    if news_units:
        rows = "".join(
            f'<tr><th scope="row">{html.escape(unit)}</th><td class="n">{n:,}</td>'
            f'<td class="n">{share:.0%}</td></tr>'
            for unit, n, share in news_units
        )
        head = "<thead><tr><th>单位</th><th>条数</th><th>动态类占比</th></tr></thead>"
        news_html = f"<table>{head}<tbody>{rows}</tbody></table>"
    else:
        news_html = (f'<p class="muted">没有单位的动态类占比达到 {MOSTLY_NEWS:.0%}'
                     f"（至少 {MIN_ITEMS_FOR_UNIT} 条）。</p>")
    errors = ""
    if tally.first_errors:
        items = "".join(f"<li>第 {row} 行：{html.escape(str(message))}</li>" for row, message in tally.first_errors)
        errors = f"<h2>未评分的条目（前 {len(tally.first_errors)} 条）</h2><ul>{items}</ul>"
    model = f"模型 {html.escape(model_version)} · " if model_version else ""
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{html.escape(title)} · 信息概览</title>
<style>{STYLE}</style></head><body>
<h1>信息概览：{html.escape(title)}</h1>
<p class="muted">{model}{tally.rows:,} 条，用时 {tally.seconds:.1f} 秒。
主题可多选，“无主题”为没有达到任何主题阈值的条目。</p>
<div class="stats">{stat_html}</div>
<h2>质量分分布</h2><div class="hist">{bars}</div><div class="hist-labels">{ticks}</div>
<h2>以动态类为主的单位</h2>{news_html}
{_groups_table("各单位的主题与类型", "单位", tally.units, labels, kinds, "items")}
{_groups_table("各月的主题与类型", "月份", tally.months, labels, kinds, "key")}
{errors}
</body></html>
"""
