"""Whether this process is the ``edge`` command itself, kept in a module of its own.

The flag cannot live in ``edge.cli.main``: ``python -m edge.cli.main`` runs that file as ``__main__``, and
``edge.cli.main`` imported later by a command is a second copy whose flag was never set (this is how
the late-Ctrl-C guard of ``edge run`` silently did nothing under ``-m``).
"""

from __future__ import annotations

_entry = False


def mark_entry(entry: bool) -> None:
    """Record whether the running ``edge`` app is the process's own entry (argv from the command line)."""
    global _entry
    _entry = entry


def is_entry() -> bool:
    """True when this process is the ``edge`` command, not a caller running the CLI in-process.

    Once ``edge run`` committed its outputs it then keeps Ctrl-C/SIGTERM ignored until the process is
    gone, because a signal in the last moments of the exit would otherwise kill it with -SIGINT after
    everything was written (Python restores the default handler during finalisation).
    """
    return _entry
