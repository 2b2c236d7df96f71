"""Batch scoring of archives: ``xinxi predict --input FILE --output FILE`` and the API's batch jobs.

Files are read and written in chunks (``formats``, ``writers``), scored through
``Predictor.predict`` in this process, in worker processes or on a Dask
cluster (``scoring``, ``runner``, ``dask_engine``), checkpointed after every
chunk so that ``--resume`` continues an interrupted run, and summarised in an
HTML report (``report``).
"""

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
