"""OpenVINO lowering: a frontend ConversionExtension mapping ``edge.ai::EdgeAttention`` to
``ScaledDotProductAttention`` while the ONNX model is read.

The ONNX-frontend ``ConversionExtension(op, domain, fn)`` is used because the domain argument is
required to match our node, and because ``OpExtension`` would run but silently drop ``scale``.
QK-norm becomes explicit RMS normalization in front of the SDPA node; a bool mask keeps its meaning
(True = attend) and a float mask is additive, as in every other lowering; a query whose bool mask allows no key
gives zeros (OpenVINO's SDPA gave NaN there; PyTorch's SDPA and ONNX Runtime give zeros).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.ops.attention import PLUGIN_DOMAIN, PLUGIN_OP, RMS_EPS


def _like(ops: Any, value: float, x: Any) -> Any:
    """A scalar constant in ``x``'s element type: SDPA and Add refuse mixed types, so an f32 constant broke
    every fp16 graph ("Mixed input types are not supported")."""
    return ops.convert_like(ops.constant(np.array(value, np.float32)), x)


def _rms(ops: Any, x: Any) -> Any:
    sq = ops.multiply(x, x)
    ms = ops.reduce_mean(sq, ops.constant(np.array([-1], np.int64)), keep_dims=True)
    return ops.divide(x, ops.sqrt(ops.add(ms, _like(ops, RMS_EPS, x))))


def _convert(node: Any) -> list[Any]:
    import openvino.opset13 as ops

    q, k, v = node.get_input(0), node.get_input(1), node.get_input(2)
    if int(node.get_attribute("qk_norm", 0)):
        q, k = _rms(ops, q).output(0), _rms(ops, k).output(0)
    scale = _like(ops, float(node.get_attribute("scale")), q)
    if node.get_input_size() <= 3:
        return [ops.scaled_dot_product_attention(q, k, v, scale=scale).output(0)]
    mask = node.get_input(3)
    out = ops.scaled_dot_product_attention(q, k, v, attention_mask=mask, scale=scale)
    if mask.get_element_type().get_type_name() != "boolean":  # an additive mask: as SDPA gives it
        return [out.output(0)]
    allowed = ops.reduce_logical_or(mask, ops.constant(np.array([-1], np.int64)), keep_dims=True)
    return [ops.select(allowed, out, _like(ops, 0.0, out)).output(0)]


def edge_attention_extension() -> Any:
    """The extension to pass to ``ov.Core().add_extension`` before ``read_model``."""
    from openvino.frontend.onnx import ConversionExtension

    return ConversionExtension(PLUGIN_OP, PLUGIN_DOMAIN, _convert)
