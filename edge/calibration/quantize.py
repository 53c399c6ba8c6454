"""Quantizers that write new ONNX files: QDQ INT8 (every backend) and FP16 with fp32 I/O.

INT8 follows DESIGN.md section 5: explicit QuantizeLinear/DequantizeLinear pairs, symmetric
activations (zero-point 0) and symmetric per-channel weights, which is what TensorRT's strongly typed
networks, ONNX Runtime and OpenVINO all read. ``activations="u8s8"`` writes ONNX Runtime's own fast
form instead: uint8 activations with a zero point (asymmetric), int8 symmetric weights, which its x86
kernels run natively (VPMADDUBSW / VNNI) where the symmetric form goes through a conversion.
By default only Conv/MatMul/Gemm are quantized: measured here on a toy attention model, that ran
faster than quantizing every op and halved the error.
The graph given must run in ONNX Runtime (for a plugin-mode bundle: its ``*.ort.onnx`` lowering).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
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


def quantize_int8(src: str | os.PathLike[str], dst: str | os.PathLike[str], calib: FeedSet, *,
                  method: str = "minmax", op_types: Sequence[str] = DEFAULT_OPS, exclude: Sequence[str] = (),
                  per_channel: bool = True, percentile: float = 99.999, activations: str = "s8s8",
                  progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write a QDQ INT8 copy of ``src`` calibrated on ``calib``; returns what was done (for the manifest)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in METHODS:
        raise ExportError(f"calibration method {method!r}: choose one of {', '.join(METHODS)}")
    if len(calib) == 0:
        raise ExportError("empty calibration set")
    if activations not in ACTIVATIONS:
        raise ExportError(f"int8 activations {activations!r}: choose one of {', '.join(ACTIVATIONS)}")
    symmetric = activations == "s8s8"
    extra = {"ActivationSymmetric": symmetric, "WeightSymmetric": True}
    if symmetric:
        # the symmetric form is TensorRT's, whose dequantize layer takes int8 (FP8/INT4) only: ONNX Runtime's
        # default int32 bias DequantizeLinear failed every engine build. Biases stay float; ONNX Runtime still
        # fuses QLinearConv / QGemm (same graph speed and outputs on a conv net, checked)
        extra["QuantizeBias"] = False
    if method == "percentile":
        extra["CalibPercentile"] = float(percentile)
    cm = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
          "percentile": CalibrationMethod.Percentile}[method]
    import logging

    dst = Path(dst)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs a pre-processing hint on the root logger every call
    try:
        quantize_static(str(src), str(dst), _reader(calib, progress), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(op_types), per_channel=per_channel,
                        activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                        weight_type=QuantType.QInt8,
                        nodes_to_exclude=list(exclude), calibrate_method=cm, extra_options=extra)
    except ExportError:
        raise
    except Exception as e:
        msg = first_line(e)
        raise ExportError(f"{Path(src).name}: INT8 quantization failed ({msg})") from None
    finally:
        root.setLevel(level)
    return {"format": "qdq", "method": method, "op_types": list(op_types), "excluded": list(exclude),
            "per_channel": per_channel, "symmetric": symmetric, "activations": activations,
            "calibration": {"source": calib.source, "samples": len(calib)}}


def convert_fp16(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                 keep_fp32: Sequence[str] = FP16_KEEP) -> dict[str, Any]:
    """Write an fp16 copy of ``src`` whose inputs and outputs stay fp32 (callers feed the same arrays)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, op_block_list=list(keep_fp32))
        onnx.save(model, str(dst))
    except Exception as e:
        msg = first_line(e)
        raise ExportError(f"{Path(src).name}: FP16 conversion failed ({msg})") from None
    return {"format": "fp16", "io": "float32", "kept_fp32_ops": list(keep_fp32)}
