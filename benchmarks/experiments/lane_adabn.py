"""BatchNorm statistics re-estimated on unlabelled real road frames (AdaBN; not adopted, README lane section): do
the real frames score better when the encoder normalises with real-image statistics instead of the renderer's?

The unlabelled real frames in ../shared (never the 16 labelled ones, which stay the validation set): the 4 TuSimple
test images, the 25 frames of the 256x128 sequences, the 14 KITTI frames and nuScenes' front camera. Each
BatchNorm layer's running mean and variance become ``(1 - a) * renderer's + a * real``, the real ones measured
under the already adapted earlier layers (three passes to a fixed point); ``a = 0`` is the checkpoint as it is.
The metric: the official TuSimple one on the 16 real labelled frames, the card's default decoding.

    python benchmarks/experiments/lane_adabn.py [CHECKPOINT] [--alphas 0,0.1,0.25,0.5,1] [--sets all|tusimple]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from real_data import REAL_DATA  # noqa: E402  (a script one folder up)

#: unlabelled real frames by set (globs under the real-data folder)
UNLABELLED = {
    "tusimple": ("lane/tusimple_lanenet/test_image/*.jpg", "lane/robust_lane_seq_256x128/data/testset/image/*.jpg"),
    "other": ("kitti/raw_2011_09_26/2011_09_26/image_02/data/*.png", "kitti/object*/training/image_2/*.png",
              "nuscenes/mmdet3d_demo/*CAM_FRONT__*.jpg"),
}


def bn_inputs(prog: Any, card: Any, bns: list, images: list[np.ndarray]) -> list[tuple[Any, Any]]:
    """Each BatchNorm layer's per-channel mean and variance of its inputs over ``images`` (static clips)."""
    import torch

    from edge.data.frame import Frame

    sums: list[list[Any]] = [[0.0, 0.0, 0.0] for _ in bns]

    def hook(i: int) -> Any:
        def f(_m: Any, inp: tuple) -> None:
            x = inp[0].detach().double()
            sums[i][0] += x.sum((0, 2, 3))
            sums[i][1] += (x * x).sum((0, 2, 3))
            sums[i][2] += x.numel() / x.shape[1]
        return f

    handles = [b.register_forward_pre_hook(hook(i)) for i, b in enumerate(bns)]
    try:
        with torch.no_grad():
            for img in images:
                prog.reset()
                prog.step(prog.preprocess(card, {"camera": Frame(img, 0, 0, "camera", {})}))
    finally:
        for h in handles:
            h.remove()
    return [((s / n).float(), (q / n - (s / n) ** 2).float()) for s, q, n in sums]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?", type=Path, default=None)
    ap.add_argument("--alphas", default="0,0.1,0.25,0.5,1")
    ap.add_argument("--sets", choices=("all", "tusimple"), default="all")
    args = ap.parse_args()

    import cv2
    import torch
    from lane_real_tusimple import REAL, SETS

    from edge.models import get_card
    from edge.models.checkpoint import load_model
    from edge.models.lane.samples import tusimple_samples
    from edge.program import evaluate, torch_program

    card = get_card("lane")
    module, cfg, _ = load_model(args.checkpoint or card.default_checkpoint, expect_model="lane")
    module.eval()
    bns = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    orig = [(b.running_mean.clone(), b.running_var.clone()) for b in bns]
    globs = UNLABELLED["tusimple"] + (UNLABELLED["other"] if args.sets == "all" else ())
    paths = sorted(p for g in globs for p in REAL_DATA.glob(g))
    images = [cv2.imread(str(p)) for p in paths]
    labelled = [s for gt, root in SETS.values() for s in tusimple_samples(REAL / gt, REAL / root)]
    print(f"{len(images)} unlabelled real frames ({args.sets}), {len(bns)} BatchNorm layers, "
          f"{len(labelled)} labelled frames scored")
    with torch_program(card, module, cfg) as prog:
        for a in (float(x) for x in args.alphas.split(",")):
            for b, (m, v) in zip(bns, orig, strict=True):
                b.running_mean.copy_(m)
                b.running_var.copy_(v)
            for _ in range(3 if a > 0 else 0):
                for b, (m0, v0), (m1, v1) in zip(bns, orig, bn_inputs(prog, card, bns, images), strict=True):
                    b.running_mean.copy_((1 - a) * m0 + a * m1)
                    b.running_var.copy_((1 - a) * v0 + a * v1)
            r = evaluate(prog, card, labelled)
            print(f"a = {a:g}: {r['value']:.2f} % (FP {r['fp']:.3f}, FN {r['fn']:.3f})", flush=True)


if __name__ == "__main__":
    main()
