"""``edge.ops.attention``: scaled dot-product attention, layout [B, H, S, D].

Eager PyTorch runs a ``torch.library`` custom op (``edge::attention``) whose kernel is
``F.scaled_dot_product_attention``; keeping it an opaque op is what lets the exporter emit our own
node later instead of whatever decomposition the tracer happens to produce. Under
``export_mode("decomposed")`` the same call traces to MatMul/Softmax with the scale folded into Q
before the first MatMul (TensorRT's MHA-fusion pattern, opset <= 20), which every runtime can run.

Masks follow SDPA: a bool mask is True where attention is allowed; a float mask is added to the
logits. Both broadcast to [B, H, Sq, Sk].
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

_MODES = ("eager", "decomposed")
_state = threading.local()


def get_export_mode() -> str:
    """The lowering used by :func:`attention` on this thread ("eager" outside an export)."""
    return getattr(_state, "mode", "eager")


@contextlib.contextmanager
def export_mode(mode: str) -> Iterator[None]:
    """Trace attention as ``mode`` inside the block (used by ``edge.export``)."""
    if mode not in _MODES:
        raise ValueError(f"unknown attention export mode {mode!r}; known: {_MODES}")
    prev = get_export_mode()
    _state.mode = mode
    try:
        yield
    finally:
        _state.mode = prev


def attention_numpy(q: np.ndarray, k: np.ndarray, v: np.ndarray, *, scale: float | None = None,
                    mask: np.ndarray | None = None) -> np.ndarray:
    """Reference implementation in float64 numpy; the ground truth for every lowering."""
    q64, k64, v64 = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    s = 1.0 / math.sqrt(q64.shape[-1]) if scale is None else float(scale)
    logits = (q64 @ np.swapaxes(k64, -1, -2)) * s
    if mask is not None:
        m = np.asarray(mask)
        logits = np.where(m, logits, -np.inf) if m.dtype == np.bool_ else logits + m.astype(np.float64)
    logits = logits - logits.max(axis=-1, keepdims=True)
    w = np.exp(logits)
    w /= w.sum(axis=-1, keepdims=True)
    return (w @ v64).astype(np.result_type(q, np.float32))


_OP: Any = None


def _custom_op() -> Any:
    """Define ``edge::attention`` once, on first use (keeps ``import edge`` free of torch)."""
    global _OP
    if _OP is not None:
        return _OP
    import torch
    import torch.nn.functional as F

    # Explicit schema: annotations are strings under `from __future__ import annotations`.
    @torch.library.custom_op("edge::attention", mutates_args=(),
                             schema="(Tensor q, Tensor k, Tensor v, Tensor? mask, float scale) -> Tensor")
    def _attention(q, k, v, mask, scale):  # type: ignore[no-untyped-def]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)

    @_attention.register_fake
    def _(q, k, v, mask, scale):  # type: ignore[no-untyped-def]
        return q.new_empty((*q.shape[:-1], v.shape[-1]))

    def setup_context(ctx, inputs, output):  # type: ignore[no-untyped-def]
        q, k, v, mask, scale = inputs
        ctx.save_for_backward(q, k, v, mask)
        ctx.scale = scale

    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        # Recompute through SDPA's own autograd; simpler and as exact as a hand-written backward.
        q, k, v, mask = ctx.saved_tensors
        with torch.enable_grad():
            qq, kk, vv = (t.detach().requires_grad_(True) for t in (q, k, v))
            out = F.scaled_dot_product_attention(qq, kk, vv, attn_mask=mask, scale=ctx.scale)
            gq, gk, gv = torch.autograd.grad(out, (qq, kk, vv), grad)
        return gq, gk, gv, None, None

    _attention.register_autograd(backward, setup_context=setup_context)
    _OP = _attention
    return _OP


def ensure_registered() -> None:
    """Register ``edge::attention`` with torch (needed before loading a program that contains it)."""
    _custom_op()


def _decomposed(q: Any, k: Any, v: Any, scale: float, mask: Any) -> Any:
    import torch

    qs = q * scale  # folded into Q before the first MatMul: the pattern TensorRT fuses into MHA
    logits = torch.matmul(qs, k.transpose(-1, -2))
    if mask is not None:
        if mask.dtype == torch.bool:
            logits = logits.masked_fill(~mask, float("-inf"))
        else:
            logits = logits + mask
    return torch.matmul(torch.softmax(logits, dim=-1), v)


def attention(q: Any, k: Any, v: Any, *, scale: float | None = None, mask: Any = None) -> Any:
    """Attention over [B, H, S, D] tensors (self or cross: k/v may have another length).

    ``scale`` defaults to 1/sqrt(D). Dispatches to the custom op in eager mode and to the explicit
    decomposition while exporting with ``export_mode("decomposed")``.
    """
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"attention expects [B, H, S, D] tensors, got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if get_export_mode() == "decomposed":
        return _decomposed(q, k, v, s, mask)
    return _custom_op()(q, k, v, mask, s)
