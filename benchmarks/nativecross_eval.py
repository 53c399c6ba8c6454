"""NativeCross accuracy: held-out synthetic rigs per perturbation range and per iteration (1..5), and the
real KITTI 000114 frame under seeded perturbations (errors before and after refinement).

With a bundle whose program has the matching stage (``refine_match``), the rows are the config's steps and then
``--rounds`` matching rounds (default 5; the table of 1..N rounds comes from one run); with the edge alignment
(``refine_edges``) the config's steps and then the alignment; otherwise 1..``--iterations`` steps (default 5).

Synthetic rigs come from the evaluation seed stream (disjoint from training), rendered at twice the
model's input like a real camera's image and resized. KITTI: ../shared/data/real/kitti/object/training
000114 with its calib perturbed ``--kitti`` times within 10 deg / 25 cm per axis (the protocol of the
paper's first table). Rotation error = geodesic angle, translation error = distance of translation
parts; L1 = < 1 deg and < 2.5 cm, L2 = < 2 deg and < 5 cm.

    python benchmarks/nativecross_eval.py BUNDLE [--frames 100] [--kitti 100] [--backend onnxruntime] [--rounds 5]
        [--program refine_match --out benchmarks/results/nativecross_eval_match.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from real_data import REAL_DATA, need_real  # $EDGE_REAL_DATA or ../shared/data/real (a sibling script)

from edge import jsonout

REAL = REAL_DATA / "kitti" / "object" / "training"
RANGES = ((10.0, 0.25), (10.0, 0.50), (15.0, 0.15))


def _run(prog: Any, card: Any, cfg: dict[str, Any], samples: list) -> dict[str, Any]:
    from edge.program import evaluate

    t0 = time.perf_counter()
    out = evaluate(prog, card, samples)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def _brief(s: dict[str, Any]) -> str:
    return (f"L2 {s['l2_rate']:5.1f}%  L1 {s['l1_rate']:5.1f}%  rot RMSE {s['rot_rmse_deg']:5.2f} deg  "
            f"trans RMSE {s['trans_rmse_cm']:5.1f} cm")


def _rows(res: dict[str, Any], steps: int, last: str = "match round") -> None:
    for i, it in enumerate(res["per_iteration"], 1):
        name = f"iteration {i}" if i <= steps else f"{last} {i - steps}"
        print(f"{'':>12} {name}: {_brief(it)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--frames", type=int, default=100, help="synthetic rigs per range")
    ap.add_argument("--kitti", type=int, default=100, help="perturbations of KITTI 000114")
    ap.add_argument("--iterations", type=int, default=None, help="steps (default: 5, or the config's with matching)")
    ap.add_argument("--rounds", type=int, default=5, help="matching rounds (a program with the matching stage)")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--program", default=None, help="e.g. refine_match (default: the bundle's first)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "nativecross_eval.json")
    args = ap.parse_args()
    if args.kitti:  # before any work: the KITTI rows are part of the table
        need_real(REAL / "calib" / "000114.txt", "KITTI 000114", without="--kitti 0")

    import edge
    from edge.bench.machine import machine
    from edge.files import atomic_write_text
    from edge.models.nativecross.samples import kitti_samples
    from edge.program import load_program

    b = edge.Bundle.load(args.bundle)
    card = edge.get_card(b.family)
    cfg = dict(b.manifest["model"]["config"])
    with load_program(b, args.backend, precision=args.precision, program=args.program) as prog:
        matching = getattr(prog.runner, "rounds", 0) > 0
        aligning = "edges" in prog.spec.host_stages  # its last iterate is the edge alignment's
        last = "edge alignment" if aligning else "match round"
        prog.runner.iterations = args.iterations or (int(cfg["iterations"]) if matching or aligning else 5)
        if matching:
            prog.runner.rounds = args.rounds
        # the CPU it ran on: each range's "seconds" is a timing (host stages such as the edge alignment dominate it)
        report: dict[str, Any] = {"machine": machine(), "bundle": str(args.bundle), "backend": args.backend,
                                  "precision": args.precision,
                                  "program": prog.name, "iterations": prog.runner.iterations,
                                  "match_rounds": args.rounds if matching else 0, "synthetic": {}, "kitti_000114": {}}
        for deg, m in RANGES:
            c = {**cfg, "eval_max_deg": deg, "eval_max_m": m}
            res = _run(prog, card, c, card.data.samples(c, "evaluation", args.frames, 0))
            key = f"{deg:g}deg_{m * 100:g}cm"
            report["synthetic"][key] = res
            print(f"synthetic {key:>12}: before {_brief(res['before'])}")
            _rows(res, prog.runner.iterations, last)
        if args.kitti:
            for deg, m in RANGES[:1]:
                res = _run(prog, card, cfg, kitti_samples(REAL, "000114", args.kitti, deg, m, seed=0))
                key = f"{deg:g}deg_{m * 100:g}cm"
                report["kitti_000114"][key] = res
                print(f"KITTI 000114 {key}: before {_brief(res['before'])}")
                _rows(res, prog.runner.iterations, last)
    atomic_write_text(args.out, jsonout.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
