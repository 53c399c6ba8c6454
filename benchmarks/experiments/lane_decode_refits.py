"""Lane decoding with each lane's rows refitted (not adopted; README, lane section): the shipped weights' outputs on
the 16 real labelled frames, 150 realistic held-out clips and 150 plain synthetic clips, decoded as shipped and with
each lane's kept rows replaced by (or pulled towards) a weighted low-order fit before completion.

    python benchmarks/experiments/lane_decode_refits.py [CHECKPOINT] [--clips 150]

Prints accuracy %, FP, FN per set and variant (recorded in benchmarks/results/lane_real_checks.json,
``decode_refits_2026_12_04``). Uses the lane card's private decoding helpers: an experiment, not an API.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lane_args import checkpoint_and_clips  # beside this script
from lane_real_tusimple import REAL, SETS  # a benchmarks script


def _softmax_stats(loc: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the softmax variance (px^2) and peak probability over the grid."""
    z = loc.astype(np.float64) - loc.max(-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(-1, keepdims=True)
    i = np.arange(loc.shape[-1])
    m = (p * i).sum(-1)
    var = (p * (i - m[..., None]) ** 2).sum(-1) * (width / loc.shape[-1]) ** 2
    return var, p.max(-1)


def refit_decoder(mode: str | None, *, deg: int = 2, weight: str = "var", s2: float = 25.0) -> Any:
    """A decode(loc, exist, cfg, orig_hw, h_samples) -> {"lanes"} that refits each lane (``mode`` "replace" or
    "shrink"; None: the shipped decode)."""
    import edge.models.lane.card as C

    def dec(loc: np.ndarray, exist: np.ndarray, cfg: dict, hw: tuple[int, int], hs: np.ndarray) -> dict:
        if mode is None:
            return C.decode(loc, exist, cfg, hw, hs)
        oh, ow = hw
        d0 = C.decode(loc, exist, cfg, hw, hs, complete=False)
        ys = np.asarray(cfg["row_anchors"]) * oh
        if not d0["slots"]:
            return d0
        xs, ons = np.zeros((len(d0["slots"]), len(ys))), np.zeros((len(d0["slots"]), len(ys)), bool)
        for k, (s, pts) in enumerate(zip(d0["slots"], d0["points"], strict=True)):
            ri = np.searchsorted(ys, pts[:, 1] - 1e-6)
            xs[k, ri], ons[k, ri] = pts[:, 0], True
            var, peak = _softmax_stats(loc[s], ow)
            if ons[k].sum() <= deg + 1:
                continue
            w = 1.0 / (var + 4.0) if weight == "var" else peak
            c = np.polyfit(ys[ons[k]] / oh, xs[k, ons[k]], deg, w=np.sqrt(w[ons[k]]))
            fit = np.polyval(c, ys / oh)
            if mode == "replace":
                new = fit
            else:
                a = 1.0 / (var + 1e-6)
                new = (a * xs[k] + fit / s2) / (a + 1.0 / s2)
            xs[k] = np.where(ons[k], new, xs[k])
        xs, ons = C._complete(xs, ons, ys, oh, ow)
        return {"lanes": C._at_h_samples(xs, ons, *C._sampling(tuple(cfg["row_anchors"]), oh,
                                                                np.asarray(hs, np.float64).tobytes()))}

    return dec


def main() -> None:
    args, card, module, cfg = checkpoint_and_clips(__doc__)

    from edge.models.lane.samples import realistic_samples, samples, tusimple_samples
    from edge.models.lane.tusimple import lane_bench
    from edge.program import run_samples, torch_program

    sets = {"real16": lambda: [s for gt, root in SETS.values() for s in tusimple_samples(REAL / gt, REAL / root)],
            "realistic": lambda: realistic_samples(cfg, args.clips, 99),
            "plain": lambda: samples(cfg, "evaluation", args.clips)}
    cached: dict[str, list] = {}
    with torch_program(card, module, cfg) as prog:  # the model once per sample; decoding variants re-run below
        for name, make in sets.items():
            cached[name] = [({k: v.copy() for k, v in out.items()}, frames["camera"].meta["gt"],
                             frames["camera"].data.shape[:2]) for _rec, frames, out in run_samples(prog, card, make())]
    variants = {"shipped": refit_decoder(None), "quadratic, 1/var weights": refit_decoder("replace"),
                "quadratic, peak weights": refit_decoder("replace", weight="peak"),
                "straight line": refit_decoder("replace", deg=1), "cubic": refit_decoder("replace", deg=3),
                **{f"pulled to the quadratic, fit variance {s2:g}": refit_decoder("shrink", s2=s2)
                   for s2 in (4, 25, 100)}}
    for vname, dec in variants.items():
        scores = {}
        for name, items in cached.items():
            tot = np.zeros(3)
            for out, gt, hw in items:
                lanes = dec(out["loc"][0], out["exist"][0], cfg, hw, np.asarray(gt["h_samples"], np.float64))["lanes"]
                tot += lane_bench(lanes, gt["lanes"], gt["h_samples"])
            a, fp, fn = tot / len(items)
            scores[name] = (round(100 * float(a), 2), round(float(fp), 3), round(float(fn), 3))
        print(vname, scores, flush=True)


if __name__ == "__main__":
    main()
