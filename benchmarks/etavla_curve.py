"""ETA-VLA speed-accuracy curve: one checkpoint exported at several keep ratios, each on ONNX Runtime and
OpenVINO at fp32 and INT8 (gated on ADE), timed in one run, scored on the same held-out episodes; then the
pruning rules (eta, fastv, random) compared at the same keep ratio.

Per keep ratio: FLOPs per step counted from the exported ONNX (2 x the MACs ``edge bench`` counts over
the graphs one step calls: 3 views encoded + the policy), the
program's median latency per step (``edge bench``'s interleaved rounds: the ratios hold on a busy
machine, the milliseconds less so), ADE / FDE / collision rate / instruction-following on ``--episodes``
held-out episodes (evaluation seed stream, disjoint from training).

    python benchmarks/etavla_curve.py [CHECKPOINT] [--keeps 1.0,0.5,0.25,0.15] [--episodes 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from edge import jsonout


def _score(bundle: Path, backend: str, precision: str, samples: list) -> dict[str, Any]:
    import edge
    from edge.program import evaluate, load_program

    b = edge.Bundle.load(bundle)
    card = edge.get_card(b.family)
    with load_program(b, backend, precision=precision) as prog:
        m = evaluate(prog, card, samples)
    return {k: m[k] for k in ("ade", "fde", "collision_rate", "follow_rate", "by_command", "episodes")}


def _split(bundle: Path, backend: str, precision: str, rounds: int) -> dict[str, float]:
    """Median ms of one ``encode`` call (one view) and one ``policy`` call, interleaved: where a step's time
    goes (a step = 3 encodes + 1 policy)."""
    import numpy as np

    import edge

    b = edge.Bundle.load(bundle)
    card = edge.get_card(b.family)
    cfg = b.manifest["model"]["config"]
    rts = {g: edge.load(b, graph=g, backend=backend, precision=precision) for g in ("encode", "policy")}
    feeds = {"encode": card.graphs["encode"].example_inputs(cfg, 1, 0),
             "policy": card.graphs["policy"].example_inputs(cfg, 1, 0)}
    times: dict[str, list[float]] = {g: [] for g in rts}
    try:
        for _ in range(3):
            for g, rt in rts.items():
                rt.infer(feeds[g])
        for _ in range(rounds * 5):
            for g, rt in rts.items():
                t0 = time.perf_counter()
                rt.infer(feeds[g])
                times[g].append((time.perf_counter() - t0) * 1e3)
    finally:
        for rt in rts.values():
            rt.close()
    return {f"{g}_ms": float(np.median(v)) for g, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?", default=None, help="default: the shipped weights")
    ap.add_argument("--keeps", default="1.0,0.5,0.25,0.15")
    ap.add_argument("--rules", default="eta,fastv,random")
    ap.add_argument("--rule-keep", type=float, default=0.15, help="keep ratio of the rule comparison")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--calib-size", type=int, default=32)
    ap.add_argument("--max-drop", default="5%", help="INT8 gate budget on ADE (a percentage of fp32, or metres)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "etavla_curve.json")
    args = ap.parse_args()

    import edge
    from edge.bench.machine import machine
    from edge.bench.runner import run_bench
    from edge.export.api import export_card
    from edge.files import atomic_write_text

    card = edge.get_card("etavla")
    ckpt = args.checkpoint or str(card.default_checkpoint or "")
    if not ckpt:
        raise SystemExit("no checkpoint: pass one (edge train etavla ...) or ship weights/default.pt")
    from edge.models.checkpoint import read_checkpoint

    cfg = read_checkpoint(Path(ckpt))["config"]
    samples = card.data.samples(cfg, "evaluation", args.episodes, 0)
    keeps = [float(k) for k in args.keeps.split(",")]
    rows, rules = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for keep in keeps:
            out = Path(tmp) / f"keep{keep}"
            t0 = time.perf_counter()
            export_card(ckpt, out, options={"keep": keep}, targets=("onnx", "openvino"), precisions=["fp32", "int8"],
                        calib_size=args.calib_size, eval_size=40, max_drop=args.max_drop)
            b = edge.Bundle.load(out)
            bench = run_bench(out, backends=["onnxruntime", "openvino"], rounds=args.rounds, warmup=3)
            for r in bench["rows"]:
                backend, precision = r["backend"], r["precision"]
                if precision not in ("fp32", "int8"):  # e.g. OpenVINO bf16: timed by the bench, not scored here
                    continue
                acc = _score(out, backend, precision, samples)
                flops = 2e9 * r["gmacs"]  # per step, from the graphs the step really called (edge bench)
                gate = b.manifest["programs"]["stream"].get("gates", {}).get(backend, {}).get(precision)
                used = sorted(set(b.manifest["programs"]["stream"]["precisions"][precision][backend].values()))
                rows.append({"keep": keep, "kept_tokens": b.graph_io("policy").outputs[2].shape[1],
                             "backend": backend, "precision": precision, "step_ms": r["median_ms"],
                             "flops_per_step": flops, "artifacts": used, "gate": gate,
                             **_split(out, backend, precision, args.rounds), **acc})
                print(f"keep {keep:4.2f} {backend:<11} {precision:<4} {r['median_ms']:7.2f} ms "
                      f"(encode {rows[-1]['encode_ms']:.2f} x3, policy {rows[-1]['policy_ms']:.2f}) "
                      f"{flops / 1e6:7.1f} MFLOP  ADE {acc['ade']:.3f} m  FDE {acc['fde']:.3f}  "
                      f"coll {100 * acc['collision_rate']:.1f}%  follow {100 * acc['follow_rate']:.1f}%", flush=True)
            print(f"  (export + bench + scoring {time.perf_counter() - t0:.0f} s)", flush=True)
        for rule in args.rules.split(","):
            out = Path(tmp) / f"rule_{rule}"
            export_card(ckpt, out, options={"keep": args.rule_keep, "prune_rule": rule})
            acc = _score(out, "onnxruntime", "fp32", samples)
            rules.append({"rule": rule, "keep": args.rule_keep, **acc})
            print(f"rule {rule:<7} keep {args.rule_keep}: ADE {acc['ade']:.3f} m  FDE {acc['fde']:.3f}  "
                  f"coll {100 * acc['collision_rate']:.1f}%  follow {100 * acc['follow_rate']:.1f}%", flush=True)
    base = {(r["backend"], r["precision"]): r for r in rows if r["keep"] == 1.0}
    for r in rows:
        ref = base.get((r["backend"], r["precision"]))
        if ref:
            r["flops_vs_keep1"] = r["flops_per_step"] / ref["flops_per_step"]
            r["latency_vs_keep1"] = r["step_ms"] / ref["step_ms"]
            r["ade_vs_keep1"] = r["ade"] / ref["ade"]
            r["follow_drop_points"] = 100 * (ref["follow_rate"] - r["follow_rate"])
    report = {"checkpoint": ckpt, "episodes": args.episodes, "rows": rows, "rules": rules, "machine": machine()}
    atomic_write_text(args.out, jsonout.dumps(report, indent=1) + "\n")
    _plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out}")


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for (backend, precision) in sorted({(r["backend"], r["precision"]) for r in rows}):
        sel = sorted((r for r in rows if (r["backend"], r["precision"]) == (backend, precision)),
                     key=lambda r: r["keep"])
        ax[0].plot([r["step_ms"] for r in sel], [r["ade"] for r in sel], "o-", label=f"{backend} {precision}")
        for r in sel:
            ax[0].annotate(f"{r['keep']:g}", (r["step_ms"], r["ade"]), fontsize=7)
    one = sorted({(r["keep"], r["flops_per_step"]) for r in rows})
    ax[1].plot([k for k, _ in one], [f / 1e6 for _, f in one], "o-")
    ax[0].set_xlabel("latency per step (ms)")
    ax[0].set_ylabel("ADE (m)")
    ax[0].legend(fontsize=7)
    ax[1].set_xlabel("keep ratio")
    ax[1].set_ylabel("MFLOP per step")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
