"""User-facing errors.

Every mistake a user can make (a bad path, a corrupt file, a wrong feed) raises an :class:`EdgeError`
subclass whose message is one line naming the thing that is wrong. The CLIs print that line and exit
with code 2; nothing else in the package should let a backend traceback reach the user.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base class: a one-line, user-facing message. CLIs exit with code 2."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class SpecError(EdgeError):
    """A tensor does not match the IOSpec (name, dtype, rank or a fixed dimension)."""


class BundleError(EdgeError):
    """A bundle folder or its manifest is missing, corrupt, or does not match its files."""


class ModelError(EdgeError):
    """Unknown model, bad config, or a checkpoint that does not fit the model."""


class ExportError(EdgeError):
    """Export failed or its validation against PyTorch was outside tolerance."""


class BackendUnavailable(EdgeError):
    """The requested backend cannot run here; the message says why (missing package, no GPU)."""


class ClosedError(EdgeError, RuntimeError):
    """A runtime or program used after ``close()`` (also a RuntimeError, what it raised before)."""


class DataError(EdgeError):
    """Input data (labels, video, images, sensor files) is missing or malformed."""


def first_line(exc: BaseException, limit: int | None = 200, *, empty: str | None = None) -> str:
    """First line of a third-party exception's message, cut to ``limit``, for a one-line EdgeError.

    Backends (torch, ONNX Runtime, OpenVINO, NNCF) raise multi-line or empty messages; an empty one
    gives ``empty`` (default: the exception's type name) instead of an IndexError.
    """
    text = str(exc).strip()
    if not text:
        return type(exc).__name__ if empty is None else empty
    line = text.splitlines()[0]
    if limit is None or len(line) <= limit:
        return line
    # cut at a word and marked as cut ("... If yo)" read as the message's end)
    cut = line[:max(limit - 3, 1)]
    return (cut.rsplit(" ", 1)[0] if " " in cut[limit // 2:] else cut) + "..."
