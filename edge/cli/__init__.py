"""Command-line apps: ``edge`` and ``edge-export``. Heavy imports happen inside the commands."""

from __future__ import annotations

from typing import Any


def emit(text: str) -> None:
    """A command's machine-readable result (``--json``) on stdout, flushed now: under the CLI's guarded streams
    (:mod:`edge.cli.streams`) a stdout that cannot take it fails here, naming ``stdout``, inside the command."""
    print(text, flush=True)


def console(stderr: bool = False) -> Any:
    """A rich Console; when the output is not a terminal (a log, a pipe) tables get 160 columns, not 80, and a
    line printed is not wrapped (a one-line note or warning stays one line in a log, whatever its length); text
    printed has its control characters escaped (:func:`edge.errors.shown`), line breaks and tabs kept."""
    from rich.console import Console

    from edge.errors import shown

    class Escaping(Console):
        """Everything printed with its control characters escaped, line breaks kept: a note or a table's title naming
        a file whose name holds an ESC drove the terminal (rich strips only a few control codes). Done on the
        rendered segments, so tables, titles and Text are covered; rich's own control segments (cursor moves of a
        live display) pass as they are."""

        def print(self, *objects: Any, **kwargs: Any) -> None:
            # strings first: rich's Text drops \a \b \v \f \r without a trace (a review: a bundle named
            # "e\rx\bq" was printed "exq" in the next commands), so they are escaped before it sees them
            super().print(*(shown(o, keep="\n\t") if isinstance(o, str) else o for o in objects), **kwargs)

        def _render_buffer(self, buffer: Any) -> str:
            from rich.segment import Segment

            return super()._render_buffer(  # \r kept: only print's own end= can bring one this far
                s if s.control or s.text.isprintable() else Segment(shown(s.text, keep="\n\t\r"), s.style, s.control)
                for s in buffer)

    c = Escaping(stderr=stderr)
    return c if c.is_terminal else Escaping(stderr=stderr, width=160, soft_wrap=True)


def interval_cell(ends: list[float] | None, signed: bool = False) -> str:
    """A 95 % interval's two ends for a table (``edge val``'s scores and drops, ``edge-export``'s drops); "-" when
    there is none."""
    if not ends:
        return "-"
    f = "{:+.2f}" if signed else "{:.2f}"
    return f"{f.format(ends[0])} .. {f.format(ends[1])}"
