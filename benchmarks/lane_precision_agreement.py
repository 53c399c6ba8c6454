"""Lane-point agreement between a bundle's fp32 artifact and its reduced-precision artifacts on the
real TuSimple frames in ../shared/data/real (each frame a static clip), plus each one's TuSimple
accuracy there. Agreement = share of fp32 lane points (slot, row) that the other artifact also
predicts within 20 px (TuSimple's threshold at 1280 px), and share it predicts at all.

    python benchmarks/lane_precision_agreement.py BUNDLE
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "lane" / "tusimple_lanenet"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--data", type=Path, default=REAL)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lane_precision_agreement.json")
    args = ap.parse_args()

    import cv2

    import edge
    from edge.files import atomic_write_text
    from edge.models.lane import card as lane
    from edge.models.lane.tusimple import TuSimpleSample, evaluate, read_tusimple

    b = edge.Bundle.load(args.bundle)
    cfg = b.manifest["model"]["config"]
    gts = read_tusimple(args.data / "gt_tusimple_format_derived_from_instance_masks.json")
    confs = [("onnxruntime", a["precision"], {"precision": a["precision"]}) for a in b.artifacts
             if a["format"] == "onnx" and a.get("graph") == "full"]
    confs += [("openvino", "int8-nncf", {"artifact": a["name"]}) for a in b.artifacts
              if a.get("quantization", {}).get("format") == "nncf"]
    preds: dict[str, list[np.ndarray]] = {}
    scores = {}
    for be, label, sel in confs:
        rt = edge.load(b, backend=be, **sel)
        outs, samples = [], []
        for gt in gts:
            img = cv2.imread(str(args.data / gt.raw_file))
            res = rt.infer({"clip": lane.preprocess_clip([img] * cfg["frames"], cfg)})
            d = lane.decode(res["loc"][0], res["exist"][0], cfg, img.shape[:2], np.asarray(gt.h_samples))
            grid = np.full((cfg["slots"], len(gt.h_samples)), -2.0)
            for s, xs in zip(d["slots"], d["lanes"]):
                grid[s] = xs
            outs.append(grid)
            samples.append(TuSimpleSample(gt.raw_file, d["lanes"], gt.h_samples, 0.0))
        rt.close()
        key = f"{be}/{label}"
        preds[key] = outs
        scores[key] = evaluate(samples, gts)["accuracy"]
    ref = preds["onnxruntime/fp32"]
    rows = []
    for key, outs in preds.items():
        both = close = total = 0
        for r, o in zip(ref, outs):
            m = r >= 0
            total += int(m.sum())
            both += int((m & (o >= 0)).sum())
            close += int((m & (o >= 0) & (np.abs(o - r) < 20)).sum())
        rows.append({"config": key, "tusimple_accuracy": scores[key], "points_fp32": total,
                     "present": both / max(total, 1), "within_20px": close / max(total, 1)})
        print(f"{key:<22} TuSimple {100 * scores[key]:6.2f}%  fp32 points present {100 * both / max(total, 1):6.2f}%"
              f"  within 20 px {100 * close / max(total, 1):6.2f}%")
    atomic_write_text(args.out, json.dumps({"bundle": str(args.bundle), "frames": len(gts), "rows": rows}, indent=1)
                      + "\n")


if __name__ == "__main__":
    main()
