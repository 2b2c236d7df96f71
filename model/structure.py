"""Structure signals: what an editor looks at to tell a news item from a comprehensive analysis.

Length, paragraphs, enumerations (一是/二是, 第一, （一）), figures and
percentages, comparisons, and the vocabulary of problems, causes and
suggestions. They feed the suggestions shown to editors
(:mod:`model.suggestions`) and, when switched on, the model's structure
features (:class:`model.features.StructureFeatures`). Plain Python: scoring
needs no scikit-learn.
"""

from __future__ import annotations

import math
import re

_NUM = r"[一二三四五六七八九十]"
PATTERNS: dict[str, re.Pattern[str]] = {
    "enumeration": re.compile(
        rf"{_NUM}是|第{_NUM}[，、,:：]|[（(]{_NUM}[）)]|(?:^|\n)\s*\d{{1,2}}[、.．]|首先|其次|再次|最后"
    ),
    "figures": re.compile(r"\d+(?:\.\d+)?"),
    "percentages": re.compile(r"%|％|百分点|成以上|倍"),
    "comparison": re.compile(r"同比|环比|比上年|较上年|比去年|较去年|增长|下降|增加|减少|提高|翻番"),
    "problems": re.compile(r"问题|不足|短板|困难|瓶颈|薄弱|滞后|制约|难点|矛盾|风险|缺乏|不够|偏低|偏少"),
    "causes": re.compile(r"原因|由于|导致|究其|因素|造成|源于"),
    "suggestions": re.compile(r"建议|对策|下一步|应当|着力|进一步|加快|强化|健全|完善|推动|加大"),
    "practice": re.compile(r"做法|经验|成效|机制|模式|举措|路径|探索|创新"),
    "event": re.compile(r"召开|举行|举办|出席|参加|会议|调研|考察|视察|检查|部署|签约仪式|座谈"),
}
_DATE_OPENING = re.compile(
    r"^(?:[^\n]*\n)?\s*(?:\d{4}年)?\d{1,2}月\d{1,2}日|^(?:[^\n]*\n)?\s*(?:近日|日前|昨日|今天|今日|当天)"
)
_SENTENCE = re.compile(r"[。！？!?；;]")

FEATURE_NAMES: tuple[str, ...] = (
    "log_chars",
    "log_paragraphs",
    "log_sentences",
    "date_opening",
    *(f"log_{name}" for name in PATTERNS),
    *(f"per_kchar_{name}" for name in PATTERNS),
)


def structure_evidence(document: str, signal: str, limit: int = 3) -> list[str]:
    """The strings of ``document`` behind a structure signal, for showing and highlighting.

    ``signal`` is a key of :data:`PATTERNS` or ``"date_opening"``.
    """
    if signal == "date_opening":
        match = _DATE_OPENING.search(document)
        return [match.group(0).split("\n")[-1].strip()] if match else []
    pattern = PATTERNS.get(signal)
    if pattern is None:
        return []
    found = [m.strip() for m in pattern.findall(document) if len(m.strip()) >= 2]
    return list(dict.fromkeys(found))[:limit]


def signal_of(feature: str) -> str:
    """The structure signal a feature name belongs to (``log_problems`` -> ``problems``)."""
    for prefix in ("log_", "per_kchar_"):
        if feature.startswith(prefix):
            return feature[len(prefix) :]
    return feature


def structure_counts(document: str) -> dict[str, int]:
    """Raw counts of the structure signals in one document."""
    counts = {name: len(pattern.findall(document)) for name, pattern in PATTERNS.items()}
    counts["chars"] = len(document)
    counts["paragraphs"] = document.count("\n") + 1
    counts["sentences"] = max(len(_SENTENCE.findall(document)), 1)
    counts["date_opening"] = int(_DATE_OPENING.search(document) is not None)
    return counts


def structure_vector(counts: dict[str, int]) -> list[float]:
    """The structure feature values of one document, in the order of :data:`FEATURE_NAMES`.

    Each signal is given as a log count and as a density per 1,000 characters,
    so that a long item with many figures and a short one with a few are both
    visible to a linear model.
    """
    kchars = max(counts["chars"], 1) / 1000.0
    return [
        math.log1p(counts["chars"]),
        math.log1p(counts["paragraphs"]),
        math.log1p(counts["sentences"]),
        float(counts["date_opening"]),
        *(math.log1p(counts[name]) for name in PATTERNS),
        *(min(counts[name] / kchars, 50.0) for name in PATTERNS),
    ]
