"""The CLIs' own streams: a stdout or stderr that is full, closed, or a pipe whose reader went away.

A review found each a traceback or a silent exit 1: `2>/dev/full` (a full log disk) failed the error's own print
and exited 1 where the run had committed its outputs; `2>&-` (Python's ``sys.stderr`` is None) was an
AttributeError; `--json >/dev/full` said "error: No space left on device", naming nothing. The commands run in
subprocesses, as a user runs them; `edge models` needs no bundle and no torch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},  # buffered, as a user's shell runs it
       "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
       "COLUMNS": "200", "NO_COLOR": "1"}
EDGE = [sys.executable, "-m", "edge.cli.main"]
FULL = Path("/dev/full")
needs_full = pytest.mark.skipif(not FULL.exists(), reason="no /dev/full on this system")


def _run(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGE, *args], text=True, env=ENV, timeout=120, **kw)  # type: ignore[call-overload]


@needs_full
@pytest.mark.parametrize("args", [("models", "--json"), ("models",), ("--help",), ("models", "--help"), ()])
def test_a_full_stdout_is_named(args: tuple[str, ...]) -> None:
    """Click's help (and a bare `edge`'s) too: it was Python's "Exception ignored" after the line, exit 120."""
    with FULL.open("w") as full:
        r = _run(*args, stdout=full, stderr=subprocess.PIPE)
    assert r.returncode == 2 and r.stderr.strip() == "error: stdout: No space left on device", r.stderr


@needs_full
def test_a_full_stdout_after_an_error_keeps_that_error(tiny_bundle: Path) -> None:
    """`edge build --backend tensorrt` prints a listing, then fails (no TensorRT here): one line (the first failure,
    its listing's own write or the missing backend) and exit 2; it was "Exception ignored" at exit, code 120."""
    with FULL.open("w") as full:
        r = _run("build", str(tiny_bundle), "--backend", "tensorrt", "--precision", "fp32", stdout=full,
                 stderr=subprocess.PIPE)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), r.stderr


def test_a_reader_that_went_away_ends_it_quietly() -> None:
    """`edge models --json | true`: Python's BrokenPipeError, ended by Click with exit 1 and nothing said (as a
    pipe's writer dies quietly of SIGPIPE); Python's "Exception ignored" at exit must not follow."""
    r_fd, w_fd = os.pipe()
    os.close(r_fd)
    try:
        r = _run("models", "--json", stdout=w_fd, stderr=subprocess.PIPE)
    finally:
        os.close(w_fd)
    assert r.returncode == 1 and r.stderr == "", r.stderr


@needs_full
@pytest.mark.parametrize("stderr", ["full", "read-only"])
def test_a_stderr_that_takes_nothing_keeps_the_exit_code(stderr: str, tmp_path: Path) -> None:
    """The error's line cannot be said; its exit code still is the command's (2), not a traceback's 1. A bare
    `edge` (help on stderr, exit 2) was 120. Read-only: what bash leaves on fd 2 for `2>&-` inside a script."""
    (tmp_path / "ro").write_text("")
    with (FULL.open("w") if stderr == "full" else (tmp_path / "ro").open("r")) as err:
        bad = _run("run", "no-such-bundle", "--source", "synthetic:1", stdout=subprocess.PIPE, stderr=err)
        good = _run("models", stdout=subprocess.PIPE, stderr=err)
        bare = _run(stdout=subprocess.PIPE, stderr=err)
    assert bad.returncode == 2 and good.returncode == 0 and "family" in good.stdout and bare.returncode == 2


@needs_full
def test_a_run_whose_lines_cannot_be_seen_still_runs(tiny_bundle: Path, tmp_path: Path) -> None:
    """`edge run ... 2>/dev/full` (a full log disk): its summary line (rich, on stderr) failed, exit 2 although every
    output was written; `edge train` did no work at all, failing on its first progress line (a review)."""
    with FULL.open("w") as full:
        r = _run("run", str(tiny_bundle), "--source", "synthetic:3", "--out", str(tmp_path / "o"),
                 stdout=subprocess.PIPE, stderr=full)
    assert r.returncode == 0 and len(list((tmp_path / "o").iterdir())) == 3  # the video, the JSONL, the summary


def test_a_closed_stderr_keeps_the_exit_code() -> None:
    """`2>&-`: the command runs, its lines go nowhere, and its exit code is its own."""
    def close_stderr() -> None:
        os.close(2)

    bad = _run("run", "no-such-bundle", "--source", "synthetic:1", stdout=subprocess.PIPE, preexec_fn=close_stderr)
    good = _run("models", stdout=subprocess.PIPE, preexec_fn=close_stderr)
    assert bad.returncode == 2 and bad.stdout == "" and good.returncode == 0 and "family" in good.stdout


@needs_full
def test_interrupted_while_loading_with_a_stderr_that_takes_nothing() -> None:
    """Ctrl-C/SIGTERM while the CLI loads says "interrupted" before the streams are guarded: on a full stderr that
    print raised in its handler (exit 120, a review); with stderr closed it went to stdout."""
    code = ("import edge.cli.main as m\n"
            "def interrupted():\n    raise KeyboardInterrupt\n"
            "m._apps = interrupted\nm.main(['models'])\n")
    with FULL.open("w") as full:
        r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=full, text=True, env=ENV,
                           timeout=120)
    assert r.returncode == 130 and r.stdout == ""
    r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=ENV, timeout=120,
                       preexec_fn=lambda: os.close(2))
    assert r.returncode == 130 and r.stdout == ""
