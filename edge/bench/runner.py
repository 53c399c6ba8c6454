"""``edge bench``: every program x backend x precision of a bundle plus torch eager, in one process.

What is timed is one *program step*: what ``edge run`` pays per input (a streaming program: an encoder
pass on the new frame + a temporal head on the ring buffer; a whole-clip program: one call of the
clip graph). Each configuration is loaded once, run over a sample to fill its state, warmed up,
then timed in interleaved rounds (each round calls every configuration twice and times the second call,
so no configuration pays for its neighbour's still-spinning threads or its own sleeping ones; the order
is reversed every other round) so drift and noise hit all alike. Reported per configuration: median/p90/p99 latency,
throughput, the resident-memory growth when it was loaded, MACs per step (graph MACs x the calls the
runner makes) and achieved GFLOP/s, next to the machine's fp32 and int8 GEMM peaks measured in the same
run, before and after the timing, the higher kept (``of_peak``: against the int8 peak for int8 rows; none for
bf16 rows, which AMX and AVX-512 BF16 run past the fp32 peak), with the CPU model and ISA it ran on.
Configurations that cannot be loaded here are listed under ``skipped`` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.bench.interleave import interleaved_ms, speedup_interval
from edge.bundle import Bundle
from edge.errors import EdgeError
from edge.plans import chosen_programs, program_plans, unplanned


@dataclass
class Config:
    name: str
    program: str
    backend: str
    precision: str
    runtime: Any  # an edge.program.Program
    rss_mb: float
    macs: int
    feeds: list[dict[str, np.ndarray]]  # its steps' feeds, made as this program takes them


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sample(b: Bundle, card: Any) -> list[Any] | list[dict[str, np.ndarray]]:
    """One realistic input sequence: the family's evaluation sample (frame sets), else random step feeds."""
    cfg = b.manifest["model"].get("config") or {}
    if card is not None:
        if card.data is None:
            raise EdgeError(f"{b.path}: model '{card.name}' declares no data (card.data), so there is no realistic "
                            "input to time its programs with")
        return list(card.data.samples(cfg, "evaluation", 1, 0)[0])
    rng = np.random.default_rng(0)
    io = b.graph_io()
    return [{t.name: rng.standard_normal(t.concrete(batch=1)).astype(t.dtype) for t in io.inputs}]


def _graph_macs(b: Bundle, graph: str) -> int:
    from edge.bench.flops import count_macs

    art = next((a for a in b.artifacts if a["format"] == "onnx" and a.get("graph") == graph
                and a["precision"] == "fp32"), None)
    if art is None:
        return 0
    return count_macs(str(b.file(art.get("lowered", {}).get("onnxruntime", art["file"]))))


def run_bench(bundle: str | Path, *, backends: list[str] | None = None, rounds: int = 30, warmup: int = 5,
              threads: int = 0, programs: list[str] | None = None, say: Any = lambda _m: None) -> dict[str, Any]:
    """Benchmark a bundle; returns the report dict (what ``--json`` prints)."""
    from edge.bench.machine import blas_threads_settable, gemm_peak_gflops, int8_gemm_peak_gops, int8_support, machine
    from edge.models.contract import family_code
    from edge.program import card_for_bundle, load_program
    from edge.runtimes import require

    b = Bundle.load(bundle)
    # the machine's GEMM peaks first, before any runtime is loaded, and int8 before fp32: right after numpy's
    # GEMM its BLAS threads still spin (~0.1 s) on the cores ONNX Runtime's int8 GEMM needs, and the int8
    # peak read 320-400 GOP/s in every edge bench run against 830 +- 3 % measured alone
    peak8 = int8_gemm_peak_gops(threads=threads)
    peak, here = gemm_peak_gflops(threads=threads), machine()
    backends = backends or ["torch", "onnxruntime", "openvino"]
    card = card_for_bundle(b)
    specs = chosen_programs(b, card, programs)
    sample = _sample(b, card)
    macs = {g: _graph_macs(b, g) for s in specs for g in s.graphs}
    configs: list[Config] = []
    run_forms: set[tuple[str, str, str]] = set()
    plans = program_plans(b, specs, backends, run_forms)
    skipped = unplanned(plans, backends)
    for s in skipped:
        say(f"skip {s['config']}: {s['reason']}")
    for spec, backend, label, opts in plans:
        name = f"{spec.name}:{backend}/{label}" if len(specs) > 1 else f"{backend}/{label}"
        try:
            require(backend)
            before = _rss_mb()
            prog = load_program(b, backend, program=spec.name, threads=threads, **opts)
        except EdgeError as e:
            say(f"skip {name}: {e}")
            skipped.append({"config": name, "reason": str(e)})
            continue
        # made as this program takes them: only the feeds its graphs and host stages read
        feeds = sample if card is None else [prog.preprocess(card, frames) for frames in sample]
        prog.reset()
        with family_code(card.name if card is not None else b.model_name, f"program '{spec.name}'"):
            for f in feeds:  # a family's runner that raises is one line here, not a traceback in the timing
                prog.step(f)
        prog.calls.clear()
        prog.step(feeds[-1])
        step_macs = sum(macs.get(g, 0) * n for g, n in prog.calls.items())
        configs.append(Config(name, spec.name, backend, label, prog, _rss_mb() - before, step_macs, feeds))
    if not configs:
        raise EdgeError(f"{bundle}: nothing to benchmark with backends {backends}"
                        + (f" ({skipped[0]['reason']})" if skipped else ""))
    for c in configs:
        for _ in range(warmup):
            c.runtime.step(c.feeds[-1])
    per = interleaved_ms([lambda c=c: c.runtime.step(c.feeds[-1]) for c in configs], rounds)
    times = {c.name: t for c, t in zip(configs, per, strict=True)}
    # measured again after the rounds, the higher kept: on a shared machine one reading can come out several
    # times low (67 against 415 GFLOP/s in one review's runs), and every "of peak" then read over 100 %
    again8 = int8_gemm_peak_gops(threads=threads)  # int8 first again (numpy's BLAS threads spin after its GEMM)
    peak = max(peak, gemm_peak_gflops(threads=threads))
    # a peak on the run's thread count; on --threads N without threadpoolctl numpy's BLAS used every core, so an
    # fp32 row's share of it would read low: not given
    fp32_peak = peak if not threads or blas_threads_settable() else None
    peak8 = max(peak8, again8) if peak8 is not None and again8 is not None else (peak8 or again8)
    base_ms = {c.program: times[c.name] for c in configs if c.backend == "torch"}
    base = {program: float(np.median(t)) for program, t in base_ms.items()}
    rows = []
    for c in configs:
        t = np.asarray(times[c.name])
        med = float(np.median(t))
        ref = base.get(c.program)
        rows.append({"config": c.name, "program": c.program, "backend": c.backend, "precision": c.precision,
                     "edge_run": (c.program, c.backend, c.precision) in run_forms,
                     "graphs": list(c.runtime.spec.graphs), "median_ms": med,
                     "p90_ms": float(np.percentile(t, 90)), "p99_ms": float(np.percentile(t, 99)),
                     "throughput_per_s": 1e3 / med, "rss_delta_mb": round(c.rss_mb, 1), "gmacs": c.macs / 1e9,
                     "gflops": 2 * c.macs / (med / 1e3) / 1e9, "speedup_vs_torch": (ref / med) if ref else None,
                     # how well this one run pins that ratio down (paired bootstrap over its rounds; one round
                     # has no spread to resample: it gave an interval of zero width)
                     "speedup_ci95": (list(speedup_interval(base_ms[c.program], t))
                                      if ref and c.backend != "torch" and rounds >= 2 else None),
                     "of_peak": of_peak(2 * c.macs / (med / 1e3) / 1e9, c.precision, fp32_peak, peak8),
                     "samples_ms": [round(float(x), 3) for x in t]})
        c.runtime.close()
    return {"bundle": str(bundle), "model": b.model_name, "batch": 1, "rounds": rounds, "warmup": warmup,
            "threads": threads, "unit": "one program step (what edge run pays per input)",
            # per program: the first row's alone was the report's figure, whatever the other programs' (a review)
            "gmacs": {c.program: c.macs / 1e9 for c in configs}, "gemm_peak_gflops": peak, "int8_gemm_peak_gops": peak8,
            "peak_threads": threads or "all", "fp32_peak_threads_held": fp32_peak is not None,
            "machine": {**here, "int8": int8_support(here["isa"])}, "peak_rss_mb": _rss_mb(), "rows": rows,
            "skipped": skipped}


def of_peak(rate: float, precision: str, fp32_peak: float | None, int8_peak: float | None) -> float | None:
    """A row's achieved rate (GFLOP/s) as a share of the peak of the arithmetic its precision runs on (int8's for
    int8 rows where measured, else fp32's), or None: for bf16 (AMX / AVX-512 BF16 run past the fp32 peak: "192 %"),
    without a peak on the run's threads, and above the peak (a peak read low on a busy machine, 54 GFLOP/s against
    a row's 68, or kernels doing fewer operations than counted, such as Winograd convolutions: "126 %" is no share)."""
    if precision == "bf16":
        return None
    peak = (int8_peak if precision.startswith("int8") else None) or fp32_peak
    if not peak or rate > peak:
        return None
    return rate / peak


def plot(report: dict[str, Any], path: str | Path) -> Path:
    """Box plot of latency per configuration (spread of all rounds), written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edge.files import atomic_path

    rows = report["rows"]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rows)), 4))
    ax.boxplot([r["samples_ms"] for r in rows], showfliers=True)
    ax.set_xticks(range(1, len(rows) + 1), [r["config"] for r in rows], rotation=30, ha="right")
    ax.set_ylabel("latency per program step (ms)")
    ax.set_title(f"{report['model']} batch 1, {report['rounds']} interleaved rounds")
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out
