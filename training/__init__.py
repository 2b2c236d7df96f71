"""Fitting, evaluating and saving xinxi models. Never imports the service."""

from pathlib import Path

from training.data import COLUMN_NAMES, DataFileError, Item, detect_encoding, find_columns, load_items
from training.evaluate import evaluate_model
from training.trainer import TrainingError, ensure_active_model, fit_model, train_version

DEFAULT_DATA = Path(__file__).resolve().parent.parent / "datasets" / "seed"
"""The hand-written seed corpus the default model is trained on."""

__all__ = [
    "COLUMN_NAMES",
    "DEFAULT_DATA",
    "DataFileError",
    "Item",
    "TrainingError",
    "detect_encoding",
    "evaluate_model",
    "ensure_active_model",
    "find_columns",
    "fit_model",
    "load_items",
    "train_version",
]
