"""Latency of the lane model per attention export mode, per runtime, vs torch eager, in one run.

Each mode (decomposed / onnx / plugin) is exported from the same weights; every runtime session and
torch eager are timed in interleaved rounds after a warm-up (batch 1, whole-clip graph), so noise
hits all alike. OpenVINO rows appear when openvino is installed.

    python benchmarks/attention_cpu.py [--config default] [--rounds 40] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from edge import jsonout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="default")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "attention_cpu.json")
    args = ap.parse_args()

    import torch

    import edge
    from edge.export.api import tool_versions
    from edge.files import atomic_write_text
    from edge.models.lane import card as lane
    from edge.runtimes import list_backends, require

    torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory()
    runtimes = {}
    cfg = None
    for mode in ("decomposed", "onnx", "plugin"):
        b, _ = edge.export_card("lane", Path(tmp.name) / mode, config=args.config, attention=mode,
                                 programs=["clip"])
        cfg = b.manifest["model"]["config"]
        runtimes[("onnxruntime", mode)] = edge.load(b, backend="onnxruntime", threads=args.threads)
        if "openvino" in list_backends():
            try:
                require("openvino")
                runtimes[("openvino", mode)] = edge.load(b, backend="openvino", threads=args.threads)
            except edge.EdgeError:
                pass
        if ("torch", "eager") not in runtimes:
            runtimes[("torch", "eager")] = edge.load(b, backend="torch", threads=args.threads)
    feeds = lane.example_full(cfg, 1, 0)
    keys = list(runtimes)
    for _ in range(args.warmup):
        for k in keys:
            runtimes[k].infer(feeds)
    times: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    for r in range(args.rounds):
        for k in (keys if r % 2 == 0 else keys[::-1]):
            t0 = time.perf_counter()
            runtimes[k].infer(feeds)
            times[k].append((time.perf_counter() - t0) * 1e3)
    base = float(np.median(times[("torch", "eager")]))
    rows = []
    for (be, mode), t in times.items():
        med = float(np.median(t))
        rows.append({"backend": be, "attention": mode, "median_ms": med, "p90_ms": float(np.percentile(t, 90)),
                     "speedup_vs_torch": base / med})
    print(f"lane {args.config}, batch 1, whole clip, {args.threads} threads, {args.rounds} interleaved rounds")
    print(f"{'backend':<12} {'attention':<11} {'median ms':>10} {'p90 ms':>8} {'vs torch':>9}")
    for row in rows:
        print(f"{row['backend']:<12} {row['attention']:<11} {row['median_ms']:>10.2f} {row['p90_ms']:>8.2f} "
              f"{row['speedup_vs_torch']:>8.2f}x")
    report = {"model": f"lane/{args.config}", "batch": 1, "threads": args.threads, "rounds": args.rounds,
              "tools": tool_versions(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, jsonout.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    for rt in runtimes.values():
        rt.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
