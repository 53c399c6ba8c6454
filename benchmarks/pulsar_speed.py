"""A whole jammed VLP-16 frame (16 x 1800 x 800 bins) to a cleaned point cloud: torch eager vs ONNX Runtime
vs OpenVINO fp32 / INT8, the gated ``sectors`` program and the every-block ``full`` one, one run with
interleaved rounds. Also where the time goes (jam detection, the network's calls, the rest of the
runner, postprocess = peak extraction + points) for each configuration.

    python benchmarks/pulsar_speed.py BUNDLE [--rounds 7] [--cone 90]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge import jsonout


def _timed(prog: Any) -> dict[str, float]:
    """Wrap each graph runtime so time spent inside the network is summed."""
    acc = {"graph_s": 0.0}
    for rt in prog.runtimes.values():
        infer = rt.infer

        def timed(feeds: Any, _infer: Any = infer) -> Any:
            t0 = time.perf_counter()
            out = _infer(feeds)
            acc["graph_s"] += time.perf_counter() - t0
            return out

        rt.infer = timed  # the program looks the method up on every call
    return acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--cone", type=float, default=90.0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "pulsar_speed.json")
    args = ap.parse_args()

    import edge
    from edge.bench.machine import machine
    from edge.data.frame import Frame
    from edge.data.waveform import layout
    from edge.files import atomic_write_text
    from edge.models.pulsar.card import looks_jammed
    from edge.models.pulsar.samples import frame_meta
    from edge.models.pulsar.simulate import Attack, simulate_scene
    from edge.program import load_program
    from edge.runtimes import get_backend

    b = edge.Bundle.load(args.bundle)
    card = edge.get_card(b.family)
    cfg = b.manifest["model"]["config"]
    lay = layout("VLP16")
    sim = simulate_scene(lay, np.random.default_rng(11), Attack(azimuth_deg=30.0, cone_deg=args.cone, jitter_ns=10))
    frames = {"waveform": Frame(sim.waveform, 0, 0, "waveform", frame_meta(sim, lay))}
    feeds = card.preprocess(frames, cfg)
    plans = []
    for pname in [p for p in ("sectors", "full") if p in b.manifest["programs"]]:  # the bundle's programs
        plans.append((pname, "torch", "fp32", {}))
        for backend in ("onnxruntime", "openvino"):
            if not get_backend(backend).is_available()[0]:
                continue
            for prec in ("fp32", "int8"):
                if prec in b.manifest["programs"][pname]["precisions"] and \
                        backend in b.manifest["programs"][pname]["precisions"][prec]:
                    plans.append((pname, backend, prec, {"inference_precision": "f32"} if backend == "openvino"
                                  else {}))
    configs = []
    for pname, backend, prec, opts in plans:
        prog = load_program(b, backend, program=pname, precision=prec, threads=args.threads, **opts)
        acc = _timed(prog)
        prog.step(feeds)  # warm-up
        configs.append({"name": f"{pname}:{backend}/{prec}", "prog": prog, "acc": acc, "step": [], "post": [],
                        "graph": [], "calls": 0})
    t0 = time.perf_counter()
    jam = looks_jammed(sim.waveform, cfg["jam_amp"])
    detect_ms = (time.perf_counter() - t0) * 1e3
    for r in range(args.rounds):
        for c in configs if r % 2 == 0 else configs[::-1]:
            c["acc"]["graph_s"] = 0.0
            c["prog"].calls.clear()
            t0 = time.perf_counter()
            out = c["prog"].step(feeds)
            t1 = time.perf_counter()
            rec, _ = card.postprocess(out, frames, cfg)
            t2 = time.perf_counter()
            c["step"].append((t1 - t0) * 1e3)
            c["post"].append((t2 - t1) * 1e3)
            c["graph"].append(c["acc"]["graph_s"] * 1e3)
            c["calls"] = sum(c["prog"].calls.values())
            c["recovery"] = 100.0 * rec["eval"]["recovered"] / max(rec["eval"]["real"], 1.0)
    rows = []
    base = {c["name"].split(":")[0]: float(np.median(np.add(c["step"], c["post"]))) for c in configs
            if c["name"].split(":")[1].startswith("torch/")}
    for c in configs:
        total = np.add(c["step"], c["post"])
        med = float(np.median(total))
        prog_name = c["name"].split(":")[0]
        rows.append({"config": c["name"], "frame_ms": med, "fps": 1e3 / med, "step_ms": float(np.median(c["step"])),
                     "network_ms": float(np.median(c["graph"])), "postprocess_ms": float(np.median(c["post"])),
                     "network_calls": c["calls"], "point_recovery": c["recovery"],
                     "speedup_vs_torch": base.get(prog_name, med) / med})
        c["prog"].close()
    report = {"bundle": str(args.bundle), "frame": list(sim.waveform.shape), "cone_deg": args.cone,
              "jammed_cells": int(jam.sum()), "jam_detection_ms": detect_ms, "rounds": args.rounds,
              "machine": machine(),
              "rows": rows}
    for r in rows:
        print(f"{r['config']:<28} frame {r['frame_ms']:7.1f} ms ({r['fps']:5.2f} fps, "
              f"{r['speedup_vs_torch']:.2f}x torch)  network {r['network_ms']:6.1f} ms in {r['network_calls']} calls, "
              f"postprocess {r['postprocess_ms']:5.1f} ms, recovery {r['point_recovery']:.1f}%")
    atomic_write_text(args.out, jsonout.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
