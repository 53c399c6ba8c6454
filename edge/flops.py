"""FLOPs of an exported graph, counted from its ONNX (after shape inference), per operator type.

Why from the graph and not the torch module: what a runtime executes is the exported graph (pruning,
decomposed attention, folded constants included), and a bundle should be comparable with no torch around.
Counted: 2 x multiply-accumulates of ``MatMul``, ``Gemm``, ``Conv`` (grouped too) and of the attention
nodes (``Attention`` of opset 23 and our ``EdgeAttention``: Q.K^T and P.V). Element-wise ops, norms and
softmax are left out, as the usual FLOP counts leave them out (they are a few percent of these models).
Every shape must be known, so a graph exported with a dynamic batch is counted at ``batch`` (default 1).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from edge.errors import BundleError


def _shapes(model: Any) -> dict[str, list[int]]:
    """Tensor name -> static shape, for every tensor shape inference could settle."""
    out: dict[str, list[int]] = {}
    g = model.graph
    for v in [*g.input, *g.output, *g.value_info]:
        dims = v.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            out[v.name] = [int(d.dim_value) for d in dims]
    for t in g.initializer:
        out[t.name] = list(t.dims)
    return out


def _fix_inputs(model: Any, batch: int) -> None:
    """Give every symbolic input dim the value ``batch`` (the only dynamic dim our bundles have)."""
    for v in model.graph.input:
        for d in v.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.dim_value = batch


def _attention_flops(q: list[int], k: list[int], v: list[int], heads: int | None) -> int:
    """4-D [B, H, S, D] (or 3-D [B, S, H*D] with ``heads``) q/k/v -> 2 x (Sq Sk D + Sq Sk Dv) x B x H."""
    if len(q) == 4:
        b, h, sq, d = q
        sk, dv = k[2], v[3]
    else:
        b, sq, hd = q
        h = heads or 1
        d, sk, dv = hd // h, k[1], v[2] // h
    return 2 * b * h * sq * sk * (d + dv)


def count(model: Any, batch: int = 1) -> dict[str, int]:
    """FLOPs by operator type (+ ``total``) of an ``onnx.ModelProto`` (not modified)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    _fix_inputs(m, batch)
    try:
        m = onnx.shape_inference.infer_shapes(m, data_prop=True)
    except Exception as e:  # a graph its own checker rejects
        raise BundleError(f"shape inference failed: {e}") from None
    shapes = _shapes(m)
    flops: dict[str, int] = {}

    def need(name: str, node: Any) -> list[int]:
        if name not in shapes:
            raise BundleError(f"{node.op_type} node '{node.name}': shape of '{name}' unknown after inference")
        return shapes[name]

    for node in m.graph.node:
        op = node.op_type
        n = 0
        if op == "MatMul":
            a = need(node.input[0], node)
            out = need(node.output[0], node)
            n = 2 * int(np.prod(out)) * a[-1]
        elif op == "Gemm":
            a = need(node.input[0], node)
            trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
            out = need(node.output[0], node)
            n = 2 * int(np.prod(out)) * (a[0] if trans_a else a[1])
        elif op == "Conv":
            w = need(node.input[1], node)  # [Cout, Cin/groups, k...]
            out = need(node.output[0], node)
            n = 2 * int(np.prod(out)) * int(np.prod(w[1:]))
        elif op in ("Attention", "EdgeAttention"):
            heads = next((at.i for at in node.attribute if at.name in ("q_num_heads", "num_heads")), None)
            q, k, v = (need(node.input[i], node) for i in range(3))
            n = _attention_flops(q, k, v, heads)
        if n:
            flops[op] = flops.get(op, 0) + n
    flops["total"] = sum(flops.values())
    return flops


def count_file(path: str | os.PathLike[str], batch: int = 1) -> dict[str, int]:
    """:func:`count` of an ONNX file (external data is not needed: only shapes are read)."""
    from edge.onnx_file import read_model

    return count(read_model(path), batch)


def bundle_flops(bundle: Any, graphs: Mapping[str, int] | None = None, precision: str = "fp32") -> dict[str, Any]:
    """FLOPs of each graph of a bundle (its ``precision`` ONNX), and ``per_step``: the sum weighted by how
    many times a program step calls each graph (``graphs``: name -> calls; default once each)."""
    from edge.runtimes.trt_engine import onnx_for

    calls = dict(graphs) if graphs is not None else {g: 1 for g in bundle.graphs}
    per = {g: count_file(bundle.path / onnx_for(bundle, g, precision)["file"]) for g in calls}
    return {"graphs": per, "calls": calls, "per_step": sum(per[g]["total"] * c for g, c in calls.items())}
