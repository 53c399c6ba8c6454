"""``edge.ops.attention``: scaled dot-product attention, layout [B, H, S, D].

Eager PyTorch runs a ``torch.library`` custom op (``edge::attention``) whose kernel is
``F.scaled_dot_product_attention``. While exporting, :func:`export_mode` picks what the call traces to
(DESIGN.md section 4):

* ``decomposed``: MatMul/Softmax with the scale folded into Q before the first MatMul (TensorRT's
  MHA-fusion pattern, opset <= 20), which every runtime can run;
* ``onnx``: the standard opset-23 ``Attention`` node (``torch.onnx.ops.attention``);
* ``plugin``: one portable custom node ``edge.ai::EdgeAttention`` (``torch.onnx.ops.symbolic``) with
  attributes num_heads, scale, qk_norm, plugin_namespace="edge", plugin_version="1", which each
  backend lowers (ORT: to ``Attention``; OpenVINO: an extension; TensorRT: our plugin).

``qk_norm`` applies RMS normalization over D to q and k before the product (QK-norm, as cross-attention
models use it; learned gains, if any, belong to the model and are applied before the call).

Masks follow SDPA: a bool mask is True where attention is allowed; a float mask is added to the
logits. Both broadcast to [B, H, Sq, Sk]. A query whose bool mask allows no key (a sample whose keys are all
padding) gives zeros, as PyTorch's SDPA does, in every lowering (the decomposed form's softmax and OpenVINO's SDPA
gave NaN there, and the exported parity check never fed such a mask).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

_MODES = ("eager", "decomposed", "onnx", "plugin")
RMS_EPS = 1e-6
PLUGIN_OP = "EdgeAttention"
PLUGIN_DOMAIN = "edge.ai"
_state = threading.local()


def masked_nodes(model: Any) -> list[Any]:
    """The EdgeAttention nodes of an ONNX ``ModelProto`` that take a mask (a 4th input, even an empty one):
    TensorRT's EdgeAttention plugin declares q, k, v only, so ``edge build`` refuses them and an ``auto``
    export for TensorRT writes such a graph as the standard opset-23 Attention instead."""
    return [n for n in model.graph.node if n.op_type == PLUGIN_OP and len(n.input) > 3]


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


def rms_norm_numpy(x: np.ndarray, eps: float = RMS_EPS) -> np.ndarray:
    """x / sqrt(mean(x^2 over the last axis) + eps), in float64."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)


def attention_numpy(q: np.ndarray, k: np.ndarray, v: np.ndarray, *, scale: float | None = None,
                    mask: np.ndarray | None = None, qk_norm: bool = False) -> np.ndarray:
    """Reference implementation in float64 numpy; the ground truth for every lowering."""
    q64, k64, v64 = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    if qk_norm:
        q64, k64 = rms_norm_numpy(q64), rms_norm_numpy(k64)
    s = 1.0 / math.sqrt(q64.shape[-1]) if scale is None else float(scale)
    logits = (q64 @ np.swapaxes(k64, -1, -2)) * s
    m = None if mask is None else np.asarray(mask)
    if m is not None:
        logits = np.where(m, logits, -np.inf) if m.dtype == np.bool_ else logits + m.astype(np.float64)
    with np.errstate(invalid="ignore"):  # a row with no key allowed: NaN here, zeros below
        logits = logits - logits.max(axis=-1, keepdims=True)
        w = np.exp(logits)
        w /= w.sum(axis=-1, keepdims=True)
    if m is not None and m.dtype == np.bool_:
        w = np.where(m, w, 0.0)
    return (w @ v64).astype(np.result_type(q, np.float32))


_OP: Any = None
_OP_LOCK = threading.Lock()


def _custom_op() -> Any:
    """Define ``edge::attention`` once, on first use (keeps ``import edge`` free of torch). Under a lock: two
    threads defining it at once (concurrent ``edge.export`` calls) left one holding an op whose library torch
    had destroyed ("AssertionError: Library object has been destroyed")."""
    if _OP is not None:
        return _OP
    with _OP_LOCK:
        return _OP if _OP is not None else _define()


def _define() -> Any:
    global _OP
    import torch
    import torch.nn.functional as F

    # Explicit schema: annotations are strings under `from __future__ import annotations`.
    def _math(q, k, v, mask, scale, qk_norm):  # type: ignore[no-untyped-def]
        if qk_norm:
            q, k = _rms(q), _rms(k)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)

    @torch.library.custom_op(
        "edge::attention", mutates_args=(),
        schema="(Tensor q, Tensor k, Tensor v, Tensor? mask, float scale, bool qk_norm) -> Tensor")
    def _attention(q, k, v, mask, scale, qk_norm):  # type: ignore[no-untyped-def]
        return _math(q, k, v, mask, scale, qk_norm)

    @_attention.register_fake
    def _(q, k, v, mask, scale, qk_norm):  # type: ignore[no-untyped-def]
        return q.new_empty((*q.shape[:-1], v.shape[-1]))

    def setup_context(ctx, inputs, output):  # type: ignore[no-untyped-def]
        q, k, v, mask, scale, qk_norm = inputs
        ctx.save_for_backward(q, k, v, mask)
        ctx.scale, ctx.qk_norm = scale, qk_norm

    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        # Recompute through SDPA's own autograd; simpler and as exact as a hand-written backward.
        q, k, v, mask = ctx.saved_tensors
        with torch.enable_grad():
            qq, kk, vv = (t.detach().requires_grad_(True) for t in (q, k, v))
            out = _math(qq, kk, vv, mask, ctx.scale, ctx.qk_norm)
            gq, gk, gv = torch.autograd.grad(out, (qq, kk, vv), grad)
        return gq, gk, gv, None, None, None

    _attention.register_autograd(backward, setup_context=setup_context)
    _OP = _attention
    return _OP


def ensure_registered() -> None:
    """Register ``edge::attention`` with torch (needed before loading a program that contains it)."""
    _custom_op()


def _rms(x: Any) -> Any:
    import torch

    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + RMS_EPS)


def _decomposed(q: Any, k: Any, v: Any, scale: float, mask: Any, qk_norm: bool) -> Any:
    import torch

    if qk_norm:
        q, k = _rms(q), _rms(k)
    qs = q * scale  # folded into Q before the first MatMul: the pattern TensorRT fuses into MHA
    logits = torch.matmul(qs, k.transpose(-1, -2))
    if mask is None or mask.dtype != torch.bool:
        return torch.matmul(torch.softmax(logits if mask is None else logits + mask, dim=-1), v)
    # the weights of masked keys are 0 already, except in a row with no key allowed, whose softmax is NaN: zeros
    # there, as SDPA gives (one Where on the weights; only a bool-masked graph has it)
    weights = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
    return torch.matmul(weights.masked_fill(~mask, 0.0), v)


def _full_mask(mask: Any, q: Any, k: Any) -> Any:
    """``mask`` expanded to [B, H, Sq, Sk]: SDPA broadcasts a [B, 1, 1, Sk] key-padding mask (or any
    broadcastable shape), but ONNX Runtime's ``Attention`` kernel requires the mask's query length to be
    Sq (it failed with "inconsistent q_sequence_length"), so the nodes get the full shape (an Expand)."""
    if mask is None:
        return None
    return mask.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])


def _onnx_attention(q: Any, k: Any, v: Any, scale: float, mask: Any, qk_norm: bool) -> Any:
    import torch

    if qk_norm:
        q, k = _rms(q), _rms(k)
    return torch.onnx.ops.attention(q, k, v, attn_mask=_full_mask(mask, q, k), scale=scale)[0]


def _plugin(q: Any, k: Any, v: Any, scale: float, mask: Any, qk_norm: bool) -> Any:
    import torch

    attrs = {"num_heads": int(q.shape[1]), "scale": float(scale), "qk_norm": int(qk_norm),
             "plugin_namespace": "edge", "plugin_version": "1"}
    return torch.onnx.ops.symbolic(f"{PLUGIN_DOMAIN}::{PLUGIN_OP}", [q, k, v, _full_mask(mask, q, k)], attrs,
                                   dtype=q.dtype,
                                   shape=(q.shape[0], q.shape[1], q.shape[2], v.shape[3]), version=1)


def attention(q: Any, k: Any, v: Any, *, scale: float | None = None, mask: Any = None,
              qk_norm: bool = False) -> Any:
    """Attention over [B, H, S, D] tensors (self or cross: k/v may have another length).

    ``scale`` defaults to 1/sqrt(D). Dispatches to the custom op in eager mode and, while exporting,
    to the form :func:`export_mode` selects (decomposed / onnx / plugin).
    """
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"attention expects [B, H, S, D] tensors, got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    mode = get_export_mode()
    if mode == "decomposed":
        return _decomposed(q, k, v, s, mask, qk_norm)
    if mode == "onnx":
        return _onnx_attention(q, k, v, s, mask, qk_norm)
    if mode == "plugin":
        return _plugin(q, k, v, s, mask, qk_norm)
    return _custom_op()(q, k, v, mask, s, bool(qk_norm))
