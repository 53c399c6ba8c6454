"""fp32 vs reduced precisions of a lane bundle's *programs* on the real labelled TuSimple frames in
../shared/data/real (6 LaneNet frames + 10 official train frames; each a one-frame sample, i.e. a static
clip through the ring buffer), and on the held-out synthetic clips the gate uses: TuSimple accuracy of
each program x backend x precision (and the symmetric QDQ graphs TensorRT builds, run by ONNX Runtime), and
lane-point agreement with the fp32 program (share of fp32 lane points (slot, row) the other one also predicts,
and within 20 px, TuSimple's threshold at 1280 px); the same agreement on every other real camera frame in
../shared (KITTI, nuScenes, the unlabelled TuSimple and 256x128 sequence frames: no labels, so no metric).

    python benchmarks/lane_precision_agreement.py BUNDLE [--eval-size 40]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from lane_real_tusimple import REAL, SETS  # the real labelled sets, defined once (a sibling script)

from edge import jsonout


def _grid(rec: dict, slots: int) -> np.ndarray:
    hs = rec["tusimple"]["h_samples"]
    grid = np.full((slots, len(hs)), -2.0)
    for s, xs in zip(rec["slots"], rec["tusimple"]["lanes"]):
        grid[s] = xs
    return grid


#: real camera frames without lane labels, under ../shared/data/real: agreement with fp32 only (no metric)
UNLABELLED = ("kitti/object/training/image_2", "kitti/object_extra/training/image_2",
              "kitti/raw_2011_09_26/2011_09_26/image_02/data", "lane/tusimple_lanenet/test_image",
              "lane/robust_lane_seq_256x128/data/testset/image", "nuscenes/mmdet3d_demo")


def _unlabelled(root: Path) -> list[list[dict[str, Any]]]:
    """Each real camera image under the :data:`UNLABELLED` folders as a one-frame sample (a static clip)."""
    import cv2

    from edge.data.frame import Frame

    out = []
    for folder in UNLABELLED:
        for p in sorted((root / folder).glob("*")):
            img = cv2.imread(str(p)) if p.suffix.lower() in (".jpg", ".jpeg", ".png") else None
            if img is not None:
                out.append([{"camera": Frame(img, 0, 0, "camera", {"file": str(p.relative_to(root))})}])
    return out


def _points(prog: Any, card: Any, cfg: dict[str, Any], samples: list) -> list[dict[tuple[int, int], float]]:
    """Per sample, each decoded lane point as (slot, row px) -> x px scaled to a 1280-px-wide frame (where
    TuSimple's 20 px threshold is defined)."""
    from edge.program import run_samples

    got = []
    for _rec, frames, out in run_samples(prog, card, samples):
        _, d = card.postprocess(out, frames, cfg)
        k = 1280.0 / frames["camera"].data.shape[1]
        got.append({(int(s), int(np.rint(y))): float(x) * k for s, pts in zip(d["slots"], d["points"], strict=True)
                    for x, y in pts})
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--data", type=Path, default=REAL)
    ap.add_argument("--eval-size", type=int, default=40, help="held-out synthetic clips (the gate's set)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lane_precision_agreement.json")
    args = ap.parse_args()

    import edge
    from edge.files import atomic_write_text
    from edge.models.lane.samples import tusimple_samples
    from edge.program import evaluate, load_program, run_samples

    b = edge.Bundle.load(args.bundle)
    card = edge.get_card(b.family)
    cfg = b.manifest["model"]["config"]
    sets = {name: tusimple_samples(args.data / gt, args.data / root) for name, (gt, root) in SETS.items()}
    sets["synthetic"] = card.data.samples(cfg, "evaluation", args.eval_size, 0)
    unlabelled = _unlabelled(args.data.parent)
    pts: dict[tuple[str, str, str], list[dict[tuple[int, int], float]]] = {}
    confs = []
    for pname, prog in b.manifest["programs"].items():
        for prec, per_backend in sorted(prog["precisions"].items()):
            for backend in ("onnxruntime", "openvino"):
                if backend in per_backend:
                    nncf = any("nncf" in v for v in per_backend[backend].values())
                    confs.append((pname, backend, prec, f"{prec}-nncf" if nncf else prec, None))
        # the symmetric QDQ graphs (TensorRT's form; ONNX Runtime's int8 program takes U8S8), run by ONNX Runtime
        names = {a["name"] for a in b.artifacts}
        sym = {g: f"onnx-int8-{g}" for g in card.program(pname).graphs}
        if "int8" in prog["precisions"] and set(sym.values()) <= names:
            confs.append((pname, "onnxruntime", "int8", "int8-symmetric", sym))
    rows, grids = [], {}
    for pname, backend, prec, label, arts in confs:
        # what edge run runs: OpenVINO's INT8 with the float-layer precision its gate passed with (bf16 where
        # this CPU has it natively), its fp32 with f32
        prog = (load_program(b, backend, program=pname, artifacts=arts) if arts else
                load_program(b, backend, program=pname, precision=prec))
        row = {"program": pname, "backend": backend, "precision": label}
        if prog.inference_precision is not None:
            row["inference_precision"] = prog.inference_precision
        for name, samples in sets.items():
            row[name] = evaluate(prog, card, samples)
            if name != "synthetic":
                grids[(pname, backend, label, name)] = [_grid(r, cfg["slots"]) for r, _, _ in
                                                        run_samples(prog, card, samples)]
        if unlabelled:
            pts[(pname, backend, label)] = _points(prog, card, cfg, unlabelled)
        prog.close()
        rows.append(row)
    for row in rows:
        for name in SETS:
            ref = grids[(row["program"], "onnxruntime", "fp32", name)]
            got = grids[(row["program"], row["backend"], row["precision"], name)]
            both = close = total = 0
            for r, o in zip(ref, got):
                m = r >= 0
                total += int(m.sum())
                both += int((m & (o >= 0)).sum())
                close += int((m & (o >= 0) & (np.abs(o - r) < 20)).sum())
            row[name]["fp32_points_present"] = both / max(total, 1)
            row[name]["fp32_points_within_20px"] = close / max(total, 1)
        if unlabelled:
            ref_pts = pts[(row["program"], "onnxruntime", "fp32")]
            got_pts = pts[(row["program"], row["backend"], row["precision"])]
            total = sum(len(r) for r in ref_pts)
            both = sum(sum(k in o for k in r) for r, o in zip(ref_pts, got_pts, strict=True))
            close = sum(sum(k in o and abs(o[k] - x) < 20 for k, x in r.items())
                        for r, o in zip(ref_pts, got_pts, strict=True))
            row["unlabelled"] = {"frames": len(unlabelled), "fp32_points": total,
                                 "fp32_points_present": both / max(total, 1),
                                 "fp32_points_within_20px": close / max(total, 1),
                                 "extra_points": sum(len(set(o) - set(r)) for r, o in zip(ref_pts, got_pts,
                                                                                          strict=True))}
        print(f"{row['program']:<7} {row['backend']:<12} {row['precision']:<10} "
              + "  ".join(f"{n} {row[n]['value']:6.2f}% (FP {row[n]['fp']:.3f} FN {row[n]['fn']:.3f})"
                          for n in ("synthetic", *SETS))
              + (f"  unlabelled {row['unlabelled']['fp32_points_within_20px']:.4f} of fp32's points within 20 px"
                 if unlabelled else ""))
    frames = {**{n: len(s) for n, s in sets.items()}, "unlabelled": len(unlabelled)}
    atomic_write_text(args.out, jsonout.dumps({"bundle": str(args.bundle), "eval_size": args.eval_size,
                                            "frames": frames, "rows": rows},
                                           indent=1) + "\n")


if __name__ == "__main__":
    main()
