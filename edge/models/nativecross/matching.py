"""NativeCross's local matching stage, on the host (numpy): crops for the ``match`` graph and the pose solve
from what it predicts.

Why a second stage: the ``step`` graph corrects rotation but not translation. A 25 cm error moves a group's
centre a few pixels of the model's 384x128 input, and flows read from stride-8 patch tokens miss by more
than that (benchmarks/nativecross_flows.py). The matcher reads, for each group, a small crop of the camera
image at twice that resolution (``match_hw``) together with the sparse inverse depth of the scan projected
under the current guess, centred where the guess puts the group's centre, and predicts where the centre
truly lands (px) with a Laplace scale. A weighted, Huber-robust Gauss-Newton solve over all six degrees of
freedom turns the surer half of those landings into a new extrinsic; the program repeats it
``match_rounds`` times, cutting new crops under each new guess, and stops at the first round whose landings are
not sure enough (:func:`confident`): the guess stays where the last sure round left it.

Crops are cut here rather than in the graph so the graph stays a static batch of small convolutions that
every backend runs and INT8 quantizes; everything is deterministic for a given frame and guess.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: a crop's channels: the image's three (x / 255) and 4 / depth (m) of the nearest scan point at each pixel
CHANNELS = 4
#: the solve's Huber threshold (px at ``match_hw``) and Gauss-Newton iterations
HUBER_PX = 3.0
SOLVE_ITERS = 10


def _project(xyz: np.ndarray, T: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uv [N, 2] px, depth [N] m) of LiDAR points under ``T`` and ``P`` (one behind the camera: a finite,
    meaningless uv; callers check the depth)."""
    from edge.data.rig import pinhole

    c, p = pinhole(xyz, T, P)
    return p[:, :2] / np.maximum(p[:, 2:3], 1e-6), c[:, 2]


def crops(image: np.ndarray, scan: np.ndarray, centres: np.ndarray, T: np.ndarray, P: np.ndarray, crop: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x [G, 4, crop, crop] float32, valid [G] bool, base [G, 2] px)``: for each group centre that ``T`` puts
    in front of the camera and inside ``image`` (BGR uint8 at the matcher's size, projection ``P``), the crop
    centred on its rounded projection ``base``; the others are zeros and not ``valid``."""
    from numpy.lib.stride_tricks import sliding_window_view

    h, w = image.shape[:2]
    m = crop
    uv, z = _project(np.asarray(scan, np.float64), T, P)
    ok = (z > 1.0) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    # the image padded in uint8 and the depth in its own plane: only the crops are converted to float (a float
    # canvas of the whole frame, filled and scaled every round, took two thirds of a round's host time)
    pad = np.zeros((h + 2 * m, w + 2 * m, 3), np.uint8)
    pad[m:-m, m:-m] = image
    depth = np.zeros((h + 2 * m, w + 2 * m), np.float32)
    zo = z[ok]
    order = np.argsort(-zo, kind="stable")  # far first: the nearest point at a pixel is written last
    depth[uv[ok, 1].astype(np.int64)[order] + m, uv[ok, 0].astype(np.int64)[order] + m] = 4.0 / zo[order]
    c, zc = _project(np.asarray(centres, np.float64), T, P)
    valid = (zc > 1.0) & (c[:, 0] >= 0) & (c[:, 0] < w) & (c[:, 1] >= 0) & (c[:, 1] < h)
    base = np.where(valid[:, None], np.round(np.nan_to_num(c)), 0.0)
    x = np.zeros((len(c), CHANNELS, m, m), np.float32)
    idx = np.flatnonzero(valid)
    if len(idx):
        top = base[idx].astype(np.int64) + m - m // 2  # [K, 2] (u, v) of each crop's first pixel
        got = np.empty((len(idx), CHANNELS, m, m), np.float32)
        got[:, :3] = sliding_window_view(pad, (m, m), axis=(0, 1))[top[:, 1], top[:, 0]]  # [K, 3, m, m]
        got[:, :3] *= 1.0 / 255.0
        got[:, 3] = sliding_window_view(depth, (m, m))[top[:, 1], top[:, 0]]
        x[idx] = got
    return x, valid, base


def solve(X: np.ndarray, target: np.ndarray, weight: np.ndarray, T0: np.ndarray, P: np.ndarray,
          iters: int = SOLVE_ITERS, huber: float = HUBER_PX) -> np.ndarray:
    """The extrinsic near ``T0`` that projects LiDAR points ``X`` [N, 3] onto ``target`` [N, 2] px: weighted,
    Huber-robust Gauss-Newton on a left se(3) increment (float64). Exact from exact targets; a point behind
    the camera under the current guess counts nothing in that iteration."""
    from edge.data.rig import pinhole
    from edge.data.se3 import exp_se3, hat

    T = np.asarray(T0, np.float64).copy()
    X = np.asarray(X, np.float64)
    for _ in range(iters):
        c, p = pinhole(X, T, P)
        front = p[:, 2] > 1e-3
        zp = np.where(front, p[:, 2], 1.0)
        uv = p[:, :2] / zp[:, None]
        r = target - uv
        dpdc = (P[None, :2, :3] - uv[:, :, None] * P[None, 2:3, :3]) / zp[:, None, None]  # [N, 2, 3]
        dcdxi = np.concatenate([-hat(c), np.broadcast_to(np.eye(3), (len(X), 3, 3))], 2)
        J = dpdc @ dcdxi
        e = np.linalg.norm(r, axis=1)
        k = np.where(e < huber, 1.0, huber / np.maximum(e, 1e-9)) * weight * front
        A = np.einsum("n,nij,nik->jk", k, J, J) + 1e-6 * np.eye(6)
        T = exp_se3(np.linalg.solve(A, np.einsum("n,nij,ni->j", k, J, r))) @ T
    return T


def _scales(out: np.ndarray, idx: np.ndarray, cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(sigma px, surest)`` of the groups ``idx``: each one's predicted Laplace scale, and the mask of the surest
    ``match_keep`` of them (the share both the stop rule and the solve read)."""
    sigma = np.exp(np.clip(np.asarray(out, np.float64)[idx, 2], -4.0, 3.0)) * float(cfg["match_scale"])
    return sigma, sigma <= np.quantile(sigma, float(cfg["match_keep"]))


def confident(out: np.ndarray, valid: np.ndarray, cfg: dict[str, Any]) -> bool:
    """Whether a round's landings are sure enough to move the extrinsic: the median predicted scale (px) of the
    surest ``match_keep`` of the valid groups is at most ``match_max_sigma`` (0: always). Why: the matcher sees only
    its crops' half width; where the guess is further off than that (a real frame the steps left degrees away) it
    still predicts landings, but less surely, and each round then moved the guess further off. Fewer than 6
    valid groups is not confident either (:func:`update` would not move)."""
    idx = np.flatnonzero(valid)
    if len(idx) < 6:
        return False
    limit = float(cfg.get("match_max_sigma", 0.0))
    if limit <= 0:
        return True
    sigma, surest = _scales(out, idx, cfg)
    return bool(np.median(sigma[surest]) <= limit)


def update(out: np.ndarray, valid: np.ndarray, base: np.ndarray, centres: np.ndarray, T: np.ndarray,
           P: np.ndarray, cfg: dict[str, Any]) -> np.ndarray:
    """The new extrinsic from one round of the matcher's outputs ``out`` [G, 3] (flow / ``match_scale`` px,
    log scale): the surest ``match_keep`` of the valid groups, each weighted by 1 / sigma^2. Fewer than 6
    valid groups (not enough to fix six degrees of freedom) leave ``T`` as it is."""
    idx = np.flatnonzero(valid)
    if len(idx) < 6:
        return np.asarray(T, np.float64)
    sigma, keep = _scales(out, idx, cfg)
    if keep.sum() < 6:
        keep = np.argsort(sigma, kind="stable")[:6]
    target = base[idx] + np.asarray(out, np.float64)[idx, :2] * float(cfg["match_scale"])
    return solve(np.asarray(centres, np.float64)[idx][keep], target[keep], 1.0 / sigma[keep] ** 2, T, P)
