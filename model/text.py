"""Text processing: normalisation, the one document join, segmentation.

Segmentation is the dominant cost of scoring, so the fast Rust port of jieba
(rjieba) is the default engine and jieba itself is kept as the reference. Both
run with the HMM off, where their output is identical; both load the same
domain dictionary. A model records the engine and the dictionary it was
trained with (:func:`segmenter_info`) and loading re-selects that engine.

The segmenter is created once per process and engine; pipelines refer to the
module-level functions :func:`word_tokens` and :func:`char_view`, so they
pickle by reference and never carry a segmenter inside.
"""

from __future__ import annotations

import hashlib
import html
import re
import threading
from functools import lru_cache
from importlib import resources
from typing import Protocol

MAX_CHARS = 20_000
"""Text beyond this many characters is ignored: in training, evaluation and scoring alike (with a warning)."""
MAX_TITLE_CHARS = 500
"""A title beyond this many characters is cut, wherever a document is built."""

ENGINES = ("rjieba", "jieba")
DEFAULT_ENGINE = "rjieba"
USER_WORD_FREQ = 50_000

# Full-width ASCII letters, digits and symbols (U+FF01..U+FF5E) map to
# half-width. Chinese punctuation that people type as full-width on purpose
# (，：；（）！？) is kept: it marks sentence structure.
_KEEP_FULL_WIDTH = set("，：；（）！？")
_WIDTH_TABLE = {
    code: code - 0xFEE0
    for code in range(0xFF01, 0xFF5F)
    if chr(code) not in _KEEP_FULL_WIDTH
}
_WIDTH_TABLE[0x3000] = ord(" ")  # ideographic space
_FULL_WIDTH = re.compile("[" + "".join(chr(code) for code in _WIDTH_TABLE) + "]")

_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][^<>]{0,200}>")
_BREAK_TAG = re.compile(r"<\s*(br|/p|/div|/li|/h\d)\s*/?\s*>", re.IGNORECASE)
# Control and format characters (zero-width spaces, BOM, bidi marks), private
# use and lone surrogates; tabs and newlines are kept for the white-space step.
_CONTROL = re.compile(
    "[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff"
    "\ue000-\uf8ff\ud800-\udfff]"
)
_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200a\u202f\u205f]+")
_NEWLINES = re.compile(r"\s*\n\s*")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_NOT_CJK = re.compile(r"[^\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORDLIKE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaffA-Za-z]")


def normalize(text: str) -> str:
    """Return ``text`` cleaned for the model.

    Full-width ASCII becomes half-width, HTML tags and entities are removed,
    control characters dropped, runs of white space folded and blank lines
    removed. Chinese punctuation is kept.

    Parameters
    ----------
    text : str
        Raw text as an editor pasted or a file held it.

    Returns
    -------
    str
        The normalised text; empty if nothing but white space remained.
    """
    cleaned = _normalize_once(text)
    # One pass can uncover more to clean: "&amp;lt;p&amp;gt;" becomes "&lt;p&gt;", "＜ｐ＞" becomes "<p>",
    # "&#13;" a carriage return. Only then is another pass needed, and each one shortens or settles
    # the text, so the loop ends; normalize(normalize(x)) == normalize(x) (a property test checks it).
    while "&" in cleaned or "<" in cleaned or "\r" in cleaned:
        again = _normalize_once(cleaned)
        if again == cleaned:
            break
        cleaned = again
    return cleaned


def _normalize_once(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "<" in text:
        text = _BREAK_TAG.sub("\n", text)
        text = _TAG.sub("", text)
    if "&" in text:
        text = html.unescape(text)
    if _FULL_WIDTH.search(text):
        text = text.translate(_WIDTH_TABLE)
    text = _CONTROL.sub("", text)
    text = _SPACES.sub(" ", text)
    return _NEWLINES.sub("\n", text).strip()


def document_parts(title: str | None, text: str) -> tuple[str, str]:
    """Title and body as the features see them: cut to their limits, then normalised.

    Parameters
    ----------
    title : str or None
        The item's title; at most :data:`MAX_TITLE_CHARS` characters are kept.
    text : str
        The item's body; at most :data:`MAX_CHARS` characters are kept.

    Returns
    -------
    tuple of str
        ``(title, body)``, normalised; join them with :func:`join_normalized`.
    """
    return normalize((title or "")[:MAX_TITLE_CHARS]), normalize(text[:MAX_CHARS])


def join_document(title: str | None, text: str) -> str:
    """Join title and body into the one document every head sees.

    This is the only place where an item becomes a document: training,
    evaluation, the API, batch scoring and the benchmarks all go through it
    (the Predictor through :func:`document_parts`, to tell an empty body apart).
    """
    return join_normalized(*document_parts(title, text))


def join_normalized(title: str, body: str) -> str:
    """The join itself, for callers that have normalised title and body already."""
    return f"{title}\n{body}" if title else body


def title_view(document: str) -> str:
    """The title of a document made by :func:`join_document`: its first line.

    A document of one line has no title. A body pasted without a title gives
    its first line, which in pasted text is usually the heading; either way
    at most :data:`MAX_TITLE_CHARS` characters.
    """
    head, newline, _ = document.partition("\n")
    return head[:MAX_TITLE_CHARS] if newline else ""


def title_tokens(document: str) -> list[str]:
    """Word tokens of the title alone (:func:`title_view`), for the title feature block."""
    return word_tokens(title_view(document))


def has_chinese(text: str) -> bool:
    """Whether ``text`` holds at least one Chinese character."""
    return _CJK.search(text) is not None


def char_view(document: str) -> str:
    """The document reduced to runs of Chinese characters, for character n-grams.

    Digits, Latin letters and punctuation become a single space so that
    character n-grams do not span them.
    """
    return _NOT_CJK.sub(" ", document)


class _Engine(Protocol):
    def cut(self, text: str, hmm: bool) -> list[str]: ...


class _JiebaEngine:
    """jieba's own tokenizer behind the same ``cut(text, hmm)`` call as rjieba."""

    def __init__(self) -> None:
        import jieba

        jieba.setLogLevel(60)
        self._tokenizer = jieba.Tokenizer()
        self._tokenizer.initialize()

    def add_word(self, word: str, freq: int, tag: str | None) -> None:
        self._tokenizer.add_word(word, freq, tag)

    def cut(self, text: str, hmm: bool) -> list[str]:
        return list(self._tokenizer.cut(text, HMM=hmm))


@lru_cache(maxsize=1)
def user_dictionary() -> tuple[str, ...]:
    """The domain terms shipped in ``model/resources/userdict.txt``."""
    raw = resources.files("model").joinpath("resources/userdict.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in raw.splitlines() if line.strip() and not line.startswith("#"))


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    """Function words dropped from word features."""
    raw = resources.files("model").joinpath("resources/stopwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in raw.splitlines() if line.strip() and not line.startswith("#"))


def dictionary_sha256() -> str:
    """Fingerprint of the domain dictionary, recorded in every manifest."""
    return hashlib.sha256("\n".join(user_dictionary()).encode("utf-8")).hexdigest()


_lock = threading.Lock()
_active_engine = DEFAULT_ENGINE


@lru_cache(maxsize=len(ENGINES))
def segmenter(engine: str = DEFAULT_ENGINE) -> _Engine:
    """The process-wide segmenter for ``engine``, created and loaded once."""
    if engine not in ENGINES:
        raise ValueError(f"unknown segmentation engine {engine!r}; choose one of {', '.join(ENGINES)}")
    instance: _Engine
    if engine == "rjieba":
        import rjieba

        instance = rjieba.Jieba()
    else:
        instance = _JiebaEngine()
    for word in user_dictionary():
        instance.add_word(word, USER_WORD_FREQ, None)  # type: ignore[attr-defined]
    return instance


def use_engine(engine: str) -> None:
    """Select the engine that :func:`word_tokens` uses in this process, and warm it."""
    global _active_engine
    with _lock:
        segmenter(engine).cut("预热分词词典", False)
        _active_engine = engine


def active_engine() -> str:
    """The engine :func:`word_tokens` currently uses."""
    return _active_engine


def segmenter_info() -> dict[str, object]:
    """What a manifest records about segmentation."""
    return {
        "engine": _active_engine,
        "hmm": False,
        "dictionary_sha256": dictionary_sha256(),
        "dictionary_terms": len(user_dictionary()),
    }


def cut(text: str, engine: str | None = None) -> list[str]:
    """Segment ``text`` into raw tokens (punctuation and spaces included); the tokens join to ``text``."""
    instance = segmenter(engine or _active_engine)
    try:
        return instance.cut(text, False)
    except UnicodeEncodeError:
        return _cut_around_surrogates(instance, text)


_SURROGATE = re.compile("([\ud800-\udfff])")


def _cut_around_surrogates(instance: _Engine, text: str) -> list[str]:
    """rjieba takes UTF-8 only, which a lone surrogate is not: it becomes a token of its own, as in jieba.

    :func:`normalize` removes surrogates, so scoring never comes here; a raw string may.
    """
    tokens: list[str] = []
    for piece in _SURROGATE.split(text):
        if _SURROGATE.fullmatch(piece):
            tokens.append(piece)
        elif piece:
            tokens += instance.cut(piece, False)
    return tokens


_KEEP: dict[str, bool] = {}
_KEEP_LIMIT = 500_000


def keeps_token(token: str) -> bool:
    """Whether a token is a word feature; memoised, since the same tokens recur endlessly."""
    kept = _KEEP.get(token)
    if kept is None:
        if len(_KEEP) > _KEEP_LIMIT:
            _KEEP.clear()
        kept = _KEEP[token] = token not in stop_words() and _WORDLIKE.search(token) is not None
    return kept


def word_tokens(document: str) -> list[str]:
    """Tokens for word features: words with a Chinese character or a letter, no stop words."""
    known = _KEEP.get
    return [
        token
        for token in cut(document)
        if (kept := known(token)) or (kept is None and keeps_token(token))
    ]


_NOT_WORDLIKE = re.compile(r"[^\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaffA-Za-z0-9]+")


def content_hash(title: str | None, text: str) -> str:
    """The identity of an item's content: the same item pasted twice gets the same hash.

    Title and body are joined as the model sees them (:func:`join_document`),
    then everything but Chinese characters, letters and digits is dropped and
    letters are lower-cased, so white space, punctuation, full-width forms and
    HTML tags do not make two copies of one text different items. The store
    uses it to keep one row per item, and retraining to let an editor's labels
    win over the corpus's for the same text.

    Returns
    -------
    str
        64 hexadecimal digits (SHA-256).
    """
    core = _NOT_WORDLIKE.sub("", join_document(title, text)).lower()
    return hashlib.sha256(core.encode("utf-8")).hexdigest()
