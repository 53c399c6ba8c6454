"""Backends are registered, not switched on strings scattered through the code.

Each backend module defines ``BACKEND = Backend(...)`` with ``is_available()`` (import + device
check, returning the reason when not) and ``load(bundle, artifact, **options)``. Modules are imported
lazily by name, and importing one must not import its heavy library: only calling it does.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.errors import BackendUnavailable, EdgeError

# name -> module defining BACKEND
_MODULES = {
    "torch": "edge.runtimes.torch",
    "onnxruntime": "edge.runtimes.onnxruntime",
    "openvino": "edge.runtimes.openvino",
    "tensorrt": "edge.runtimes.tensorrt",
}


@dataclass(frozen=True)
class Backend:
    name: str
    description: str
    formats: tuple[str, ...]  # artifact formats it can load ("onnx", "checkpoint", ...)
    is_available: Callable[[], tuple[bool, str]]  # (ok, version or reason)
    load: Callable[..., Any]  # (bundle, artifact: dict, **options) -> Runtime


def register_module(name: str, module: str) -> None:
    """Register a backend implemented outside this package (plugins, user code)."""
    _MODULES[name] = module


def get_backend(name: str) -> Backend:
    """The registered backend (its module is imported now; the heavy library only on use)."""
    if name not in _MODULES:
        raise EdgeError(f"unknown backend '{name}' (known: {', '.join(sorted(_MODULES))})")
    return importlib.import_module(_MODULES[name]).BACKEND


def list_backends() -> list[str]:
    """Names of all registered backends, available here or not."""
    return sorted(_MODULES)


def require(name: str) -> Backend:
    """The backend, or BackendUnavailable with the reason it cannot run here."""
    b = get_backend(name)
    ok, why = b.is_available()
    if not ok:
        raise BackendUnavailable(f"backend '{name}' is not available here: {why}")
    return b
