"""How well lane checkpoints fit their training renderers: held-out clips at 1280x720, TuSimple metric.

Default: the shipped checkpoint. Sets: new renders (the evaluation stream) of the domain-randomised clips on the
training layouts (:mod:`edge.models.lane.realistic`) with their vehicles, the same clips without them, and the
plain renderer's evaluation clips.

Why: the 16 real labelled frames are too few to tell two checkpoints apart (a seed spread of ~2 points), and
the plain renderer's held-out score (98 %) says nothing about the realistic half of training. Hundreds of
held-out realistic clips show how well a checkpoint fits what it was trained on, and what vehicles cost it.
It needs TuSimple's layout file (as training does). Official TuSimple metric, the default decoding.

    python benchmarks/lane_realistic_heldout.py [CHECKPOINT ...] [--clips 150] [--out FILE]

A measured row replaces the file's row of the same checkpoint and clip count; other rows stay.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from results_rows import checkpoint_name, measure, rounded_metric  # a sibling script

#: the held-out stream's seed (``samples.eval_rng``: disjoint from every training stream)
SEED = 99


def check(ckpt: str, clips: int) -> dict[str, Any]:
    """One row: the checkpoint's metric on each set, one set rendered and scored at a time (200 clips of 3
    frames at 1280x720 are 1.7 GB)."""
    from edge.models import get_card
    from edge.models.checkpoint import load_model
    from edge.models.lane.samples import realistic_samples, samples
    from edge.program import evaluate, torch_program

    card = get_card("lane")
    module, cfg, _ = load_model(ckpt)
    sets = {"realistic": lambda: realistic_samples(cfg, clips, SEED),  # the same clips twice: only vehicles differ
            "realistic_no_vehicles": lambda: realistic_samples(cfg, clips, SEED, vehicles=False),
            "plain": lambda: samples(cfg, "evaluation", clips)}
    out: dict[str, Any] = {"checkpoint": checkpoint_name(ckpt), "clips": clips}
    with torch_program(card, module, cfg) as prog:
        for name, make in sets.items():
            out[name] = rounded_metric(evaluate(prog, card, make()), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="*")
    ap.add_argument("--clips", type=int, default=150)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lane_realistic_heldout.json")
    args = ap.parse_args()

    measure(args.out, args.checkpoints, lambda c: check(c, args.clips), lambda r: (r.get("checkpoint"), r.get("clips")))


if __name__ == "__main__":
    main()
