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
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
       "COLUMNS": "200", "NO_COLOR": "1"}
EDGE = [sys.executable, "-m", "edge.cli.main"]
FULL = Path("/dev/full")
needs_full = pytest.mark.skipif(not FULL.exists(), reason="no /dev/full on this system")


def _run(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGE, *args], text=True, env=ENV, timeout=120, **kw)  # type: ignore[call-overload]


@needs_full
@pytest.mark.parametrize("args", [("models", "--json"), ("models",)])
def test_a_full_stdout_is_named(args: tuple[str, ...]) -> None:
    with FULL.open("w") as full:
        r = _run(*args, stdout=full, stderr=subprocess.PIPE)
    assert r.returncode == 2 and r.stderr.strip() == "error: stdout: No space left on device", r.stderr


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
def test_a_full_stderr_keeps_the_exit_code() -> None:
    """The error's line cannot be said; its exit code still is the command's (2), not a traceback's 1."""
    with FULL.open("w") as full:
        bad = _run("run", "no-such-bundle", "--source", "synthetic:1", stdout=subprocess.PIPE, stderr=full)
        good = _run("models", stdout=subprocess.PIPE, stderr=full)
    assert bad.returncode == 2 and good.returncode == 0 and "family" in good.stdout


def test_a_closed_stderr_keeps_the_exit_code() -> None:
    """`2>&-`: the command runs, its lines go nowhere, and its exit code is its own."""
    def close_stderr() -> None:
        os.close(2)

    bad = _run("run", "no-such-bundle", "--source", "synthetic:1", stdout=subprocess.PIPE, preexec_fn=close_stderr)
    good = _run("models", stdout=subprocess.PIPE, preexec_fn=close_stderr)
    assert bad.returncode == 2 and bad.stdout == "" and good.returncode == 0 and "family" in good.stdout
