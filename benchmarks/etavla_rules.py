"""ETA-VLA pruning rules in torch, quickly: one checkpoint pruned by each rule (eta, fastv, random) at keep
1.0 / 0.5 / 0.25 / 0.15, scored on the same held-out episodes (ADE, FDE, collisions, following).

    python benchmarks/etavla_rules.py [CHECKPOINT] [--episodes 100] [--out JSON]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from edge import jsonout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?",
                    default=str(Path(__file__).resolve().parents[1] / "edge/models/etavla/weights/default.pt"))
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "etavla_pruning_torch.json")
    args = ap.parse_args()

    from edge.files import atomic_write_text
    from edge.models import get_card
    from edge.models.checkpoint import load_model
    from edge.program import evaluate, torch_program

    card = get_card("etavla")
    base, cfg, _ = load_model(args.checkpoint)
    samples = card.data.samples(cfg, "evaluation", args.episodes, 0)
    rows = []
    for rule in ("eta", "fastv", "random"):
        for keep in (1.0, 0.5, 0.25, 0.15):
            if keep == 1.0 and rule != "eta":  # nothing is pruned: the same model
                continue
            c = card.with_options(cfg, {"keep": keep, "prune_rule": rule})
            model = card.build(c)
            model.load_state_dict(base.state_dict())
            t0 = time.perf_counter()
            with torch_program(card, model.eval(), c) as prog:
                m = evaluate(prog, card, samples)
            row = {"rule": rule, "keep": keep,
                   **{k: round(m[k], 4) for k in ("ade", "fde", "collision_rate", "follow_rate")}}
            rows.append(row)
            print(row, f"{time.perf_counter() - t0:.1f} s", flush=True)
    report = {"what": f"{args.checkpoint} pruned at evaluation by each rule and keep ratio; torch eager, "
                      f"{args.episodes} held-out episodes (evaluation seed stream 0)", "rows": rows}
    atomic_write_text(args.out, jsonout.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
