"""Where a lane checkpoint's x is off, by the label's distance from the image side: real frames vs rendered clips.

Each labelled lane is matched to the prediction with the most rows within TuSimple's angle-adjusted 20 px threshold
(a lane with no prediction right on half its rows is a miss, left out); its rows are bucketed by the label's
distance from the nearer image side: the share off by more than that threshold and the error towards the image
centre. On the 16 real labelled TuSimple frames and on held-out renders of the training layouts without vehicles
(:func:`edge.models.lane.samples.realistic_samples`: the renderer the model trained on, synthetic looks).

Why: the real frames lose most of their points to lateral misses near the image's sides. If the renderer's clips
showed the same misses, training or decoding would be at fault; if only real frames do, it is how real roads look.

    python benchmarks/lane_lateral_errors.py [CHECKPOINT] [--clips 80] [--data REAL_LANE_DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np
from lane_real_tusimple import REAL, SETS  # the real labelled sets, defined once (a sibling script)
from lane_realistic_heldout import SEED  # the held-out stream both scripts render
from results_rows import ROOT, checkpoint_name, measure  # a sibling script

BUCKETS = ((0, 50, "<50 px"), (50, 150, "50-150 px"), (150, 300, "150-300 px"), (300, 10_000, ">300 px"))


def lateral(results: list, width: int = 1280) -> dict[str, Any]:
    """Per bucket: rows, % off by more than the threshold, median and mean inward error (px; + = towards the image
    centre)."""
    from edge.models.lane.tusimple import lane_angle

    per: dict[str, list[float]] = {b[2]: [] for b in BUCKETS}
    off: dict[str, list[bool]] = {b[2]: [] for b in BUCKETS}
    for rec, frames, _ in results:
        gt = frames["camera"].meta["gt"]
        hs = np.asarray(gt["h_samples"], np.float64)
        preds = [np.asarray(p, np.float64) for p in rec["tusimple"]["lanes"]]
        for g in (np.asarray(lane, np.float64) for lane in gt["lanes"]):
            ok = g >= 0
            if ok.sum() < 5 or not preds:
                continue
            thr = 20.0 / np.cos(lane_angle(g[ok], hs[ok]))
            hits = [int((np.abs(p - g)[ok & (p >= 0)] < thr).sum()) for p in preds]
            if max(hits) < 0.5 * ok.sum():
                continue  # no prediction is this lane: a miss, not a lateral error
            p = preds[int(np.argmax(hits))]
            both = ok & (p >= 0)
            inward = (p[both] - g[both]) * np.where(g[both] < width / 2, 1.0, -1.0)
            side = np.minimum(g[both], width - g[both])
            for lo, hi, name in BUCKETS:
                sel = (side >= lo) & (side < hi)
                per[name] += inward[sel].tolist()
                off[name] += (np.abs(inward[sel]) >= thr).tolist()
    out = {}
    for name, v in per.items():
        a = np.asarray(v)
        out[name] = {"rows": int(a.size)} if not a.size else {
            "rows": int(a.size), "off_pct": round(100 * float(np.mean(off[name])), 1),
            "inward_median_px": round(float(np.median(a)), 1) + 0.0, "inward_mean_px": round(float(a.mean()), 1) + 0.0}
    return out


def check(ckpt: str, data: Path, clips: int) -> dict[str, Any]:
    """One row: :func:`lateral` on the real frames under ``data`` and on ``clips`` rendered clips."""
    from edge.models import get_card
    from edge.models.checkpoint import load_model
    from edge.models.lane.samples import realistic_samples, tusimple_samples
    from edge.program import run_samples, torch_program

    card = get_card("lane")
    module, cfg, _ = load_model(ckpt)
    real = [s for gt, root in SETS.values() for s in tusimple_samples(data / gt, data / root)]
    synth = realistic_samples(cfg, clips, SEED, vehicles=False)
    with torch_program(card, module, cfg) as prog:
        return {"checkpoint": checkpoint_name(ckpt), "clips": clips, "data": os.path.relpath(data, ROOT),
                "real16": lateral(run_samples(prog, card, real)),
                "realistic_no_vehicles": lateral(run_samples(prog, card, synth))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("--data", type=Path, default=REAL)
    ap.add_argument("--clips", type=int, default=80)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lane_lateral_errors.json")
    args = ap.parse_args()

    measure(args.out, [args.checkpoint] if args.checkpoint else [], lambda c: check(c, args.data, args.clips),
            lambda r: (r.get("checkpoint"), r.get("clips"), r.get("data")))


if __name__ == "__main__":
    main()
