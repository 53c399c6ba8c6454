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


#: real frames where, decoded without their rig, two lanes crossed and ran on into the sky (points more than 2 deg
#: above the horizon before decoding cut lanes above the row where they converge: 28, 19 and 31)
CROSSINGS = ("kitti/object_extra/training/image_2/000002.png", "CAM_BACK__", "CAM_BACK_RIGHT__")


def test_without_a_rig_lanes_stay_below_where_they_converge_on_real_frames(hz, real_data: Path) -> None:
    pytest.importorskip("torch")
    cv2 = pytest.importorskip("cv2")
    from edge.data.frame import Frame
    from edge.models import get_card
    from edge.models.checkpoint import load_model
    from edge.program import torch_program

    card = get_card("lane")
    if card.default_checkpoint is None:
        pytest.skip("no shipped checkpoint in this checkout")
    module, cfg, _ = load_model(card.default_checkpoint)
    picked = [(n, p, r) for n, p, r in hz.frames(real_data) if any(k in n for k in CROSSINGS)]
    assert len(picked) == 3
    found = {}
    with torch_program(card, module, cfg) as prog:
        for name, path, rig in picked:
            img = cv2.imread(str(path))
            prog.reset()
            fr = {"camera": Frame(img, 0, 0, "camera", {})}  # no rig: the horizon below is only the referee
            _, d = card.postprocess(prog.step(card.preprocess(fr, cfg)), fr, cfg)
            assert d["points"], name  # the lanes' lower parts stay
            found[name] = sum(hz.above(p, rig.horizon(img.shape[:2], raised_deg=2.0)) for p in d["points"])
    assert found == dict.fromkeys(found, 0)
