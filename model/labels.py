"""The label set of ANNOTATION.md, defined once.

Topics are multi-label (zero, one or several per item); kind is exactly one of
``news`` and ``analysis`` per item. The order is that of ANNOTATION.md and is
the column order of every label matrix in the project.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Label:
    """One label: its machine name, Chinese name and a one-line definition."""

    label: str
    name: str
    definition: str


TOPICS: tuple[Label, ...] = (
    Label(
        "industry",
        "产业发展",
        "工业经济运行、工业企业生产经营、产业园区、产业链、技改、规上企业、非农重点项目建设、"
        "服务业与文旅产业发展、为企业纾困、营商环境中面向企业的服务、经济运行数据分析",
    ),
    Label(
        "investment",
        "招商引资",
        "招商活动与推介会、项目签约与落地、外来投资与资金引进、在谈项目、以商招商、招商机制与考核、"
        "对外开放合作、返乡创业引资",
    ),
    Label(
        "rural",
        "农村发展",
        "乡村振兴与新农村建设、农业生产与农技、特色种养与农产品加工、农民增收、村集体经济、"
        "人居环境整治、农村基础设施、驻村帮扶与下派干部、巩固脱贫成果、土地流转",
    ),
    Label(
        "hot_issue",
        "热点难点",
        "群众普遍关心或反映强烈的问题：就业与再就业、下岗职工、教育、医疗、住房、养老、社保、物价、"
        "征地拆迁、信访与矛盾纠纷、环境污染投诉、食品药品安全、欠薪、社会舆情与群众反映",
    ),
    Label(
        "emergency",
        "突发事件",
        "自然灾害、安全生产与交通事故、火灾、疫情与公共卫生事件、重大险情、群体性事件，及其预警、处置、续报",
    ),
)

NEWS = "news"
ANALYSIS = "analysis"

KINDS: tuple[Label, ...] = (
    Label(NEWS, "动态类", "报道一个事件、会议、活动或进展，以叙述事实为主，少有分析。"),
    Label(
        ANALYSIS,
        "综合类",
        "跨时间、单位或方面的综合：经验做法、成效与数据对比、问题及原因、对策建议、趋势判断、调研、综述。",
    ),
)

TOPIC_NAMES: tuple[str, ...] = tuple(t.label for t in TOPICS)
KIND_NAMES: tuple[str, ...] = tuple(k.label for k in KINDS)
POSITIVE_KIND = ANALYSIS
"""The kind whose probability is the quality score (ANNOTATION.md §2); the kind head predicts it."""

_BY_NAME = {label.label: label for label in TOPICS + KINDS}


def describe(label: str) -> Label:
    """Return the :class:`Label` for ``label``; labels from other corpora get a plain entry."""
    found = _BY_NAME.get(label)
    return found if found is not None else Label(label, label, "")


def topic_matrix(topics: Iterable[Sequence[str] | None], labels: Sequence[str]) -> np.ndarray:
    """Binary matrix (items x labels) of the items' topic lists; topics outside ``labels`` are ignored.

    Parameters
    ----------
    topics : iterable of sequences of str (or None)
        One topic list per item.
    labels : sequence of str
        The label set; its order is the column order.
    """
    index = {label: j for j, label in enumerate(labels)}
    rows = list(topics)
    matrix = np.zeros((len(rows), len(labels)), dtype=np.int8)
    for i, row in enumerate(rows):
        for label in row or []:
            if label in index:
                matrix[i, index[label]] = 1
    return matrix


def positive_kind_vector(kinds: Iterable[str | None]) -> np.ndarray:
    """1 where an item's kind is :data:`POSITIVE_KIND`, else 0: the target of the kind head."""
    return np.array([int(kind == POSITIVE_KIND) for kind in kinds], dtype=np.int8)


def kind_of(positive_probability: float) -> Label:
    """The kind chosen for a probability of :data:`POSITIVE_KIND`."""
    return _BY_NAME[POSITIVE_KIND if positive_probability >= 0.5 else NEWS]
