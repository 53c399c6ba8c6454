"""Usage errors Click finds before a command runs (an unknown command or option, a value outside an option's
range or of the wrong type, a missing argument) are one line and exit 2, like every other bad input: Click's
own report was a framed box of 5-7 lines. ``edge`` alone still prints its help (exit 2), ``--help`` exits 0."""

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
EXPORT = [sys.executable, "-c", "from edge.cli.main import export_main; export_main()"]


def run(cmd: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=ENV, timeout=120, cwd=REPO)


@pytest.mark.parametrize(("cmd", "args", "needles"), [
    (EDGE, ["nope"], ["No such command 'nope'", "`edge --help`"]),
    (EDGE, ["run", "--threads", "5000", "b"], ["'--threads'", "1024", "`edge run --help`"]),
    (EDGE, ["run", "--max-frames", "abc", "b"], ["'--max-frames'", "integer"]),
    (EDGE, ["run", "--sync-ms", "nan", "b"], ["'--sync-ms'"]),
    (EDGE, ["bench", "b", "--rounds", "0"], ["'--rounds'"]),
    (EDGE, ["run"], ["Missing argument"]),
    (EDGE, ["run", "--nope", "b"], ["No such option: --nope"]),
    (EXPORT, ["lane", "--nope"], ["No such option: --nope", "--help`"]),
])
def test_a_usage_error_is_one_line_and_exit_2(cmd: list[str], args: list[str], needles: list[str]) -> None:
    r = run(cmd, *args)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr and "╭" not in r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_help_still_prints_and_a_bare_edge_shows_it() -> None:
    r = run(EDGE, "--help")
    assert r.returncode == 0 and "Usage" in r.stdout and "calibrate" in r.stdout
    bare = run(EDGE)
    assert bare.returncode == 2 and "Usage" in bare.stdout + bare.stderr
