"""Parity: how far one runtime's outputs are from a reference's, on inputs a graph was *not* exported with.

Neutral ground for export (ONNX vs PyTorch), calibration (INT8 / fp16 vs fp32) and the OpenVINO IR
check, so none of them imports another. Error metric per output: ``max|got - ref|`` (abs) and that
divided by ``max|ref|`` (rel, so it is meaningful for logits of any scale and never divides by a
near-zero element). An export fails when any output's rel error exceeds the tolerance (fp32 default
1e-4, DESIGN.md section 7).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from edge.spec import IOSpec


def compare(ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per output: max abs error and max abs error / max |ref| (inf on a shape mismatch, and where either side
    holds a NaN or an infinity: NaN compares as no error, and a model whose outputs are not finite has no
    parity to claim; ``not_finite`` then says which side: ``reference``, ``runtime`` or ``both``)."""
    out = {}
    for name, r in ref.items():
        g = got[name]
        if g.shape != r.shape:
            out[name] = {"max_abs": float("inf"), "rel": float("inf")}
            continue
        if r.dtype.kind in "fc" and g.dtype.kind in "fc" and not (np.isfinite(r).all() and np.isfinite(g).all()):
            side = {(False, True): "reference", (True, False): "runtime"}.get(
                (bool(np.isfinite(r).all()), bool(np.isfinite(g).all())), "both")
            out[name] = {"max_abs": float("inf"), "rel": float("inf"), "not_finite": side}
            continue
        diff = np.abs(g.astype(np.float64) - r.astype(np.float64))
        scale = float(np.max(np.abs(r))) if r.size else 0.0
        mx = float(diff.max()) if diff.size else 0.0
        out[name] = {"max_abs": mx, "rel": mx / scale if scale > 0 else mx}
    return out


def finite_rel(ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> tuple[float, bool]:
    """(the largest relative error over the float outputs' elements finite on both sides, whether ``got`` has a
    non-finite element where ``ref``'s is finite): for an engine checked against ONNX Runtime, where a fully
    masked attention row may be NaN on both and must not hide the error of every other element as
    :func:`compare`'s inf would."""
    worst, broken = 0.0, False
    for k, w in ref.items():
        g = got[k]
        if w.dtype.kind != "f":
            continue
        both = np.isfinite(w) & np.isfinite(g)
        broken |= bool((np.isfinite(w) & ~np.isfinite(g)).any())
        if both.any():
            scale = float(np.max(np.abs(w[both])))
            diff = float(np.max(np.abs(g[both].astype(np.float64) - w[both])))
            worst = max(worst, diff / scale if scale > 0 else diff)
    return worst, broken


def fp16_rel(ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> float:
    """The largest relative error of an fp16 form's float outputs (inf where one is not finite and PyTorch's
    is). Integer and boolean outputs are not in it: a selection (the indices of the tokens a policy keeps)
    flips where two scores tie within fp16's rounding, and 7 for 5 is no relative error of 40 %; the share
    that changed is recorded (:func:`changed_share`) and the task metric judges what it costs."""
    if any(r.dtype.kind == "f" and got[k].shape != r.shape for k, r in ref.items()):
        return float("inf")  # a float output whose length the values decide came out another length
    rel, broken = finite_rel(ref, got)
    return float("inf") if broken else rel


def changed_share(ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> float:
    """The largest share of elements that differ in any integer or boolean output (0.0 when there is none)."""
    shares = [float(np.mean(r != got[k])) for k, r in ref.items() if r.dtype.kind in "biu" and r.size
              and got[k].shape == r.shape]
    shares += [1.0 for k, r in ref.items() if r.dtype.kind in "biu" and got[k].shape != r.shape]
    return max(shares, default=0.0)


@contextlib.contextmanager
def reference_attention() -> Iterator[None]:
    """PyTorch's ``nn.MultiheadAttention`` fast path off while a module is the reference: in eval mode under no_grad
    a ``TransformerEncoder`` given a padding mask takes it and returns zeros at the padded tokens (a nested-tensor
    shortcut), which no traced graph computes, so a correct graph failed parity (0.97) on the padded rows alone;
    with it off the reference is the layer's own arithmetic, which the graph is. The flag is global: restored after."""
    import torch

    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    was = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(was)


def torch_outputs(module: Any, io: IOSpec, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a torch module on numpy feeds (in IOSpec order) and name its outputs."""
    from edge.runtimes import from_module

    rt = from_module(module, io)
    try:
        with reference_attention():
            return rt.infer({n: np.ascontiguousarray(feeds[n]) for n in io.input_names})
    finally:
        rt.close()


def worst_rel(ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> float:
    """The largest per-output relative error of :func:`compare`."""
    return max((e["rel"] for e in compare(ref, got).values()), default=0.0)


def parity(module: Any, path: str, io: IOSpec, feed_sets: Sequence[tuple[str, Mapping[str, np.ndarray]]],
           backend: str = "onnxruntime", threads: int = 0) -> dict[str, Any]:
    """Run torch and ``backend`` (on the model file ``path``) on each named feed set; worst errors."""
    from edge.runtimes import from_module, open_file

    ref = from_module(module, io)
    rt = open_file(backend, path, io, threads=threads)
    try:
        per_set = {}
        worst_abs = worst = 0.0
        for label, feeds in feed_sets:
            with reference_attention():
                want = ref.infer(feeds)
            errs = compare(want, rt.infer(feeds))
            per_set[label] = errs
            worst_abs = max([worst_abs, *(e["max_abs"] for e in errs.values())])
            worst = max([worst, *(e["rel"] for e in errs.values())])
    finally:
        rt.close()
        ref.close()
    bad = sorted({f"{label}: {name} ({e['not_finite']})" for label, errs in per_set.items()
                  for name, e in errs.items() if e.get("not_finite")})
    return {"backend": backend, "reference": "torch eager", "max_abs": worst_abs, "max_rel": worst, "sets": per_set,
            **({"not_finite": bad} if bad else {})}
