import numpy as np

from model.text import content_hash
from model.uncertainty import head_margins, review_priority


def test_items_nearest_a_threshold_come_first():
    thresholds = np.array([0.5, 0.05])
    probabilities = np.array(
        [
            [0.99, 0.001],  # sure of both
            [0.48, 0.001],  # topic 0 near its threshold
            [0.99, 0.045],  # topic 1 near its (low) threshold
        ]
    )
    priority = review_priority(probabilities, thresholds)
    assert priority[1] > priority[0] and priority[2] > priority[0]
    assert list(np.argsort(-priority))[-1] == 0


def test_an_unsure_kind_raises_priority():
    thresholds = np.array([0.5])
    topics = np.array([[0.99], [0.99]])
    priority = review_priority(topics, thresholds, np.array([0.98, 0.52]))
    assert priority[1] > priority[0]
    assert np.all((priority > 0) & (priority <= 1))


def test_content_hash_ignores_layout_but_not_words():
    a = content_hash("标题", "全县　共签约项目12个。\n<p>总投资 35 亿元</p>")
    b = content_hash("标题", "全县共签约项目１２个 总投资35亿元")
    c = content_hash("标题", "全县共签约项目13个 总投资35亿元")
    assert a == b
    assert a != c
    assert len(a) == 64


def test_head_margins_measure_each_head_in_log_odds():
    margins = head_margins(np.array([[0.5, 0.2], [0.9, 0.05]]), np.array([0.5, 0.05]), np.array([0.5, 0.99]))
    assert margins.shape == (2, 3), "one column per topic, then the kind"
    assert margins[0, 0] == 0 and margins[0, 2] == 0 and margins[1, 1] == 0
    # 0.2 against 0.05 is as far in log-odds as 0.95 against 0.8: equal steps of certainty, not of probability
    assert np.isclose(margins[0, 1], head_margins([[0.95]], np.array([0.8]))[0, 0])
    assert np.allclose(review_priority(np.array([[0.5, 0.2], [0.9, 0.05]]), np.array([0.5, 0.05]),
                                       np.array([0.5, 0.99])), 1 / (1 + margins.min(axis=1)))
