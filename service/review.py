"""The review queue: stored items without labels and recently scored items, least certain first.

Candidates are the newest ``candidates`` unlabelled items of the store and as
many recently scored items (the editor page's, not yet labelled). Each is
scored by the active model and ranked by
:func:`model.uncertainty.prediction_priority`; scores are cached per model
version and content, so a request scores only what it has not seen.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from model import Predictor
from model.predictor import Prediction
from model.text import content_hash
from model.uncertainty import prediction_priority
from service.errors import StoreUnavailableError
from service.store import Store

log = logging.getLogger("xinxi.review")

CACHE_SIZE = 50_000


def _summary(prediction: Prediction, priority: float) -> dict[str, Any]:
    return {
        "priority": round(float(priority), 6),
        "topics": [
            {"label": t.label, "name": t.name, "probability": t.probability, "selected": t.selected}
            for t in prediction.topics
        ],
        "kind": None if prediction.kind is None else {
            "label": prediction.kind.label, "name": prediction.kind.name,
            "analysis_probability": prediction.kind.analysis_probability,
        },
    }


class ReviewQueue:
    """Ranks review candidates with the active predictor; thread-safe, with a bounded score cache."""

    def __init__(self, candidates: int = 1000) -> None:
        self.candidates = candidates
        self._cache: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def scores(self, predictor: Predictor, entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The summary (priority, topics, kind) of each entry (``content_hash``, ``title``, ``text``)."""
        keys = [(predictor.version, entry["content_hash"]) for entry in entries]
        with self._lock:
            missing = {key: entry for key, entry in zip(keys, entries, strict=True) if key not in self._cache}
        if missing:
            todo = list(missing.items())
            predictions = predictor.predict([{"title": e["title"], "text": e["text"]} for _, e in todo])
            priorities = prediction_priority(predictions, predictor.thresholds)
            with self._lock:
                for (key, _), prediction, priority in zip(todo, predictions, priorities, strict=True):
                    self._cache[key] = _summary(prediction, priority)
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        with self._lock:
            found = []
            for key in keys:
                self._cache.move_to_end(key)
                found.append(self._cache[key])
        return found

    def queue(self, store: Store, predictor: Predictor, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` least certain candidates, highest priority first."""
        unlabelled, _ = store.list_items(labelled=False, limit=self.candidates)
        scored = store.recent_predictions(self.candidates)
        entries: list[dict[str, Any]] = []
        seen: set[str] = set()
        for item in unlabelled:
            seen.add(item["content_hash"])
            entries.append({
                "source": "item", "item_id": item["id"], "prediction_id": None,
                "content_hash": item["content_hash"], "title": item["title"] or "", "text": item["text"],
                "unit": item["unit"], "adopted_level": item["adopted_level"], "at": item["updated_at"],
            })
        for row in scored:
            if row["content_hash"] in seen:
                continue
            seen.add(row["content_hash"])
            entries.append({
                "source": "prediction", "item_id": None, "prediction_id": row["id"],
                "content_hash": row["content_hash"], "title": row["title"] or "", "text": row["text"],
                "unit": None, "adopted_level": None, "at": row["scored_at"],
            })
        ranked = [
            {**entry, **summary, "model_version": predictor.version}
            for entry, summary in zip(entries, self.scores(predictor, entries), strict=True)
        ]
        ranked.sort(key=lambda entry: (-entry["priority"], entry["content_hash"]))
        return ranked[:limit]


def remember_scored(store: Store, items: Sequence[dict[str, Any]], predictions: Sequence[Prediction]) -> None:
    """Keep the editor page's scored items for the review queue (a background task: failures are logged)."""
    for item, prediction in zip(items, predictions, strict=True):
        try:
            store.record_prediction(
                content_hash=content_hash(item.get("title"), item["text"]),
                title=item.get("title"),
                text=item["text"],
                probabilities={t.label: t.probability for t in prediction.topics},
                analysis_probability=None if prediction.kind is None else prediction.kind.analysis_probability,
                model_version=prediction.model_version,
            )
        except StoreUnavailableError:
            log.warning("a scored item was not kept for the review queue: the store is unavailable")
            return
