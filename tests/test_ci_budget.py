"""The slow suite's deadline (tests/conftest.py, set by .ci/run): past it a slow test is skipped with the
reason, never started; a value that is not a number is one usage error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_SLOW = "tests/test_readme.py::test_readme_commands_run"  # minutes when it runs: proof that it did not


def _pytest(deadline: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "EDGE_SLOW_DEADLINE": deadline}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-m", "slow", "-p", "no:randomly", _SLOW],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_slow_tests_past_the_deadline_are_skipped_saying_why() -> None:
    r = _pytest("0")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "1 skipped" in r.stdout and "past EDGE_SLOW_DEADLINE" in r.stdout


def test_a_deadline_that_is_not_a_number_is_a_usage_error() -> None:
    r = _pytest("tomorrow")
    assert r.returncode != 0 and "EDGE_SLOW_DEADLINE='tomorrow'" in r.stdout + r.stderr
