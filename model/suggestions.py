"""Concrete suggestions for raising an item towards a comprehensive analysis.

They follow what the section's annual summary asks of its items: figures and
comparisons, experience summarised point by point, problems with their
causes, and countermeasures; an item that only reports one event or is too
short to carry any of that is told so.
"""

from __future__ import annotations

from collections.abc import Mapping

SHORT_ANALYSIS_CHARS = 300
"""Below this, an item rarely has room for a synthesis."""

_GOOD_SCORE = 80


def suggest(counts: Mapping[str, int], quality_score: int, limit: int = 4) -> list[str]:
    """Suggestions for one item, most useful first.

    Parameters
    ----------
    counts : mapping
        Structure counts from :func:`model.features.structure_counts`.
    quality_score : int
        The item's score, 0 to 100 (probability of ``analysis``).
    limit : int
        At most this many suggestions.
    """
    found: list[str] = []
    single_event = counts["date_opening"] and counts["event"] >= 1 and counts["enumeration"] == 0
    if single_event and quality_score < _GOOD_SCORE:
        found.append(
            "只报道了单一事件或会议：可把一段时期、几个单位的做法放在一起综合，写出经验、成效和问题。"
        )
    if counts["chars"] < SHORT_ANALYSIS_CHARS and quality_score < _GOOD_SCORE:
        found.append(
            f"篇幅偏短（{counts['chars']} 字），难以承载综合分析：补充背景、做法、成效和下一步打算。"
        )
    if counts["figures"] < 3:
        found.append("缺少数据支撑：补充具体数字、百分比和同比或环比变化。")
    elif counts["comparison"] == 0:
        found.append("有数字但没有对比：写明与上年同期、与其他地方或与目标相比的变化。")
    if counts["enumeration"] == 0 and quality_score < _GOOD_SCORE:
        found.append("未分条归纳：用“一是……二是……三是……”梳理主要做法或成效。")
    if counts["problems"] == 0:
        found.append("未分析存在的问题：指出工作中的困难、短板或群众反映的问题。")
    elif counts["causes"] == 0:
        found.append("提到了问题但没有分析原因：说明问题产生的主要原因。")
    if counts["suggestions"] == 0:
        found.append("缺少对策建议：提出下一步打算或供领导决策参考的具体建议。")
    return found[:limit]
