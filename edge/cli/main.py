"""Entry points for ``edge`` and ``edge-export``.

Every command runs under one error boundary: an :class:`EdgeError` prints one line naming what is
wrong and exits 2 (a usage error too); Ctrl-C prints "Aborted!" and exits 1 (Typer's standard).
Only a genuine bug shows a traceback.
"""

from __future__ import annotations

import sys

import typer

from edge.cli import commands

app = typer.Typer(
    name="edge",
    help="edge-deploy: export, validate, run and benchmark perception models with attention.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("doctor")(commands.doctor)
app.command("models")(commands.models)
app.command("train")(commands.train)
app.command("export")(commands.export)
app.command("run")(commands.run)
app.command("build")(commands.build)
app.command("bench")(commands.bench)

export_app = typer.Typer(name="edge-export", add_completion=False, pretty_exceptions_enable=False)
export_app.command()(commands.export)


def _invoke(ty: typer.Typer, argv: list[str] | None, prog: str) -> int:
    """Run a Typer app in standalone mode (usage errors exit 2) and map EdgeError to one line + 2."""
    from edge.errors import EdgeError

    try:
        ty(args=argv, prog_name=prog)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except EdgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


def main(argv: list[str] | None = None) -> None:
    sys.exit(_invoke(app, argv, "edge"))


def export_main(argv: list[str] | None = None) -> None:
    sys.exit(_invoke(export_app, argv, "edge-export"))


if __name__ == "__main__":
    main()
