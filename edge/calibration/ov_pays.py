"""Which op types NNCF's INT8 form quantizes for OpenVINO on this CPU: the ones whose int8 kernels pay, timed.

NNCF quantizes the inputs of convolutions, MatMuls, attention and a good part of the element-wise and
normalisation ops, and on a CPU with int8 dot products (VNNI, AMX) that pays almost everywhere. Without
them it does not: on a 2-core AVX2-only Zen 1 (OpenVINO 2026.4's CPU plugin, f32 float layers; int8 GEMM
peak 62 GOP/s against fp32's 66 GFLOP/s) a video model's NNCF INT8 ran its per-frame encoder at 8.5 ms
against fp32's 8.2, its temporal head at 28.9 against 12.7 and its whole-clip graph at 52.3 against 34.9.
OpenVINO's per-layer counters on the whole clip: int8 convolutions 22.4 ms against 21.8, int8 fully
connected layers 16.0 against 4.2 (a generic int8 GEMM), the quantized attention 5.7 ms of int8 MatMuls
plus a separate softmax against ~1.5 ms fused in f32. A fixed rule would be right on one kind of CPU only,
so, as ONNX Runtime's Conv choice (:mod:`edge.calibration.ort_pays`), the choice is measured where the
bundle is built: a ladder of op classes left in float, the least likely to pay first (attention, then
MatMuls, then everything but convolutions), each rung quantized on a few feeds and timed with the others and
the fp32 graph in interleaved rounds; the fastest rung is then timed again beside fp32 in fresh rounds and
kept only if it is :data:`~edge.calibration.pays.CONFIRM_MARGIN` faster there too, else every op stays in
float (the graph runs in fp32 in the int8 program, with a warning). ``EDGE_OV_INT8_OPS=all`` skips the timing
and quantizes what NNCF quantizes (a bundle that does not depend on the machine that built it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.calibration.datasets import Feeds
from edge.calibration.pays import Timer, confirm_faster, timing_mode
from edge.errors import first_line

ENV = "EDGE_OV_INT8_OPS"
#: timed calls per IR (interleaved rounds, median)
CALLS = 15
#: calibration feeds each timed rung is quantized with: only its speed is read (the chosen types are then
#: quantized on every feed, and gated)
TIMING_FEEDS = 2
#: OpenVINO op types of each rung's class, in the ladder's order (None: every type but :data:`CONV`)
ATTENTION = ("ScaledDotProductAttention",)
MATMUL = ("MatMul",)
CONV = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData")


def quantized_types(xml: str | Path) -> dict[str, int]:
    """OpenVINO op type -> how many ops of it NNCF quantized in the IR ``xml`` (:func:`nncf_nodes`)."""
    from edge.calibration.nncf_int8 import nncf_nodes
    from edge.runtimes.openvino import read_model

    kinds = {op.get_friendly_name(): op.get_type_name() for op in read_model(str(xml)).get_ordered_ops()}
    return dict(sorted(Counter(kinds[n] for n in nncf_nodes(xml)).items()))


def float_type_rungs(present: Sequence[str]) -> list[list[str]]:
    """The op-type sets to leave in float, one per rung: none, the attention types present, + MatMul, +
    every type but convolutions. A rung that adds nothing to the one before is not listed, nor one that
    leaves every type in float (that is the fp32 graph, timed as the reference)."""
    present = sorted(set(present))
    rungs: list[list[str]] = [[]]
    acc: set[str] = set()
    for cls in (ATTENTION, MATMUL, None):
        acc |= {t for t in present if (t not in CONV if cls is None else t in cls)}
        cand = sorted(acc)
        if cand != rungs[-1] and len(cand) < len(present):
            rungs.append(cand)
    return rungs


def choose_float_types(write: Callable[[Sequence[str], Path], None], src: str | Path, io: Any, feeds: Feeds,
                       work: Path, *, time_ms: Timer | None = None) -> tuple[list[str], dict[str, Any]]:
    """The op types NNCF should leave in float on this CPU for the graph ``src``, and the timing record.

    ``write(float_types, dst)`` writes an NNCF IR of ``src`` with those types in float (quantized as the real
    one is, on fewer feeds). The first rung quantizes everything; the types it quantized decide the other
    rungs (:func:`float_type_rungs`); every rung and the fp32 graph are timed on ``feeds``, and the fastest
    rung is timed again beside fp32 (``confirm``): kept if :data:`~edge.calibration.pays.CONFIRM_MARGIN`
    faster there, else every quantized type stays in float (``float_graph`` in the record; ``chosen`` is the
    fastest rung either way, so with ``float_graph`` it names the rung refused, not the types applied). A rung
    NNCF cannot write is recorded as ``refused`` and never chosen. ``time_ms`` (paths, io, feeds) -> median
    ms each, replaceable for tests. ``EDGE_OV_INT8_OPS=all``: ([], untimed).

    Only this default-scheme choice is timed against fp32: an accuracy fallback the gate takes afterwards
    (NNCF's transformer scheme, or nodes left in float) keeps these types and is not timed again."""
    mode = timing_mode(ENV)
    if mode == "all":
        return [], {"mode": mode}
    timer = time_ms or time_irs_ms
    paths = [work / "ops0.xml"]
    refused: dict[int, str] = {}  # rung -> why NNCF could not write it (a speed choice: that rung is no candidate)
    try:
        write([], paths[0])  # every op NNCF quantizes: its failure is the export's (the real form would fail too)
        present = quantized_types(paths[0])
        if not present:  # NNCF quantized nothing here: nothing to time
            return [], {"mode": mode, "quantized_types": present}
        rungs = float_type_rungs(list(present))
        for i, types in enumerate(rungs[1:], 1):
            paths.append(work / f"ops{i}.xml")
            try:
                write(types, paths[-1])
            except Exception as e:
                refused[i] = first_line(e)
        ms = timer([str(src), *(str(p) for i, p in enumerate(paths) if i not in refused)], io, feeds)
        it = iter(ms[1:])
        ms = [ms[0], *(float("inf") if i in refused else next(it) for i in range(len(paths)))]
        best = int(np.argmin(ms[1:]))
        confirm = confirm_faster(timer, src, paths[best], io, feeds)
    finally:
        for p in paths:
            for f in (p, p.with_suffix(".bin")):
                f.unlink(missing_ok=True)
    float_graph = not confirm["kept"]
    # in float: with every type rung 0 quantized left so, NNCF put its quantizers on other ops (a Gather's output into
    # a Multiply): a graph said to run in float still had one int8 op (a review); the types grow until none is left
    types = _closed_float_types(write, present, work / "float.xml") if float_graph else rungs[best]
    rec = {"mode": mode, "fp32_ms": round(float(ms[0]), 4), "quantized_types": present,
           "rungs": [{"float_types": r, "ms": round(float(t), 4) if np.isfinite(t) else None,
                      **({"refused": refused[i]} if i in refused else {})}
                     for i, (r, t) in enumerate(zip(rungs, ms[1:], strict=True))],
           "chosen": best, "confirm": confirm, "float_graph": float_graph}
    return types, rec


def _closed_float_types(write: Callable[[Sequence[str], Path], None], present: dict[str, int], probe: Path,
                        rounds: int = 8) -> list[str]:
    """The op types to leave in float so that NNCF quantizes nothing: ``present`` and what it quantizes next with
    those left in float, again, until an IR holds no quantized op (or ``rounds`` tries; the last set is kept)."""
    types = set(present)
    try:
        for _ in range(rounds):
            write(sorted(types), probe)
            more = set(quantized_types(probe)) - types
            if not more:
                break
            types |= more
    finally:
        for f in (probe, probe.with_suffix(".bin")):
            f.unlink(missing_ok=True)
    return sorted(types)


def ov_reason(e: BaseException) -> str:
    """OpenVINO's reason in one line: its messages open with "Exception from <file>:<line>:" lines and
    end with the check that failed."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith("Exception from")]
    return lines[-1][:200] if lines else first_line(e)


def time_irs(paths: Sequence[str], io: Any, feeds: Feeds, calls: int = CALLS) -> list[float | str]:
    """Median ms of one call of each IR on ``feeds`` (OpenVINO, the gate's first float-layer precision),
    in interleaved rounds (:func:`~edge.bench.interleave.interleaved_ms`); for an IR OpenVINO cannot
    compile or run, its reason in one line instead."""
    from edge.bench.interleave import median_ms_each
    from edge.runtimes import open_file
    from edge.runtimes.openvino import resolve_precision

    feeds = {k: np.asarray(v) for k, v in feeds.items()}
    hint = resolve_precision("auto")
    ms = median_ms_each([lambda p=p: open_file("openvino", p, io, inference_precision=hint) for p in paths],
                        lambda rt: rt.infer(feeds), calls)
    # an OpenVINO plugin refusal: that IR is not a candidate, said in one line
    return [ov_reason(t) if isinstance(t, Exception) else t for t in ms]


def time_irs_ms(paths: list[str], io: Any, feeds: Feeds) -> list[float]:
    """:func:`time_irs` with ``inf`` for an IR OpenVINO cannot compile or run (never the fastest rung)."""
    return [float("inf") if isinstance(t, str) else t for t in time_irs(paths, io, feeds)]
