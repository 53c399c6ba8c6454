"""Synthetic lane clips: determinism, label geometry, lane changes, labels on painted markings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("cv2")

from edge.models.lane import synthetic as syn


def test_shapes_and_determinism() -> None:
    a = syn.generate_clip(np.random.default_rng(5), height=128, width=256, frames=4)
    b = syn.generate_clip(np.random.default_rng(5), height=128, width=256, frames=4)
    assert a.frames.shape == (4, 128, 256, 3) and a.frames.dtype == np.uint8
    assert a.lanes.shape == (4, 6, 56)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.lanes, b.lanes)
    c = syn.generate_clip(np.random.default_rng(6), height=128, width=256, frames=4)
    assert not np.array_equal(a.frames, c.frames)


def test_label_values_valid_and_variety() -> None:
    rng = np.random.default_rng(0)
    counts = []
    for _ in range(40):
        clip = syn.generate_clip(rng, height=72, width=128, frames=2)
        lanes = clip.lanes
        assert np.all((lanes == syn.ABSENT) | ((lanes >= 0) & (lanes < 128)))
        counts.append(int(((lanes[-1] >= 0).sum(-1) >= 2).sum()))
    assert min(counts) >= 1 and max(counts) >= 4  # 2-5 painted lines, some off-image


def _clean_scene(seed: int, frames: int = 3) -> syn._Scene:
    sc = syn._sample_scene(np.random.default_rng(seed), frames)
    return dataclasses.replace(sc, shadows=[], vehicles=[], noise=0.0, dashed=[False] * sc.n_lines,
                               bright=[0.0] * frames, contrast=1.0, n_lines=3, ego_lane=0, road_gray=90,
                               line_color=[(255, 255, 255)] * 3, lat0=0.0, lat_rate=0.0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_labels_lie_on_painted_lines(seed: int) -> None:
    """Exact labels: the rendered pixel under each labelled point is lane paint, not asphalt."""
    h, w = 360, 640
    sc = _clean_scene(seed)
    img = syn._render(sc, 0, h, w, np.random.default_rng(0)).astype(np.float32).mean(-1)
    rows = np.arange(int(sc.horizon * h) + 40, h, 8)
    labels = syn.lane_labels(sc, 0, h, w, rows, 6)
    hits = []
    for s in range(6):
        for x, y in zip(labels[s], rows):
            if x >= 0:
                xi = int(np.rint(x))
                hits.append(img[y, xi - 1 : xi + 2].max())
    assert len(hits) >= 10
    assert np.median(hits) > 180  # paint is white (255), road is ~90


def test_lane_change_moves_lines_between_slots() -> None:
    """Drifting one lane width to the right over the clip shifts every line one slot to the left."""
    frames = 5
    sc = _clean_scene(4, frames)
    sc = dataclasses.replace(sc, n_lines=4, ego_lane=1, lat0=0.0, lat_rate=sc.width_m / (frames - 1),
                             line_color=[(255, 255, 255)] * 4, dashed=[False] * 4, curv=0.0, heading=0.0,
                             curv_rate=0.0)
    rows = np.array([int(0.6 * 256)])
    first = syn.lane_labels(sc, 0, 256, 512, rows, 6)[:, 0]
    last = syn.lane_labels(sc, frames - 1, 256, 512, rows, 6)[:, 0]
    present_first = set(np.flatnonzero(first >= 0))
    present_last = set(np.flatnonzero(last >= 0))
    assert 3 in present_first  # first line right of the camera
    # the line that was R1 (slot 3, half a lane right of centre) is now L1 (slot 2, half a lane left)
    assert 2 in present_last and 3 in present_last
    assert abs((first[3] - 256) - (256 - last[2])) < 5
    # and the line that was R2 (slot 4) is now R1 (slot 3), at the position R1 had
    assert 4 in present_first and abs(last[3] - first[3]) < 5
