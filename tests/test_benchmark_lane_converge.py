"""benchmarks/lane_converge_labels.py: how far labelled lanes rise above the row where their near parts converge."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture()
def lc(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    return importlib.import_module("lane_converge_labels")


def test_rises_measure_the_top_against_the_lines_meeting_row(lc, tmp_path: Path) -> None:
    hs = list(range(160, 720, 40))  # 14 rows
    ys = np.asarray(hs, np.float64)
    # x = 640 -/+ (y - 200): the lines meet at row 200; the labels start at 160 (a top 40 px above it) ...
    a = [round(640 - (y - 200)) if y >= 160 else -2 for y in ys]
    b = [round(640 + (y - 200)) if y >= 240 else -2 for y in ys]
    one = [[600 if y >= 400 else -2 for y in ys]]  # ... and a layout of one lane has no such row
    f = tmp_path / "labels.json"
    f.write_text("\n".join(json.dumps({"lanes": lanes, "h_samples": hs, "raw_file": f"{i}.jpg"})
                           for i, lanes in enumerate([[a, b], one])) + "\n")
    r, none = lc.rises(f)
    assert none == 1
    np.testing.assert_allclose(r, [(200 - 160) / 720])
