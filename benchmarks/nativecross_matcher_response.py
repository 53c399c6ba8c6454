"""What limits NativeCross's matching stage: how much landing noise the pose solve tolerates, and how the
matcher's landings respond to the true ones.

1. The solve alone: held-out synthetic rigs (768x256, the experiment's protocol: the truth perturbed within
   ``--deg`` / ``--cm`` per axis, about what the steps leave), every valid group given its true landing plus
   independent noise (Gaussian, Laplace, or Gaussian with a tenth of the groups 0-20 px off) of a few pixels,
   one weighted Huber solve (``matching.solve``) from the start: rotation / translation error and L2 rate.
2. The matcher: on the same rigs, its predicted landing against the true one, per axis: the least-squares slope
   (1 = unbiased, 0 = it predicts no motion), the median prediction per bin of true flow, the median error of
   its surest tenth and half, and what predicting no flow would miss by.

A solve that reaches L2 from noisy but unbiased landings, beside a matcher whose slope is far below 1, says the
matcher (what it can read in a crop, or how it was trained) limits the stage, not the solve.

    python benchmarks/nativecross_matcher_response.py [CHECKPOINT ...] [--rigs 40] [--out results/...json]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import Any

import numpy as np

from edge import jsonout

NOISE = {"gauss": lambda r, s, n: r.normal(0, s, (n, 2)),
         "laplace": lambda r, s, n: r.laplace(0, s / np.sqrt(2), (n, 2)),  # the same standard deviation
         "gauss+10%_outliers": None}
MATCH_KEYS = ("match_hw", "match_crop", "match_points", "groups", "group_size", "points", "group_space")
BINS = (-99, -8, -4, -2, -0.5, 0.5, 2, 4, 8, 99)


def _rigs(cfg: dict[str, Any], n: int, deg: float, cm: float) -> list[dict[str, Any]]:
    from edge.data.se3 import perturbation
    from edge.errors import DataError
    from edge.models.nativecross import matching as M
    from edge.models.nativecross.card import match_feeds
    from edge.models.nativecross.grouping import group_view, view_points
    from edge.models.nativecross.rigsim import random_rig

    out = []
    hw = tuple(cfg["match_hw"])
    for s in range(n):
        rng = np.random.default_rng(10_000 + s)  # not the training stream's seeds
        r = random_rig(rng, hw)
        T, P = r.rig.T_lidar_to_cam, r.rig.P
        T0 = perturbation(rng, deg, cm / 100) @ T
        xyz = np.stack([r.points["x"], r.points["y"], r.points["z"]], 1).astype(np.float64)
        try:
            view = view_points(xyz, T0, P, hw, cfg)
        except DataError:  # too few points in view under this start: not a rig the stage would see
            continue
        _, cen = group_view(view, cfg)
        f = match_feeds(r.image, view, P, cfg)
        mp = f["match_P"][0]
        x, valid, base = M.crops(f["match_image"][0], f["scan"][0], cen, T0, mp, int(cfg["match_crop"]))
        true = M._project(cen.astype(np.float64), T, mp)[0]
        out.append({"T": T, "T0": T0, "P": mp, "centres": cen.astype(np.float64), "x": x, "valid": valid,
                    "base": base, "true": true})
    return out


def _errors(rows: list[tuple[float, float]]) -> dict[str, float]:
    a = np.array(rows)
    rot, tr = a[:, 0], a[:, 1]
    return {"rot_median_deg": round(float(np.median(rot)), 3), "trans_median_cm": round(float(np.median(tr)), 2),
            "trans_rmse_cm": round(float(np.sqrt(np.mean(tr ** 2))), 2),
            "l2_rate": round(float(100 * np.mean((rot < 2) & (tr < 5))), 1)}


def solve_tolerance(rigs: list[dict[str, Any]], sigmas: list[float]) -> dict[str, Any]:
    from edge.models.nativecross import matching as M
    from edge.models.nativecross.metrics import pose_errors

    res: dict[str, Any] = {"start": _errors([pose_errors(r["T0"], r["T"]) for r in rigs])}
    for kind, draw in NOISE.items():
        for sig in sigmas:
            rows = []
            for i, r in enumerate(rigs):
                rng = np.random.default_rng(100 + i)
                v = r["valid"]
                n = int(v.sum())
                noise = (draw or NOISE["gauss"])(rng, sig, n)
                if draw is None:
                    out = rng.random(n) < 0.1
                    noise[out] += rng.uniform(-20, 20, (int(out.sum()), 2))
                T = M.solve(r["centres"][v], r["true"][v] + noise, np.ones(n), r["T0"], r["P"])
                rows.append(pose_errors(T, r["T"]))
            res[f"{kind}_{sig:g}px"] = _errors(rows)
    return res


def matcher_response(ckpt: str, rigs: list[dict[str, Any]], rig_cfg: dict[str, Any]) -> dict[str, Any]:
    import torch

    from edge.models.checkpoint import load_model

    model, cfg, _ = load_model(ckpt)
    if any(cfg[k] != rig_cfg[k] for k in MATCH_KEYS):
        keys = ", ".join(f"{k}={cfg[k]}" for k in MATCH_KEYS)
        raise SystemExit(f"{ckpt}: its matching stage ({keys}) differs from the first checkpoint's; the crops were "
                         "cut for that one")
    scale = float(cfg["match_scale"])
    pred, true, sig = [], [], []
    with torch.no_grad():
        for r in rigs:
            o = model.matcher(torch.from_numpy(r["x"])[None])[0].numpy().astype(np.float64)
            v = r["valid"]
            pred.append(o[v, :2] * scale)
            true.append(r["true"][v] - r["base"][v])
            sig.append(o[v, 2])
    p, t, s = map(np.concatenate, (pred, true, sig))
    out: dict[str, Any] = {"checkpoint": ckpt, "groups": len(t)}
    for q, name in ((1.0, "all"), (0.5, "surest_half"), (0.1, "surest_tenth")):
        k = s <= np.quantile(s, q)
        out[name] = {"slope_xy": [round(float(np.polyfit(t[k, a], p[k, a], 1)[0]), 3) for a in (0, 1)],
                     "error_median_px_xy": np.median(np.abs(p[k] - t[k]), 0).round(2).tolist(),
                     "no_flow_median_px_xy": np.median(np.abs(t[k]), 0).round(2).tolist()}
    out["median_prediction_by_true_bin_x"] = {
        f"[{lo},{hi})": round(float(np.median(p[(t[:, 0] >= lo) & (t[:, 0] < hi), 0])), 2)
        for lo, hi in itertools.pairwise(BINS) if ((t[:, 0] >= lo) & (t[:, 0] < hi)).any()}
    out["median_prediction_by_true_bin_y"] = {
        f"[{lo},{hi})": round(float(np.median(p[(t[:, 1] >= lo) & (t[:, 1] < hi), 1])), 2)
        for lo, hi in itertools.pairwise(BINS) if ((t[:, 1] >= lo) & (t[:, 1] < hi)).any()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="*", help="checkpoints with a matcher (default: the shipped one)")
    ap.add_argument("--rigs", type=int, default=40)
    ap.add_argument("--deg", type=float, default=1.5)
    ap.add_argument("--cm", type=float, default=25.0)
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).parent / "results" / "nativecross_matcher_response.json")
    args = ap.parse_args()

    import torch

    from edge.bench.machine import machine
    from edge.files import atomic_write_text
    from edge.models.checkpoint import load_model
    from edge.models.nativecross.card import WEIGHTS

    torch.set_num_threads(2)
    checkpoints = args.checkpoints or [str(WEIGHTS / "default.pt")]
    cfg = load_model(checkpoints[0])[1]  # the crops are cut as the first checkpoint's config cuts them
    if int(cfg.get("match_rounds", 0)) <= 0:
        raise SystemExit(f"{checkpoints[0]}: no matching stage (match_rounds 0)")
    rigs = _rigs(cfg, args.rigs, args.deg, args.cm)
    report: dict[str, Any] = {"rigs": len(rigs), "start_per_axis": {"deg": args.deg, "cm": args.cm},
                              "valid_groups_median": float(np.median([r["valid"].sum() for r in rigs])),
                              "solve_from_noisy_true_landings": solve_tolerance(rigs, [0.5, 1, 2, 3, 5])}
    for name, row in report["solve_from_noisy_true_landings"].items():
        print(f"solve, {name:26s} {row}")
    report["matchers"] = []
    for ck in checkpoints:
        m = matcher_response(ck, rigs, cfg)
        report["matchers"].append(m)
        print(f"{ck}: slope x/y all {m['all']['slope_xy']}, surest half {m['surest_half']['slope_xy']}, surest "
              f"tenth {m['surest_tenth']['slope_xy']}; surest tenth error {m['surest_tenth']['error_median_px_xy']} px "
              f"(no flow: {m['surest_tenth']['no_flow_median_px_xy']})")
    report["machine"] = machine()
    atomic_write_text(args.out, jsonout.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
