"""Cleaning, de-duplication, record checks and label agreement of the corpus (training.corpus)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.corpus import (
    build_real_corpus,
    clean_text,
    corpus_labels,
    deduplicate,
    furniture_left,
    label_agreement,
    near_duplicate_pairs,
    read_records,
    record_problems,
    settle_labels,
)

BODY = (
    "今年以来，某县坚持把招商引资作为经济工作的重要抓手，1至6月新签约项目18个，总投资62亿元，"
    "其中工业项目11个。一是强化产业链招商，围绕食品加工和新材料两条链条梳理目标企业。"
    "二是创新以商招商，发动在外乡贤牵线搭桥。三是优化营商环境，推行项目代办服务。"
)


def test_clean_text_removes_page_furniture_and_keeps_the_words() -> None:
    published = (
        "首页 > 政务公开 > 工作动态\n"
        "<p>　　" + BODY + "</p><br/>\n"
        "来源：某县人民政府办公室\n"
        "责任编辑：王某\n"
        "浏览次数：123\n"
        "【字体：大 中 小】\n"
        "分享到\n"
        "附件：1.项目清单.xlsx\n"
        "详见 https://www.example.gov.cn/a/b.html 。\n"
        "打印本页 关闭窗口"
    )
    cleaned = clean_text(published)
    assert BODY in cleaned
    for furniture in ("首页", "来源", "责任编辑", "浏览次数", "字体", "分享到", "附件", "http", "<p>", "关闭窗口"):
        assert furniture not in cleaned, furniture
    assert furniture_left(cleaned) is None
    assert clean_text(cleaned) == cleaned  # idempotent


def test_clean_text_keeps_words_that_only_look_like_furniture() -> None:
    # "来源" inside a sentence and a line that starts with 记者 but is a sentence stay.
    text = "资金来源主要是县级财政。\n记者从县应急管理局获悉，全县已转移群众1200人，目前无人员伤亡，各项工作正在有序推进当中。"
    assert clean_text(text) == text


@pytest.mark.parametrize(
    ("text", "left"),
    [("正文<div>内容</div>", "<div>"), ("正文&nbsp;内容", "&nbsp;"), ("见www.gov.cn/x", "www.gov.cn/x"),
     ("正文\n责任编辑：李某", "责任编辑：李某")],
)
def test_furniture_left_names_what_it_found(text: str, left: str) -> None:
    assert furniture_left(text) == left


def test_near_duplicates_are_found_across_reworded_copies_and_kept_once() -> None:
    republished = BODY.replace("某县", "某县县委县政府").replace("18个", "十八个")
    other = "6月12日凌晨，白沙镇发生山体滑坡，镇里连夜转移群众120人，无人员伤亡，县应急管理局派出工作组赶赴现场处置。"
    pairs = near_duplicate_pairs([BODY, other, republished])
    assert [(i, j) for i, j, _ in pairs] == [(0, 2)]
    assert pairs[0][2] >= 0.5
    records = [{"id": "seed-1", "text": BODY}, {"id": "real-1", "text": other}, {"id": "real-2", "text": republished}]
    kept, dropped = deduplicate(records)
    assert [r["id"] for r in kept] == ["seed-1", "real-1"]
    assert [(d["id"], k["id"]) for d, k, _ in dropped] == [("real-2", "seed-1")]


def test_near_duplicates_in_blocks_equal_one_block() -> None:
    texts = [BODY[: 40 + 7 * k] for k in range(12)] + ["完全不同的一段文字，讲的是文化活动和读书月的安排情况。" * 2]
    assert near_duplicate_pairs(texts, block=3) == near_duplicate_pairs(texts, block=1000)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _record(**fields: object) -> str:
    base = {"id": "r-1", "title": "标题", "text": BODY, "topics": ["investment"], "kind": "analysis",
            "source": "test-collection", "origin": "github:owner/repo:path/page.txt"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}, ensure_ascii=False)


def test_record_problems_name_file_line_and_reason(tmp_path: Path) -> None:
    file = _write(tmp_path / "collection.jsonl", [
        _record(),
        "{not json",
        _record(id="r-2", text=BODY + "<p>留下的标签</p>"),
        _record(id="r-3", source=None),
        _record(id="r-4", topics=["tourism"]),
        _record(id="r-1"),
        _record(id="r-6", kind="report"),
        _record(id="r-7", origin=""),
    ])
    records, broken = read_records(tmp_path)
    assert [str(p) for p in broken] == [f"{file}:2: not valid JSON (Expecting property name enclosed in double quotes at column 2)"]
    problems = [str(p) for p in record_problems(records, real=True)]
    assert problems == [
        f"{file}:3: HTML or page furniture left in the text: '<p>'",
        f"{file}:4: source is missing or empty",
        f"{file}:5: topic 'tourism' is not in the guide (industry, investment, rural, hot_issue, emergency)",
        f"{file}:6: id r-1 is already used at collection.jsonl:1",
        f"{file}:7: kind 'report' is not one of news, analysis",
        f"{file}:8: origin is missing or empty",
    ]


def test_seed_records_need_no_provenance(tmp_path: Path) -> None:
    _write(tmp_path / "seed.jsonl", [_record(source=None, origin=None)])
    records, broken = read_records(tmp_path)
    assert broken == [] and record_problems(records, real=False) == []


def test_label_agreement_per_label_and_kappa() -> None:
    first = {
        "a": {"topics": ["investment", "rural"], "kind": "analysis"},
        "b": {"topics": [], "kind": "news"},
        "c": {"topics": ["emergency"], "kind": "news"},
        "d": {"topics": ["industry"], "kind": "analysis"},
    }
    second = {
        "a": {"topics": ["investment"], "kind": "analysis"},
        "b": {"topics": [], "kind": "news"},
        "c": {"topics": ["emergency"], "kind": "analysis"},
        "d": {"topics": ["industry"], "kind": "analysis"},
    }
    report = label_agreement(first, second)
    assert report["items"] == 4
    assert report["topics"]["investment"]["f1"] == 1.0
    assert report["topics"]["rural"] == {"f1": 0.0, "first": 1, "second": 0}
    assert report["topics"]["hot_issue"]["f1"] == 1.0  # neither pass used it: full agreement
    assert report["topic_set_agreement"] == 0.75
    assert report["kind"]["agreement"] == 0.75
    assert report["kind"]["kappa"] == 0.5
    with pytest.raises(ValueError, match="share no item"):
        label_agreement(first, {"z": second["a"]})


def test_settle_labels_takes_agreement_or_the_third_reading() -> None:
    a = {"x": {"topics": ["rural", "investment"], "kind": "news"}, "y": {"topics": [], "kind": "news"},
         "z": {"topics": ["emergency"], "kind": "news"}, "only-a": {"topics": [], "kind": "news"}}
    b = {"x": {"topics": ["investment", "rural"], "kind": "news"}, "y": {"topics": ["hot_issue"], "kind": "news"},
         "z": {"topics": ["emergency"], "kind": "analysis"}}
    labels, unsettled = settle_labels([a, b], {"y": {"topics": ["hot_issue"], "kind": "news"}})
    assert labels == {"x": {"topics": ["investment", "rural"], "kind": "news"},
                      "y": {"topics": ["hot_issue"], "kind": "news"}}
    assert unsettled == ["z"]


def _write_labels(folder: Path, name: str, labels: dict[str, tuple[list[str], str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"id": i, "topics": t, "kind": k}, ensure_ascii=False) for i, (t, k) in labels.items()]
    (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_a_reread_round_replaces_the_first_reading_for_its_items_only(tmp_path: Path) -> None:
    first = {"r1": (["hot_issue"], "news"), "r2": ([], "news"), "r3": (["rural"], "news"), "other": ([], "analysis")}
    _write_labels(tmp_path, "pass-a", first)
    _write_labels(tmp_path, "pass-b", first | {"r3": ([], "news")})
    _write_labels(tmp_path, "adjudication", {"r3": (["rural"], "news")})
    reread = tmp_path / "rereads" / "replies"
    _write_labels(reread, "pass-a", {"r1": (["hot_issue"], "news"), "r2": (["hot_issue"], "news"),
                                     "r3": (["rural", "hot_issue"], "news")})
    _write_labels(reread, "pass-b", {"r1": (["hot_issue"], "news"), "r2": (["hot_issue"], "news"),
                                     "r3": (["rural"], "news")})

    labels, unsettled, agreement = corpus_labels(tmp_path)
    assert unsettled == ["r3"]  # the re-read passes disagree on r3 and nobody settled it
    assert labels["r2"] == {"topics": ["hot_issue"], "kind": "news"}  # the re-read wins
    assert labels["other"] == {"topics": [], "kind": "analysis"}  # not re-read: the first reading stands
    assert agreement["topics"]["rural"]["f1"] < 1.0  # the first reading's own agreement is kept
    assert agreement["rereads"]["replies"]["items"] == 3
    assert agreement["rereads"]["replies"]["changed"] == 1  # r2; r1 settled the same, r3 not settled

    _write_labels(reread, "adjudication", {"r3": (["rural", "hot_issue"], "news")})
    labels, unsettled, agreement = corpus_labels(tmp_path)
    assert unsettled == []
    assert labels["r3"] == {"topics": ["rural", "hot_issue"], "kind": "news"}
    assert agreement["rereads"]["replies"]["changed"] == 2


def test_build_real_corpus_cleans_filters_deduplicates_and_labels() -> None:
    def raw(item_id: str, text: str, level: str, source: str) -> dict[str, str]:
        return {"id": item_id, "title": "标题", "text": text, "source": source, "origin": f"test:{item_id}",
                "date": "2024-01-02", "unit": "", "level": level, "section": ""}

    flood = ("7月3日，县防汛抗旱指挥部启动防汛四级应急响应，连夜转移低洼地带群众560人，抢修受损堤防1.2公里，全县未发生人员伤亡。"
             "目前各乡镇防汛值班人员全部到岗，抢险队伍和物资已前置到重点河段。")
    items = [
        raw("prov-1", flood + "\n责任编辑：某某", "province", "prov"),  # republished: the county copy stays
        raw("county-1", flood, "county", "county"),
        raw("county-2", "太短的一条。", "county", "county"),
        raw("county-3", BODY.replace("某县", "另一个县"), "county", "county"),  # a copy of a seed item
        raw("county-4", "<p>" + BODY.replace("招商引资", "产业发展").replace("18个", "二十个")[:60] * 2 + "</p>",
            "county", "county"),
        raw("county-5", flood.replace("7月3日", "8月9日") + "县里另行部署了灾后排查工作。" * 3, "county", "county"),
    ]
    labels = {i["id"]: {"topics": ["emergency"], "kind": "news"} for i in items if i["id"] != "county-5"}
    built, report = build_real_corpus(items, labels, seed=[{"id": "seed-1", "title": "", "text": BODY}])
    assert [i["id"] for i in built] == ["county-1", "county-4"]
    assert built[1]["text"].startswith("今年以来") and "<p>" not in built[1]["text"]
    assert built[0]["source"] == "county" and built[0]["topics"] == ["emergency"] and built[0]["level"] == "county"
    assert report["dropped"] == {
        "not labelled": 1,
        "body outside 80-3500 characters after cleaning": 1,
        "near-duplicate of a seed item": 1,
        "near-duplicate of another real item": 1,
    }
    assert report["by_source"] == {"county": 2}
