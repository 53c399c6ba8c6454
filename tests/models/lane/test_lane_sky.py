"""Lane decoding with a camera's horizon: no lane above a rig's horizon (raised by the card's allowance), lanes left
too short dropped, and no change at all without a rig."""

from __future__ import annotations

import numpy as np
import pytest

from edge.data.frame import Frame
from edge.data.rig import Rig
from edge.models.lane import card as lane
from tests.models.lane.outputs import sharp_loc

LEVEL = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


def _outputs(cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    """Two straight lanes over every anchor row, and a short one near the top (rows 2-5)."""
    s, r, g = cfg["slots"], len(cfg["row_anchors"]), cfg["grid"]
    yn = np.asarray(cfg["row_anchors"])
    cells = np.zeros((s, r), np.int64)
    cells[1] = np.round(28 - 20 * yn)
    cells[2] = np.round(36 + 20 * yn)
    cells[4] = 30
    exist = np.full((s, r), -10.0, np.float32)
    exist[1] = exist[2] = 10.0
    exist[4, 2:6] = 10.0
    return sharp_loc(cells, g), exist


def test_rows_beyond_the_sky_line_are_off_and_too_short_lanes_dropped() -> None:
    cfg = lane.CONFIGS["default"]
    loc, exist = _outputs(cfg)
    ys = np.asarray(cfg["row_anchors"]) * 720
    plain = lane.decode(loc, exist, cfg, (720, 1280), None)
    cut = lane.decode(loc, exist, cfg, (720, 1280), None, sky=(0.0, -1.0, 300.0))  # beyond: y < 300
    assert sorted(plain["slots"]) == [1, 2, 4] and sorted(cut["slots"]) == [1, 2]  # lane 4 lies above 300
    for s in (1, 2):
        kept = cut["points"][cut["slots"].index(s)]
        assert kept[:, 1].min() >= 300 and len(kept) == int((ys >= 300).sum())
        np.testing.assert_array_equal(kept, plain["points"][plain["slots"].index(s)][-len(kept):])
    # a tilted horizon cuts by column: the lane on the left keeps rows the right one loses
    tilt = lane.decode(loc, exist, cfg, (720, 1280), None, sky=(0.1, -1.0, 300.0 - 64.0))
    tops = {s: tilt["points"][tilt["slots"].index(s)][:, 1].min() for s in (1, 2)}
    assert tops[1] < tops[2]


def _frame(rig: Rig | None) -> dict[str, Frame]:
    return {"camera": Frame(np.zeros((375, 1242, 3), np.uint8), 0, 0, "camera", {} if rig is None else {"rig": rig})}


def test_postprocess_keeps_lanes_under_the_rig_horizon_plus_the_allowance() -> None:
    cfg = lane.CONFIGS["default"]
    loc, exist = _outputs(cfg)
    out = {"loc": loc[None], "exist": exist[None]}
    T = np.eye(4)
    T[:3, :3] = LEVEL
    K = np.array([[721.5, 0, 609.6], [0, 721.5, 172.9], [0, 0, 1]])
    rig = Rig(np.hstack([K, np.zeros((3, 1))]), T, (375, 1242))
    rec0, d0 = lane.postprocess(out, _frame(None), cfg)
    rec1, d1 = lane.postprocess(out, _frame(rig), cfg)
    limit = 172.9 - 721.5 * np.tan(np.radians(lane.HORIZON_SLACK_DEG))  # the row the allowance reaches
    assert min(p[:, 1].min() for p in d0["points"]) < limit
    top = min(p[:, 1].min() for p in d1["points"])
    assert limit <= top < 172.9 - 10  # cut at the allowance, not at the horizon itself
    assert rec0 == lane.postprocess(out, _frame(None), cfg)[0]  # without a rig: decoding as before
    # the batched path gives each step what postprocess gives it, rig or not
    many = lane.postprocess_many([out, out], [_frame(rig), _frame(rig)], cfg)
    assert [m[0] for m in many] == [rec1, rec1]
    mixed = lane.postprocess_many([out, out], [_frame(None), _frame(rig)], cfg)
    assert [m[0] for m in mixed] == [rec0, rec1]


@pytest.mark.parametrize("slack", [0.0, 2.0, 5.0])
def test_the_sky_line_is_the_horizon_raised_by_the_allowance(slack: float) -> None:
    T = np.eye(4)
    T[:3, :3] = LEVEL
    K = np.array([[700.0, 0, 600], [0, 700.0, 180], [0, 0, 1]])
    cam = _frame(Rig(np.hstack([K, np.zeros((3, 1))]), T, (360, 1200)))["camera"]  # the frame is 375x1242
    a, b, c = lane.sky_line(cam, slack)
    row = -c / b  # a level camera: a horizontal line
    assert a == pytest.approx(0.0, abs=1e-12)
    assert row == pytest.approx((180.0 - 700.0 * np.tan(np.radians(slack))) * 375 / 360)
    assert lane.sky_line(_frame(None)["camera"]) is None


def test_a_camera_upside_down_keeps_continued_tails_out_of_its_sky() -> None:
    """Rolled 180 degrees, the sky is the image's bottom: the rows there are off, and completion, which continues
    each lane a little towards the bottom, does not put points back beyond the line."""
    cfg = lane.CONFIGS["default"]
    loc, exist = _outputs(cfg)
    out = {"loc": loc[None], "exist": exist[None]}
    T = np.eye(4)
    T[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ LEVEL  # rolled 180 degrees about the optical axis
    K = np.array([[721.5, 0, 609.6], [0, 721.5, 172.9], [0, 0, 1]])
    cam = _frame(Rig(np.hstack([K, np.zeros((3, 1))]), T, (375, 1242)))
    a, b, c = lane.sky_line(cam["camera"])
    assert b > 0  # larger rows are beyond it
    _, d = lane.postprocess(out, cam, cfg)
    pts = np.concatenate(d["points"])
    assert len(d["points"]) >= 2 and (a * pts[:, 0] + b * pts[:, 1] + c <= 0).all()
    assert pts[:, 1].max() > 172.9  # the allowance: rows a little into the lower half stay
