"""``edge.ops.axial_attention``: attention along one spatial axis of a feature map (axial attention).

Inputs are maps [B, C, *spatial] (2-D [B, C, H, W] or 3-D [B, C, D, H, W]) with C = heads * d. Every
line along ``axis`` is one sequence; the other spatial positions fold into the batch. It is pure
reshapes around :func:`edge.ops.attention`, so every export mode and backend lowering applies to it
unchanged (no separate node to maintain).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.ops.attention import attention, attention_numpy


def _check(x_shape: tuple[int, ...], heads: int, axis: int) -> int:
    nd = len(x_shape)
    if nd not in (4, 5):
        raise ValueError(f"axial attention expects [B, C, H, W] or [B, C, D, H, W], got rank {nd}")
    ax = axis % nd
    if ax < 2:
        raise ValueError(f"axis {axis} is not a spatial axis of a rank-{nd} map")
    if x_shape[1] % heads:
        raise ValueError(f"channels {x_shape[1]} not divisible by heads {heads}")
    return ax


def _to_seq(x: Any, heads: int, ax: int) -> tuple[Any, tuple[int, ...], list[int]]:
    """[B, C, *S] -> [B * rest, heads, L, d] with L the size along ``ax``; returns the restore info."""
    nd = x.dim() if hasattr(x, "dim") else x.ndim
    others = [i for i in range(2, nd) if i != ax]
    perm = [0, *others, ax, 1]  # [B, *others, L, C]
    y = x.permute(*perm) if hasattr(x, "permute") else np.transpose(x, perm)
    shp = tuple(y.shape)
    c = shp[-1]
    y = y.reshape(-1, shp[-2], heads, c // heads)  # -1, not a product: keeps a dynamic batch dynamic at export
    y = y.transpose(1, 2) if hasattr(y, "permute") else np.swapaxes(y, 1, 2)
    return y, shp, perm


def _from_seq(y: Any, shp: tuple[int, ...], perm: list[int]) -> Any:
    y = y.transpose(1, 2) if hasattr(y, "permute") else np.swapaxes(y, 1, 2)
    y = y.reshape(*shp[:-1], -1)
    inv = list(np.argsort(perm))
    return y.permute(*inv) if hasattr(y, "permute") else np.transpose(y, inv)


def axial_attention(q: Any, k: Any, v: Any, *, heads: int, axis: int = -1, scale: float | None = None,
                    qk_norm: bool = False) -> Any:
    """Attention along ``axis`` of [B, C, *spatial] maps q, k, v (same spatial shape)."""
    ax = _check(tuple(q.shape), heads, axis)
    qs, _, perm = _to_seq(q, heads, ax)
    ks, _, _ = _to_seq(k, heads, ax)
    vs, vshp, _ = _to_seq(v, heads, ax)
    out = attention(qs, ks, vs, scale=scale, qk_norm=qk_norm)
    return _from_seq(out, vshp, perm)


def axial_attention_numpy(q: np.ndarray, k: np.ndarray, v: np.ndarray, *, heads: int, axis: int = -1,
                          scale: float | None = None, qk_norm: bool = False) -> np.ndarray:
    """Reference: loops over every line along ``axis`` explicitly (independent of the reshapes above)."""
    ax = _check(q.shape, heads, axis)
    q, k, v = (np.moveaxis(np.asarray(t, np.float64), ax, -1) for t in (q, k, v))  # [B, C, ..., L]
    out = np.zeros(v.shape, np.float64)
    b, c = q.shape[:2]
    d, dv = c // heads, v.shape[1] // heads
    for idx in np.ndindex(*q.shape[2:-1]):
        for bi in range(b):
            sl = (bi, slice(None), *idx, slice(None))
            qq = q[sl].reshape(heads, d, -1).transpose(0, 2, 1)[None]
            kk = k[sl].reshape(heads, d, -1).transpose(0, 2, 1)[None]
            vv = v[sl].reshape(heads, dv, -1).transpose(0, 2, 1)[None]
            o = attention_numpy(qq, kk, vv, scale=scale, qk_norm=qk_norm)[0]  # [heads, L, dv]
            out[sl] = o.transpose(0, 2, 1).reshape(heads * dv, -1)
    return np.moveaxis(out, -1, ax).astype(np.float32)
