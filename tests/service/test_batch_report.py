"""The counts behind the summary and the HTML report: per topic, kind, unit, month; units mostly 动态类."""

from __future__ import annotations

import datetime as dt

from service.batch import Tally, added_columns, render_html
from service.batch.report import UNKNOWN, month_of
from service.batch.scoring import error_values

LABELS = ["industry", "investment", "rural", "hot_issue", "emergency"]


def scored(topics: str, kind: str, score: int) -> list:
    values = [topics, "", 0.1, 0.2, 0.3, 0.4, 0.5, kind, "", score, "", "", "", ""]
    assert len(values) == len(added_columns(LABELS))
    return values


def test_months_are_read_from_the_ways_offices_write_dates() -> None:
    assert month_of("2024-03-05") == month_of("2024/3/5") == month_of("2024年3月5日") == "2024-03"
    assert month_of(dt.date(2023, 11, 2)) == "2023-11"
    assert month_of("三月") == month_of(None) == month_of("2024-13-01") == UNKNOWN


def test_counts_per_unit_and_month_and_the_units_that_send_mostly_news() -> None:
    tally = Tally(LABELS)
    added = [scored("rural", "news", 10)] * 5 + [scored("industry,investment", "analysis", 95)] * 3
    added += [error_values(len(LABELS), "text is empty (column 正文)")]
    units = ["白沙镇"] * 5 + ["县发改局"] * 3 + ["白沙镇"]
    dates = ["2024-01-03"] * 4 + ["2024-02-01"] * 4 + [None]
    tally.add(0, added, units, dates)
    assert (tally.rows, tally.scored, tally.errors) == (9, 8, 1)
    assert tally.first_errors == [[9, "text is empty (column 正文)"]]
    assert tally.topics == {"rural": 5, "industry": 3, "investment": 3}
    assert tally.kinds == {"news": 5, "analysis": 3}
    assert tally.scores[1] == 5 and tally.scores[9] == 3
    assert tally.units["白沙镇"] == {"items": 5, "topics": {"rural": 5}, "kinds": {"news": 5}}
    assert tally.months["2024-02"]["items"] == 4 and tally.months["2024-02"]["kinds"] == {"news": 1, "analysis": 3}
    assert tally.mostly_news() == [("白沙镇", 5, 1.0)]
    again = Tally.from_dict(tally.to_dict())
    assert again.summary() == tally.summary()
    assert tally.summary()["topics"]["none"] == 0


def test_the_page_escapes_what_the_file_holds() -> None:
    tally = Tally(LABELS)
    tally.add(0, [scored("", "news", 5)] * 5, ["<script>alert(1)</script>"] * 5, ["2024-05-01"] * 5)
    page = render_html(tally, "<b>archive</b>.csv", "v1")
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;archive&lt;/b&gt;.csv" in page and "无主题" in page and "2024-05" in page
