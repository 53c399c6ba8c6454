"""Command-line apps: ``edge`` and ``edge-export``. Heavy imports happen inside the commands."""

from __future__ import annotations

from typing import Any


def emit(text: str) -> None:
    """A command's machine-readable result (``--json``) on stdout, flushed now: a stdout that cannot take it
    (``>/dev/full``, a full disk) is an OSError naming ``stdout`` (said "error: No space left on device", naming
    nothing); a reader that went away (``| head``) stays Python's BrokenPipeError, which Click ends quietly (exit 1)."""
    import sys

    print(text, file=_Named(sys.stdout, "stdout"), flush=True)


def console(stderr: bool = False) -> Any:
    """A rich Console; when the output is not a terminal (a log, a pipe) tables get 160 columns, not 80, and a
    line printed is not wrapped (a one-line note or warning stays one line in a log, whatever its length)."""
    import sys

    from rich.console import Console

    if stderr:
        c = Console(stderr=True)
        return c if c.is_terminal else Console(stderr=True, width=160, soft_wrap=True)
    out = _Named(sys.stdout, "stdout")  # a table to a full stdout says so, naming it (as emit does)
    c = Console(file=out)
    return c if c.is_terminal else Console(file=out, width=160, soft_wrap=True)


class _Named:
    """A text stream whose write errors name it (an OSError's file name): rich's console flushes its own writes,
    so a full stdout was "error: No space left on device", naming nothing. A closed pipe stays BrokenPipeError."""

    def __init__(self, stream: Any, name: str) -> None:
        self._stream, self._name = stream, name

    def _named(self, e: OSError) -> OSError:
        return e if isinstance(e, BrokenPipeError) else OSError(e.errno, e.strerror, self._name)

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

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding: the stream's own
        return getattr(self._stream, name)


def interval_cell(ends: list[float] | None, signed: bool = False) -> str:
    """A 95 % interval's two ends for a table (``edge val``'s scores and drops, ``edge-export``'s drops); "-" when
    there is none."""
    if not ends:
        return "-"
    f = "{:+.2f}" if signed else "{:.2f}"
    return f"{f.format(ends[0])} .. {f.format(ends[1])}"
