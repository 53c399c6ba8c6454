"""Which attention form to export when the user says ``--attention auto``.

Rules (DESIGN.md section 4): TensorRT older than 10.14 cannot parse opset-23 ``Attention`` and gets
``decomposed``; an ONNX Runtime older than 1.23 has no ``Attention`` kernel and gets ``decomposed``;
otherwise the portable ``plugin`` node, which every backend lowers (ORT to ``Attention``) and which
keeps one file for all targets. The choice and its reason are recorded in the manifest.
"""

from __future__ import annotations

from importlib import metadata

from edge.errors import ExportError

MODES = ("auto", "plugin", "onnx", "decomposed")


def _version(dist: str) -> tuple[int, ...] | None:
    try:
        v = metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
    parts = []
    for p in v.split(".")[:3]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def resolve_attention(mode: str, targets: tuple[str, ...] = ("onnxruntime",)) -> tuple[str, str]:
    """(mode, reason) for a requested mode; ``auto`` is decided from the targets' installed versions."""
    if mode not in MODES:
        raise ExportError(f"--attention {mode!r}: choose one of {', '.join(MODES)}")
    if mode != "auto":
        return mode, "requested"
    if "tensorrt" in targets:
        trt = _version("tensorrt")
        if trt is None or trt < (10, 14):
            return "decomposed", f"TensorRT {'.'.join(map(str, trt)) if trt else '(not installed)'} < 10.14 " \
                                 "cannot parse opset-23 Attention"
    if "onnxruntime" in targets:
        ort = _version("onnxruntime")
        if ort is not None and ort < (1, 23):
            return "decomposed", f"onnxruntime {'.'.join(map(str, ort))} < 1.23 has no Attention kernel"
    return "plugin", "portable EdgeAttention node; lowered per backend (ORT: opset-23 Attention)"
