"""Overlay PNGs of a lane checkpoint (default: the shipped one) on four real frames in ../shared/data/real:
two TuSimple highway frames and two KITTI urban frames, each run through the streaming program as a static
clip and drawn by the card's own `draw` (what `edge run --save` writes), downscaled to 800 px wide.

    python benchmarks/lane_overlays.py [--checkpoint PATH] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from real_data import REAL_DATA  # $EDGE_REAL_DATA or ../shared/data/real (a sibling script)

REAL = REAL_DATA
FRAMES = {
    "tusimple_0313-1_6040": "lane/tusimple_lstr_train/clips/0313-1/6040/20.jpg",
    "tusimple_lanenet_0002": "lane/tusimple_lanenet/image/0002.png",
    "kitti_000114": "kitti/object/training/image_2/000114.png",
    "kitti_raw_0006": "kitti/raw_2011_09_26/2011_09_26/image_02/data/0000000006.png",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=REAL)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()

    import cv2

    from edge.data.frame import Frame
    from edge.models import get_card
    from edge.models.checkpoint import load_model
    from edge.program import torch_program

    card = get_card("lane")
    args.out.mkdir(parents=True, exist_ok=True)  # (a missing folder: every imwrite failed and each was printed)
    module, cfg, _ = load_model(args.checkpoint or card.default_checkpoint)
    with torch_program(card, module, cfg) as prog:
        for name, rel in FRAMES.items():
            img = cv2.imread(str(args.data / rel))
            if img is None:
                raise SystemExit(f"{args.data / rel}: cannot read the image")
            prog.reset()
            fr = {"camera": Frame(img, 0, 0, "camera", {})}
            rec, payload = card.postprocess(prog.step(card.preprocess(fr, cfg)), fr, cfg)
            out = card.draw(payload, fr, cfg)
            h, w = out.shape[:2]
            out = cv2.resize(out, (800, round(h * 800 / w)), interpolation=cv2.INTER_AREA)
            path = args.out / f"lane_overlay_{name}.png"
            if not cv2.imwrite(str(path), out):
                raise SystemExit(f"{path}: cannot write the overlay")
            print(f"{path}: {len(rec['slots'])} lanes, confidence {rec['confidence']}")


if __name__ == "__main__":
    main()
