"""Quantizers that write new ONNX files: QDQ INT8 (every backend) and FP16 with fp32 I/O.

INT8 follows DESIGN.md section 5: explicit QuantizeLinear/DequantizeLinear pairs, symmetric
activations (zero-point 0) and symmetric per-channel weights, which is what TensorRT's strongly typed
networks, ONNX Runtime and OpenVINO all read. ``activations="u8s8"`` writes ONNX Runtime's own fast
form instead: uint8 activations with a zero point (asymmetric), int8 symmetric weights, which its x86
kernels run natively (VPMADDUBSW / VNNI) where the symmetric form goes through a conversion.
By default only Conv/MatMul/Gemm are quantized: measured here on a toy attention model, that ran
faster than quantizing every op and halved the error; a MatMul/Gemm whose dot products are shorter than
16 terms (a rotation of points, a projection) is never quantized (:func:`short_dots`).
The graph given must run in ONNX Runtime (for a plugin-mode bundle: its ``*.ort.onnx`` lowering).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edge.calibration.datasets import FeedSet
from edge.errors import ExportError, first_line

METHODS = ("minmax", "entropy", "percentile")
#: activation forms: "s8s8" (symmetric int8, every backend; TensorRT needs it) or "u8s8" (uint8 asymmetric)
ACTIVATIONS = ("s8s8", "u8s8")
DEFAULT_OPS = ("Conv", "MatMul", "Gemm")
# kept in fp32 inside an fp16 graph: reductions and normalizations whose accumulation overflows or
# loses precision in half precision
FP16_KEEP = ("Softmax", "LayerNormalization", "ReduceMean", "ReduceSum", "Attention", "RMSNormalization",
             "Sqrt", "Pow", "Exp", "Log", "Resize", "Range", "CumSum")


#: a MatMul/Gemm whose dot products are shorter than this stays in float in every INT8 form (:func:`short_dots`)
MIN_INT8_DOT = 16


def _dims(vi: Any) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]


def short_dots(src: str | os.PathLike[str] | Any) -> list[str]:
    """The MatMul/Gemm nodes of an ONNX graph (a path or a loaded model) whose dot products sum fewer than
    :data:`MIN_INT8_DOT` terms (the summed axis from shape inference; unknown lengths count as long).

    Why they stay in float: an int8 kernel pays by packing many products into one instruction (VNNI sums
    4 per 32-bit slot, TensorRT's int8 tiles 32), so a 3-term product gains nothing, and such products are
    geometry, not features: moving points by a rotation or projecting them with the intrinsics, where one
    scale over a 50 m range leaves 0.4 m steps (a calibration model's refinement step went 180 % off in
    int8 with them).
    """
    import onnx

    from edge.onnx_file import name_nodes

    if isinstance(src, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(src)
    else:
        model = onnx.load(str(src), load_external_data=False)
    name_nodes(model)
    try:
        # data_prop: a Reshape whose shape is computed (Shape -> Gather -> Concat) gets its dims, not only a rank
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # a graph shape inference cannot read keeps every node a candidate
        return []
    g = model.graph
    shapes: dict[str, list[int | None]] = {vi.name: _dims(vi) for vi in (*g.value_info, *g.input, *g.output)}
    shapes.update({t.name: list(t.dims) for t in g.initializer})
    out = []
    for n in g.node:
        if n.op_type not in ("MatMul", "Gemm"):
            continue
        a = shapes.get(n.input[0]) or []
        b = shapes.get(n.input[1]) or []
        if n.op_type == "Gemm":
            attrs = {x.name: x.i for x in n.attribute}
            ka = (a[0] if attrs.get("transA") else a[1]) if len(a) == 2 else None
            kb = (b[1] if attrs.get("transB") else b[0]) if len(b) == 2 else None
        else:
            ka = a[-1] if a else None
            kb = (b[-2] if len(b) >= 2 else b[0]) if b else None
        k = ka or kb
        if k and k < MIN_INT8_DOT:
            out.append(n.name)
    return out


def _reader(calib: FeedSet, progress: Callable[[int], None] | None) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.i = 0

        def get_next(self) -> dict | None:
            if self.i >= len(calib.feeds):
                return None
            feed = calib.feeds[self.i]
            self.i += 1
            if progress:
                progress(self.i)
            return feed

        def rewind(self) -> None:
            self.i = 0

    return Reader()


def batched_matmul_constants(graph: Any) -> list[str]:
    """The constant (initializer) second inputs of the ONNX ``graph``'s MatMul nodes with more than 2 dimensions:
    quantized with one
    scale, not per channel. ORT's quantizer puts a MatMul weight's channels on axis 1, which for a batched
    constant [1, heads, K, N] is one scale per head; ONNX Runtime's MatMulIntegerToFloat (its fusion of
    DequantizeLinear -> MatMul) then refuses to run ("b zero point is not valid"), and the output columns of a
    batched constant are no per-channel layout TensorRT's MatMul weights take either."""
    inits = {t.name: len(t.dims) for t in graph.initializer}
    return sorted({n.input[1] for n in graph.node if n.op_type == "MatMul" and len(n.input) > 1
                   and inits.get(n.input[1], 0) > 2})


def quantize_int8(src: str | os.PathLike[str], dst: str | os.PathLike[str], calib: FeedSet, *,
                  method: str = "minmax", op_types: Sequence[str] = DEFAULT_OPS, exclude: Sequence[str] = (),
                  per_channel: bool = True, percentile: float = 99.999, activations: str = "s8s8",
                  progress: Callable[[int], None] | None = None,
                  tensor_scales: Mapping[str, float] | None = None,
                  quantize_outputs: bool | None = None) -> dict[str, Any]:
    """Write a QDQ INT8 copy of ``src`` calibrated on ``calib``; returns what was done (for the manifest).

    ``tensor_scales``: activation tensors quantized with these symmetric scales instead of calibrated ones
    (a quantization-aware checkpoint's trained scales, :mod:`edge.calibration.qat_scales`); symmetric form only.
    ``quantize_outputs``: whether the outputs of the Conv/MatMul/Gemm are rounded too. None: only in the U8S8
    form (ONNX Runtime's own, whose quantizer rounds them so that its CPU kernels can fuse QLinearConv). The
    symmetric form, TensorRT's, rounds the inputs only: where TensorRT's placement guide puts Q/DQ ("by default,
    do not quantize the outputs of weighted operations"), and where quantization-aware training rounds
    (:mod:`edge.models.qat`). Rounding the outputs too was the default before; on the four shipped families'
    programs (``benchmarks/int8_placement.py``) it never scored better, cost one of them 2 of its 16 points (6
    with the Q/DQ pairs as float arithmetic), and ONNX Runtime ran the inputs-only graphs as fast or faster."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in METHODS:
        raise ExportError(f"calibration method {method!r}: choose one of {', '.join(METHODS)}")
    if len(calib) == 0:
        raise ExportError("empty calibration set")
    if activations not in ACTIVATIONS:
        raise ExportError(f"int8 activations {activations!r}: choose one of {', '.join(ACTIVATIONS)}")
    symmetric = activations == "s8s8"
    extra: dict[str, Any] = {"ActivationSymmetric": symmetric, "WeightSymmetric": True}
    if symmetric:
        # the symmetric form is TensorRT's, whose dequantize layer takes int8 (FP8/INT4) only: ONNX Runtime's
        # default int32 bias DequantizeLinear failed every engine build. Biases stay float; ONNX Runtime still
        # fuses QLinearConv / QGemm (same graph speed and outputs on a conv net, checked)
        extra["QuantizeBias"] = False
    if method == "percentile":
        extra["CalibPercentile"] = float(percentile)
    import onnx

    # the graph's structure, read once (weights left on disk): what the overrides and node names below look at
    g = onnx.load(str(src), load_external_data=False).graph
    overrides: dict[str, list[dict[str, Any]]] = {t: [{"symmetric": True}] for t in batched_matmul_constants(g)}
    if tensor_scales:
        if not symmetric:
            raise ExportError("trained activation scales are symmetric int8 scales; the u8s8 form calibrates its own")
        import numpy as np

        known = {i.name for i in g.input} | {o for n in g.node for o in n.output}
        missing = sorted(set(tensor_scales) - known)
        if missing:  # ORT's override check reads only the first entry, so it would ignore them silently
            raise ExportError(f"{Path(src).name}: trained scales name tensors the graph does not have: "
                              f"{', '.join(missing[:4])}")
        overrides.update({t: [{"scale": np.array(s, dtype=np.float32), "zero_point": np.array(0, dtype=np.int8)}]
                          for t, s in tensor_scales.items()})
    if overrides:
        extra["TensorQuantOverrides"] = overrides
    if quantize_outputs is None:
        quantize_outputs = not symmetric
    if not quantize_outputs:
        extra["OpTypesToExcludeOutputQuantization"] = list(op_types)
    cm = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
          "percentile": CalibrationMethod.Percentile}[method]
    import logging

    from edge.onnx_file import name_nodes

    short = [n for n in short_dots(src) if n not in exclude]
    model: Any = str(src)
    if not all(n.name for n in g.node):
        model = onnx.load(str(src))
        name_nodes(model)  # nodes are excluded by name: an unnamed one gets the name short_dots gave it
    dst = Path(dst)
    root = logging.getLogger()
    # the quantizer logs a pre-processing hint on the root logger every call: its own records below ERROR are
    # dropped by a filter on that logger, for this thread only (the root's level set to ERROR silenced a host
    # application's other threads' warnings meanwhile, and two quantizations at once could leave it there)
    me = threading.get_ident()

    def quantizer_hint(record: logging.LogRecord) -> bool:
        path = record.pathname.replace("\\", "/")
        return not (record.thread == me and record.levelno < logging.ERROR
                    and "/onnxruntime/quantization/" in path)

    root.addFilter(quantizer_hint)
    try:
        quantize_static(model, str(dst), _reader(calib, progress), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(op_types), per_channel=per_channel,
                        activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                        weight_type=QuantType.QInt8,
                        nodes_to_exclude=[*exclude, *short], calibrate_method=cm, extra_options=extra)
    except ExportError:
        raise
    except Exception as e:
        msg = first_line(e)
        raise ExportError(f"{Path(src).name}: INT8 quantization failed ({msg})") from None
    finally:
        root.removeFilter(quantizer_hint)
    return {"format": "qdq", "method": method, "op_types": list(op_types), "excluded": list(exclude),
            "short_dots": short,
            "per_channel": per_channel, "symmetric": symmetric, "activations": activations,
            "trained_scales": len(tensor_scales or {}), "outputs_quantized": quantize_outputs,
            "calibration": {"source": calib.source, "samples": len(calib)}}
