"""Properties of text processing over arbitrary Unicode (Hypothesis): what must hold for every string."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from model import text
from model.text import (
    MAX_CHARS,
    MAX_TITLE_CHARS,
    content_hash,
    cut,
    document_parts,
    join_document,
    normalize,
    word_tokens,
)

# Pieces that the cleaning steps act on, so that random strings hit them often
# rather than once in a million: markup, entities (double-encoded too), full-width
# forms, controls, bidi and zero-width marks, surrogates, every kind of line break.
AWKWARD = st.sampled_from([
    "<p>", "</p>", "<br/>", "< div class='x'>", "<", ">", "&", "&amp;", "&lt;", "&gt;", "&amp;lt;", "&lt;p&gt;",
    "&#13;", "&#x3C;", "&nbsp;", "&lt", "＜ｐ＞", "＆ｌｔ；", "ＡＢＣ１２３", "\u3000", "\r\n", "\r", "\n", "\t",
    "\x00", "\x85", "\u2028", "\u200b", "\u202e", "\ufeff", "\ud800", "\udfff", "\ue000", "一是", "招商引资",
    "😀", "👩‍👩‍👧", "مرحبا", "שלום", " ",
])
UNICODE = st.text(st.characters(codec=None), max_size=200)  # every code point, lone surrogates included
MIXED = st.lists(st.one_of(AWKWARD, UNICODE), max_size=30).map("".join)
ANY_TEXT = st.one_of(UNICODE, MIXED)


@given(ANY_TEXT)
@example("&amp;lt;p&amp;gt;招商")
@example("＜ｐ＞正文＜／ｐ＞")
@example("a&#13;b")
def test_normalize_is_idempotent_and_leaves_no_markup_controls_or_surrogates(raw: str) -> None:
    once = normalize(raw)
    assert normalize(once) == once
    assert once == once.strip()
    assert not any(0xD800 <= ord(ch) <= 0xDFFF or ord(ch) < 0x20 and ch != "\n" for ch in once)
    assert "\r" not in once and "\n\n" not in once


@given(st.one_of(st.none(), ANY_TEXT), ANY_TEXT)
def test_document_parts_keep_their_limits_and_join_in_one_way(title: str | None, body: str) -> None:
    head, rest = document_parts(title, body)
    assert len(head) <= MAX_TITLE_CHARS and len(rest) <= MAX_CHARS
    assert (head, rest) == (normalize((title or "")[:MAX_TITLE_CHARS]), normalize(body[:MAX_CHARS]))
    assert join_document(title, body) == (f"{head}\n{rest}" if head else rest)


@given(st.text(max_size=50), st.text(min_size=1, max_size=50), st.integers(0, 2_000))
def test_only_the_first_characters_of_a_long_text_count(title: str, tail: str, extra: int) -> None:
    body = "政" * (MAX_CHARS + extra)
    assert document_parts(title, body + tail) == document_parts(title, body)
    assert document_parts(title * 40 + tail, body) == document_parts((title * 40 + tail)[:MAX_TITLE_CHARS], body)


WORDS = st.lists(
    st.one_of(
        st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=6),
        st.text(st.sampled_from("abcXYZ019"), min_size=1, max_size=4),
    ),
    min_size=1,
    max_size=40,
)
LAYOUT = st.sampled_from([" ", "\n", "\r\n", "\t", "\u3000", "，", "。", "、", "<br>", "</p><p>", "&nbsp;", "\u200b", ""])
FULL_WIDTH = {code - 0xFEE0: code for code in range(0xFF10, 0xFF5B) if chr(code - 0xFEE0).isalnum()}


@given(WORDS, st.data())
def test_content_hash_ignores_layout_markup_width_and_case(words: list[str], data: st.DataObject) -> None:
    plain = "".join(words)
    separators = data.draw(st.lists(LAYOUT, min_size=len(words), max_size=len(words)))
    if data.draw(st.booleans()):
        words = [word.swapcase() for word in words]
    if data.draw(st.booleans()):
        words = [word.translate(FULL_WIDTH) for word in words]
    laid_out = "<p>" + "".join(w + s for w, s in zip(words, separators, strict=True)) + "</p>"
    assert content_hash(None, laid_out) == content_hash(None, plain)
    assert content_hash("", plain) == content_hash(None, plain)
    assert len(content_hash(None, plain)) == 64


@pytest.mark.parametrize("engine", text.ENGINES)
@given(raw=ANY_TEXT)
@example(raw="\ud800招商引资\udfff")
def test_segmentation_never_raises_and_loses_nothing(engine: str, raw: str) -> None:
    tokens = cut(raw, engine)
    assert "".join(tokens) == raw
    assert all(tokens)
    cleaned = normalize(raw)
    assert all(token in cleaned for token in word_tokens(cleaned))
