"""Exceptions of the training floor; the command line prints their messages."""

from __future__ import annotations

from model.errors import XinxiError


class TrainingError(XinxiError):
    """The data cannot train (or evaluate) a model; the message says why."""

    code = "training_error"
