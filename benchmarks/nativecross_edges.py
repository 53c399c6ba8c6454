"""NativeCross: does a classical edge alignment after the loop fix what the network leaves? (Measured, not
adopted: see README.)

After the shipped refinement, the extrinsic is moved to maximise how well LiDAR depth discontinuities land on
image edges (Levinson & Thrun, RSS 2013, in a simple form): per frame, Canny edges of the undistorted image
and their distance transform ``exp(-d / sigma)``; per scan, the points nearer than a scan neighbour by more
than 0.5 m (the foreground side of a depth edge), weighted by the square root of the jump; the score is
their weighted mean of the edge map at their projections. A coordinate search over the se(3) increment
runs coarse to fine (sigma 24, 12, 6, 3 px), bounded to 6 deg / 30 cm from the network's estimate.
``--objective contrast`` subtracts the same mean over points of smooth surfaces (both scan neighbours within
5 cm; every 7th), so textured regions, which score high for any point, stop pulling the scan, and searches
sigma 12, 6, 3 px.

Cases (seeded starts within 10 deg / 25 cm, as ``nativecross_eval.py``):

- ``synthetic``: held-out synthetic rigs, one frame each, rotation and translation searched (``6dof``) or
  the rotation only (``rotation``);
- ``kitti_000114``: the real object frame, one frame per start;
- ``drive``: the 10-frame KITTI raw drive, the network's per-frame estimates combined as ``edge calibrate``
  does (tangent-space robust median), then the alignment over all 10 frames at once (rotation only, with
  and without a first grid search over +-6 deg at 1.5 deg steps keeping the 5 best starts).

    python benchmarks/nativecross_edges.py BUNDLE [--frames 20] [--starts 24] [--objective edges|contrast]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from real_data import REAL_DATA, add_synthetic_only, need_real  # a sibling script: $EDGE_REAL_DATA

from edge import jsonout

KITTI = REAL_DATA / "kitti"
SIGMAS = (24.0, 12.0, 6.0, 3.0)
#: search step per level: (rotation deg, translation m)
STEPS = ((2.0, 0.08), (1.0, 0.04), (0.5, 0.02), (0.25, 0.01))
MAX_DEG, MAX_M = 6.0, 0.30
#: --objective contrast: smooth-surface points subtracted, the coarsest level dropped
CONTRAST = False


def _prepare(frames: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(P, discontinuity points [n, 3], their weights, the distance to the nearest image edge)."""
    import cv2

    from edge.models.nativecross.card import camera_image

    rig = frames["camera"].meta["rig"]
    g = cv2.cvtColor(camera_image(frames["camera"].data, rig), cv2.COLOR_BGR2GRAY)
    edges = cv2.Canny(cv2.GaussianBlur(g, (3, 3), 0), 50, 150)
    dist = cv2.distanceTransform((edges == 0).astype(np.uint8), cv2.DIST_L2, 5)
    scan = frames["lidar"].data
    pts = np.stack([scan["x"], scan["y"], scan["z"]], 1).astype(np.float64)
    ring = scan["ring"].astype(np.int64)
    order = np.lexsort((np.arctan2(pts[:, 1], pts[:, 0]), ring)) if len(np.unique(ring)) > 1 else np.arange(len(pts))
    pts, ring = pts[order], ring[order]
    r = np.linalg.norm(pts, axis=1)
    az = np.arctan2(pts[:, 1], pts[:, 0])
    near = (np.abs(np.diff(az)) < np.radians(1.0)) & (ring[1:] == ring[:-1])  # scan neighbours
    jump = np.zeros(len(r))
    np.maximum.at(jump, np.flatnonzero(near), np.where(near, r[1:] - r[:-1], 0)[near])
    np.maximum.at(jump, np.flatnonzero(near) + 1, np.where(near, r[:-1] - r[1:], 0)[near])
    keep = jump > 0.5
    pe, we = pts[keep], np.sqrt(jump[keep])
    if CONTRAST:  # smooth-surface points, weighted so they subtract their mean score at the edges' total weight
        dr = np.abs(np.diff(r))
        smooth = np.zeros(len(r), bool)
        smooth[1:-1] = near[1:] & near[:-1] & (dr[1:] < 0.05) & (dr[:-1] < 0.05)
        flat = np.flatnonzero(smooth)[::7]
        pe = np.concatenate([pe, pts[flat]])
        we = np.concatenate([we, -np.full(len(flat), we.sum() / max(len(flat), 1))])
    return np.asarray(rig.P, np.float64), pe, we, dist


def _score(T: np.ndarray, data: list, sigma: float) -> float:
    from scipy.ndimage import map_coordinates

    total = 0.0
    for P, pts, w, dist in data:
        Xc = pts @ T[:3, :3].T + T[:3, 3]
        front = Xc[:, 2] > 1.0
        uvw = Xc[front] @ P[:, :3].T + P[:, 3]
        u, v = uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2]
        h, wd = dist.shape
        ok = (u >= 0) & (u < wd - 1) & (v >= 0) & (v < h - 1)
        d = map_coordinates(dist, [v[ok], u[ok]], order=1)
        total += float((np.exp(-d / sigma) * w[front][ok]).sum() / max(w[w > 0].sum(), 1e-9))
    return total / len(data)


def _within(T: np.ndarray, T_ref: np.ndarray) -> bool:
    from edge.data.se3 import inverse, log_se3

    rot = np.degrees(np.linalg.norm(log_se3(T @ inverse(T_ref))[:3]))
    return bool(rot <= MAX_DEG and np.linalg.norm(T[:3, 3] - T_ref[:3, 3]) <= MAX_M)


def _search(T: np.ndarray, data: list, dofs: range, T_ref: np.ndarray) -> np.ndarray:
    """Coordinate search over ``exp(xi) T``, coarse to fine, inside the bound around ``T_ref``."""
    from edge.data.se3 import exp_se3

    for sigma, (sd, sm) in zip(SIGMAS, STEPS, strict=True):
        def f(xi: np.ndarray, sigma: float = sigma, T: np.ndarray = T) -> float:
            Tn = exp_se3(xi) @ T
            return _score(Tn, data, sigma) if _within(Tn, T_ref) else -1.0

        xi = np.zeros(6)
        best = f(xi)
        scale = np.array([np.radians(sd)] * 3 + [sm] * 3)
        for _ in range(4):
            moved = True
            while moved:
                moved = False
                for k in dofs:
                    for s in (1.0, -1.0):
                        c = xi.copy()
                        c[k] += s * scale[k]
                        v = f(c)
                        if v > best:
                            best, xi, moved = v, c, True
            scale = scale / 2
        T = exp_se3(xi) @ T
    return T


def _grid_search(T: np.ndarray, data: list, top: int = 5, step_deg: float = 1.5) -> np.ndarray:
    """Rotations on a grid within the bound scored at the coarsest sigma; the ``top`` best searched to the
    finest; the best there."""
    from edge.data.se3 import exp_se3

    g = np.radians(np.arange(-MAX_DEG, MAX_DEG + 1e-9, step_deg))
    starts = sorted(((_score(exp_se3(np.array([a, b, c, 0, 0, 0])) @ T, data, SIGMAS[0]), a, b, c)
                     for a in g for b in g for c in g), reverse=True)[:top]
    ends = [_search(exp_se3(np.array([a, b, c, 0, 0, 0])) @ T, data, range(3), T) for _, a, b, c in starts]
    return max(ends, key=lambda Te: _score(Te, data, SIGMAS[-1]))


def _truth(frames: dict[str, Any]) -> np.ndarray:
    return np.asarray(frames["camera"].meta["rig_true"].T_lidar_to_cam, np.float64)


def _summary(rows: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    from edge.models.nativecross.metrics import summarize

    out = {}
    for k, v in rows.items():
        e = np.asarray(v, np.float64)
        out[k] = {**summarize(e[:, 0], e[:, 1]), "rot_median_deg": float(np.median(e[:, 0])),
                  "trans_median_cm": float(np.median(e[:, 1]))}
    base = np.asarray(rows["network"])[:, 0]
    for k, v in rows.items():
        if k not in ("start", "network"):
            out[k]["rot_better_than_network"] = int((np.asarray(v)[:, 0] < base).sum())
    return out


def _single(card: Any, cfg: dict[str, Any], runner: Any, samples: list) -> dict[str, Any]:
    from edge.models.nativecross.metrics import pose_errors

    rows: dict[str, list] = {"start": [], "network": [], "6dof": [], "rotation": []}
    t = time.perf_counter()
    for sample in samples:
        frames = sample[0]
        Tt = _truth(frames)
        feeds = card.preprocess(frames, cfg)
        T = np.asarray(runner.step(feeds)["T"][0], np.float64)
        data = [_prepare(frames)]
        for k, X in (("start", np.asarray(feeds["T"][0], np.float64)), ("network", T),
                     ("6dof", _search(T, data, range(6), T)), ("rotation", _search(T, data, range(3), T))):
            rows[k].append(pose_errors(X, Tt))
    return {"samples": len(samples), **_summary(rows), "seconds": round(time.perf_counter() - t, 1)}


def _drive(card: Any, cfg: dict[str, Any], runner: Any, starts: int) -> dict[str, Any]:
    from edge.data.se3 import robust_mean
    from edge.models.nativecross.metrics import pose_errors
    from edge.models.nativecross.samples import kitti_samples

    drive = KITTI / "raw_2011_09_26" / "2011_09_26"
    per = [kitti_samples(drive, f"{i:010d}", starts, 10.0, 0.25, seed=0) for i in range(10)]
    rows: dict[str, list] = {"start": [], "network": [], "rotation": [], "rotation_grid": []}
    t = time.perf_counter()
    for j in range(starts):
        frames = [per[i][j][0] for i in range(10)]
        Tt = _truth(frames[0])
        ests = np.stack([np.asarray(runner.step(card.preprocess(f, cfg))["T"][0], np.float64) for f in frames])
        T, _, _ = robust_mean(ests, ests[0])
        data = [_prepare(f) for f in frames]
        for k, X in (("start", np.asarray(frames[0]["camera"].meta["rig"].T_lidar_to_cam, np.float64)),
                     ("network", T), ("rotation", _search(T, data, range(3), T)),
                     ("rotation_grid", _grid_search(T, data))):
            rows[k].append(pose_errors(X, Tt))
    return {"starts": starts, "frames": 10, **_summary(rows), "seconds": round(time.perf_counter() - t, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--frames", type=int, default=20, help="synthetic rigs / KITTI 000114 starts")
    ap.add_argument("--starts", type=int, default=24, help="seeded starts on the 10-frame drive")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--objective", choices=("edges", "contrast"), default="edges")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "nativecross_edges.json")
    add_synthetic_only(ap)
    args = ap.parse_args()
    obj = KITTI / "object" / "training"
    if not args.synthetic_only:  # before any work: the KITTI rows are half of the table
        need_real(obj / "calib" / "000114.txt", "KITTI 000114")
        if args.starts:
            need_real(KITTI / "raw_2011_09_26", "the KITTI raw drive")
    global CONTRAST, SIGMAS, STEPS
    if args.objective == "contrast":
        CONTRAST, SIGMAS, STEPS = True, SIGMAS[1:], STEPS[1:]

    import edge
    from edge.bench.machine import machine
    from edge.files import atomic_write_text
    from edge.models.nativecross.samples import kitti_samples
    from edge.program import load_program

    b = edge.Bundle.load(args.bundle)
    card = edge.get_card(b.family)
    cfg = dict(b.manifest["model"]["config"])
    report: dict[str, Any] = {"bundle": str(args.bundle), "backend": args.backend, "objective": args.objective,
                              "sigmas_px": SIGMAS,
                              "bound": {"deg": MAX_DEG, "m": MAX_M}, "machine": machine(), "cases": {}}
    with load_program(b, args.backend) as prog:
        cases = {"synthetic_10deg_25cm": lambda: _single(card, cfg, prog.runner, card.data.samples(
            {**cfg, "eval_max_deg": 10.0, "eval_max_m": 0.25}, "evaluation", args.frames, 0))}
        if not args.synthetic_only:
            cases["kitti_000114_10deg_25cm"] = lambda: _single(card, cfg, prog.runner, kitti_samples(
                obj, "000114", args.frames, 10.0, 0.25, seed=0))
        if not args.synthetic_only and args.starts:
            cases["kitti_drive_10_frames_10deg_25cm"] = lambda: _drive(card, cfg, prog.runner, args.starts)
        for name, make in cases.items():
            res = report["cases"][name] = make()
            print(name)
            for k, s in res.items():
                if isinstance(s, dict):
                    print(f"  {k:>14}: rot RMSE {s['rot_rmse_deg']:5.2f} deg (median {s['rot_median_deg']:5.2f}), "
                          f"trans RMSE {s['trans_rmse_cm']:5.1f} cm (median {s['trans_median_cm']:5.1f}), "
                          f"L2 {s['l2_rate']:4.1f} %"
                          + (f", rotation better than the network's in {s['rot_better_than_network']}"
                             if "rot_better_than_network" in s else ""))
    atomic_write_text(args.out, jsonout.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
