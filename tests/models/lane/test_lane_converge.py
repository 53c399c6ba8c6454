"""Lane decoding without a calibrated camera: no lane rises more than the card's slack above the row where the
frame's lanes converge (the vanishing point of their near parts), lanes that cross are cut above the crossing, and
nothing changes where the lanes do not converge above themselves."""

from __future__ import annotations

import numpy as np
import pytest

from edge.data.frame import Frame
from edge.models.lane import card as lane
from tests.models.lane.outputs import sharp_loc

H, W = 720, 1280


def _outputs(cfg: dict, lanes: dict[int, tuple[float, float]], rows: slice = slice(None)) -> tuple[np.ndarray, ...]:
    """Straight lanes: slot -> (grid cell at the bottom row, cells gained per unit of normalised height going up),
    on at the anchor rows ``rows``."""
    s, r, g = cfg["slots"], len(cfg["row_anchors"]), cfg["grid"]
    yn = np.asarray(cfg["row_anchors"])
    cells = np.zeros((s, r), np.int64)
    exist = np.full((s, r), -10.0, np.float32)
    for slot, (bottom, rate) in lanes.items():
        cells[slot] = np.round(bottom + rate * (yn[-1] - yn))
        exist[slot, rows] = 10.0
    return sharp_loc(cells, g), exist


def _crossing(cfg: dict, at: float) -> dict[int, tuple[float, float]]:
    """Two lanes meeting at normalised row ``at`` in the middle column and continuing past each other (an X)."""
    g, last = cfg["grid"], cfg["row_anchors"][-1]
    rate = 0.3 * g / (last - at)  # each moves 0.3 of the width between the bottom row and the crossing
    return {0: (0.2 * g, rate), 5: (0.8 * g, -rate)}  # slots 0 and 5: stacked frames' 0, 5, 6, 11 group right only by 6


def _tops(d: dict) -> dict[int, float]:
    return {s: float(p[:, 1].min()) for s, p in zip(d["slots"], d["points"], strict=True)}


@pytest.mark.parametrize("at", [0.45, 0.6])
def test_crossing_lanes_are_cut_above_where_they_meet_plus_the_slack(at: float) -> None:
    cfg = lane.CONFIGS["default"]
    loc, exist = _outputs(cfg, _crossing(cfg, at))
    ys = np.asarray(cfg["row_anchors"]) * H
    plain = lane.decode(loc, exist, cfg, (H, W), None, converge_slack=None)
    cut = lane.decode(loc, exist, cfg, (H, W), None)
    assert sorted(plain["slots"]) == sorted(cut["slots"]) == [0, 5]
    assert set(_tops(plain).values()) == {ys[0]}  # past the crossing to the first anchor row
    limit = at * H - lane.CONVERGE_SLACK * H
    step = float(np.diff(ys).max())
    for s, top in _tops(cut).items():
        assert limit - 3.0 <= top <= limit + step + 3.0, (s, top, limit)  # cells round x to 1/g of the width
        below = plain["points"][plain["slots"].index(s)]
        np.testing.assert_array_equal(cut["points"][cut["slots"].index(s)], below[below[:, 1] >= top])


def test_lanes_converging_above_the_image_or_below_themselves_keep_every_row() -> None:
    cfg = lane.CONFIGS["default"]
    g = cfg["grid"]
    for lanes in ({1: (0.3 * g, 0.25 * g), 2: (0.7 * g, -0.25 * g)},  # meet above the first anchor row
                  {1: (0.45 * g, -0.3 * g), 2: (0.55 * g, 0.3 * g)},  # spread apart going up: met below the image
                  {2: (0.5 * g, 0.6 * g)}):  # one lane: nothing to intersect
        loc, exist = _outputs(cfg, lanes)
        plain = lane.decode(loc, exist, cfg, (H, W), None, converge_slack=None)
        got = lane.decode(loc, exist, cfg, (H, W), None)
        assert got["slots"] == plain["slots"] == sorted(lanes)
        for a, b in zip(got["points"], plain["points"], strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_lane_left_with_too_few_rows_is_dropped() -> None:
    """A short lane entirely above where the others meet (a spur up a wall) goes; the others stay."""
    cfg = lane.CONFIGS["default"]
    loc, exist = _outputs(cfg, _crossing(cfg, 0.6))
    loc2, exist2 = _outputs(cfg, {2: (0.5 * cfg["grid"], 0.0)}, rows=slice(0, 6))  # rows 0-5: the top of the image
    loc[2], exist[2] = loc2[2], exist2[2]
    assert sorted(lane.decode(loc, exist, cfg, (H, W), None, converge_slack=None)["slots"]) == [0, 2, 5]
    assert sorted(lane.decode(loc, exist, cfg, (H, W), None)["slots"]) == [0, 5]


def test_the_converge_row_is_estimated_per_frame_in_a_batched_decode() -> None:
    """postprocess_many stacks several frames' slots in one decode: each frame's lanes meet at their own row."""
    cfg = lane.CONFIGS["default"]
    outs, frames = [], []
    for at in (0.45, 0.6):
        loc, exist = _outputs(cfg, _crossing(cfg, at))
        outs.append({"loc": loc[None], "exist": exist[None]})
        frames.append({"camera": Frame(np.zeros((H, W, 3), np.uint8), 0, 0, "camera", {})})
    single = [lane.postprocess(o, f, cfg)[0] for o, f in zip(outs, frames, strict=True)]
    assert [m[0] for m in lane.postprocess_many(outs, frames, cfg)] == single
    assert single[0] != single[1]


def test_converge_rows_hand_made() -> None:
    ys = np.array([100.0, 200.0, 300.0, 400.0])
    ons = np.ones((3, 4), bool)
    # x = 500 - (y - 100) / 2 and x = 700 + (y - 100) / 2 meet at y = -100; the third, x = 600, meets each there too
    xs = np.stack([500 - (ys - 100) / 2, 700 + (ys - 100) / 2, np.full(4, 600.0)])
    np.testing.assert_allclose(lane._converge_rows(xs, ons, ys, np.zeros(3, np.int64)), -100.0)
    # two frames: the second has one lane only, so it has no estimate
    np.testing.assert_allclose(lane._converge_rows(xs, ons, ys, np.array([0, 0, 1])), [-100.0, -100.0, -np.inf])
    # parallel lanes never meet
    assert np.all(np.isneginf(lane._converge_rows(np.stack([xs[2], xs[2] + 300]), ons[:2], ys, np.zeros(2, np.int64))))
    # a crossing inside the lanes' own rows counts (the rows above it are past the vanishing point)
    xs2 = np.stack([250 + (ys - 100) * 1.0, 550 - (ys - 100) * 1.0])  # meet at y = 250
    np.testing.assert_allclose(lane._converge_rows(xs2, ons[:2], ys, np.zeros(2, np.int64)), 250.0)


def test_converge_rows_takes_the_median_of_lines_through_each_lanes_lower_part() -> None:
    ys = np.arange(100.0, 700.0, 50.0)  # 12 rows
    ons = np.ones((4, 12), bool)
    one = np.zeros(4, np.int64)
    lines = [(-1.0, 740.0), (1.0, 540.0), (2.0, 440.0), (0.5, 440.0)]  # x = m y + q: the first three meet at y = 100
    xs = np.stack([m * ys + q for m, q in lines])
    met = [(q2 - q1) / (m1 - m2) for a, (m1, q1) in enumerate(lines) for m2, q2 in lines[a + 1:]]
    assert np.mean(met) != pytest.approx(np.median(met))  # 100, 100, 200, 100, 0, -300 (all above the lanes)
    np.testing.assert_allclose(lane._converge_rows(xs, ons, ys, one), np.median(met))
    # a lane bent in its upper half: only its lower half's line counts (through (640, 100), as the other lane's)
    bent = np.where(ys < 400, 340 + 3.0 * (400 - ys), 740 - ys)
    np.testing.assert_allclose(lane._converge_rows(np.stack([bent, 540 + ys]), ons[:2], ys, one[:2]), 100.0)
    # lines meeting above one lane's lowest row but below the other's say nothing
    short = ons[:2].copy()
    short[1, 6:] = False  # the second lane ends at row 350
    xs3 = np.stack([1140 - ys, 140 + ys])  # they meet at 500: above the first lane's lowest row (650), below 350
    assert np.all(np.isneginf(lane._converge_rows(xs3, short, ys, one[:2])))
