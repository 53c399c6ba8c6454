"""Runtimes: the Runtime protocol, the backend registry and :func:`load`."""

from __future__ import annotations

import os
from typing import Any

from edge.runtimes.base import BaseRuntime, Runtime
from edge.runtimes.registry import Backend, get_backend, list_backends, register_module, require

__all__ = ["Backend", "BaseRuntime", "Runtime", "get_backend", "list_backends", "load", "register_module",
           "require"]


def load(bundle: str | os.PathLike[str] | Any, backend: str = "onnxruntime", *, graph: str = "full",
         precision: str | None = None, artifact: str | None = None, **options: Any) -> Runtime:
    """Open a bundle's artifact on a backend: ``edge.load("out/lane", backend="onnxruntime")``.

    The bundle's files are verified against the manifest first; the artifact is chosen by the
    backend's formats, the graph ("full", or "encoder"/"temporal" for streaming) and precision, or
    by ``artifact`` name (e.g. "openvino-int8-nncf").
    """
    from edge.bundle import Bundle
    from edge.errors import BundleError

    b = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    be = require(backend)
    last: BundleError | None = None
    for fmt in be.formats:
        try:
            art = b.artifact(fmt=fmt, graph=graph, precision=precision if fmt != "checkpoint" else None,
                             name=artifact)
        except BundleError as e:
            last = e
            continue
        return be.load(b, art, graph=graph, **options)
    raise BundleError(f"{b.path}: nothing the '{backend}' backend can load for graph '{graph}'"
                      f" ({last})")
