"""Extrinsic-calibration metrics, as the NativeCross paper reports them (numpy only).

Per frame: the rotation error (geodesic angle between estimated and true rotation, degrees) and the
translation error (distance between the translation parts, cm). Over frames: their RMSE and mean, and
the L1 rate (rotation < 1 deg and translation < 2.5 cm) and L2 rate (< 2 deg and < 5 cm) in percent.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.data.se3 import rotation_error_deg, translation_error_m

L1 = (1.0, 2.5)  # deg, cm
L2 = (2.0, 5.0)


def pose_errors(T_est: np.ndarray, T_true: np.ndarray) -> tuple[float, float]:
    """(rotation error in degrees, translation error in cm) of one estimate."""
    return float(rotation_error_deg(T_est, T_true)), float(translation_error_m(T_est, T_true) * 100.0)


def summarize(rot_deg: np.ndarray | list[float], trans_cm: np.ndarray | list[float]) -> dict[str, Any]:
    """RMSE, mean, median, L1/L2 rates of per-frame errors; ``value`` is the L2 rate (the gate's metric)."""
    r, t = np.asarray(rot_deg, np.float64), np.asarray(trans_cm, np.float64)
    if not len(r):
        return {"value": 0.0, "frames": 0}
    l1 = float(np.mean((r < L1[0]) & (t < L1[1])) * 100)
    l2 = float(np.mean((r < L2[0]) & (t < L2[1])) * 100)
    return {"value": l2, "l2_rate": l2, "l1_rate": l1,
            "rot_rmse_deg": float(np.sqrt(np.mean(r * r))), "trans_rmse_cm": float(np.sqrt(np.mean(t * t))),
            "rot_mean_deg": float(r.mean()), "trans_mean_cm": float(t.mean()),
            "rot_median_deg": float(np.median(r)), "trans_median_cm": float(np.median(t)), "frames": len(r)}


def fold_items(items: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Frames' errors (or folds of them) as one item: the errors as float64 arrays, ``errors`` [n, 4] (rotation,
    translation, and both before refinement) and ``per_iter`` [n, k, 2] over the k iterations every item has (the
    card's metric fold: the summary takes medians, so it needs every frame's numbers, ~100 bytes each this way
    against ~1 KB as a record's dict)."""
    rows, iters = [], []
    for i in items:
        if i is None:
            continue
        if "errors" in i:  # folded before
            rows.append(np.asarray(i["errors"], np.float64).reshape(-1, 4))
            iters.append(np.asarray(i["per_iter"], np.float64))
        else:
            rows.append(np.asarray([[i["rot_deg"], i["trans_cm"], i["rot_deg_before"], i["trans_cm_before"]]],
                                   np.float64))
            iters.append(np.asarray(i["per_iter"], np.float64).reshape(1, -1, 2))
    iters = [a for a, r in zip(iters, rows, strict=True) if len(r)]  # a fold of no frames bounds no iteration count
    if not iters:
        return {"errors": np.zeros((0, 4)), "per_iter": np.zeros((0, 0, 2))}
    k = min(a.shape[1] for a in iters)
    return {"errors": np.concatenate(rows), "per_iter": np.concatenate([a[:, :k] for a in iters])}


def reduce_items(items: list[dict[str, Any] | None]) -> dict[str, Any]:
    """The card's metric reduce: the summary after refinement, before it, and after each iteration."""
    f = fold_items(items)
    e, it = f["errors"], f["per_iter"]
    out = summarize(e[:, 0], e[:, 1])
    if len(e):
        out["before"] = summarize(e[:, 2], e[:, 3])
        out["per_iteration"] = [summarize(it[:, k, 0], it[:, k, 1]) for k in range(it.shape[1])]
    return out
