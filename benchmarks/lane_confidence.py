"""What a consumer's threshold on each lane's ``confidence`` (the JSONL field) does on the real labelled
TuSimple frames in ../shared/data/real: the official metric of a lane checkpoint (default: the shipped
one) through the streaming program, keeping only lanes at or above each minimum confidence.

    python benchmarks/lane_confidence.py [--checkpoint PATH] [--out benchmarks/results/lane_confidence.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lane_real_tusimple import REAL, SETS  # the real labelled sets, defined once (a sibling script)

from edge import jsonout

THRESHOLDS = (0.0, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=REAL)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lane_confidence.json")
    args = ap.parse_args()

    from edge.files import atomic_write_text
    from edge.models import get_card
    from edge.models.checkpoint import load_model
    from edge.models.lane.samples import tusimple_samples
    from edge.models.lane.tusimple import TuSimpleSample, evaluate
    from edge.program import run_samples, torch_program

    card = get_card("lane")
    ckpt = args.checkpoint or card.default_checkpoint
    module, cfg, _ = load_model(ckpt, expect_model="lane")
    recs: dict[str, list] = {}
    with torch_program(card, module, cfg) as prog:
        for name, (gt, root) in SETS.items():
            samples = tusimple_samples(args.data / gt, args.data / root)
            recs[name] = [(rec, frames["camera"].meta["gt"]) for rec, frames, _out in run_samples(prog, card, samples)]
    rows = []
    for mc in THRESHOLDS:
        row: dict = {"min_confidence": mc}
        for name, items in recs.items():
            preds = [TuSimpleSample(str(i), [x for x, c in zip(r["tusimple"]["lanes"], r["confidence"]) if c >= mc],
                                    g["h_samples"], 0.0) for i, (r, g) in enumerate(items)]
            gts = [TuSimpleSample(str(i), g["lanes"], g["h_samples"]) for i, (_r, g) in enumerate(items)]
            m = evaluate(preds, gts)
            row[name] = {"accuracy": round(100 * float(m["accuracy"]), 2), "fp": round(float(m["fp"]), 4),
                         "fn": round(float(m["fn"]), 4), "num": int(m["num"])}
        rows.append(row)
        print(jsonout.dumps(row))
    report = {"checkpoint": str(ckpt), "program": card.programs[0].name, "rows": rows}
    atomic_write_text(args.out, jsonout.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
