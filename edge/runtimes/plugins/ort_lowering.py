"""ONNX Runtime lowering: rewrite ``edge.ai::EdgeAttention`` nodes into opset-23 ``Attention``.

ORT >= 1.23 runs ``Attention`` natively on CPU; a Python-callback custom op measured ~9x slower than
the whole model, so the lowering is a graph rewrite done once (at export, cached in the bundle).
QK-norm becomes an explicit RMS normalization (Mul, ReduceMean, Add, Sqrt, Div) in front of it.
The default-domain opset is raised to 23: the ops that changed between 20 and 23 only gained types.
"""

from __future__ import annotations

from typing import Any

from edge.ops.attention import PLUGIN_DOMAIN, PLUGIN_OP, RMS_EPS

ATTENTION_OPSET = 23


def _attr(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def lower_edge_attention(model: Any) -> Any:
    """Return a copy of ``model`` with every EdgeAttention node replaced by standard ops."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    new_nodes = []
    count = 0
    eps_name, axes_name = "edge_rms_eps", "edge_rms_axes"
    need_rms = False
    for node in g.node:
        if node.domain != PLUGIN_DOMAIN or node.op_type != PLUGIN_OP:
            new_nodes.append(node)
            continue
        count += 1
        tag = f"edge_attn{count}"
        q, k, v = node.input[0], node.input[1], node.input[2]
        mask = node.input[3] if len(node.input) > 3 and node.input[3] else None
        if int(_attr(node, "qk_norm", 0)):
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
        inputs = [q, k, v] + ([mask] if mask else [])
        new_nodes.append(helper.make_node("Attention", inputs, [node.output[0]], name=node.name or tag,
                                          scale=float(_attr(node, "scale", 1.0))))
    if count == 0:
        return m
    del g.node[:]
    g.node.extend(new_nodes)
    if need_rms:
        g.initializer.extend([numpy_helper.from_array(np.array(RMS_EPS, np.float32), eps_name),
                              numpy_helper.from_array(np.array([-1], np.int64), axes_name)])
    kept = [o for o in m.opset_import if o.domain not in (PLUGIN_DOMAIN,)]
    del m.opset_import[:]
    m.opset_import.extend(kept)
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = max(o.version, ATTENTION_OPSET)
    m.ir_version = max(m.ir_version, 10)
    return m
