"""Held-out scores of lane checkpoints (default: the shipped one) on the training renderers, at TuSimple's 1280x720:
the domain-randomised clips on real layouts (:mod:`edge.models.lane.realistic`) with their vehicles and the same
clips without them, and the plain renderer's evaluation clips.

Why: the 16 real labelled frames are too few to tell two checkpoints apart (a seed spread of ~2 points), and
the plain renderer's held-out score (98 %) says nothing about the realistic half of training. Hundreds of
held-out realistic clips show how well a checkpoint fits what it was trained on, and what vehicles cost it.
It needs TuSimple's layout file (as training does). Official TuSimple metric, the default decoding.

    python benchmarks/lane_realistic_heldout.py [CHECKPOINT ...] [--clips 200] [--out benchmarks/results/...]

A measured row replaces the file's row of the same checkpoint and clip count; other rows stay.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from results_rows import checkpoint_name, read_results, write_rows  # a sibling script

#: the held-out stream's seed (``samples.eval_rng``: disjoint from every training stream)
SEED = 99


def _rounded(m: dict[str, Any]) -> dict[str, float]:
    return {"value": round(float(m["value"]), 2), "fp": round(float(m["fp"]), 4), "fn": round(float(m["fn"]), 4)}


def check(ckpt: str, clips: int) -> dict[str, Any]:
    from edge.models import get_card
    from edge.models.checkpoint import load_model
    from edge.models.lane.realistic import layouts_path, load_layouts, realistic_clip
    from edge.models.lane.samples import EVAL_HW, _clip_sample, eval_rng, samples
    from edge.models.lane.synthetic import TUSIMPLE_H_SAMPLES
    from edge.program import evaluate, torch_program

    card = get_card("lane")
    module, cfg, _ = load_model(ckpt)
    layouts = load_layouts(str(layouts_path()))
    h, w = EVAL_HW
    sets: dict[str, list] = {}
    for name, vehicles in (("realistic", True), ("realistic_no_vehicles", False)):
        rng = eval_rng(SEED)  # the same clips for both: only the vehicles differ
        sets[name] = []
        for i in range(clips):
            c = realistic_clip(rng, layouts, height=h, width=w, frames=int(cfg["frames"]), h_samples=TUSIMPLE_H_SAMPLES,
                               num_slots=int(cfg["slots"]), vehicles=vehicles)
            sets[name].append(_clip_sample(c.frames, c.lanes, TUSIMPLE_H_SAMPLES, f"realistic/{SEED}/{i}"))
    sets["plain"] = samples(cfg, "evaluation", clips)
    out: dict[str, Any] = {"checkpoint": checkpoint_name(ckpt), "clips": clips}
    with torch_program(card, module, cfg) as prog:
        for name, s in sets.items():
            out[name] = _rounded(evaluate(prog, card, s))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="*")
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lane_realistic_heldout.json")
    args = ap.parse_args()

    from edge.models import get_card

    kept = read_results(args.out)  # a bad file fails before any work
    ckpts = args.checkpoints or [str(get_card("lane").default_checkpoint)]
    rows = [check(c, args.clips) for c in ckpts]
    write_rows(args.out, kept, rows, lambda r: (r.get("checkpoint"), r.get("clips")))


if __name__ == "__main__":
    main()
