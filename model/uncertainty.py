"""How much an editor's label for an item would teach the model: the review queue's order.

An item is worth reviewing when the model is unsure of it: a topic
probability close to its threshold, or a kind probability close to 0.5. Both
are measured as a margin in log-odds, so that 0.45 against a threshold of 0.5
counts as much as 0.045 against 0.05. The review queue (``GET /v1/review``)
and the learning-curve bench (``bench/review_queue.py``) rank items with the
same function, so the bench measures what editors get.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import logit

from model.predictor import Prediction

_EPSILON = 1e-6  # keeps log-odds finite at probabilities of 0 and 1


def _log_odds(probabilities: np.ndarray) -> np.ndarray:
    return logit(np.clip(probabilities, _EPSILON, 1 - _EPSILON))


def head_margins(
    topic_probabilities: np.ndarray,
    thresholds: np.ndarray,
    analysis_probabilities: np.ndarray | None = None,
) -> np.ndarray:
    """Distance in log-odds of each head's probability from its threshold: one column per topic, then kind.

    Parameters are those of :func:`review_priority`; the kind column (threshold
    0.5) is there only when ``analysis_probabilities`` is given.
    """
    topics = np.atleast_2d(np.asarray(topic_probabilities, dtype=np.float64))
    margins = np.abs(_log_odds(topics) - _log_odds(np.asarray(thresholds, dtype=np.float64)))
    if analysis_probabilities is not None:
        kind = np.abs(_log_odds(np.asarray(analysis_probabilities, dtype=np.float64)))
        margins = np.column_stack([margins, kind]) if margins.size else kind.reshape(-1, 1)
    return margins


def review_priority(
    topic_probabilities: np.ndarray,
    thresholds: np.ndarray,
    analysis_probabilities: np.ndarray | None = None,
) -> np.ndarray:
    """Priority of each item for review: higher is less certain, in (0, 1].

    Parameters
    ----------
    topic_probabilities : ndarray of shape (n_items, n_topics)
        Each topic's probability, as the Predictor computes it.
    thresholds : ndarray of shape (n_topics,)
        The model's decision threshold per topic.
    analysis_probabilities : ndarray of shape (n_items,), optional
        Probability that each item is analysis (综合); the kind's threshold is 0.5.

    Returns
    -------
    ndarray of shape (n_items,)
        ``1 / (1 + m)`` where ``m`` is the item's smallest margin, in log-odds,
        between a probability and its threshold over every topic and the kind.
    """
    margins = head_margins(topic_probabilities, thresholds, analysis_probabilities)
    smallest = margins.min(axis=1) if margins.shape[1] else np.full(len(margins), np.inf)
    return 1.0 / (1.0 + smallest)


def prediction_priority(predictions: Sequence[Prediction], thresholds: np.ndarray) -> np.ndarray:
    """:func:`review_priority` of predictions as :meth:`model.Predictor.predict` returns them."""
    if not predictions:
        return np.zeros(0)
    topics = np.array([[topic.probability for topic in p.topics] for p in predictions], dtype=np.float64)
    analysis = None
    if all(p.kind is not None for p in predictions):
        analysis = np.array([p.kind.analysis_probability for p in predictions if p.kind is not None])
    return review_priority(topics, thresholds, analysis)
