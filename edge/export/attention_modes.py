"""Which attention form to export when the user says ``--attention auto``.

Each target backend says which form it needs here (:attr:`edge.runtimes.registry.Backend.attention`:
ONNX Runtime < 1.23 and TensorRT < 10.14 need ``decomposed``); if any target needs ``decomposed`` the
bundle gets it, else the portable ``plugin`` node, which every backend lowers and which keeps one file
for all targets. The choice and its reason are recorded in the manifest (DESIGN.md section 4).
"""

from __future__ import annotations

from importlib import metadata

from edge.errors import ExportError

MODES = ("auto", "plugin", "onnx", "decomposed")


def check_mode(mode: str) -> None:
    """One line for an attention mode that is not one of :data:`MODES` (checked before any work)."""
    if mode not in MODES:
        raise ExportError(f"--attention {mode!r}: choose one of {', '.join(MODES)}")


def dist_version(dist: str) -> tuple[int, ...] | None:
    """(major, minor, patch) of an installed distribution, None when it is not installed."""
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
    """(mode, reason) for a requested mode; ``auto`` is decided by the target backends."""
    from edge.runtimes.registry import get_backend

    check_mode(mode)
    if mode != "auto":
        return mode, "requested"
    for t in targets:
        form, why = get_backend(t).attention()
        if form == "decomposed":
            return "decomposed", why
    return "plugin", "portable EdgeAttention node; lowered per backend (ORT: opset-23 Attention)"
