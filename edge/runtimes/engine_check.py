"""The check ``edge build`` runs on each engine it builds: the engine against ONNX Runtime fp32 on the
same inputs, as ``polygraphy run --trt --onnxrt`` would.

Why: an engine is built on the target, from graphs checked only on the exporting machine (the INT8 form
with fp16 float layers is gated on an emulation of fp16 storage, not on TensorRT), and a broken engine
(non-finite outputs) would otherwise be found by the first ``edge run`` on the car. The inputs are what
the graph receives in its family's fp32 program on an evaluation sample (an inner graph, such as a
temporal head, gets the ring buffers the program builds), those within the engine's profile; otherwise
(no family installed here, or none of those fits the profile) inputs of the profile's ``opt`` shapes:
random normal floats, zeros for integer and boolean inputs. The worst relative error is reported, not
judged (INT8 differs from fp32 by design; the export's gate judged the task metric); an output element
that is not finite where ONNX Runtime's is finite makes the engine broken.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: inputs the check runs at most (a streaming graph gets consecutive steps of one sample)
CHECK_FEEDS = 3


def _fits(feeds: Mapping[str, np.ndarray], profile: Mapping[str, Mapping[str, list[int]]]) -> bool:
    """Whether every input's shape lies within the engine profile's min..max."""
    for name, p in profile.items():
        a = feeds.get(name)
        if a is None or a.ndim != len(p["min"]) or not all(
                lo <= d <= hi for d, lo, hi in zip(a.shape, p["min"], p["max"], strict=True)):
            return False
    return True


def graph_feeds(bundle: Any, graph: str, profile: Mapping[str, Mapping[str, list[int]]] | None = None,
                n: int = CHECK_FEEDS) -> list[dict[str, np.ndarray]]:
    """Up to ``n`` inputs of ``graph`` within ``profile`` (input -> min/opt/max): recorded from the family's
    fp32 program on ONNX Runtime where the family is installed and they fit, else one input per ``opt``
    shape (random normal floats; zeros for integer and boolean inputs, which index or mask)."""
    from edge.errors import EdgeError
    from edge.program import bundle_programs, card_for_bundle, load_program

    try:
        card = card_for_bundle(bundle)
    except EdgeError:  # the family's package is not installed on this machine
        card = None
    if card is not None and card.data is not None:
        spec = next((p for p in bundle_programs(bundle, card) if graph in p.graphs), None)
        if spec is not None:
            cfg = bundle.manifest["model"].get("config") or {}
            sample = card.data.samples(cfg, "evaluation", 1, 0)[0]
            with load_program(bundle, "onnxruntime", program=spec.name, precision="fp32") as prog:
                rec = prog.graph_feeds(card, [sample])
            got = [f for f in rec[graph] if profile is None or _fits(f, profile)]
            if got:
                return got[:n]
    rng = np.random.default_rng(0)
    io = bundle.graph_io(graph)
    out = []
    for _ in range(n):
        feed = {}
        for t in io.inputs:
            shape = tuple(profile[t.name]["opt"]) if profile and t.name in profile else t.concrete(batch=1)
            dt = np.dtype(t.dtype)
            feed[t.name] = rng.standard_normal(shape).astype(dt) if dt.kind == "f" else np.zeros(shape, dt)
        out.append(feed)
    return out


def check_engine(bundle: Any, graph: str, artifact: str, feeds: list[dict[str, np.ndarray]] | None = None,
                 **options: Any) -> dict[str, Any]:
    """:func:`check_runtime` of the bundle's engine artifact ``artifact`` (one already in the bundle)."""
    import edge

    return check_runtime(bundle, graph, edge.load(bundle, backend="tensorrt", graph=graph, artifact=artifact,
                                                  **options), feeds)


def check_engine_file(bundle: Any, graph: str, path: Any, record: Any, cuda: str | None = None,
                      feeds: list[dict[str, np.ndarray]] | None = None) -> dict[str, Any]:
    """:func:`check_runtime` of an engine file not yet in the bundle (``edge build`` checks a new engine
    before it replaces anything)."""
    from edge.runtimes.tensorrt import TrtRuntime

    return check_runtime(bundle, graph, TrtRuntime(path, record, bundle.graph_io(graph), cuda_impl=cuda), feeds)


def check_runtime(bundle: Any, graph: str, eng: Any, feeds: list[dict[str, np.ndarray]] | None = None
                  ) -> dict[str, Any]:
    """Run the engine runtime ``eng`` of ``graph`` (closed here) and ONNX Runtime's fp32 graph on the same
    inputs: the worst relative error where both are finite, and on how many inputs an engine output element
    was not finite where ONNX Runtime's was."""
    import edge
    from edge.parity import finite_rel

    try:
        feeds = feeds if feeds is not None else graph_feeds(bundle, graph, eng.record.profile)
        ref = edge.load(bundle, backend="onnxruntime", graph=graph, precision="fp32")
        try:
            worst, broken = 0.0, 0
            for f in feeds:
                rel, bad = finite_rel(ref.infer(f), eng.infer(f))
                worst = max(worst, rel)
                broken += bad
        finally:
            ref.close()
    finally:
        eng.close()
    return {"reference": "onnxruntime fp32", "feeds": len(feeds), "max_rel": worst, "not_finite": broken}
