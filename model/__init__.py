"""xinxi's inference library: labels, text processing, features, the Predictor.

Depends on scikit-learn, jieba/rjieba, numpy, scipy and joblib only; never on
the web service or the training code. Scoring a saved model needs neither
scikit-learn (its state is plain data, :mod:`model.state`) nor joblib (read
only to convert a version of the old pickle format, :mod:`model.legacy`).
"""

from model.errors import (
    ArtifactError,
    ChecksumError,
    IncompatibleModelError,
    InvalidItemError,
    ModelNotFoundError,
    PickledModelError,
    XinxiError,
    describe_error,
)
from model.labels import KINDS, TOPICS
from model.predictor import Prediction, Predictor
from model.registry import ModelRegistry

__all__ = [
    "KINDS",
    "TOPICS",
    "ArtifactError",
    "ChecksumError",
    "IncompatibleModelError",
    "InvalidItemError",
    "ModelNotFoundError",
    "PickledModelError",
    "ModelRegistry",
    "Prediction",
    "Predictor",
    "XinxiError",
    "describe_error",
]
