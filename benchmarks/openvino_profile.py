"""Where an OpenVINO graph's time goes on this CPU: OpenVINO's own per-layer counters (PERF_COUNT) over many
inferences of one compiled graph, summed by layer type and kernel, and the slowest layers.

Why: a ratio against torch (``edge bench``) says how fast, not what to change; this says which layers
(attention, the stem convolution, reorders, input conversion) a whole-clip INT8 call spends its time in.

    python benchmarks/openvino_profile.py BUNDLE [--graph full] [--precision int8] [--hint f32|bf16]
        [--calls 100] [--out benchmarks/results/openvino_profile.json]
"""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import numpy as np

from edge import jsonout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--graph", default="full")
    ap.add_argument("--precision", default="int8", help="fp32 or int8 (the IR OpenVINO runs: NNCF's when kept)")
    ap.add_argument("--hint", default="f32", help="float-layer precision hint: f32 or bf16")
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "openvino_profile.json")
    args = ap.parse_args()

    import openvino as ov

    from edge.bench.machine import machine
    from edge.bundle import Bundle
    from edge.files import atomic_write_text

    b = Bundle.load(args.bundle)
    art = b.artifact(fmt="openvino_ir", graph=args.graph, precision=args.precision, prefer="openvino")
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(b.file(art["file"]))), "CPU", {
        "PERF_COUNT": True, "INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": args.hint})
    req = compiled.create_infer_request()
    rng = np.random.default_rng(0)
    feeds = {i.any_name: rng.standard_normal(list(i.shape)).astype(np.float32) for i in compiled.inputs}
    for _ in range(10):
        req.infer(feeds)
    per_layer: dict[tuple[str, str, str], float] = collections.defaultdict(float)
    t0 = time.perf_counter()
    for _ in range(args.calls):
        req.infer(feeds)
        for p in req.profiling_info:
            per_layer[(p.node_name, p.node_type, p.exec_type)] += p.real_time.total_seconds() * 1e3 / args.calls
    wall = (time.perf_counter() - t0) / args.calls * 1e3
    by_kind: dict[tuple[str, str], list[float]] = collections.defaultdict(lambda: [0.0, 0])
    for (_, kind, kernel), ms in per_layer.items():
        by_kind[(kind, kernel)][0] += ms
        by_kind[(kind, kernel)][1] += 1
    total = sum(per_layer.values())
    report = {
        "bundle": str(args.bundle), "artifact": art["name"], "hint": args.hint, "threads": args.threads,
        "calls": args.calls, "machine": machine(), "wall_ms_with_counters": wall, "layers_ms": total,
        "by_type": [{"type": k, "kernel": e, "ms": v[0], "layers": v[1]}
                    for (k, e), v in sorted(by_kind.items(), key=lambda kv: -kv[1][0]) if v[0] > 0],
        "slowest": [{"layer": n, "type": k, "kernel": e, "ms": ms}
                    for (n, k, e), ms in sorted(per_layer.items(), key=lambda kv: -kv[1])[:args.top]],
    }
    print(f"{art['name']} ({args.hint}): {total:.3f} ms in layers, {wall:.3f} ms a call with counters on")
    for r in report["by_type"][:12]:
        print(f"  {r['ms']:7.3f} ms  {r['layers']:3d} x {r['type']} ({r['kernel']})")
    atomic_write_text(args.out, jsonout.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
