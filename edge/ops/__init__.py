"""Our attention ops: one op used by every model, lowered per backend at export.

``attention`` is importable without torch (it imports torch lazily on first call); the numpy
reference is the ground truth that every lowering and kernel is tested against.
"""

from edge.ops.attention import attention, attention_numpy, ensure_registered, export_mode, get_export_mode
from edge.ops.axial import axial_attention, axial_attention_numpy
from edge.ops.heads import projected_heads

__all__ = ["attention", "attention_numpy", "axial_attention", "axial_attention_numpy", "ensure_registered",
           "export_mode", "get_export_mode", "projected_heads"]
