"""torch eager vs ONNX Runtime latency for the default lane model at batch 1, in one run.

Both backends are loaded from the same bundle and timed in interleaved rounds (one call of each per
round, order alternating) after a warm-up, so machine noise hits both alike; we report median and
p90 per backend and the ratio torch/ORT. Two workloads: the whole clip graph (T frames) and the
streaming step (encoder on the new frame + temporal head on the ring buffer).

    python benchmarks/lane_cpu.py [--bundle DIR] [--rounds 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from edge import jsonout


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"median_ms": float(np.median(a)), "p90_ms": float(np.percentile(a, 90)), "n": len(a)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, help="existing lane bundle (default: export the shipped model)")
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lane_cpu.json")
    args = ap.parse_args()

    import torch

    import edge
    from edge.bench.machine import machine
    from edge.export.api import tool_versions
    from edge.files import atomic_write_text
    from edge.models.lane import card as lane

    torch.set_num_threads(args.threads)
    tmp = None
    bundle = args.bundle
    if bundle is None:
        tmp = tempfile.TemporaryDirectory()
        bundle = Path(tmp.name) / "lane"
        edge.export_card("lane", bundle)
    b = edge.Bundle.load(bundle)
    cfg = b.manifest["model"]["config"]
    feeds = {
        "full": lane.example_full(cfg, 1, 0),
        "encoder": lane.example_encoder(cfg, 1, 0),
        "temporal": lane.example_temporal(cfg, 1, 0),
    }
    rts = {(be, g): edge.load(b, backend=be, graph=g, threads=args.threads)
           for be in ("torch", "onnxruntime") for g in feeds}

    def call(be: str, work: str) -> float:
        t0 = time.perf_counter()
        if work == "streaming":
            rts[(be, "encoder")].infer(feeds["encoder"])
            rts[(be, "temporal")].infer(feeds["temporal"])
        else:
            rts[(be, "full")].infer(feeds["full"])
        return (time.perf_counter() - t0) * 1e3

    results: dict[str, dict] = {}
    for work in ("full_clip", "streaming"):
        for _ in range(args.warmup):
            call("torch", work), call("onnxruntime", work)
        times: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
        for r in range(args.rounds):
            order = ("torch", "onnxruntime") if r % 2 == 0 else ("onnxruntime", "torch")
            for be in order:
                times[be].append(call(be, work))
        res = {be: _stats(t) for be, t in times.items()}
        res["ratio_torch_over_ort_median"] = res["torch"]["median_ms"] / res["onnxruntime"]["median_ms"]
        results[work] = res
    report = {"model": f"lane/{cfg['input_hw'][0]}x{cfg['input_hw'][1]}xT{cfg['frames']}", "batch": 1,
              "threads": args.threads, "rounds": args.rounds, "machine": machine(),
              "tools": tool_versions(), "results": results}
    print(f"lane default, batch 1, {args.threads} threads, {args.rounds} interleaved rounds")
    print(f"{'workload':<11} {'backend':<12} {'median ms':>10} {'p90 ms':>8}")
    for work, res in results.items():
        for be in ("torch", "onnxruntime"):
            print(f"{work:<11} {be:<12} {res[be]['median_ms']:>10.2f} {res[be]['p90_ms']:>8.2f}")
        print(f"{work:<11} ratio torch/onnxruntime (median): {res['ratio_torch_over_ort_median']:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, jsonout.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
