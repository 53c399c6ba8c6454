"""Online recalibration on a real drive: `edge calibrate` over the 10-frame KITTI raw drive in ../shared
(2011_09_26, its own calib_cam_to_cam.txt + calib_velo_to_cam.txt as the truth), started from seeded
perturbations of that calibration. Each start is one `edge calibrate` run (the same code path as the CLI:
every frame refined from the start, the per-frame estimates combined by the robust median in the tangent
space); reported: rotation and translation error of the start and of the written rig against the truth,
and the scatter of one frame's estimate.

    python benchmarks/nativecross_drive.py BUNDLE [--starts 50] [--deg 10] [--cm 25] [--drive FOLDER]
        [--backend onnxruntime] [--precision fp32] [--out benchmarks/results/nativecross_drive.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from real_data import REAL_DATA  # $EDGE_REAL_DATA or ../shared/data/real (a sibling script)

from edge import jsonout

DRIVE = (REAL_DATA / "kitti" / "raw_2011_09_26"
         / "2011_09_26")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--drive", type=Path, default=DRIVE)
    ap.add_argument("--starts", type=int, default=50)
    ap.add_argument("--deg", type=float, default=10.0)
    ap.add_argument("--cm", type=float, default=25.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--passes", type=int, default=1, help="edge calibrate --passes")
    ap.add_argument("--only", default=None, help="comma-separated start indices to run (the others' draws are "
                    "still made, so each start is the one a full run has)")
    ap.add_argument("--program", default=None, help="e.g. refine_edges (default: the bundle's first)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "nativecross_drive.json")
    a = ap.parse_args()

    from edge.bench.machine import machine
    from edge.cli.calibrate_cmd import run_calibrate
    from edge.data.kitti import kitti_layout
    from edge.files import atomic_write_text
    from edge.models.nativecross.metrics import summarize
    from edge.models.nativecross.samples import perturbed

    only = None if a.only is None else {int(k) for k in a.only.split(",")}
    layout = kitti_layout(a.drive)
    truth = layout.rig(layout.indices()[0])
    rng = np.random.default_rng(np.random.SeedSequence(a.seed, spawn_key=(4,)))
    before: dict[str, list[float]] = {"rot": [], "trans": []}
    after: dict[str, list[float]] = {"rot": [], "trans": []}
    spreads, runs = [], []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.starts):
            start = perturbed(truth, rng, a.deg, a.cm / 100)
            if only is not None and i not in only:
                continue
            init = Path(tmp) / f"init{i}.json"
            init.write_text(jsonout.dumps(start.to_json()))
            with contextlib.redirect_stdout(io.StringIO()):
                rep = run_calibrate(a.bundle, source=f"kitti:{a.drive}", lidar=None, init=init,
                                    out=Path(tmp) / f"refined{i}.json", frames=0, backend=a.backend,
                                    precision=a.precision, sync_ms=50.0, json_out=True, program=a.program,
                                    passes=a.passes)
            for d, key in ((before, "error_before"), (after, "error_after")):
                d["rot"].append(rep[key]["rot_deg"])
                d["trans"].append(rep[key]["trans_cm"])
            spreads.append(rep["spread"])
            runs.append({k: rep[k] for k in ("frames", "inliers", "error_before", "error_after", "spread")})
            print(f"start {i:2d}: {rep['error_before']['rot_deg']:5.2f} deg {rep['error_before']['trans_cm']:5.1f} cm"
                  f" -> {rep['error_after']['rot_deg']:5.2f} deg {rep['error_after']['trans_cm']:5.1f} cm "
                  f"({rep['inliers']}/{rep['frames']} frames kept)")
    b, f = summarize(before["rot"], before["trans"]), summarize(after["rot"], after["trans"])
    weights = json.loads((a.bundle / "manifest.json").read_text())["model"].get("weights", {})
    rb, tb, ta = (np.asarray(x) for x in (before["rot"], before["trans"], after["trans"]))
    report: dict[str, Any] = {
        "bundle": str(a.bundle), "checkpoint": weights.get("checkpoint"),
        # a bundle exported without a checkpoint says so in text ("random init ..."): no command to record
        "trained": t.get("command") if isinstance(t := weights.get("trained"), dict) else t,
        "drive": str(a.drive), "frames_per_run": runs[0]["frames"] if runs else 0,
        "starts": a.starts, "range": f"{a.deg:g} deg / {a.cm:g} cm", "backend": a.backend,
        "precision": a.precision, "program": a.program, "passes": a.passes, "only": a.only,
        "machine": machine(), "seconds": round(time.perf_counter() - t0, 1),
        "before": b, "after": f,
        # how far the frames kept by the robust combination scatter around it (median over the runs)
        # (a run that kept one frame has no scatter: `spread` null)
        "single_frame_scatter_of_inliers": {k: round(float(np.median([s[k] for s in spreads if s])), 3)
                                            if any(spreads) else None for k in ("rot_rms_deg", "trans_rms_cm")},
        "runs_improved": {"rotation": int(np.sum(np.asarray(after["rot"]) < rb)), "translation": int(np.sum(ta < tb)),
                          "of": len(rb)},
        # does the translation left follow the start's? (it is not corrected if it does)
        "trans_after_vs_before_corr": round(float(np.corrcoef(tb, ta)[0, 1]), 3) if len(tb) > 1 else None,
        "runs": runs}
    print(f"before: rot RMSE {b['rot_rmse_deg']:.2f} deg, trans RMSE {b['trans_rmse_cm']:.1f} cm; "
          f"after: rot RMSE {f['rot_rmse_deg']:.2f} deg (median {f['rot_median_deg']:.2f}), "
          f"trans RMSE {f['trans_rmse_cm']:.1f} cm, L2 {f['l2_rate']:.0f} %")
    atomic_write_text(a.out, jsonout.dumps(report, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
