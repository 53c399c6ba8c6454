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


#: bidirectional-text controls (a right-to-left override makes a name read as another in the terminal)
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unsafe_character(ch: str) -> bool:
    """Whether ``ch`` may not reach a terminal or a one-line record raw: a control character (an ESC drives the
    terminal, a newline or U+001E splits the line), a line or paragraph separator, a bidirectional override. Not
    other format characters: a zero-width non-joiner is part of Persian and Indic words (a review saw a folder's
    Persian name shown escaped)."""
    import unicodedata

    return unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI


def shown(text: str, keep: str = "") -> str:
    """``text`` for one line on a terminal: each :func:`unsafe_character` escaped as Python writes it (``\\x1b``),
    except those in ``keep`` (a console's own line breaks), the rest as it is."""
    if text.isprintable():
        return text
    return "".join(repr(c)[1:-1] if unsafe_character(c) and c not in keep else c for c in text)
