"""The real-time loop around a bundle (DESIGN.md section 6).

``Pipeline`` (threads: sources -> slots with a drop policy -> preprocess -> infer -> postprocess ->
sinks), ``run`` (the loop from specs and paths, as ``edge run`` uses it), sources in
``edge.stream.sources``, sinks in ``edge.stream.sinks``, tasks in ``edge.stream.task``. Heavy modules
load on first use so ``import edge.stream`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Frame", "Pipeline", "run"]


def __getattr__(name: str) -> Any:
    if name == "Pipeline":
        from edge.stream.pipeline import Pipeline

        return Pipeline
    if name == "run":
        from edge.stream.api import run

        return run
    if name == "Frame":
        from edge.data.frame import Frame

        return Frame
    if name in _SUBMODULES:  # edge.stream.task.RuntimeTask, as the README spells it, without importing each first
        import importlib

        return importlib.import_module(f"edge.stream.{name}")
    raise AttributeError(f"module 'edge.stream' has no attribute {name!r}")


_SUBMODULES = ("task", "sinks", "sources", "pipeline", "api", "overlay", "stats", "commands", "slot")
