"""Parity of an exported graph against PyTorch on inputs it was *not* exported with.

Error metric per output: ``max|ort - torch|`` (abs) and that divided by ``max|torch|`` (rel, so it is
meaningful for logits of any scale and never divides by a near-zero element). An export fails when
any output's rel error exceeds the tolerance (fp32 default 1e-4, DESIGN.md section 7).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edge.spec import IOSpec


def compare(ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per output: max abs error and max abs error / max |ref| (inf on a shape mismatch)."""
    out = {}
    for name, r in ref.items():
        g = got[name]
        if g.shape != r.shape:
            out[name] = {"max_abs": float("inf"), "rel": float("inf")}
            continue
        diff = np.abs(g.astype(np.float64) - r.astype(np.float64))
        scale = float(np.max(np.abs(r))) if r.size else 0.0
        mx = float(diff.max()) if diff.size else 0.0
        out[name] = {"max_abs": mx, "rel": mx / scale if scale > 0 else mx}
    return out


def torch_outputs(module: Any, io: IOSpec, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the module on numpy feeds (in IOSpec order) and name its outputs."""
    import torch

    with torch.no_grad():
        out = module(*(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in io.input_names))
    if not isinstance(out, list | tuple):
        out = [out]
    return {n: o.detach().numpy() for n, o in zip(io.output_names, out)}


def parity(module: Any, onnx_path: str, io: IOSpec, feed_sets: Sequence[tuple[str, Mapping[str, np.ndarray]]],
           threads: int = 0) -> dict[str, Any]:
    """Run torch and ONNX Runtime on each named feed set; worst errors overall and per set."""
    from edge.runtimes.onnxruntime import OrtRuntime

    rt = OrtRuntime(onnx_path, io, threads=threads)
    try:
        per_set = {}
        worst_abs = worst_rel = 0.0
        for label, feeds in feed_sets:
            errs = compare(torch_outputs(module, io, feeds), rt.infer(feeds))
            per_set[label] = errs
            worst_abs = max([worst_abs, *(e["max_abs"] for e in errs.values())])
            worst_rel = max([worst_rel, *(e["rel"] for e in errs.values())])
    finally:
        rt.close()
    return {"backend": "onnxruntime", "reference": "torch eager", "max_abs": worst_abs, "max_rel": worst_rel,
            "sets": per_set}
