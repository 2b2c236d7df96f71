"""What an item to record may hold, checked once for the API, the page and ``xinxi adopt``.

:func:`clean_item` turns what a client or a file gave into the values the
store keeps, or raises :class:`RejectedItem` with the reason in plain words.
Labels are accepted by name (``industry``, ``news``) or by their Chinese
name (产业发展, 动态类); an adopted level is one of none / county / city /
province, in English or Chinese, or free text that names one of them
("省委办公厅《每日要情》" is province), kept beside the canonical value.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from model.labels import KINDS, TOPICS
from model.text import content_hash

LEVELS = ("none", "county", "city", "province")
"""Adopted levels, lowest first; ``none`` is "recorded, not adopted"."""
ORIGINS = ("page", "api", "import")
MAX_TITLE = 2_000
MAX_TEXT = 200_000
MAX_NAME = 200

_TOPIC_ALIASES = {alias: label.label for label in TOPICS for alias in (label.label, label.name)}
_KIND_ALIASES = {alias: label.label for label in KINDS for alias in (label.label, label.name, label.name[:2])}
_LEVEL_ALIASES = {
    "none": "none", "no": "none", "无": "none", "否": "none", "未采用": "none", "不采用": "none",
    "county": "county", "县": "county", "县级": "county", "区": "county", "区级": "county", "县区": "county",
    "city": "city", "市": "city", "市级": "city", "地市": "city", "地级": "city",
    "province": "province", "省": "province", "省级": "province",
}
# Free text: the highest level it names wins (an item reported to the province through the city is province).
_LEVEL_WORDS = (("province", re.compile(r"省|province", re.I)), ("city", re.compile(r"市|city", re.I)),
                ("county", re.compile(r"县|区|county", re.I)))


class RejectedItem(ValueError):
    """An item that cannot be recorded; the message says why."""


def parse_topics(value: Any) -> list[str] | None:
    """Canonical topic names, or None when not given; unknown names are refused."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [part for part in re.split(r"\s*[,;|、，；]\s*", value.strip()) if part]
    if not isinstance(value, (list, tuple)):
        raise RejectedItem(f"topics must be a list of names, got {type(value).__name__}")
    topics: list[str] = []
    for entry in value:
        name = _TOPIC_ALIASES.get(str(entry).strip().lower(), _TOPIC_ALIASES.get(str(entry).strip()))
        if name is None:
            known = ", ".join(f"{t.label}/{t.name}" for t in TOPICS)
            raise RejectedItem(f"unknown topic {entry!r}; the topics are {known}")
        if name not in topics:
            topics.append(name)
    return topics


def parse_kind(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    kind = _KIND_ALIASES.get(str(value).strip().lower(), _KIND_ALIASES.get(str(value).strip()))
    if kind is None:
        raise RejectedItem(f"unknown kind {value!r}; the kinds are news/动态类 and analysis/综合类")
    return kind


def parse_level(value: Any) -> tuple[str | None, str | None]:
    """``(canonical level, free text)``; ``(None, None)`` when not given."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    if isinstance(value, bool):
        # An "adopted" yes/no column without a level: adopted, level unknown is not a level; no is none.
        if value:
            raise RejectedItem("adopted is yes but no level is given (none, county, city, province / 县级, 市级, 省级)")
        return "none", None
    text = str(value).strip()
    if len(text) > MAX_NAME:
        raise RejectedItem(f"adopted level is {len(text)} characters long; at most {MAX_NAME}")
    canonical = _LEVEL_ALIASES.get(text.lower(), _LEVEL_ALIASES.get(text))
    if canonical is not None:
        return canonical, None
    for level, pattern in _LEVEL_WORDS:
        if pattern.search(text):
            return level, text
    raise RejectedItem(
        f"adopted level {text!r} is not understood; use none, county, city or province "
        "(无, 县级, 市级, 省级), or a text naming one (\"市委办《信息快报》\")"
    )


def parse_date(value: Any) -> dt.date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise RejectedItem(f"date {value!r} is not a date like 2024-03-01") from None


def _short_text(value: Any, name: str, limit: int = MAX_NAME) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if len(text) > limit:
        raise RejectedItem(f"{name} is {len(text)} characters long; at most {limit}")
    return text or None


def clean_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """The stored values of one item to record, with its ``content_hash``; raises :class:`RejectedItem`.

    Keys not given (or None) are left out, so that recording an item again
    changes only what the new record says.
    """
    text = item.get("text")
    if not isinstance(text, str) or not text.strip():
        raise RejectedItem("text is empty")
    if len(text) > MAX_TEXT:
        raise RejectedItem(f"text is {len(text)} characters long; at most {MAX_TEXT}")
    title = item.get("title")
    if title is not None and not isinstance(title, str):
        raise RejectedItem(f"title must be text, got {type(title).__name__}")
    title = title.strip() if title else None
    if title and len(title) > MAX_TITLE:
        raise RejectedItem(f"title is {len(title)} characters long; at most {MAX_TITLE}")
    level, level_text = parse_level(item.get("adopted_level"))
    values: dict[str, Any] = {
        "content_hash": content_hash(title, text),
        "title": title,
        "text": text,
        "topics": parse_topics(item.get("topics")),
        "kind": parse_kind(item.get("kind")),
        "adopted_level": level,
        "adopted_level_text": level_text,
        "unit": _short_text(item.get("unit"), "unit"),
        "date": parse_date(item.get("date")),
        "external_id": _short_text(item.get("id"), "id"),
    }
    kept = {key: value for key, value in values.items() if value is not None}
    if level is not None:
        kept["adopted_level_text"] = level_text  # a new level replaces the old free text, even with none
    return kept
