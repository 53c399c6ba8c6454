"""Multiply-accumulate count of an ONNX graph (Conv, ConvTranspose, MatMul, Gemm, Attention) from
shape inference, so a latency becomes achieved GFLOP/s (the machine's peaks: :mod:`edge.bench.machine`)."""

from __future__ import annotations

import numpy as np


def count_macs(onnx_path: str, batch: int = 1) -> int:
    """MACs of one inference (unknown/dynamic dims count as ``batch``); 0 for ops we do not model."""
    from edge.onnx_file import attribute, read_model, value_dims

    model = read_model(onnx_path)
    for vi in model.graph.input:  # pin dynamic dims so shape inference is concrete
        for d in vi.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.dim_value = batch
    shp = {k: [d or 0 for d in v] for k, v in value_dims(model).items()}  # a dim of unknown size counts 0
    macs = 0
    for n in model.graph.node:
        if n.op_type in ("Conv", "ConvTranspose") and n.output[0] in shp and n.input[1] in shp:
            w = shp[n.input[1]]
            out = shp[n.output[0]]
            if w and out:
                macs += int(np.prod(out)) * int(np.prod(w[1:])) if n.op_type == "Conv" else \
                    int(np.prod(shp.get(n.input[0], [0]))) * int(np.prod(w[1:]))
        elif n.op_type in ("MatMul", "Gemm") and n.output[0] in shp and n.input[0] in shp:
            a = shp[n.input[0]]
            out = shp[n.output[0]]
            if a and out:
                k = a[-1] if n.op_type == "MatMul" or not attribute(n, "transA", 0) else a[-2]
                macs += int(np.prod(out)) * int(k)
        elif n.op_type == "Attention" and n.input[0] in shp and n.input[1] in shp and n.input[2] in shp:
            q, k, v = shp[n.input[0]], shp[n.input[1]], shp[n.input[2]]
            if len(q) == 4 and len(k) == 4 and len(v) == 4:  # (batch, heads, tokens, head width)
                b, h, sq, d = q
                macs += b * h * sq * k[2] * (d + v[3])
            elif len(q) == 3 and len(k) == 3 and len(v) == 3:  # (batch, tokens, heads x width): opset 23's 3-D form
                hq, hkv = attribute(n, "q_num_heads", 0), attribute(n, "kv_num_heads", 0)
                if hq > 0 and hkv > 0 and q[2] % hq == 0 and v[2] % hkv == 0:  # QK^T and AV, per query head
                    macs += q[0] * hq * q[1] * k[1] * (q[2] // hq + v[2] // hkv)
    return macs
