"""Scoring the rows of a chunk through :meth:`Predictor.predict`, and the columns it adds.

The same functions run in the command's own process, in its worker processes
and on Dask workers, so every engine writes the same numbers. A row that
cannot be scored (empty text, a ragged row, an item the model refuses) keeps
its place with the reason in ``xinxi_error``.
"""

from __future__ import annotations

import collections
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model import InvalidItemError, Predictor
from model.labels import describe

if TYPE_CHECKING:  # annotations only: a worker process needs nothing of the readers
    from service.batch.formats import Chunk, Columns

PREFIX = "xinxi_"
TERMS_SHOWN = 5


def added_columns(topic_labels: Sequence[str]) -> list[str]:
    """The columns xinxi appends to every input row, in order."""
    return [
        f"{PREFIX}topics",
        f"{PREFIX}topic_names",
        *(f"{PREFIX}p_{label}" for label in topic_labels),
        f"{PREFIX}kind",
        f"{PREFIX}kind_name",
        f"{PREFIX}quality_score",
        f"{PREFIX}topic_terms",
        f"{PREFIX}kind_terms",
        f"{PREFIX}warnings",
        f"{PREFIX}error",
    ]


def error_values(topic_count: int, message: str) -> list[Any]:
    """The added values of a row that was not scored."""
    return ["", "", *([None] * topic_count), None, None, None, "", "", "", message]


def prediction_values(prediction: Any) -> list[Any]:
    """The added values of a scored row, flat so that every format can hold them."""
    selected = [t for t in prediction.topics if t.selected]
    terms: list[str] = []
    for topic in selected:
        terms += [term for term in topic.terms if term not in terms]
    kind = prediction.kind
    return [
        ",".join(t.label for t in selected),
        "、".join(t.name for t in selected),
        *(t.probability for t in prediction.topics),
        None if kind is None else kind.label,
        None if kind is None else kind.name,
        prediction.quality_score,
        "、".join(terms[:TERMS_SHOWN]),
        "" if kind is None else "、".join(kind.terms),
        "; ".join(prediction.warnings),
        "",
    ]


def _cell_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an id typed as a number in a spreadsheet
    return str(value)


def items_of(chunk: Chunk, columns: Columns) -> tuple[list[dict[str, Any]], list[int], dict[int, str]]:
    """The items of a chunk to score, their positions in the chunk, and the rows that cannot be scored."""
    text_at = columns.positions["text"]
    title_at = columns.positions.get("title")
    id_at = columns.positions.get("id")
    items: list[dict[str, Any]] = []
    positions: list[int] = []
    errors: dict[int, str] = {}
    for position, (row, problem) in enumerate(zip(chunk.rows, chunk.problems, strict=True)):
        if problem is not None:
            errors[position] = problem
            continue
        text = _cell_text(row[text_at])
        if text is None or not text.strip():
            errors[position] = f"text is empty (column {columns.text})"
            continue
        items.append({
            "id": None if id_at is None else _cell_text(row[id_at]),
            "title": None if title_at is None else _cell_text(row[title_at]),
            "text": text,
        })
        positions.append(position)
    return items, positions, errors


def score_items(predictor: Predictor, items: list[dict[str, Any]]) -> list[list[Any]]:
    """The added values for each item, scored together; an item the model refuses gets its error alone."""
    if not items:
        return []
    count = len(predictor.topic_labels)
    try:
        return [prediction_values(p) for p in predictor.predict(items, terms="selected")]
    except InvalidItemError:
        pass
    values = []
    for item in items:
        try:
            values.append(prediction_values(predictor.predict([item], terms="selected")[0]))
        except InvalidItemError as exc:
            values.append(error_values(count, str(exc).split(": ", 1)[-1]))
    return values


def merge(chunk_size: int, topic_count: int, positions: list[int], scored: list[list[Any]],
          errors: dict[int, str]) -> list[list[Any]]:
    """The added values of every row of a chunk, in row order."""
    values: list[list[Any] | None] = [None] * chunk_size
    for position, row in zip(positions, scored, strict=True):
        values[position] = row
    for position, message in errors.items():
        values[position] = error_values(topic_count, message)
    assert all(v is not None for v in values)
    return values  # type: ignore[return-value]


def score_in_order(
    chunks: Iterator[Chunk], columns: Columns, topics: int, submit: Callable[[list[dict[str, Any]]], Any],
    in_flight: int,
) -> Iterator[tuple[Chunk, list[list[Any]]]]:
    """Score chunks elsewhere (``submit`` returns a future), at most ``in_flight`` at a time, results in order.

    The bounded window keeps memory flat however long the file, and taking
    the futures back in submission order keeps the output in row order.
    """
    window: collections.deque[tuple[Chunk, list[int], dict[int, str], Any]] = collections.deque()
    for chunk in chunks:
        items, positions, errors = items_of(chunk, columns)
        window.append((chunk, positions, errors, submit(items)))
        if len(window) >= in_flight:
            done, positions, errors, future = window.popleft()
            yield done, merge(len(done), topics, positions, future.result(), errors)
    while window:
        done, positions, errors, future = window.popleft()
        yield done, merge(len(done), topics, positions, future.result(), errors)


# Worker processes of the local engine: one Predictor per process, loaded once by the initializer.
_WORKER_PREDICTOR: Predictor | None = None


def start_worker(model_dir: str) -> None:
    """Pool initializer: load the model once for this process; Ctrl-C is the parent's to handle."""
    global _WORKER_PREDICTOR
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER_PREDICTOR = Predictor.load(Path(model_dir))


def score_in_worker(items: list[dict[str, Any]]) -> list[list[Any]]:
    """The task a worker process runs: score a chunk's items with the process's model."""
    assert _WORKER_PREDICTOR is not None, "start_worker did not run in this process"
    return score_items(_WORKER_PREDICTOR, items)


def topic_names(labels: Sequence[str]) -> list[str]:
    return [describe(label).name for label in labels]
