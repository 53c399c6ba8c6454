"""Ctrl-C and SIGTERM held back while files that belong together are committed, then delivered.

Why: ``edge train`` writes a checkpoint and then its record (two renames); a Ctrl-C or SIGTERM between them left
the new checkpoint beside the previous run's record (the record said ``--steps 2 --seed 1`` of weights trained with
``--steps 3 --seed 0``), exit 130, with no word. Held, the signal arrives once both names point at the new files.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

#: the signals a user or a service manager stops a command with
HELD = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM recorded, not acted on, while the block runs; afterwards the handlers are back and the
    first signal that came is raised again, so it has the effect it would have had (a KeyboardInterrupt, the
    command's exit 130); when the block raised, its error is the one that propagates. Only in the main thread
    (Python delivers signals there; elsewhere it cannot install handlers); a signal that was ignored stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    old = {s: signal.getsignal(s) for s in HELD}
    for s, handler in old.items():
        if handler not in (signal.SIG_IGN, None):
            signal.signal(s, lambda signum, _frame: came.append(signum))
    done = False
    try:
        yield
        done = True
    finally:
        for s, handler in old.items():
            if handler is not None:
                signal.signal(s, handler)
        if came and done:  # a block that failed (a full disk) ends the command with its own error, which a
            # KeyboardInterrupt raised here would have replaced with "interrupted"
            signal.raise_signal(came[0])
