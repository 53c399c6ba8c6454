"""Entry points for ``edge`` and ``edge-export``.

Every command runs under one error boundary: an :class:`EdgeError` prints one line naming what is
wrong and exits 2 (a usage error too: Click's checks of options and paths, said as one line), and so
does an OSError from the machine (a full disk); Ctrl-C outside ``edge run``'s loop prints "interrupted"
and exits 130. Only a genuine bug shows a traceback.
OpenCV's and FFmpeg's own warning lines are silenced (unless the user set their log levels): what
they would say (a frame that did not encode, a file without its index) is checked and reported by us.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import typer


@functools.cache
def _apps() -> tuple[typer.Typer, typer.Typer]:
    """The ``edge`` and ``edge-export`` Typer apps, built on first use: their imports (Typer, rich, the
    command modules) run inside :func:`main`'s error boundary, so a Ctrl-C while they load is the one line
    ``interrupted`` too, not a traceback (at module level they ran before any handler)."""
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
    app.command("calibrate")(commands.calibrate)
    app.command("val")(commands.val)

    export_app = typer.Typer(name="edge-export", add_completion=False, pretty_exceptions_enable=False)
    export_app.command()(commands.export)
    return app, export_app


def __getattr__(name: str) -> Any:
    """``app`` and ``export_app`` as module attributes (tests and embedders call ``_invoke`` with them)."""
    if name == "app":
        return _apps()[0]
    if name == "export_app":
        return _apps()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a service manager, `kill`, a CI timeout) interrupts a command as Ctrl-C does, so its
    cleanup runs: Python's default SIGTERM ends the process without any ``finally`` and left temporary
    files of exports, checkpoints and engines behind. Only where SIGTERM still has its default handler;
    a handler someone else installed meanwhile (`edge run` ignores signals once its outputs are
    committed) is left in place.

    A library's forked helper (OpenVINO's telemetry sender) inherits the handlers: there either signal ends it as
    the default action would, quietly. A terminal's Ctrl-C reaches the whole process group, and Python's own SIGINT
    handler printed the helper's KeyboardInterrupt traceback around the command's one line (a review); so SIGINT,
    where it still has Python's handler, gets the same one, which in the command's own process raises as Python's
    does."""
    import os
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def interrupt(signum: int, _frame: object) -> None:
        if os.getpid() != owner:  # a forked helper: ends as the signal's default action ends it
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt

    defaults = ((signal.SIGTERM, signal.SIG_DFL), (signal.SIGINT, signal.default_int_handler))
    taken = {s: d for s, d in defaults if signal.getsignal(s) is d}  # each signal taken -> the handler given back
    for s in taken:
        signal.signal(s, interrupt)
    try:
        yield
    finally:
        for s, default in taken.items():
            if signal.getsignal(s) is interrupt:
                signal.signal(s, default)


def _is_path(param: Any) -> bool:
    """Whether a command's parameter takes a path (Click's ``path`` type, or Typer's annotation of it)."""
    if getattr(getattr(param, "type", None), "name", None) == "path":
        return True
    ann = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    return isinstance(ann, type) and issubclass(ann, os.PathLike)


def _empty_path(name: str, path: list[str]) -> str:
    return f"{name} '': an empty path (it would be read as the current folder); give a file or folder (see " \
           f"`{' '.join(path)} --help`)"


def repeated_option(cmd: Any, args: list[str], prog: str) -> str | None:
    """The one-line error for an option that takes one value given twice (``--source a --source b``), or for a path
    option given an empty value (``--out ''``), or None.

    Click keeps the last value without a word: a run of two sources read one, two ``--save`` wrote one file.
    Repeatable options (``--data``, ``--graph``) and flags are not counted; scanning stops at ``--``. Duck-typed:
    Typer builds its commands on its own copy of Click."""
    if "--help" in (args[:args.index("--")] if "--" in args else args):
        return None  # the help, as Click gives it first
    path = [prog]
    if isinstance(getattr(cmd, "commands", None), dict):  # `edge SUBCOMMAND ...`: the first word not an option
        words = [i for i, a in enumerate(args) if not a.startswith("-")]
        sub = cmd.commands.get(args[words[0]]) if words else None
        if sub is None:
            return None  # Click says what is wrong with the command's name
        path.append(args[words[0]])
        cmd, args = sub, args[words[0] + 1:]
    opts = {name: p for p in cmd.params if getattr(p, "param_type_name", None) == "option"
            for name in (*p.opts, *p.secondary_opts)}
    positional = [p for p in cmd.params if getattr(p, "param_type_name", None) == "argument"]
    n_args = 0

    def empty_argument(tok: str) -> str | None:  # an argument (BUNDLE, ...), in the command's order
        nonlocal n_args
        arg = positional[n_args] if n_args < len(positional) else None
        n_args += 1
        if tok == "" and arg is not None and _is_path(arg):
            return _empty_path(arg.name.upper(), path)
        return None

    seen: dict[str, tuple[str, str]] = {}
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--":  # the rest are arguments, whatever they look like
            return next((e for e in map(empty_argument, args[i + 1:]) if e is not None), None)
        if tok.startswith("--"):
            name, eq, value = tok.partition("=")
        elif len(tok) > 2 and tok[0] == "-" and (q := opts.get(tok[:2])) is not None and not (q.is_flag or q.count):
            name, eq, value = tok[:2], "attached", tok[2:]  # `-ssynthetic:3`: Click's short option with its value
        else:
            name, eq, value = tok, "", ""
        p = opts.get(name)
        i += 1
        if p is None and not tok.startswith("-"):
            if (err := empty_argument(tok)) is not None:
                return err
            continue
        if p is None or p.is_flag or p.count:
            continue
        if not eq:
            if i >= len(args):  # no value at all: Click says the option requires an argument (not "an empty path")
                continue
            value = args[i]  # the value is the next word
            i += 1
        if value == "" and _is_path(p):
            # Path("") is ".": an empty shell variable (`--out "$OUT"`) wrote into the current folder unsaid
            return _empty_path(name, path)
        if p.multiple:
            continue
        if p.name in seen:
            first, was = seen[p.name]
            return (f"{name} given twice ({first} {was!r}, then {value!r}); it takes one value "
                    f"(see `{' '.join(path)} --help`)")
        seen[p.name] = (name, value)
    return None


def _say(line: str) -> None:
    """One line on stderr, never a second error: a stderr that cannot take it (full, closed: Python's ``sys.stderr``
    is None, where print would write to stdout instead) is passed over. Under :func:`edge.cli.streams.guarded` its
    writes cannot fail; :func:`_app` says "interrupted" before that (its print raised in the handler: exit 120)."""
    if sys.stderr is None:
        return
    from edge.errors import shown

    line = shown(line)  # a control character from a spec or a file name: escaped (a review)
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # and what it still buffers goes nowhere: Python's flush at exit failed again
        from edge.cli.streams import silence

        silence(sys.stderr)


def _invoke(ty: typer.Typer, argv: list[str] | None, prog: str) -> int:
    """:func:`_run_app` with the CLI's own streams guarded (:mod:`edge.cli.streams`): what stdout still buffers is
    written before the exit code is final, so a stdout that cannot take it is said (``error: stdout: ...``, exit 2;
    a closed pipe quietly, exit 1), not Python's "Exception ignored" and exit 120."""
    from edge.cli.streams import finish_stdout, guarded

    with guarded():
        code = _run_app(ty, argv, prog)
        failed = finish_stdout()
        if failed is not None and code == 0:  # after an error, that error is the command's line and code
            if isinstance(failed, BrokenPipeError):
                code = 1
            else:
                _say(f"error: stdout: {failed.strerror or failed}")
                code = 2
    return code


@contextlib.contextmanager
def _escaped_warnings() -> Iterator[None]:
    """The project's warnings (``edge.*`` loggers), each one line through :func:`_say` with control characters
    escaped, for the command's run. Why: Python's last-resort handler printed them raw, so a file name holding an
    ESC drove the terminal and one holding a newline printed a line of its own (a review: a FIFO named
    ``x\\nerror: fake.png`` made a fake error line)."""
    import logging

    class OneLine(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                _say(self.format(record))
            except Exception:  # a message whose %-arguments do not fit: logging's own report, as before
                self.handleError(record)

    log = logging.getLogger("edge")
    if logging.getLogger().handlers or log.handlers:  # an application's own logging (main() embedded): its to say,
        yield  # once (with this handler too, each warning came out twice)
        return
    handler = OneLine(logging.WARNING)
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)


def _run_app(ty: typer.Typer, argv: list[str] | None, prog: str) -> int:
    """Run a Typer app and map its errors to one line: a usage error (an unknown option, a value out of range,
    an unreadable path Click checks) and an EdgeError each exit 2, Ctrl-C 130. Click's own report of a usage
    error is a framed box of 5-7 lines; not standalone mode, it is raised here and said in the project's form."""
    import os

    import typer

    from edge.errors import EdgeError

    try:  # Typer's own copy of Click raises these (the base of its usage errors); an older Typer, Click's
        from typer import TyperException as ClickError
    except ImportError:  # pragma: no cover
        from click import ClickException as ClickError

    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

    try:
        with _sigterm_interrupts(), _escaped_warnings():
            twice = repeated_option(typer.main.get_command(ty), list(sys.argv[1:] if argv is None else argv), prog)
            if twice is not None:
                _say(f"error: {twice}")
                return 2
            rv = ty(args=argv, prog_name=prog, standalone_mode=False)
        code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0  # an Exit(n) comes back as n
        if code == 130:  # Typer turns Ctrl-C (and our SIGTERM) into a silent Exit(130): say it, in one line
            _say("interrupted")
        return code
    except typer.Abort:
        _say("interrupted")
        return 130
    except ClickError as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # a bare `edge`: the help, as before, and exit 2
            e.show()
            return 2
        ctx = getattr(e, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = " ".join(e.format_message().split())  # one line, whatever Click wrapped
        _say(f"error: {message}{hint}")
        return 2
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if code == 130:
            _say("interrupted")
        return code
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except EdgeError as e:
        _say(f"error: {e}")
        return e.exit_code
    except ImportError as e:  # an optional package this command needs: the pip line that installs it
        from edge.deps import explain_import

        line = explain_import(e)  # absent, or there but lacking what was asked; and what needed it
        if line is None:
            raise  # one of ours, or a package we do not know: a bug, with its traceback
        _say(f"error: {line}")
        return 2
    except OSError as e:  # the machine, not the code: a full disk, a quota, an I/O error mid-write
        from edge.deps import explain_import

        line = explain_import(e)  # or a package whose import loads a library that is not there (torch's cuDNN)
        if line is not None:
            _say(f"error: {line}")
            return 2
        from edge.cli.streams import silence

        if e.errno == errno.EPIPE and e.filename is None:  # stdout's reader went away (`| head`): quiet, as Click
            silence(sys.stdout)  # ends it when a command's own write finds it so
            return 1
        where = f"{e.filename}: " if e.filename else ""
        _say(f"error: {where}{e.strerror or e}")
        if e.filename == "stdout":
            silence(sys.stdout)
        return 2
    except MemoryError:  # the machine's memory or a ulimit, as a full disk is: one line, not a traceback (an input
        # read whole that no size check caught was one; a review)
        _say("error: out of memory (the machine's, or a limit on this process: ulimit -v, a container's)")
        return 2
    return 0


def _app(which: int) -> typer.Typer:
    """One of :func:`_apps`; a Ctrl-C (or SIGTERM) while the CLI loads exits 130 with one line."""
    try:
        with _sigterm_interrupts():
            return _apps()[which]
    except KeyboardInterrupt:
        _say("interrupted")
        sys.exit(130)


def main(argv: list[str] | None = None) -> None:
    from edge.cli.process import mark_entry

    mark_entry(argv is None)
    sys.exit(_invoke(_app(0), argv, "edge"))


def export_main(argv: list[str] | None = None) -> None:
    sys.exit(_invoke(_app(1), argv, "edge-export"))


if __name__ == "__main__":
    main()
