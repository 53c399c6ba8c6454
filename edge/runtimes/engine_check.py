"""The check ``edge build`` runs on each engine it builds: the engine against ONNX Runtime fp32 on the
same inputs, as ``polygraphy run --trt --onnxrt`` would.

Why: an engine is built on the target, from graphs checked only on the exporting machine (the INT8 form
with fp16 float layers is gated on an emulation of fp16 storage, not on TensorRT), and a broken engine
(non-finite outputs) would otherwise be found by the first ``edge run`` on the car. The inputs are what
the graph receives in its family's fp32 program on an evaluation sample (an inner graph, such as a
temporal head, gets the ring buffers the program builds), or, for a bundle without a family, random
normal inputs of the graph's shapes. The worst relative error is reported, not judged (INT8 differs
from fp32 by design; the export's gate judged the task metric); outputs that are not finite where ONNX
Runtime's are make the build fail.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: inputs the check runs (a streaming graph gets consecutive steps of one sample)
CHECK_FEEDS = 3


def graph_feeds(bundle: Any, graph: str, n: int = CHECK_FEEDS) -> list[dict[str, np.ndarray]]:
    """Up to ``n`` inputs of ``graph``: recorded from the family's fp32 program on ONNX Runtime, else
    random normal (batch 1, the spec's named dimensions at their example sizes)."""
    from edge.program import bundle_programs, card_for_bundle, load_program

    card = card_for_bundle(bundle)
    if card is not None and card.data is not None:
        spec = next((p for p in bundle_programs(bundle, card) if graph in p.graphs), None)
        if spec is not None:
            cfg = bundle.manifest["model"].get("config") or {}
            sample = card.data.samples(cfg, "evaluation", 1, 0)[0]
            with load_program(bundle, "onnxruntime", program=spec.name, precision="fp32") as prog:
                prog.record(True)
                prog.reset()
                for frames in sample:
                    prog.step(card.preprocess(frames, cfg))
                got = prog.record(False).get(graph, [])
            if got:
                return got[:n]
    rng = np.random.default_rng(0)
    io = bundle.graph_io(graph)
    return [{t.name: rng.standard_normal(t.concrete(batch=1)).astype(t.dtype) for t in io.inputs}
            for _ in range(n)]


def check_engine(bundle: Any, graph: str, artifact: str, feeds: list[dict[str, np.ndarray]] | None = None,
                 **options: Any) -> dict[str, Any]:
    """Run engine ``artifact`` of ``graph`` and ONNX Runtime's fp32 graph on the same inputs: the worst
    relative error over every output and input, and on how many inputs the engine's outputs were not
    finite where ONNX Runtime's were."""
    import edge
    from edge.parity import compare

    feeds = feeds if feeds is not None else graph_feeds(bundle, graph)
    ref = edge.load(bundle, backend="onnxruntime", graph=graph, precision="fp32")
    try:
        eng = edge.load(bundle, backend="tensorrt", graph=graph, artifact=artifact, **options)
    except BaseException:
        ref.close()
        raise
    worst, broken = 0.0, 0
    try:
        for f in feeds:
            want, got = ref.infer(f), eng.infer(f)
            errs = compare(want, got)
            if any(e.get("not_finite") and np.isfinite(want[k]).all() for k, e in errs.items()):
                broken += 1  # the engine's, not the reference's
                continue
            worst = max([worst, *(e["rel"] for e in errs.values())])
    finally:
        eng.close()
        ref.close()
    return {"reference": "onnxruntime fp32", "feeds": len(feeds), "max_rel": worst, "not_finite": broken}
