from __future__ import annotations

import pytest

from model import text
from model.text import char_view, cut, join_document, normalize, user_dictionary, word_tokens
from training import SEED_DATA, load_items


def test_normalize_folds_width_space_controls_and_html() -> None:
    raw = "<p>１２３ＡＢＣ％\u3000增长</p>\x00\u200b<br/>同比&nbsp;提高\r\n\r\n\t  第二段 "
    assert normalize(raw) == "123ABC% 增长\n同比 提高\n第二段"


def test_normalize_keeps_chinese_punctuation() -> None:
    assert normalize("一是，二是：（三）！") == "一是，二是：（三）！"


def test_join_document_is_title_then_body() -> None:
    assert join_document(" 标题 ", "正文") == "标题\n正文"
    assert join_document(None, "正文") == "正文"


@pytest.mark.parametrize("engine", text.ENGINES)
def test_every_dictionary_term_survives_segmentation(engine: str) -> None:
    terms = user_dictionary()
    assert len(terms) >= 150
    broken = [term for term in terms if term not in cut(f"今年以来，全县{term}工作取得进展。", engine)]
    assert broken == []


def test_rjieba_and_jieba_cut_the_corpus_alike() -> None:
    items, _ = load_items(SEED_DATA)
    documents = [join_document(item.title, item.text) for item in items]
    differing = [d[:30] for d in documents if cut(d, "rjieba") != cut(d, "jieba")]
    assert differing == []


def test_segmenter_is_created_once_per_engine() -> None:
    assert text.segmenter("rjieba") is text.segmenter("rjieba")


def test_word_tokens_drop_stop_words_punctuation_and_digits() -> None:
    tokens = word_tokens("全县招商引资到位资金12.5亿元，同比增长8%。")
    assert "招商引资" in tokens and "到位资金" in tokens
    assert "，" not in tokens and "12" not in tokens and "的" not in tokens


def test_char_view_keeps_only_chinese_runs() -> None:
    assert char_view("增长12.5%，达到ABC") == "增长 达到 "
