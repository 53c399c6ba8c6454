"""Benchmarks with real-data rows refuse to run without the data (benchmarks/real_data.py ``need_real``): one
wrote its committed results file with the KITTI half of its table missing, exit 0, when the data was elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize(("script", "without"), [("pulsar_eval.py", "--synthetic-only"),
                                                 ("nativecross_edges.py", "--synthetic-only"),
                                                 ("nativecross_testtime.py", "--synthetic-only"),
                                                 ("nativecross_eval.py", "--kitti 0")])
def test_a_benchmark_without_its_real_data_writes_nothing(script: str, without: str, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    env = {**os.environ, "EDGE_REAL_DATA": str(tmp_path / "nowhere")}
    r = subprocess.run([sys.executable, str(BENCH / script), str(tmp_path / "no_bundle"), "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / "nowhere") in lines[0] and without in lines[0], r.stderr
    assert not out.exists()
