"""Score the shipped lane checkpoint on the real labelled TuSimple frames in ../shared/data/real.

The model is trained on synthetic roads only; this measures how far that carries to real highway
frames (6 frames with GT derived from LaneNet's instance masks). Each frame is a static clip.

    python benchmarks/lane_real_tusimple.py [--checkpoint PATH] [--overlays DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "lane" / "tusimple_lanenet"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=REAL)
    ap.add_argument("--overlays", type=Path, default=None, help="write overlay PNGs here (not into the repo)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lane_real_tusimple.json")
    args = ap.parse_args()

    from edge.files import atomic_write_text
    from edge.models import get_card
    from edge.models.checkpoint import load_model
    from edge.models.lane.train import evaluate_tusimple_folder, torch_predictor

    ckpt = args.checkpoint or get_card("lane").default_checkpoint
    module, cfg, _ = load_model(ckpt, expect_model="lane")
    gt = args.data / "gt_tusimple_format_derived_from_instance_masks.json"
    metric, preds = evaluate_tusimple_folder(torch_predictor(module), cfg, str(gt), str(args.data))
    report = {"checkpoint": str(ckpt), "frames": metric["num"], "gt": "derived from LaneNet instance masks",
              **{k: metric[k] for k in ("accuracy", "fp", "fn")}}
    print(json.dumps(report, indent=2))
    if args.overlays:
        import cv2
        import numpy as np

        from edge.stream.overlay import draw_lanes

        args.overlays.mkdir(parents=True, exist_ok=True)
        for p in preds:
            img = cv2.imread(str(args.data / p.raw_file))
            pts = [np.array([(x, y) for x, y in zip(lane_, p.h_samples) if x >= 0]) for lane_ in p.lanes]
            cv2.imwrite(str(args.overlays / Path(p.raw_file).name), draw_lanes(img, pts, list(range(len(pts)))))
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
