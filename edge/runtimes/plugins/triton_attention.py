"""Flash-attention forward kernel in Triton: the compute behind our TensorRT plugin.

One program computes a BLOCK_M tile of queries for one (batch, head), streaming over the keys in
BLOCK_N tiles with the online-softmax recurrence (running max ``m``, normalizer ``l``), so memory is
O(S) instead of O(S^2). Accumulation is fp32 whatever the input dtype; the output takes Q's dtype.
Masks arrive additive (a bool mask is turned into 0 / -inf by the wrapper) and broadcast through
zero strides. QK-norm (RMS over D) is applied to each tile after loading.

Tested on the CPU with ``TRITON_INTERPRET=1`` against the numpy reference; on a GPU it is the kernel
the TensorRT plugin launches (``edge/runtimes/plugins/tensorrt_plugin.py``).
"""

from __future__ import annotations

import math
from typing import Any

import triton
import triton.language as tl

from edge.ops.attention import RMS_EPS


@triton.jit
def _attn_fwd(Q, K, V, M, Out, scale, Lq, Lk, D, DV, H,
              sqb, sqh, sqm, sqd, skb, skh, skn, skd, svb, svh, svn, svd,
              smb, smh, smm, smn, sob, soh, som, sod,
              HAS_MASK: tl.constexpr, QK_NORM: tl.constexpr, LOWP: tl.constexpr,
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
              BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, EPS: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    m_ok = offs_m < Lq
    q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sqm + offs_d[None, :] * sqd,
                mask=m_ok[:, None] & (offs_d[None, :] < D), other=0.0).to(tl.float32)
    if QK_NORM:
        q = q / tl.sqrt(tl.sum(q * q, axis=1) / D + EPS)[:, None]
    q = q * scale
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], tl.float32)
    for start in range(0, Lk, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        n_ok = offs_n < Lk
        k = tl.load(K + b * skb + h * skh + offs_n[:, None] * skn + offs_d[None, :] * skd,
                    mask=n_ok[:, None] & (offs_d[None, :] < D), other=0.0).to(tl.float32)
        if QK_NORM:
            k = k / tl.sqrt(tl.sum(k * k, axis=1) / D + EPS)[:, None]
        if LOWP:  # fp16/bf16 tiles on tensor cores, fp32 accumulation
            s = tl.dot(q.to(Q.dtype.element_ty), tl.trans(k.to(Q.dtype.element_ty)))
        else:  # true fp32 products (not TF32) so fp32 engines keep 1e-4 parity
            s = tl.dot(q, tl.trans(k), input_precision="ieee")
        if HAS_MASK:
            s += tl.load(M + b * smb + h * smh + offs_m[:, None] * smm + offs_n[None, :] * smn,
                         mask=m_ok[:, None] & n_ok[None, :], other=0.0).to(tl.float32)
        s = tl.where(n_ok[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(V + b * svb + h * svh + offs_n[:, None] * svn + offs_dv[None, :] * svd,
                    mask=n_ok[:, None] & (offs_dv[None, :] < DV), other=0.0).to(tl.float32)
        if LOWP:
            acc = acc * alpha[:, None] + tl.dot(p.to(V.dtype.element_ty), v.to(V.dtype.element_ty))
        else:
            acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="ieee")
        m_i = m_new
    acc = acc / l_i[:, None]
    tl.store(Out + b * sob + h * soh + offs_m[:, None] * som + offs_dv[None, :] * sod,
             acc.to(Out.dtype.element_ty), mask=m_ok[:, None] & (offs_dv[None, :] < DV))


def _pow2(n: int, lo: int = 16) -> int:
    return max(lo, 1 << (max(n, 1) - 1).bit_length())


def triton_attention(q: Any, k: Any, v: Any, *, scale: float | None = None, mask: Any = None,
                     qk_norm: bool = False, out: Any = None, block_m: int = 64, block_n: int = 64) -> Any:
    """Attention on [B, H, S, D] torch tensors with the Triton kernel (same contract as edge.ops.attention)."""
    import torch

    b, h, lq, d = q.shape
    lk, dv = k.shape[2], v.shape[3]
    s = 1.0 / math.sqrt(d) if scale is None else float(scale)
    if out is None:
        out = torch.empty((b, h, lq, dv), dtype=q.dtype, device=q.device)
    none_allowed = None
    if mask is not None:
        if mask.dtype == torch.bool:
            none_allowed = ~mask.any(dim=-1, keepdim=True)  # such a query's online softmax is NaN: zeros, as SDPA
            mask = torch.zeros(mask.shape, dtype=torch.float32, device=q.device).masked_fill(~mask, float("-inf"))
        mask = mask.expand(b, h, lq, lk)
        mstr = mask.stride()
    else:
        mstr = (0, 0, 0, 0)
    grid = (triton.cdiv(lq, block_m), b * h)
    _attn_fwd[grid](
        q, k, v, mask if mask is not None else q, out, s, lq, lk, d, dv, h,
        *q.stride(), *k.stride(), *v.stride(), *mstr, *out.stride(),
        HAS_MASK=mask is not None, QK_NORM=bool(qk_norm), LOWP=q.dtype in (torch.float16, torch.bfloat16),
        BLOCK_M=block_m, BLOCK_N=block_n,
        BLOCK_D=_pow2(d), BLOCK_DV=_pow2(dv), EPS=RMS_EPS,
    )
    if none_allowed is not None:  # unconditionally: asking whether any row is empty would wait for the GPU
        out.masked_fill_(none_allowed.expand(b, h, lq, 1), 0.0)
    return out
