"""Metrics on hand-made cases with known answers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edge.models.pulsar.metrics import box_point_counts, confusion, erased_object_recovery, frame_counts, reduce_counts


def test_point_recovery_on_a_hand_made_frame() -> None:
    nan = np.nan
    true = np.array([[10, 20, 30, 40, 50], [60, 70, 80, 90, 100], [nan, nan, nan, nan, nan]])
    pred = np.array([[10.1, 20.0, 30.29, 41.0, nan],  # 3 within 0.3 m, one 1 m off (fake), one missing
                     [60.2, 69.75, 80.0, 95.0, 100.0],  # 4 within, one 5 m off (fake)
                     [12.0, nan, 7.0, nan, nan]])  # 2 points where there is nothing (fake)
    c = frame_counts(pred, true)
    assert c["real"] == 10 and c["recovered"] == 7 and c["fake"] == 4
    r = reduce_counts([c, frame_counts(true, true)])
    assert r["value"] == pytest.approx(100 * 17 / 20) and r["fake_per_frame"] == pytest.approx(2.0)
    errs = np.array([0.1, 0.0, 0.29, 0.2, 0.25, 0.0, 0.0] + [0.0] * 10)
    assert r["range_mae_m"] == pytest.approx(errs.mean())
    assert r["range_rmse_m"] == pytest.approx(np.sqrt((errs**2).mean()))
    region = np.zeros_like(true, bool)
    region[0] = True
    assert frame_counts(pred, true, region)["recovered"] == 3


def test_a_ratio_over_nothing_is_not_a_number() -> None:
    """A review: no point recovered reported a range error of 0.0 m (exact ranging), and a truth without a real
    return a point recovery of 0.0 %: each is NaN, as an IoU class without a cell is."""
    none_recovered = reduce_counts([frame_counts(np.full((2, 2), np.nan), np.full((2, 2), 10.0))])
    assert none_recovered["value"] == 0.0 and none_recovered["point_recovery"] == 0.0
    assert np.isnan(none_recovered["range_mae_m"]) and np.isnan(none_recovered["range_rmse_m"])
    no_truth = reduce_counts([frame_counts(np.full((2, 2), 5.0), np.full((2, 2), np.nan))])
    assert np.isnan(no_truth["value"]) and np.isnan(no_truth["point_recovery"])
    assert no_truth["fake_per_frame"] == 4.0


def test_confusion_and_iou() -> None:
    t = np.array([[0, 0, 1, 1, 2, 2]])
    p = np.array([[0, 1, 1, 1, 2, 0]])
    cm = confusion(p, t)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    r = reduce_counts([{"real": 1.0, "recovered": 1.0, "confusion": cm.ravel().tolist(), "frames": 1.0}])
    assert r["iou"] == {"background": pytest.approx(1 / 3), "echo": pytest.approx(2 / 3), "attack": pytest.approx(0.5)}


def test_box_counts_respect_rotation_and_height() -> None:
    # identity rig: camera frame = LiDAR frame; a 4 x 2 m box (y down, bottom at y=1) rotated 90 deg
    box = SimpleNamespace(dimensions=(1.5, 2.0, 4.0), location=(0.0, 1.0, 10.0), rotation_y=np.pi / 2)
    pts = np.array([[0.0, 0.5, 11.5],  # along the (rotated) length: inside
                    [1.5, 0.5, 10.0],  # across: 1.5 > width/2: outside
                    [0.0, -0.6, 10.0],  # above the roof (height 1.5 up from y=1): outside
                    [0.9, 0.9, 10.0]])  # inside
    assert box_point_counts(pts, [box], np.eye(4)).tolist() == [2]


def test_erased_object_recovery() -> None:
    clean, attacked, defended = [12, 30, 4, 8], [0, 29, 0, 2], [9, 30, 0, 3]
    assert erased_object_recovery(clean, attacked, defended) == {"objects": 4, "erased": 2, "recovered": 1,
                                                                 "recovery": 0.5}
