"""Real-frame checks of lane checkpoints (default: the shipped one): the official TuSimple metric on the 16 real
labelled frames in ../shared/data/real, predicted lane points above where the road ends (more than 10 px
above the frame's first labelled row), and lateral stability over the 5 real 256x128 sequences (mean jump,
in pixels of those frames, of each lane between consecutive frames over the lowest fifth of the rows it has
in both).

    python benchmarks/lane_real_checks.py [CHECKPOINT ...] [--out benchmarks/results/lane_real_checks.json]

A measured row replaces the file's row of the same checkpoint and decoding; its other rows (other decodings,
recorded by hand) and keys (experiments, diagnoses) stay.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from lane_real_tusimple import REAL, SETS  # the real labelled sets, defined once (a sibling script)
from results_rows import checkpoint_name, measure, rounded_metric  # a sibling script


def _above_road_end(prog: Any, card: Any, cfg: dict[str, Any], samples: list) -> dict[str, int]:
    from edge.program import run_samples

    above, total = 0, 0
    for _rec, frames, out in run_samples(prog, card, samples):
        _, payload = card.postprocess(out, frames, cfg)
        gt = frames["camera"].meta["gt"]
        top = min(h for lane in gt["lanes"] for h, x in zip(gt["h_samples"], lane, strict=True) if x >= 0)
        for pts in payload["points"]:
            total += len(pts)
            above += int((pts[:, 1] < top - 10).sum())
    return {"points": above, "of": total}


def _stability(prog: Any, card: Any, cfg: dict[str, Any], root: Path) -> dict[str, Any]:
    import cv2

    from edge.data.frame import Frame

    jumps = []
    for line in (root / "test_index_demo.txt").read_text().splitlines():
        images = [p for p in line.split() if "/image/" in p][:5]
        prog.reset()
        prev: dict[int, np.ndarray] | None = None
        for p in images:
            fr = {"camera": Frame(cv2.imread(str(root / p)), 0, 0, "camera", {})}
            _, d = card.postprocess(prog.step(card.preprocess(fr, cfg)), fr, cfg)
            cur = dict(zip(d["slots"], d["points"], strict=True))
            for s in set(cur) & set(prev or {}):
                a, b = cur[s], prev[s]
                # the same rows in both frames (lanes of different lengths would compare different rows)
                common = np.intersect1d(a[:, 1], b[:, 1])
                if common.size:
                    low = common[common >= 0.8 * common.max()]
                    xa, xb = (dict(zip(p[:, 1].tolist(), p[:, 0].tolist())) for p in (a, b))
                    jumps.append(float(np.mean([abs(xa[y] - xb[y]) for y in low.tolist()])))
            prev = cur
    return {"mean_jump_px": round(float(np.mean(jumps)), 2) if jumps else None, "pairs": len(jumps)}


#: how :func:`check` decodes (the card's default), the ``decode`` field of the rows it writes
DEFAULT_DECODE = ("outlier rule + rows more than 0.04 of the image height above where the lanes converge off + "
                  "lanes completed (gaps interpolated, continued 0.045 of the image height below their last row; "
                  "the default)")


def check(ckpt: str, data: Path) -> dict[str, Any]:
    from edge.models import get_card
    from edge.models.checkpoint import load_model
    from edge.models.lane.samples import tusimple_samples
    from edge.program import evaluate, torch_program

    card = get_card("lane")
    module, cfg, _ = load_model(ckpt)
    out: dict[str, Any] = {"checkpoint": checkpoint_name(ckpt), "decode": DEFAULT_DECODE}
    with torch_program(card, module, cfg) as prog:
        every = []
        for name, (gt, root) in SETS.items():
            samples = tusimple_samples(data / gt, data / root)
            every += samples
            out[name] = rounded_metric(evaluate(prog, card, samples))
        out["all16"] = rounded_metric(evaluate(prog, card, every))
        out["points_above_road_end"] = _above_road_end(prog, card, cfg, every)
        out["stability_256x128"] = _stability(prog, card, cfg, data / "robust_lane_seq_256x128")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="*")
    ap.add_argument("--data", type=Path, default=REAL)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lane_real_checks.json")
    args = ap.parse_args()

    measure(args.out, args.checkpoints, lambda c: check(c, args.data), lambda r: (r.get("checkpoint"), r.get("decode")))


if __name__ == "__main__":
    main()
