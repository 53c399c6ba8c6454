"""Command-line apps: ``edge`` and ``edge-export``. Heavy imports happen inside the commands."""

from __future__ import annotations

from typing import Any


def console(stderr: bool = False) -> Any:
    """A rich Console; when the output is not a terminal (a log, a pipe) tables get 160 columns, not 80."""
    from rich.console import Console

    c = Console(stderr=stderr)
    return c if c.is_terminal else Console(stderr=stderr, width=160)


def names(option: str, raw: str | None) -> list[str] | None:
    """The comma-separated names an option was given (``--programs stream,clip``), or None when it was not.

    A value that names nothing (``,`` or spaces) is a usage error (EdgeError), not a quiet default: an empty
    ``--programs`` used to mean every program and an empty ``--freeze`` nothing, each the opposite of what
    someone who typed the option may have meant."""
    if raw is None:
        return None
    out = [n.strip() for n in raw.split(",") if n.strip()]
    if not out:
        from edge.errors import EdgeError

        raise EdgeError(f"{option} {raw!r}: names nothing; give one or more names, comma-separated")
    return out
