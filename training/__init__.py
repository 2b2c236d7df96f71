"""Fitting, evaluating and comparing xinxi models; never imports the service.

This is the one door of the training floor: the service and the ``xinxi``
command use only the names below, never a submodule.

- load data: :data:`DEFAULT_DATA`, :func:`load_items`, :func:`load_dataset`, :func:`with_test_set`
- train: :func:`train_version`, :func:`ensure_active_model` (and :func:`fit_model`, in memory)
- evaluate: :func:`evaluate_model`, :func:`score_items`
- compare: :func:`evaluation` (xinxi and the baselines on the same splits), :data:`METHODS`, :data:`SPLITS`
- diagnose: :func:`diagnose` (calibration and error analysis of a model's output)
- render: :func:`comparison_table`, :func:`evaluation_markdown`, :func:`diagnostics_markdown`,
  :func:`errors_markdown`
"""

from pathlib import Path

from training.baselines import METHODS
from training.compare import evaluation
from training.data import DataFileError, Item, load_items
from training.dataset import SPLITS, load_dataset, with_test_set
from training.diagnostics import diagnose
from training.errors import TrainingError
from training.evaluate import evaluate_model, score_items
from training.report import comparison_table, diagnostics_markdown, errors_markdown, evaluation_markdown
from training.trainer import ensure_active_model, fit_model, train_version

DEFAULT_DATA = Path(__file__).resolve().parent.parent / "datasets" / "seed"
"""The hand-written seed corpus the default model is trained on."""

__all__ = [
    "DEFAULT_DATA",
    "METHODS",
    "SPLITS",
    "DataFileError",
    "Item",
    "TrainingError",
    "comparison_table",
    "diagnose",
    "diagnostics_markdown",
    "ensure_active_model",
    "errors_markdown",
    "evaluate_model",
    "evaluation",
    "evaluation_markdown",
    "fit_model",
    "load_dataset",
    "load_items",
    "score_items",
    "train_version",
    "with_test_set",
]
