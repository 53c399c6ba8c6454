"""Process-wide quiet while a library prints what we do not want shown (the ONNX exporter's pages of guards
and its warnings, NNCF's progress bars and log), shared safely between threads.

Why not ``contextlib.redirect_stdout`` / ``warnings.catch_warnings`` / a saved logger level: each saves what
it finds on entry and puts that back on exit, so two threads exporting at once (a host service calling
``edge.export`` from a pool) interleave: the second saves the first's replacement as "the original" and puts
it back after the first restored the real one. Three concurrent exports left the process's ``sys.stdout`` and
``sys.stderr`` a StringIO for good in 3 of 4 runs. Here the first block in saves each piece of state and the
last one out restores it (a count per piece, under a lock), so it always comes back.

Known cost, as before: while any such block runs, what other threads print through ``sys.stdout`` is dropped
and their warnings are not shown (these are process-wide; a per-thread stdout proxy was tried and hung
OpenVINO's INT8 export under a terminal with ``rich``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence

_LOCK = threading.Lock()
#: per piece of state ("stdout", "stderr", "warnings", "logger:NAME"): blocks inside, and how to restore it
_INSIDE: dict[str, int] = {}
_RESTORE: dict[str, Callable[[], None]] = {}


class _Sink(io.TextIOBase):
    """A text stream that drops what is written (and is no terminal, so libraries draw no progress bars)."""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        return len(s)

    def isatty(self) -> bool:
        return False


def _swap_stream(name: str) -> Callable[[], None]:
    saved = getattr(sys, name)
    setattr(sys, name, _Sink())
    return lambda: setattr(sys, name, saved)


def _mute_warnings() -> Callable[[], None]:
    cw = warnings.catch_warnings()
    cw.__enter__()
    warnings.simplefilter("ignore")
    return lambda: cw.__exit__(None, None, None)


def _raise_level(name: str, level: int) -> Callable[[], None]:
    log = logging.getLogger(name)
    saved = log.level
    log.setLevel(max(level, log.getEffectiveLevel()))
    return lambda: log.setLevel(saved)


@contextlib.contextmanager
def silenced(streams: Sequence[str] = ("stdout",), *, warnings_off: bool = False,
             loggers: Mapping[str, int] | None = None) -> Iterator[None]:
    """Inside the block: the named :mod:`sys` streams (``"stdout"``, ``"stderr"``) drop what is written, Python
    warnings are ignored (``warnings_off``), and each named logger passes only records at or above its level.
    Each is restored when the last block holding it, in any thread, ends (the first block's level wins for a
    logger that two blocks name)."""
    starts: dict[str, Callable[[], Callable[[], None]]] = {}
    for n in streams:
        if n not in ("stdout", "stderr"):
            raise ValueError(f"unknown stream {n!r}; known: stdout, stderr")
        starts[n] = lambda n=n: _swap_stream(n)
    if warnings_off:
        starts["warnings"] = _mute_warnings
    for name, level in (loggers or {}).items():
        starts[f"logger:{name}"] = lambda name=name, level=level: _raise_level(name, level)
    with _LOCK:
        for key, start in starts.items():
            if _INSIDE.get(key, 0) == 0:
                _RESTORE[key] = start()
            _INSIDE[key] = _INSIDE.get(key, 0) + 1
    try:
        yield
    finally:
        with _LOCK:
            for key in reversed(list(starts)):
                _INSIDE[key] -= 1
                if _INSIDE[key] == 0:
                    _RESTORE.pop(key)()
