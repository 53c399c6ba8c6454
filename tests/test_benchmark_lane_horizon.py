"""benchmarks/lane_horizon_checks.py: points counted beyond a rig's horizon by more than a margin in degrees, and the
z-up rigs it builds for calibrations that give a camera's rotation from a vehicle frame (nuScenes)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

LEVEL = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


@pytest.fixture()
def hz(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    return importlib.import_module("lane_horizon_checks")


def test_points_count_only_beyond_the_raised_line(hz) -> None:
    K = np.array([[700.0, 0, 600], [0, 700.0, 180], [0, 0, 1]])
    rig = hz.rig_of(K, LEVEL)
    line = rig.horizon()  # row 180 everywhere
    pts = np.array([[100.0, 179.0], [300.0, 171.0], [500.0, 150.0], [700.0, 300.0]])
    assert hz.above(pts, line) == 3
    assert hz.above(pts, rig.horizon(raised_deg=1.0)) == 1  # 12.2 px: only the point 30 px above
    assert hz.above(pts, rig.horizon(raised_deg=3.0)) == 0  # 36.7 px
    assert hz.above(np.zeros((0, 2)), line) == 0


def test_a_cameras_rotation_from_a_z_up_frame_becomes_the_rigs_extrinsic(hz) -> None:
    K = np.array([[1266.0, 0, 816], [0, 1266.0, 491], [0, 0, 1]])
    rig = hz.rig_of(K, LEVEL)
    np.testing.assert_array_equal(rig.P[:, :3], K)
    np.testing.assert_array_equal(rig.T_lidar_to_cam[:3, :3], LEVEL)
    a, b, c = rig.horizon()
    assert a == pytest.approx(0.0, abs=1e-12) and -c / b == pytest.approx(491.0)
