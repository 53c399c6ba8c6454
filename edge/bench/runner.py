"""``edge bench``: every artifact x backend x precision of a bundle plus torch eager, one process.

Configurations are loaded once, warmed up, then timed in interleaved rounds (each round calls every
configuration once, the order reversed every other round) so drift and noise hit all alike.
Reported per configuration: median/p90/p99 latency, throughput at batch 1, the resident-memory
growth when it was loaded, achieved GFLOP/s; plus the machine's GEMM peak measured in the same run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import Bundle
from edge.errors import EdgeError


@dataclass
class Config:
    name: str
    backend: str
    precision: str
    artifact: str
    runtime: Any
    rss_mb: float
    macs: int


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _configs(b: Bundle, backends: list[str], threads: int, say: Any) -> list[Config]:
    from edge.bench.flops import count_macs
    from edge.runtimes import load, require

    out: list[Config] = []
    onnx_arts = [a for a in b.artifacts if a["format"] == "onnx" and a.get("graph", "full") == "full"]
    base_macs = count_macs(str(b.file(onnx_arts[0].get("lowered", {}).get("onnxruntime", onnx_arts[0]["file"]))))
    plans: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = []
    if "torch" in backends:
        plans.append(("torch", "fp32", {"precision": None}, {}))
    for a in onnx_arts:
        if "onnxruntime" in backends:
            plans.append(("onnxruntime", a["precision"], {"precision": a["precision"]}, {}))
        if "openvino" in backends and a["precision"] in ("fp32", "fp16"):
            plans.append(("openvino", a["precision"], {"precision": a["precision"]}, {"inference_precision": "f32"}))
            if a["precision"] == "fp32":
                plans.append(("openvino", "bf16", {"precision": "fp32"}, {"inference_precision": "bf16"}))
        if "openvino" in backends and a["precision"] == "int8":
            plans.append(("openvino", "int8", {"precision": "int8"}, {"inference_precision": "f32"}))
    if "openvino" in backends:  # NNCF-native INT8 IRs have no ONNX twin
        for a in b.artifacts:
            if a["format"] == "openvino_ir" and a.get("quantization", {}).get("format") == "nncf":
                plans.append(("openvino", "int8-nncf", {"artifact": a["name"]}, {"inference_precision": "f32"}))
    for backend, label, sel, opts in plans:
        try:
            require(backend)
        except EdgeError as e:
            say(f"skip {backend}: {e}")
            continue
        before = _rss_mb()
        try:
            rt = load(b, backend=backend, threads=threads, **sel, **opts) if backend != "torch" else \
                load(b, backend="torch", threads=threads)
        except EdgeError as e:
            say(f"skip {backend}/{label}: {e}")
            continue
        art = "weights.pt" if backend == "torch" else sel.get("artifact") or next(
            a["name"] for a in onnx_arts if a["precision"] == sel["precision"])
        out.append(Config(f"{backend}/{label}", backend, label, art, rt, _rss_mb() - before, base_macs))
    return out


def run_bench(bundle: str | Path, *, backends: list[str] | None = None, rounds: int = 30, warmup: int = 5,
              threads: int = 0, say: Any = lambda _m: None) -> dict[str, Any]:
    """Benchmark a bundle; returns the report dict (what ``--json`` prints)."""
    from edge.bench.flops import gemm_peak_gflops
    from edge.models.registry import get_card

    b = Bundle.load(bundle)
    backends = backends or ["torch", "onnxruntime", "openvino"]
    configs = _configs(b, backends, threads, say)
    if not configs:
        raise EdgeError(f"{bundle}: nothing to benchmark with backends {backends}")
    card = get_card(b.model_name) if b.manifest["model"].get("family") != "custom" else None
    graph = card.graphs["full"] if card else None
    cfg = b.manifest["model"].get("config")
    if graph is not None and cfg:
        feeds = graph.example_inputs(cfg, 1, 0)
    else:
        rng = np.random.default_rng(0)
        feeds = {t.name: rng.standard_normal(t.concrete(batch=1)).astype(t.dtype) for t in b.io.inputs}
    for c in configs:
        for _ in range(warmup):
            c.runtime.infer(feeds)
    times: dict[str, list[float]] = {c.name: [] for c in configs}
    for r in range(rounds):
        for c in configs if r % 2 == 0 else configs[::-1]:
            t0 = time.perf_counter()
            c.runtime.infer(feeds)
            times[c.name].append((time.perf_counter() - t0) * 1e3)
    peak = gemm_peak_gflops()
    base = next((float(np.median(times[c.name])) for c in configs if c.backend == "torch"), None)
    rows = []
    for c in configs:
        t = np.asarray(times[c.name])
        med = float(np.median(t))
        rows.append({"config": c.name, "backend": c.backend, "precision": c.precision, "artifact": c.artifact,
                     "median_ms": med, "p90_ms": float(np.percentile(t, 90)), "p99_ms": float(np.percentile(t, 99)),
                     "throughput_per_s": 1e3 / med, "rss_delta_mb": round(c.rss_mb, 1),
                     "gflops": 2 * c.macs / (med / 1e3) / 1e9, "speedup_vs_torch": (base / med) if base else None,
                     "samples_ms": [round(float(x), 3) for x in t]})
        c.runtime.close()
    return {"bundle": str(bundle), "model": b.model_name, "batch": 1, "rounds": rounds, "warmup": warmup,
            "threads": threads, "gmacs": configs[0].macs / 1e9, "gemm_peak_gflops": peak,
            "peak_rss_mb": _rss_mb(), "rows": rows}


def plot(report: dict[str, Any], path: str | Path) -> Path:
    """Box plot of latency per configuration (spread of all rounds), written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edge.bundle import atomic_path

    rows = report["rows"]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rows)), 4))
    ax.boxplot([r["samples_ms"] for r in rows], showfliers=True)
    ax.set_xticks(range(1, len(rows) + 1), [r["config"] for r in rows], rotation=30, ha="right")
    ax.set_ylabel("latency per inference (ms)")
    ax.set_title(f"{report['model']} batch 1, {report['rounds']} interleaved rounds")
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out
