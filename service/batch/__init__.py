"""Batch scoring of archives: ``xinxi predict --input FILE --output FILE`` and the API's batch jobs.

Files are read and written in chunks (``formats``, ``writers``), scored through
``Predictor.predict`` in this process, in worker processes or on a Dask
cluster (``scoring``, ``runner``, ``dask_engine``), checkpointed after every
chunk so that ``--resume`` continues an interrupted run, and summarised in an
HTML report (``report``).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.batch.command import predict_file
    from service.batch.formats import FORMATS
    from service.batch.report import Tally, render_html
    from service.batch.runner import (
        BatchError,
        BatchInterrupted,
        BatchOptions,
        BatchResult,
        resume_path,
        score_file,
    )
    from service.batch.scoring import added_columns

# The names are imported on first use, not with the package: a worker process
# imports ``service.batch.scoring`` alone, and with it only the inference code,
# not the readers, pandas and the training code (some 150 MB and half a second
# less per worker).
_HOMES = {
    "predict_file": "command", "FORMATS": "formats", "Tally": "report", "render_html": "report",
    "BatchError": "runner", "BatchInterrupted": "runner", "BatchOptions": "runner", "BatchResult": "runner",
    "resume_path": "runner", "score_file": "runner", "added_columns": "scoring",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'service.batch' has no attribute {name!r}")
    return getattr(import_module(f"service.batch.{home}"), name)


__all__ = [
    "FORMATS",
    "BatchError",
    "BatchInterrupted",
    "BatchOptions",
    "BatchResult",
    "Tally",
    "added_columns",
    "predict_file",
    "render_html",
    "resume_path",
    "score_file",
]
