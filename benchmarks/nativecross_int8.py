"""What each INT8 form of a NativeCross bundle does to the refinement, sample by sample: the L2 rate and
RMSEs on the gate's held-out rigs (the export's evaluation seed stream, 200 rigs as the default gate draws
for the L2 rate against a 1-point budget), and each rig's rotation and translation error against fp32's.

Why per sample: at this model's L2 rate (a few rigs in 200) the rate says whether borderline rigs crossed
5 cm, not how far INT8 moved the estimates; the per-rig differences do.

Forms: every INT8 artifact set the bundle has (ONNX Runtime's preferred form, the symmetric QDQ graphs
that TensorRT builds from, NNCF's OpenVINO IRs), each on the backend it is for.

    python benchmarks/nativecross_int8.py BUNDLE [--samples 200] [--out benchmarks/results/nativecross_int8.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge import jsonout


def _forms(manifest: dict[str, Any]) -> dict[str, tuple[str, dict[str, str]]]:
    """label -> (backend, {graph: artifact}) for fp32 and every INT8 artifact set the bundle lists."""
    graphs = manifest["programs"]["refine"]["graphs"]
    names = {a["name"] for a in manifest["artifacts"]}
    out: dict[str, tuple[str, dict[str, str]]] = {}
    for label, backend, pattern in (("fp32 (ONNX Runtime)", "onnxruntime", "onnx-fp32-{}"),
                                    ("int8 symmetric QDQ (ONNX Runtime)", "onnxruntime", "onnx-int8-{}"),
                                    ("int8 U8S8 (ONNX Runtime's form)", "onnxruntime", "onnx-int8-u8s8-{}"),
                                    ("int8 NNCF (OpenVINO)", "openvino", "openvino-int8-nncf-{}")):
        arts = {g: pattern.format(g) for g in graphs}
        if all(a in names for a in arts.values()):
            out[label] = (backend, arts)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0, help="the export's --seed (its evaluation stream)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "nativecross_int8.json")
    args = ap.parse_args()

    import edge
    from edge.bench.machine import machine
    from edge.models import get_card
    from edge.program import run_samples

    manifest = json.loads((args.bundle / "manifest.json").read_text())
    card = get_card("nativecross")
    cfg = manifest["model"]["config"]
    t0 = time.perf_counter()
    samples = card.data.samples(cfg, "evaluation", args.samples, args.seed)
    print(f"{len(samples)} held-out rigs in {time.perf_counter() - t0:.0f} s", flush=True)
    per: dict[str, dict[str, np.ndarray]] = {}
    rows: dict[str, Any] = {}
    for label, (backend, arts) in _forms(manifest).items():
        prog = edge.load_program(args.bundle, backend, artifacts=arts)
        items = [card.metric.item(r, f, prog.cfg) for r, f, _ in run_samples(prog, card, samples)]
        s = card.metric.score(items)
        per[label] = {"rot": np.array([i["rot_deg"] for i in items]), "trans": np.array([i["trans_cm"] for i in items])}
        rows[label] = {"backend": backend, "artifacts": arts, "l2_rate": s["l2_rate"], "l1_rate": s["l1_rate"],
                       "rot_rmse_deg": s["rot_rmse_deg"], "trans_rmse_cm": s["trans_rmse_cm"],
                       "rot_median_deg": s["rot_median_deg"], "trans_median_cm": s["trans_median_cm"]}
    ref = per["fp32 (ONNX Runtime)"]
    ok = (ref["rot"] < 2.0) & (ref["trans"] < 5.0)
    for label, row in rows.items():
        dr, dt = np.abs(per[label]["rot"] - ref["rot"]), np.abs(per[label]["trans"] - ref["trans"])
        mine = (per[label]["rot"] < 2.0) & (per[label]["trans"] < 5.0)
        row.update({"rot_diff_deg": {"median": float(np.median(dr)), "p95": float(np.percentile(dr, 95)),
                                     "max": float(dr.max())},
                    "trans_diff_cm": {"median": float(np.median(dt)), "p95": float(np.percentile(dt, 95)),
                                      "max": float(dt.max())},
                    "l2_lost": int((ok & ~mine).sum()), "l2_gained": int((~ok & mine).sum()),
                    "fp32_l2_rigs": [{"rig": int(i), "fp32": [round(float(ref["rot"][i]), 3),
                                                              round(float(ref["trans"][i]), 2)],
                                      "this": [round(float(per[label]["rot"][i]), 3),
                                               round(float(per[label]["trans"][i]), 2)]} for i in np.flatnonzero(ok)]})
        print(f"{label:36s} L2 {row['l2_rate']:4.1f} %  rot RMSE {row['rot_rmse_deg']:.3f} deg  trans RMSE "
              f"{row['trans_rmse_cm']:.2f} cm  |d rot| median {row['rot_diff_deg']['median']:.3f} p95 "
              f"{row['rot_diff_deg']['p95']:.3f} deg  |d trans| median {row['trans_diff_cm']['median']:.3f} p95 "
              f"{row['trans_diff_cm']['p95']:.3f} cm  L2 rigs lost {row['l2_lost']} gained {row['l2_gained']}")
    gates = manifest["programs"]["refine"].get("gates", {})
    result = {"bundle": str(args.bundle), "samples": len(samples), "seed": args.seed, "machine": machine(),
              "export_gates": gates, "forms": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(jsonout.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
