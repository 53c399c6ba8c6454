"""Heads from a fused projection: q/k/v (or k/v) of a ``Linear(d, parts * d)`` as [B, heads, S, d/heads].

Why not ``linear(x).reshape(b, s, parts, heads, dh).permute(2, 0, 3, 1, 4)``, the usual form: the same
function, but exported it is a 5-D transpose plus a split of the fused output, which OpenVINO's CPU
plugin ran as reference-kernel transposes (in INT8 on quantized tensors). Each part from its own slice
of the weight is one MatMul and one 4-D transpose, which the fused attention kernels take as they are
(a shipped temporal head's INT8 graph: 4.0 -> 3.4 ms on 2 cores, README benchmarks). The weights and their names are
unchanged, so checkpoints of either form load into the other.
"""

from __future__ import annotations

from typing import Any


def projected_heads(proj: Any, x: Any, parts: int, heads: int, *, inputs: tuple[Any, ...] | None = None
                    ) -> tuple[Any, ...]:
    """``parts`` tensors [B, heads, S, d/heads] of ``proj(x)`` (``proj`` a ``torch.nn.Linear(d, parts*d)``
    with bias, ``x`` [B, S, d]), each computed from its slice of the weight.

    ``inputs`` (one tensor per part) projects each part from its own tokens instead of ``x``: queries
    for only some tokens (a last block whose other outputs nobody reads) against keys/values of all
    of them, without computing the queries nobody needs."""
    import torch.nn.functional as F

    xs = (x,) * parts if inputs is None else tuple(inputs)
    if len(xs) != parts:
        raise ValueError(f"{len(xs)} inputs for {parts} projected parts")
    d = proj.out_features // parts
    if d * parts != proj.out_features or d % heads:
        raise ValueError(f"projection to {proj.out_features} features does not split into {parts} parts of "
                         f"{heads} heads")
    if proj._forward_pre_hooks or proj._forward_hooks:
        # hooked (quantization-aware training rounds its input and weight; the INT8 export's probe reads its
        # input): through the module's own call, so the hooks run. Slicing the weight skipped them: --qat never
        # rounded these projections, which the INT8 export then quantized with calibrated scales unsaid
        outs = [proj(x)] * parts if inputs is None else [proj(xi) for xi in xs]
        return tuple(o[..., i * d:(i + 1) * d].reshape(xi.shape[0], xi.shape[1], heads, d // heads).transpose(1, 2)
                     for i, (o, xi) in enumerate(zip(outs, xs, strict=True)))
    w, bias = proj.weight, proj.bias
    return tuple(F.linear(xi, w[i * d:(i + 1) * d], None if bias is None else bias[i * d:(i + 1) * d])
                 .reshape(xi.shape[0], xi.shape[1], heads, d // heads).transpose(1, 2) for i, xi in enumerate(xs))
