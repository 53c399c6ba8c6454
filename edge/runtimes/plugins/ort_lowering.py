"""ONNX Runtime lowering: rewrite ``edge.ai::EdgeAttention`` nodes into opset-23 ``Attention``.

ORT >= 1.23 runs ``Attention`` natively on CPU; a Python-callback custom op measured ~9x slower than
the whole model, so the lowering is a graph rewrite done once (at export, cached in the bundle).
QK-norm becomes an explicit RMS normalization (Mul, ReduceMean, Add, Sqrt, Div) in front of it.
The default-domain opset is raised to 23: the ops that changed between 20 and 23 only gained types.

Models split heads as ``x.view(B, S, H, D).transpose(1, 2)`` before attention and merge them back after
it, so each EdgeAttention sits between Transposes (perm 0,2,1,3). Where all three inputs come from such
Transposes, the lowering feeds their [B, S, H, D] sources, merged to [B, S, H*D], to the 3-D form of
``Attention`` (``q_num_heads`` / ``kv_num_heads``) and drops the Transposes: ORT's kernel splits the heads
itself, and the four copies per attention go (the same arithmetic; measured 1.04-1.05x on shipped
families' attention graphs: see README, Benchmarks).
"""

from __future__ import annotations

from typing import Any

from edge.onnx_file import attribute
from edge.ops.attention import PLUGIN_DOMAIN, PLUGIN_OP, RMS_EPS

ATTENTION_OPSET = 23


_HEAD_SWAP = [0, 2, 1, 3]  # [B, S, H, D] <-> [B, H, S, D]


def _head_split_sources(node: Any, producer: dict[str, Any], dims: dict[str, list[int]]) -> list[str] | None:
    """The [B, S, H, D] tensors whose head-swapping Transposes make ``node``'s q, k, v; None unless all three do
    and each has the node's H heads, known statically (K/V with fewer heads broadcast in the 4-D form; the 3-D
    form would read them as H heads)."""
    heads = int(attribute(node, "num_heads", 0))
    sources = []
    for name in node.input[:3]:
        t = producer.get(name)
        if t is None or t.op_type != "Transpose" or list(attribute(t, "perm", [])) != _HEAD_SWAP:
            return None
        shape = dims.get(t.input[0])
        if heads <= 0 or shape is None or len(shape) != 4 or shape[2] != heads:
            return None
        sources.append(t.input[0])
    return sources


def _static_dims(model: Any) -> dict[str, list[int]]:
    """Tensor name -> its dims (0 where unknown) after ONNX shape inference (our node's schema registered)."""
    import onnx

    from edge.ops.onnx_schema import register_schemas

    register_schemas()
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # no shapes, no folding: the 4-D form is always right
        return {}
    out = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        t = vi.type.tensor_type
        if t.HasField("shape"):
            out[vi.name] = [d.dim_value if d.HasField("dim_value") else 0 for d in t.shape.dim]
    return out


def _has_subgraphs(g: Any) -> bool:
    """Whether any node carries a graph (If/Loop/Scan): their bodies read outer tensors by name."""
    from onnx import AttributeProto

    return any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for n in g.node for a in n.attribute)


def _drop_dead_transposes(g: Any) -> None:
    """Remove Transposes whose output nothing reads any more (the head swaps the 3-D form made idle)."""
    while True:
        read = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if n.op_type == "Transpose" and n.output[0] not in read]
        if not dead:
            return
        keep = [n for n in g.node if all(n is not d for d in dead)]
        del g.node[:]
        g.node.extend(keep)


def lower_edge_attention(model: Any, *, fold_head_transposes: bool = True) -> Any:
    """Return a copy of ``model`` with every EdgeAttention node replaced by standard ops
    (``fold_head_transposes=False``: always the 4-D form, for comparison)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    producer = {o: n for n in g.node for o in n.output}
    readers: dict[str, list[Any]] = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    graph_outputs = {o.name for o in g.output}
    fold = fold_head_transposes and not _has_subgraphs(g)
    dims = _static_dims(m) if fold and any(n.op_type == PLUGIN_OP for n in g.node) else {}
    new_nodes = []
    count = 0
    eps_name, axes_name = "edge_rms_eps", "edge_rms_axes"
    merge_name, split_name = "edge_merge_heads", "edge_split_heads"
    need_rms = False
    split_heads: set[int] = set()  # head counts of the 3-D attentions written (one split shape each)
    replaced: set[str] = set()  # outputs of head-merging Transposes now written by a 3-D attention's Reshape
    for node in g.node:
        if node.op_type == "Transpose" and node.output[0] in replaced:
            continue  # replaced by the Reshape written with its attention
        if node.domain != PLUGIN_DOMAIN or node.op_type != PLUGIN_OP:
            new_nodes.append(node)
            continue
        count += 1
        tag = f"edge_attn{count}"
        q, k, v = node.input[0], node.input[1], node.input[2]
        mask = node.input[3] if len(node.input) > 3 and node.input[3] else None
        heads = int(attribute(node, "num_heads", 0))
        sources = _head_split_sources(node, producer, dims) if fold else None
        if sources is not None:
            q, k, v = sources  # [B, S, H, D]: RMS over D is the same on either layout
        if int(attribute(node, "qk_norm", 0)):
            need_rms = True
            normed = []
            for name, x in (("q", q), ("k", k)):
                p = f"{tag}_{name}"
                new_nodes += [
                    helper.make_node("Mul", [x, x], [f"{p}_sq"], name=f"{p}_sq"),
                    helper.make_node("ReduceMean", [f"{p}_sq", axes_name], [f"{p}_ms"], keepdims=1, name=f"{p}_ms"),
                    helper.make_node("Add", [f"{p}_ms", eps_name], [f"{p}_mse"], name=f"{p}_mse"),
                    helper.make_node("Sqrt", [f"{p}_mse"], [f"{p}_rms"], name=f"{p}_rms"),
                    helper.make_node("Div", [x, f"{p}_rms"], [f"{p}_n"], name=f"{p}_n"),
                ]
                normed.append(f"{p}_n")
            q, k = normed
        scale = float(attribute(node, "scale", 1.0))
        if sources is None:
            inputs = [q, k, v] + ([mask] if mask else [])
            new_nodes.append(helper.make_node("Attention", inputs, [node.output[0]], name=node.name or tag,
                                              scale=scale))
            continue
        split_heads.add(heads)
        merged = []
        for name, x in (("q", q), ("k", k), ("v", v)):
            new_nodes.append(helper.make_node("Reshape", [x, merge_name], [f"{tag}_{name}3"], name=f"{tag}_{name}3"))
            merged.append(f"{tag}_{name}3")
        inputs = merged + ([mask] if mask else [])
        new_nodes.append(helper.make_node("Attention", inputs, [f"{tag}_y3"], name=node.name or tag, scale=scale,
                                          q_num_heads=heads, kv_num_heads=heads))
        out = node.output[0]
        after = readers.get(out, [])
        if (len(after) == 1 and out not in graph_outputs and after[0].op_type == "Transpose"
                and list(attribute(after[0], "perm", [])) == _HEAD_SWAP):
            # [B, S, H*D] -> [B, S, H, Dv]: what the Transpose that merged the heads back produced
            replaced.add(after[0].output[0])
            new_nodes.append(helper.make_node("Reshape", [f"{tag}_y3", f"{split_name}{heads}"],
                                              [after[0].output[0]], name=f"{tag}_y4"))
        else:
            new_nodes += [helper.make_node("Reshape", [f"{tag}_y3", f"{split_name}{heads}"], [f"{tag}_y4"],
                                           name=f"{tag}_y4"),
                          helper.make_node("Transpose", [f"{tag}_y4"], [out], name=f"{tag}_bhsd", perm=_HEAD_SWAP)]
    if count == 0:
        return m
    del g.node[:]
    g.node.extend(new_nodes)
    if fold:
        _drop_dead_transposes(g)
    if need_rms:
        g.initializer.extend([numpy_helper.from_array(np.array(RMS_EPS, np.float32), eps_name),
                              numpy_helper.from_array(np.array([-1], np.int64), axes_name)])
    if split_heads:
        g.initializer.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), merge_name))
        for h in sorted(split_heads):
            g.initializer.append(numpy_helper.from_array(np.array([0, 0, h, -1], np.int64), f"{split_name}{h}"))
    kept = [o for o in m.opset_import if o.domain not in (PLUGIN_DOMAIN,)]
    del m.opset_import[:]
    m.opset_import.extend(kept)
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = max(o.version, ATTENTION_OPSET)
    m.ir_version = max(m.ir_version, 10)
    return m
