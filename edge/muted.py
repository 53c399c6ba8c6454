"""Silence what one thread prints while a library call runs, not what the rest of the process prints.

Why: the ONNX exporter prints progress and a failed trace's whole graph, NNCF draws progress bars; the CLI's
output must stay ours (``--json`` is parsed). ``contextlib.redirect_stdout`` swaps ``sys.stdout`` for the whole
process, so a service calling ``edge.export`` lost its other threads' prints for the duration (497 of 785 lines
in a review's test). Here ``sys.stdout`` / ``sys.stderr`` are wrapped once, while any thread is muted, by a proxy
that drops the writes of the muted threads and passes every other thread's through, untouched.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

_LOCK = threading.Lock()
_MUTED: Counter[int] = Counter()  # thread id -> how many muted blocks it is inside
_INSTALLED: dict[str, tuple[Any, Any]] = {}  # "stdout"/"stderr" -> (the stream wrapped, our proxy)


class _Proxy:
    """A text stream that writes for every thread but the muted ones; anything else is the wrapped stream's."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if _MUTED.get(threading.get_ident()):
            return len(text)
        return self._stream.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not _MUTED.get(threading.get_ident()):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def muted(stdout: bool = True, stderr: bool = True) -> Iterator[None]:
    """Inside: what this thread writes to ``sys.stdout`` (and ``sys.stderr``) is dropped; other threads print as
    before. The streams get their proxy when the first thread is muted and their own object back when the last
    leaves (unless the application replaced them meanwhile: its stream stays)."""
    names = [n for n, on in (("stdout", stdout), ("stderr", stderr)) if on]
    me = threading.get_ident()
    with _LOCK:
        for n in names:
            if n not in _INSTALLED:
                current = getattr(sys, n)
                proxy = _Proxy(current)
                _INSTALLED[n] = (current, proxy)
                setattr(sys, n, proxy)
        _MUTED[me] += 1
    try:
        yield
    finally:
        with _LOCK:
            _MUTED[me] -= 1
            if _MUTED[me] <= 0:
                del _MUTED[me]
            if not _MUTED:
                for n, (original, proxy) in list(_INSTALLED.items()):
                    if getattr(sys, n) is proxy:
                        setattr(sys, n, original)
                    del _INSTALLED[n]
