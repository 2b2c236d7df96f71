"""The label set and its encoding, declared once in model/labels.py."""

from __future__ import annotations

import numpy as np

from model.labels import (
    ANALYSIS,
    KIND_NAMES,
    NEWS,
    POSITIVE_KIND,
    TOPIC_NAMES,
    kind_of,
    positive_kind_vector,
    topic_matrix,
)


def test_labels_follow_the_annotation_guide() -> None:
    assert TOPIC_NAMES == ("industry", "investment", "rural", "hot_issue", "emergency")
    assert KIND_NAMES == (NEWS, ANALYSIS) == ("news", "analysis")
    assert POSITIVE_KIND == ANALYSIS


def test_topic_matrix_columns_follow_the_label_order_and_skip_unknown_labels() -> None:
    matrix = topic_matrix([["rural", "investment"], [], None, ["sports"]], ["investment", "rural"])
    np.testing.assert_array_equal(matrix, [[1, 1], [0, 0], [0, 0], [0, 0]])
    assert matrix.dtype == np.int8


def test_kind_encoding_and_decoding() -> None:
    np.testing.assert_array_equal(positive_kind_vector(["news", "analysis", None]), [0, 1, 0])
    assert kind_of(0.5).label == ANALYSIS and kind_of(0.49).label == NEWS
    assert kind_of(0.9).name == "综合类"
