"""benchmarks/lane_lateral_errors.py on hand-made frames: each labelled lane against its best prediction, the
signed error towards the image centre bucketed by the label's distance from the nearer side, misses left out."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import SimpleNamespace

import pytest


def _result(gt_lanes: list[list[float]], pred_lanes: list[list[float]], hs: list[int]) -> tuple:
    cam = SimpleNamespace(meta={"gt": {"lanes": gt_lanes, "h_samples": hs}})
    return {"tusimple": {"lanes": pred_lanes, "h_samples": hs}}, {"camera": cam}, {}


def test_inward_errors_by_distance_from_the_side(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    lateral = importlib.import_module("lane_lateral_errors").lateral
    hs = list(range(400, 700, 30))  # 10 rows
    left = [100.0] * 10  # vertical lines: the threshold is 20 px
    right = [1240.0] * 10
    missed = [640.0] * 10
    preds = [[110.0] * 9 + [160.0], [1235.0] * 10, [900.0] * 10]  # left 10 px inward (one row 60), right 5 inward
    out = lateral([_result([left, right, missed], preds, hs)])
    assert out["50-150 px"] == {"rows": 10, "off_pct": 10.0, "inward_median_px": 10.0, "inward_mean_px": 15.0}
    assert out["<50 px"] == {"rows": 10, "off_pct": 0.0, "inward_median_px": 5.0, "inward_mean_px": 5.0}
    assert out["150-300 px"] == {"rows": 0} and out[">300 px"] == {"rows": 0}  # the lane at 640 was missed
    # outwards is negative; a prediction right on fewer than half the rows is no match
    out = lateral([_result([left], [[90.0] * 6 + [-2.0] * 4], hs)])
    assert out["50-150 px"]["inward_median_px"] == -10.0 and out["50-150 px"]["rows"] == 6
    assert lateral([_result([left], [[90.0] * 4 + [-2.0] * 6], hs)])["50-150 px"] == {"rows": 0}
    # a lane at 45 degrees: TuSimple's threshold is 20 / cos(45) = 28.3 px, so 25 px inward is a match, not off
    slanted = [470.0 - (h - 400) for h in hs]  # x 470 at row 400 down to 200 at row 670
    out = lateral([_result([slanted], [[x + 25.0 for x in slanted]], hs)])
    assert out["150-300 px"] == {"rows": 4, "off_pct": 0.0, "inward_median_px": 25.0, "inward_mean_px": 25.0}
    assert out[">300 px"]["rows"] == 6
