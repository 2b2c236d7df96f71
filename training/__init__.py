"""Fitting, evaluating and comparing xinxi models; never imports the service.

This is the one door of the training floor: the service and the ``xinxi``
command use only the names below, never a submodule.

- load data: :data:`DEFAULT_DATA` (:data:`SEED_DATA` and :data:`REAL_DATA`),
  :func:`load_items` (and :func:`find_columns`, :func:`detect_encoding` for streaming readers),
  :func:`load_dataset`, :func:`with_test_set`
- train: :func:`train_version`, :func:`ensure_active_model` (and :func:`fit_model`, in memory)
- retrain: :func:`run_retrain_job` (the retrain process: corpus and stored items, the promotion gate;
  ``training.retrain.retrain`` in memory), :class:`Gate`, :data:`HOLDOUT_DATA`,
  :func:`diff_models` (two versions side by side)
- evaluate: :func:`evaluate_model`, :func:`score_items`
- compare: :func:`evaluation` (xinxi and the baselines on the same splits), :data:`METHODS`, :data:`SPLITS`
- corpus: :func:`build_corpus`, :func:`check_corpus` (the real items of ``datasets/real``)
- diagnose: :func:`diagnose` (calibration and error analysis of a model's output)
- render: :func:`comparison_table`, :func:`evaluation_markdown`, :func:`diagnostics_markdown`,
  :func:`errors_markdown`
"""

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from training.baselines import METHODS, SEED_ONLY
    from training.compare import evaluation
    from training.corpus import build_corpus, check_corpus
    from training.data import Item, load_items
    from training.dataset import SEED_SOURCE, SPLITS, load_dataset, with_test_set
    from training.diagnostics import diagnose
    from training.errors import TrainingError
    from training.evaluate import evaluate_model, score_items
    from training.files import COLUMN_NAMES, DataFileError, detect_encoding, find_columns
    from training.gate import Gate
    from training.report import (
        by_source_rows,
        comparison_table,
        diagnostics_markdown,
        errors_markdown,
        evaluation_markdown,
    )
    from training.retrain import PAUSE_HOOK, diff_models, run_retrain_job
    from training.trainer import ensure_active_model, fit_model, train_version

# The names are imported on first use, not with the package: ``xinxi predict``
# reads its error and encoding helpers from here without loading pandas and
# scikit-learn (some 150 MB in the process that reads and writes the file).
_HOMES = {
    "METHODS": "baselines", "SEED_ONLY": "baselines", "evaluation": "compare",
    "build_corpus": "corpus", "check_corpus": "corpus", "Item": "data", "load_items": "data",
    "SEED_SOURCE": "dataset", "SPLITS": "dataset", "load_dataset": "dataset", "with_test_set": "dataset",
    "diagnose": "diagnostics", "TrainingError": "errors", "evaluate_model": "evaluate", "score_items": "evaluate",
    "COLUMN_NAMES": "files", "DataFileError": "files", "detect_encoding": "files", "find_columns": "files",
    "Gate": "gate", "by_source_rows": "report", "comparison_table": "report",
    "diagnostics_markdown": "report", "errors_markdown": "report", "evaluation_markdown": "report",
    "PAUSE_HOOK": "retrain", "diff_models": "retrain", "run_retrain_job": "retrain",
    "ensure_active_model": "trainer", "fit_model": "trainer", "train_version": "trainer",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is not None:
        return getattr(import_module(f"training.{home}"), name)
    try:  # ``training.trainer`` after ``import training``, as when the package imported every module
        return import_module(f"training.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"training.{name}":
            raise
        raise AttributeError(f"module 'training' has no attribute {name!r}") from None


DATASETS = Path(__file__).resolve().parent.parent / "datasets"
SEED_DATA = DATASETS / "seed"
"""The hand-written seed corpus."""
REAL_DATA = DATASETS / "real"
"""Real published items with their provenance (``datasets/real/SOURCES.md``)."""
LABELS_DATA = DATASETS / "labels"
"""The real items' two labelling passes and the third reading (not items: kept beside, not inside, ``real``)."""
DEFAULT_DATA: tuple[Path, ...] = (SEED_DATA, REAL_DATA)
"""What the default model is trained on: the seed corpus and the real items."""
HOLDOUT_DATA = DATASETS / "holdout" / "holdout.jsonl"
"""The fixed held-out set (a ninth writer's items), never trained on: retraining's gate compares on it."""

__all__ = [
    "COLUMN_NAMES",
    "DEFAULT_DATA",
    "HOLDOUT_DATA",
    "PAUSE_HOOK",
    "Gate",
    "LABELS_DATA",
    "REAL_DATA",
    "SEED_DATA",
    "SEED_ONLY",
    "METHODS",
    "SEED_SOURCE",
    "SPLITS",
    "DataFileError",
    "Item",
    "TrainingError",
    "build_corpus",
    "by_source_rows",
    "check_corpus",
    "comparison_table",
    "detect_encoding",
    "diagnose",
    "diff_models",
    "diagnostics_markdown",
    "ensure_active_model",
    "errors_markdown",
    "evaluate_model",
    "evaluation",
    "evaluation_markdown",
    "find_columns",
    "fit_model",
    "load_dataset",
    "load_items",
    "run_retrain_job",
    "score_items",
    "train_version",
    "with_test_set",
]
