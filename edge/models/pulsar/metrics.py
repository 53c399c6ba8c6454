"""How well a defence brings back the real point cloud: per-frame counts that add up over frames.

- point recovery: real returns (cells with a true range) for which the method outputs a range within
  0.3 m of the truth, over all real returns;
- range MAE / RMSE of the recovered ones;
- surviving fake points: output points that are not a recovered real return (per frame);
- per-class IoU of the bin labels (background, echo, attack), where a model labelled the bins;
- erased-object recovery: of the objects of a KITTI label file that the attack erased (a clean frame
  puts >= 5 points in the box, the undefended attacked frame fewer than 5), the share a defence brings
  back to >= 5 points.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TOLERANCE_M = 0.3
MIN_OBJECT_POINTS = 5


def frame_counts(pred_m: np.ndarray, true_m: np.ndarray, region: np.ndarray | None = None,
                 tol: float = TOLERANCE_M) -> dict[str, float]:
    """Counts for one frame (optionally only within ``region``, e.g. the attack cone)."""
    pred, true = np.asarray(pred_m, np.float64), np.asarray(true_m, np.float64)
    sel = np.ones(true.shape, bool) if region is None else np.asarray(region, bool)
    real = np.isfinite(true) & sel
    err = np.abs(pred - true)
    rec = real & np.isfinite(pred) & (err <= tol)
    fake = np.isfinite(pred) & sel & ~rec
    e = err[rec]
    return {"real": float(real.sum()), "recovered": float(rec.sum()), "fake": float(fake.sum()),
            "abs_err": float(e.sum()), "sq_err": float((e * e).sum()), "frames": 1.0}


def confusion(pred_labels: np.ndarray, true_labels: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """3x3 counts [true, predicted] of bin labels [..., T] over the waveforms ``mask`` [...] selects."""
    t, p = np.asarray(true_labels), np.asarray(pred_labels)
    if mask is not None:
        t, p = t[np.asarray(mask, bool)], p[np.asarray(mask, bool)]
    code = t.astype(np.uint8) * np.uint8(3) + p.astype(np.uint8)  # stays 1 byte per bin (frames are ~23M bins)
    return np.bincount(code.ravel(), minlength=9)[:9].reshape(3, 3).astype(np.float64)


def sum_counts(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Frames' counts (or sums of them) as one item: their sums (the card's metric fold)."""
    tot: dict[str, Any] = {}
    for it in items:
        for k, v in it.items():
            tot[k] = tot.get(k, 0) + (np.asarray(v, np.float64) if isinstance(v, list) else v)
    return tot


def reduce_counts(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum frames' counts into the reported numbers (value = point recovery in %). A ratio over nothing is NaN, as
    an IoU class without a cell is: a truth without a real return has no recovery to report (it said 0.0 %), and
    no point recovered has no range error (it said 0.0 m, exact ranging)."""
    tot = sum_counts(items)
    real, rec = tot.get("real", 0.0), tot.get("recovered", 0.0)
    nan = float("nan")
    out: dict[str, Any] = {"value": 100.0 * rec / real if real else nan, "point_recovery": rec / real if real else nan,
                           "range_mae_m": tot.get("abs_err", 0.0) / rec if rec else nan,
                           "range_rmse_m": float(np.sqrt(tot.get("sq_err", 0.0) / rec)) if rec else nan,
                           "fake_per_frame": tot.get("fake", 0.0) / max(tot.get("frames", 1.0), 1.0),
                           "frames": int(tot.get("frames", 0))}
    if "confusion" in tot:
        cm = np.asarray(tot["confusion"], np.float64).reshape(3, 3)
        inter = np.diag(cm)
        union = cm.sum(0) + cm.sum(1) - inter
        out["iou"] = {name: float(inter[i] / union[i]) if union[i] else float("nan")
                      for i, name in enumerate(("background", "echo", "attack"))}
    return out


def box_point_counts(xyz_velo: np.ndarray, boxes: list[Any], velo_to_rect: np.ndarray) -> np.ndarray:
    """Points (LiDAR frame) inside each KITTI 3-D box (camera-rectified frame, bottom-centred)."""
    p = np.asarray(xyz_velo, np.float64).reshape(-1, 3)
    cam = p @ velo_to_rect[:3, :3].T + velo_to_rect[:3, 3]
    out = np.zeros(len(boxes), np.int64)
    for i, b in enumerate(boxes):
        d = cam - np.asarray(b.location)
        c, s = np.cos(b.rotation_y), np.sin(b.rotation_y)
        x = c * d[:, 0] - s * d[:, 2]  # into the object's frame (rotation about the camera's y axis)
        z = s * d[:, 0] + c * d[:, 2]
        h, w, ln = b.dimensions
        inside = (np.abs(x) <= ln / 2) & (np.abs(z) <= w / 2) & (d[:, 1] <= 0) & (d[:, 1] >= -h)
        out[i] = int(inside.sum())
    return out


def erased_object_recovery(clean: np.ndarray, attacked: np.ndarray, defended: np.ndarray,
                           min_points: int = MIN_OBJECT_POINTS) -> dict[str, Any]:
    """Point counts per object (clean, undefended attacked, defended) -> erased objects and recoveries."""
    erased = (np.asarray(clean) >= min_points) & (np.asarray(attacked) < min_points)
    back = erased & (np.asarray(defended) >= min_points)
    return {"objects": len(clean), "erased": int(erased.sum()), "recovered": int(back.sum()),
            "recovery": float(back.sum() / erased.sum()) if erased.any() else float("nan")}
