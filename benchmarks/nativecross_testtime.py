"""NativeCross: two test-time changes to the refinement, measured against the shipped loop on the same samples.

- ``regroup``: select, group and encode the scan again under each iteration's guess (the shipped loop groups
  once, under the starting guess: with 10 deg of error the in-view points and their groups are not the ones
  the true extrinsic would pick).
- ``multistart``: one encode, the step loop from the guess and from 6 starts 3 deg around it (+-x, +-y, +-z),
  the 7 results combined by the tangent-space robust median ``edge calibrate`` uses across frames.

And where the residual goes: the signed rotation error per camera axis (x right, y down, z forward), mean
and RMS over the samples, after the shipped loop. Held-out synthetic rigs at 10 deg / 25 cm and the real
KITTI 000114 frame under seeded perturbations at 10 deg / 25 cm, as ``nativecross_eval.py``; then every real
KITTI frame in ../shared (the object frames and 4 frames of the raw drive) under ``--per-frame`` perturbations
each, the shipped loop only: how much of a frame's residual is a bias shared by all its starts (the mean),
and whether that bias is one offset for all frames (a convention error) or the frame's own.

    python benchmarks/nativecross_testtime.py BUNDLE [--frames 100] [--per-frame 20] [--backend onnxruntime]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
from real_data import REAL_DATA, add_synthetic_only, need_real  # a sibling script: $EDGE_REAL_DATA

from edge import jsonout

KITTI = REAL_DATA / "kitti"
REAL = KITTI / "object" / "training"
#: every real frame with a scan and a calibration: (folder, index)
REAL_FRAMES = ((REAL, "000114"), *((KITTI / "object_extra" / "training", f"{i:06d}") for i in range(3)),
               *((KITTI / "raw_2011_09_26" / "2011_09_26", f"{i:010d}") for i in (0, 3, 6, 9)))
OFFSET_DEG = 3.0


def _truth(frames: dict[str, Any]) -> np.ndarray:
    for key in ("rig_true", "rig_source"):
        for name in ("camera", "lidar"):
            r = frames[name].meta.get(key)
            if r is not None:
                return np.asarray(r.T_lidar_to_cam, np.float64)
    raise SystemExit("a sample without its true extrinsic")


def _with_guess(frames: dict[str, Any], T: np.ndarray) -> dict[str, Any]:
    """The frames with the starting guess replaced by ``T`` (what a new ``--calib`` would give)."""
    out = {}
    for name, f in frames.items():
        meta = dict(f.meta)
        if meta.get("rig") is not None:
            meta["rig"] = dataclasses.replace(meta["rig"], T_lidar_to_cam=T)
        out[name] = dataclasses.replace(f, meta=meta)
    return out


def _loop(runner: Any, tok: dict[str, np.ndarray], feeds: dict[str, np.ndarray], T: np.ndarray,
          iterations: int) -> np.ndarray:
    from edge.data.se3 import exp_se3

    for _ in range(iterations):
        xi = runner.update({"img_tokens": tok["img_tokens"], "pt_tokens": tok["pt_tokens"],
                            "centres": feeds["centres"], "T": T[None].astype(np.float32), "P": feeds["P"]})["xi"]
        T = exp_se3(np.asarray(xi, np.float64).reshape(6)) @ T
    return T


def _summary(errs: list[tuple[float, float]]) -> dict[str, Any]:
    from edge.models.nativecross.metrics import summarize

    e = np.asarray(errs, np.float64)
    return summarize(e[:, 0], e[:, 1])


def _case(card: Any, cfg: dict[str, Any], runner: Any, samples: list) -> dict[str, Any]:
    from edge.data.se3 import exp_se3, inverse, log_se3, robust_mean
    from edge.models.nativecross.metrics import pose_errors

    its = runner.iterations
    offsets = [np.zeros(6)]
    for axis in range(3):
        for sign in (1.0, -1.0):
            o = np.zeros(6)
            o[axis] = sign * np.radians(OFFSET_DEG)
            offsets.append(o)
    rows: dict[str, list[tuple[float, float]]] = {"start": [], "shipped": [], "regroup": [], "multistart": []}
    axis_err: list[np.ndarray] = []
    secs = dict.fromkeys(("shipped", "regroup", "multistart"), 0.0)
    for sample in samples:
        frames = sample[0]
        Tt = _truth(frames)
        feeds = card.preprocess(frames, cfg)
        T0 = np.asarray(feeds["T"][0], np.float64)
        rows["start"].append(pose_errors(T0, Tt))
        t = time.perf_counter()
        tok = runner.encode({"image": feeds["image"], "groups": feeds["groups"]})
        T = _loop(runner, tok, feeds, T0, its)
        secs["shipped"] += time.perf_counter() - t
        rows["shipped"].append(pose_errors(T, Tt))
        axis_err.append(np.degrees(log_se3(T @ inverse(Tt))[:3]))  # the residual rotation, camera axes

        t = time.perf_counter()
        Tr = T0
        for _ in range(its):
            f = card.preprocess(_with_guess(frames, Tr), cfg)
            Tr = _loop(runner, runner.encode({"image": f["image"], "groups": f["groups"]}), f, Tr, 1)
        secs["regroup"] += time.perf_counter() - t
        rows["regroup"].append(pose_errors(Tr, Tt))

        t = time.perf_counter()
        ends = np.stack([_loop(runner, tok, feeds, exp_se3(o) @ T0, its) for o in offsets])
        Tm, _, _ = robust_mean(ends, ends[0])
        secs["multistart"] += time.perf_counter() - t
        rows["multistart"].append(pose_errors(Tm, Tt))
    a = np.asarray(axis_err)
    return {"samples": len(samples), **{k: _summary(v) for k, v in rows.items()},
            "seconds": {k: round(v, 1) for k, v in secs.items()},
            "residual_rotation_deg_per_camera_axis": {
                "mean": dict(zip("xyz", np.round(a.mean(0), 3).tolist())),
                "rms": dict(zip("xyz", np.round(np.sqrt((a * a).mean(0)), 3).tolist()))}}


def _per_frame_bias(card: Any, cfg: dict[str, Any], runner: Any, n: int) -> dict[str, Any]:
    """The shipped loop's residual rotation per camera axis on each real frame, over ``n`` seeded starts;
    ``bias_share``: the part of the residual's mean square that is the frame's mean (a bias all starts share)."""
    from edge.data.se3 import inverse, log_se3
    from edge.models.nativecross.metrics import pose_errors
    from edge.models.nativecross.samples import kitti_samples

    out: dict[str, Any] = {}
    for folder, index in REAL_FRAMES:
        res, before, after = [], [], []
        for sample in kitti_samples(folder, index, n, 10.0, 0.25, seed=0):
            frames = sample[0]
            Tt = _truth(frames)
            feeds = card.preprocess(frames, cfg)
            T0 = np.asarray(feeds["T"][0], np.float64)
            T = _loop(runner, runner.encode({"image": feeds["image"], "groups": feeds["groups"]}), feeds, T0,
                      runner.iterations)
            res.append(np.degrees(log_se3(T @ inverse(Tt))[:3]))
            before.append(pose_errors(T0, Tt))
            after.append(pose_errors(T, Tt))
        a = np.asarray(res)
        mean, ms = a.mean(0), (a * a).mean(0)
        name = f"{folder.parent.name if folder.name == 'training' else ''}{folder.name}/{index}".replace(
            "training", "")
        out[name] = {"start": _summary(before), "refined": _summary(after),
                     "residual_mean_deg": dict(zip("xyz", np.round(mean, 2).tolist())),
                     "residual_rms_deg": dict(zip("xyz", np.round(np.sqrt(ms), 2).tolist())),
                     "bias_share": round(float((mean * mean).sum() / ms.sum()), 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--per-frame", type=int, default=20, help="starts per real frame for the bias table")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).parent / "results" / "nativecross_testtime.json")
    add_synthetic_only(ap)
    args = ap.parse_args()
    if not args.synthetic_only:  # before any work: the KITTI rows and the per-frame table need them
        from edge.data.kitti import kitti_layout
        from edge.errors import DataError

        for folder, index in REAL_FRAMES:
            need_real(folder, f"KITTI {index}")
            try:  # an object folder keeps calib/<index>.txt, a raw drive its calib_*_to_*.txt (both are here)
                calib = kitti_layout(folder).calib_path(index)
            except DataError:
                calib = folder / "calib"
            need_real(calib, f"KITTI {index}'s calibration")
    else:
        args.per_frame = 0

    import edge
    from edge.bench.machine import machine
    from edge.files import atomic_write_text
    from edge.models.nativecross.samples import kitti_samples
    from edge.program import load_program

    b = edge.Bundle.load(args.bundle)
    card = edge.get_card(b.family)
    cfg = dict(b.manifest["model"]["config"])
    report: dict[str, Any] = {"bundle": str(args.bundle), "backend": args.backend, "offset_deg": OFFSET_DEG,
                              "machine": machine(), "cases": {}}
    cases = {"synthetic_10deg_25cm": lambda: card.data.samples({**cfg, "eval_max_deg": 10.0, "eval_max_m": 0.25},
                                                               "evaluation", args.frames, 0)}
    if not args.synthetic_only:
        cases["kitti_000114_10deg_25cm"] = lambda: kitti_samples(REAL, "000114", args.frames, 10.0, 0.25, seed=0)
    with load_program(b, args.backend) as prog:
        for name, make in cases.items():
            res = report["cases"][name] = _case(card, cfg, prog.runner, make())
            print(name)
            for k in ("start", "shipped", "regroup", "multistart"):
                s = res[k]
                print(f"  {k:>10}: rot RMSE {s['rot_rmse_deg']:5.2f} deg (median {s['rot_median_deg']:4.2f}), "
                      f"trans RMSE {s['trans_rmse_cm']:5.1f} cm, L2 {s['l2_rate']:4.1f} %")
            print(f"  residual rotation per camera axis (deg): {res['residual_rotation_deg_per_camera_axis']}")
        if args.per_frame:
            report["per_frame_bias"] = bias = _per_frame_bias(card, cfg, prog.runner, args.per_frame)
            for name, r in bias.items():
                print(f"{name:>28}: rot RMSE {r['start']['rot_rmse_deg']:5.2f} -> {r['refined']['rot_rmse_deg']:5.2f}"
                      f" deg; residual mean {r['residual_mean_deg']}, RMS {r['residual_rms_deg']}, "
                      f"bias share {r['bias_share']:.2f}")
    atomic_write_text(args.out, jsonout.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
