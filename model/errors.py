"""Exceptions raised by the inference library.

The service maps each class to one HTTP status in one place; the command line
prints the message. Messages name the thing that is wrong and what to do.
"""

from __future__ import annotations


class XinxiError(Exception):
    """Base class of every error the project raises on purpose."""

    code = "xinxi_error"


class InvalidItemError(XinxiError, ValueError):
    """An item cannot be scored: empty text, wrong type, missing field."""

    code = "invalid_item"


class ArtifactError(XinxiError):
    """A model version directory is missing, incomplete or unreadable."""

    code = "artifact_error"


class ChecksumError(ArtifactError):
    """A model file does not match the SHA-256 recorded in its manifest."""

    code = "checksum_mismatch"


class IncompatibleModelError(ArtifactError):
    """A model was saved with other library versions, labels or segmenter."""

    code = "incompatible_model"


class PickledModelError(IncompatibleModelError):
    """A version of the first format (a joblib pickle), which is never loaded: unpickling can run code."""

    code = "pickled_model"


class ModelNotFoundError(ArtifactError):
    """No model version exists where one was expected."""

    code = "model_not_found"


def describe_error(exc: BaseException) -> str:
    """An exception in words: its type and its message, never a bare ``172`` or nothing.

    ``KeyError(172)`` from a damaged pickle reads ``KeyError: 172``, an
    ``EOFError()`` reads ``EOFError (no message)``.
    """
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else f"{type(exc).__name__} (no message)"
