"""xinxi's inference library: labels, text processing, features, the Predictor.

Depends on scikit-learn, jieba/rjieba, numpy, scipy and joblib only; never on
the web service or the training code.
"""

from model.errors import (
    ArtifactError,
    ChecksumError,
    IncompatibleModelError,
    InvalidItemError,
    ModelNotFoundError,
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
    "ModelRegistry",
    "Prediction",
    "Predictor",
    "XinxiError",
    "describe_error",
]
