"""What one-thread OpenVINO pays for running without its fused "snippets" kernels (``SNIPPETS_MODE``
DISABLE, which ``edge.runtimes.openvino`` sets for every one-thread compile since OpenVINO 2026.4
segfaulted compiling a shipped graph with one thread through them).

Usage: ``python benchmarks/openvino_snippets.py BUNDLE [--rounds 5] [--calls 40] [--out FILE]``

Every OpenVINO IR of the bundle is compiled twice with one thread (snippets on, snippets off) in this
process and called on the same random feeds, alternating in rounds; the result is the median latency of
each and their ratio. A graph whose compile with snippets crashes the process cannot be measured here
(run each graph in its own process with ``--graph`` if that happens).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from edge import jsonout


def measure(xml: Path, io: dict, rounds: int, calls: int) -> dict:
    import openvino as ov

    from edge.runtimes.openvino import core

    rng = np.random.default_rng(0)
    feeds = {}
    for t in io["inputs"]:
        shape = [d if isinstance(d, int) else 1 for d in t["shape"]]
        feeds[t["name"]] = (rng.standard_normal(shape).astype(t["dtype"]) if t["dtype"].startswith("float")
                            else np.zeros(shape, t["dtype"]))
    model = core().read_model(str(xml))
    base = {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
            "ENABLE_CPU_PINNING": False}
    reqs = {}
    for mode in ("on", "off"):
        cfg = dict(base, **({"SNIPPETS_MODE": "DISABLE"} if mode == "off" else {}))
        reqs[mode] = core().compile_model(model, "CPU", cfg).create_infer_request()
        for _ in range(5):
            reqs[mode].infer(feeds)
    times: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(rounds):
        for mode in ("on", "off"):
            for _ in range(calls):
                t0 = time.perf_counter()
                reqs[mode].infer(feeds)
                times[mode].append((time.perf_counter() - t0) * 1e3)
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    del ov
    return {"snippets_ms_p50": round(on, 3), "no_snippets_ms_p50": round(off, 3), "cost": round(off / on, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--graph", default=None, help="only this graph")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    from edge.bench.machine import machine
    from edge.bundle import Bundle

    b = Bundle.load(a.bundle)
    rows = []
    for art in b.manifest["artifacts"]:
        if art.get("format") != "openvino_ir" or (a.graph and art.get("graph") != a.graph):
            continue
        io = b.manifest["graphs"][art["graph"]]
        row = {"graph": art["graph"], "precision": art.get("precision"), "file": art["file"],
               **measure(b.path / art["file"], io, a.rounds, a.calls)}
        print(jsonout.dumps(row), flush=True)
        rows.append(row)
    out = {"what": "one-thread OpenVINO CPU, SNIPPETS_MODE default vs DISABLE, same process, alternating rounds",
           "bundle": str(a.bundle), "model": b.manifest["model"].get("name"), "config": b.manifest["model"].get(
               "config", {}).get("input_hw"), "machine": machine(), "rows": rows}
    if a.out:
        a.out.write_text(jsonout.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
