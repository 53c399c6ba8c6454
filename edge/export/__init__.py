"""torch -> ONNX export, graph passes and parity validation against PyTorch."""

from edge.export.api import export, export_card

__all__ = ["export", "export_card"]
