"""Which Convs ONNX Runtime's INT8 form quantizes on this CPU: the ones whose int8 kernel pays, timed.

Whether an int8 convolution beats its fp32 one depends on the CPU and on the layer's reduction depth K = input
channels x kernel area (the length of each output's dot product). Short reductions waste int8 dot-product
hardware (a VNNI instruction sums 4 products, an AMX tile row 64) and still pay for quantizing the input, the
NHWC reorder around ``QLinearConv`` and the dequantize after it. Measured on a shipped video model's per-frame
encoder, 2 cores with AVX-512 VNNI + AMX (README, Benchmarks): fp32 2.23 ms, every Conv in U8S8 2.04 ms, the
first layer (RGB input, K = 27) kept in float 1.73 ms, both layers with K <= 144 in float 1.63 ms; the same
model's temporal head's two Convs gained nothing (4.36 vs 4.44 ms), and on an AVX2-only CPU its encoder with
every Conv in U8S8 took 11.9 ms against fp32's 8.2. A fixed rule would be right on one of those CPUs only, so
the choice is measured where the bundle is built, like NNCF's scheme choice: each graph is quantized with the
Convs of the smallest reduction depths left in float (nothing, K <= the smallest depth, the two smallest, the
three smallest, every Conv) and the candidates are timed against each other in interleaved rounds on a
calibration feed; the fastest is what the accuracy gate then starts from. A candidate with int8 Convs is
then timed once more against the fp32 graph in fresh rounds and kept only if it is at least
``CONFIRM_MARGIN`` faster there too (:mod:`edge.calibration.pays`): on the AVX2-only Zen 1 a video model's
whole-clip graph chosen 5 % faster with three Convs in float ran 13 % slower than fp32 in `edge bench`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.calibration.datasets import Feeds
from edge.calibration.pays import confirm_faster, timing_mode

#: ``all``: quantize every Conv, untimed (a bundle that does not depend on the machine that built it);
#: ``timed`` (default): keep in float the Convs whose int8 kernel is slower here
ENV = "EDGE_ORT_INT8_CONVS"
#: how many of the smallest distinct reduction depths get a candidate of their own
DEPTH_STEPS = 3
#: timed rounds per candidate (interleaved; median)
ROUNDS = 15
#: calibration feeds each timed candidate is quantized with: only its speed is read, and which kernels ONNX
#: Runtime picks does not depend on the ranges (the chosen form is then quantized on every feed by the gate)
TIMING_FEEDS = 2


def conv_depths(path: str | Path) -> dict[str, int]:
    """Each Conv with a constant weight -> its reduction depth (in-channels per group x kernel area); an unnamed
    Conv under the name the quantizer gives it (:func:`edge.onnx_file.name_nodes`)."""
    import onnx

    from edge.onnx_file import name_nodes

    m = onnx.load(str(path), load_external_data=False)
    name_nodes(m)  # named as the quantizer names them
    shapes = {t.name: list(t.dims) for t in m.graph.initializer}
    out = {}
    for n in m.graph.node:
        if n.op_type == "Conv" and len(n.input) > 1 and n.input[1] in shapes:
            dims = shapes[n.input[1]]  # [out, in / group, *kernel]
            if len(dims) >= 3:
                out[n.name] = int(np.prod(dims[1:]))
    return out


def float_candidates(depths: dict[str, int], steps: int = DEPTH_STEPS) -> list[list[str]]:
    """The Conv sets to leave in float, each timed: none, those at the ``steps`` smallest depths (one more
    depth each time), and all of them. Sets that repeat one another are listed once; node order is the
    graph's, so the written files do not depend on dict order."""
    levels = sorted(set(depths.values()))
    out: list[list[str]] = [[]]
    for k in [*levels[:steps], *(levels[-1:] if levels else [])]:
        cand = [n for n, d in depths.items() if d <= k]
        if cand not in out:
            out.append(cand)
    return out


def _mode() -> str:
    """``EDGE_ORT_INT8_CONVS`` (default ``timed``); an ExportError in one line for any other value."""
    return timing_mode(ENV)


def choose_float_convs(write: Callable[[Sequence[str], Path], None], src: str | Path, io: Any, feeds: Feeds,
                       work: Path, *, time_ms: Callable[[list[str], Any, Feeds], list[float]] | None = None,
                       ) -> tuple[list[str], dict[str, Any]]:
    """The Convs of ``src`` to keep in float because int8 does not pay for them here, and the timing record.

    ``write(float_convs, dst)`` writes an INT8 copy with those Convs left in float (calibrated as the real
    one is). Every candidate of :func:`float_candidates` is written under ``work`` and timed with the fp32
    graph on ``feeds``; the fastest is chosen (the fp32 graph itself is timed only as the reference: the
    "every Conv in float" candidate is the same graph behind the gate). Returns ([], record) when the graph
    has no Conv or ``EDGE_ORT_INT8_CONVS=all`` asks for every Conv quantized. ``time_ms`` (paths, io,
    feeds) -> median ms each, replaceable for tests. A fastest candidate with int8 Convs is timed again beside
    fp32 and kept only where it is ``CONFIRM_MARGIN`` faster there (``confirm`` in the record), else every Conv
    stays in float."""
    mode = _mode()
    depths = conv_depths(src)
    if not depths or mode == "all":
        return [], {"candidates": [], "mode": mode}
    cands = float_candidates(depths)
    paths = []
    for i, cand in enumerate(cands):
        dst = work / f"pays{i}.onnx"
        write(cand, dst)
        paths.append(str(dst))
    timer = time_ms or time_onnx
    ms = timer([str(src), *paths], io, feeds)
    best = int(np.argmin(ms[1:]))
    confirm = None
    if len(cands[best]) < len(depths):  # int8 Convs: confirmed against fp32 in fresh rounds, else all float
        confirm = confirm_faster(timer, src, paths[best], io, feeds)
        if not confirm["kept"]:
            best = next(i for i, c in enumerate(cands) if len(c) == len(depths))
    rec = {"mode": mode, "fp32_ms": round(float(ms[0]), 4), "depths": depths,
           "candidates": [{"float_convs": len(c), "max_float_depth": max((depths[n] for n in c), default=0),
                           "ms": round(float(t), 4) if np.isfinite(t) else None}  # None: could not run
                          for c, t in zip(cands, ms[1:], strict=True)],
           "chosen": best}
    if confirm is not None:
        rec["confirm"] = confirm
    for p in paths:
        Path(p).unlink(missing_ok=True)
    return cands[best], rec


def symmetric_pays(symmetric: str | Path, src: str | Path, io: Any, feeds: Feeds, *,
                   time_ms: Callable[[list[str], Any, Feeds], list[float]] | None = None,
                   ) -> tuple[bool, dict[str, Any]]:
    """For a graph with no Conv (nothing in this form to quantize): whether its symmetric INT8 graph, which
    ONNX Runtime's int8 program would otherwise run, is faster here than the fp32 graph, and the timing record.
    Where it is slower (a token graph's quantized MatMuls, e.g.: every call of the step a refinement loop runs
    three times), the form takes the fp32 graph for it; faster in those rounds, it is timed again beside fp32 and
    taken only if ``CONFIRM_MARGIN`` faster there too. ``EDGE_ORT_INT8_CONVS=all``: untimed, True."""
    mode = _mode()
    if mode == "all":
        return True, {"mode": mode}
    timer = time_ms or time_onnx
    sym_ms, fp32_ms = timer([str(symmetric), str(src)], io, feeds)
    rec: dict[str, Any] = {"mode": mode, "fp32_ms": round(float(fp32_ms), 4),
                           "symmetric_ms": round(float(sym_ms), 4) if np.isfinite(sym_ms) else None}
    pays = bool(sym_ms < fp32_ms)
    if pays:  # confirmed in fresh rounds, as a Conv candidate is
        rec["confirm"] = confirm_faster(timer, src, symmetric, io, feeds)
        pays = rec["confirm"]["kept"]
    rec["float_graph"] = not pays
    return pays, rec


def time_onnx(paths: list[str], io: Any, feeds: Feeds, rounds: int = ROUNDS) -> list[float]:
    """Median ms of one ONNX Runtime call of each file on ``feeds``, interleaved in one process (as
    ``edge run`` opens them: default threads, no spinning). A file ONNX Runtime cannot load or run gets
    ``inf`` (never the fastest) rather than failing the export: it is one candidate among several."""
    from edge.bench.interleave import median_ms_each
    from edge.runtimes import open_file

    feeds = {k: np.asarray(v) for k, v in feeds.items()}
    ms = median_ms_each([lambda p=p: open_file("onnxruntime", p, io) for p in paths], lambda rt: rt.infer(feeds),
                        rounds)
    return [float("inf") if isinstance(t, Exception) else t for t in ms]
