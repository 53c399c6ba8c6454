"""The CLIs' own stdout and stderr, when they cannot be written: full (``>/dev/full``, a full log disk), closed
(``2>&-``), read-only (a shell's fd left on a script), or a pipe whose reader went away (``| head``).

Why one place: the commands write through print, rich consoles, Click's help and libraries' warnings, and each
failure surfaced wherever it happened: a traceback and exit 1 from the error handler's own print, "error: No space
left on device" naming nothing, Python's "Exception ignored" and exit 120 from the flush at exit, or a command that
stopped before its work because a progress line could not be shown. For the whole command, stdout's failures are
OSErrors naming ``stdout`` (a closed pipe stays BrokenPipeError, which ends the command quietly), and stderr's
writes that fail go nowhere: what the command does and its exit code do not depend on whether its lines are seen.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any


def silence(stream: Any) -> None:
    """Point a standard stream's file descriptor at /dev/null, so what is still buffered for it (and Python's flush
    at exit) goes nowhere instead of failing again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)


class Named:
    """stdout whose write errors name it (an OSError's file name ``stdout``); a closed pipe stays BrokenPipeError."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _named(self, e: OSError) -> OSError:
        return e if isinstance(e, BrokenPipeError) or e.filename else OSError(e.errno, e.strerror, "stdout")

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as e:
            raise self._named(e) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as e:
            raise self._named(e) from None

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, buffer: the stream's own
        return getattr(self._stream, name)


class Quiet:
    """stderr whose failed writes go nowhere (the first one silences it for the rest of the command)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError):
            silence(self._stream)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError):
            silence(self._stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """stdout as :class:`Named` and stderr as :class:`Quiet` for the block; a stream the process was started without
    (Python's ``sys.stderr`` is None) writes to /dev/null, as asked. The streams are given back after (a command run
    in-process, as the tests run them)."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 (the process's stream, for its whole life)
    given = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Named(sys.stdout), Quiet(sys.stderr)
    try:
        yield
    finally:
        if isinstance(sys.stdout, Named):
            sys.stdout = given[0]
        if isinstance(sys.stderr, Quiet):
            sys.stderr = given[1]


def finish_stdout() -> OSError | None:
    """Write what stdout still buffers; the OSError when it cannot be (the stream then silenced), else None."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError) as e:
        silence(sys.stdout)
        return e if isinstance(e, OSError) else OSError(0, str(e), "stdout")
    return None
