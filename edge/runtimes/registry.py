"""Backends are registered, not switched on strings scattered through the code.

Each backend module defines ``BACKEND = Backend(...)``. What the rest of the toolchain asks of a backend
goes through that record (the attention form and lowerings at export, engines for ``edge build`` and
``--to``, runtimes for the gate, bench and the loop); only steps that exist for one backend alone name
it (OpenVINO's IR conversion and NNCF quantization at export, its bf16 hint in bench):

- ``is_available()``: import + device check, returning the version or the reason when not;
- ``load(bundle, artifact, **options)``: a bundle's artifact as a Runtime (what ``edge.load`` calls);
- ``open(path, io, **options)``: a model file outside a bundle as a Runtime (parity checks and the
  INT8 gate run files still being written);
- ``attention()``: the attention export form this backend needs here (``plugin`` unless its installed
  version cannot run it) and why, so ``--attention auto`` is decided from the targets;
- ``lower(src, dst)``: a lowered copy of a portable graph this backend runs instead (ONNX Runtime:
  EdgeAttention -> opset-23 Attention), written at export and cached in the bundle;
- ``build(bundle, **options)``: engines made on the target from the bundle's ONNX (TensorRT);
- ``image_front``: whether ``load``/``open`` take ``front=ImageInput`` (preprocessing inside the
  engine, :mod:`edge.runtimes.front`): the runtime then takes uint8 camera frames for that input;
  ``image_front_auto``: whether ``--preprocess auto`` uses it (it pays on this backend: measured).

Modules are imported lazily by name, and importing one must not import its heavy library: only calling
it does.
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


def _plugin_ok() -> tuple[str, str]:
    return "plugin", "portable EdgeAttention node, lowered by the backend"


@dataclass(frozen=True)
class Backend:
    name: str
    description: str
    formats: tuple[str, ...]  # artifact formats it can load ("onnx", "checkpoint", ...), preferred first
    is_available: Callable[[], tuple[bool, str]]  # (ok, version or reason)
    load: Callable[..., Any]  # (bundle, artifact: dict, **options) -> Runtime
    open: Callable[..., Any] | None = None  # (path, io, **options) -> Runtime, for files outside a bundle
    attention: Callable[[], tuple[str, str]] = _plugin_ok  # (export form it needs here, reason)
    lower: Callable[[Any, Any], None] | None = None  # (src onnx path, dst path): write the lowered graph
    build: Callable[..., Any] | None = None  # (bundle, **options) -> (record, reused): engines on the target
    builds: str = ""  # what build makes, for messages ("TensorRT engines")
    tag: str = ""  # short name in file names of its lowered graphs ("ort": model.ort.onnx)
    image_front: bool = False  # load/open accept front=ImageInput (camera bytes in, preprocessing in the engine)
    image_front_auto: bool = False  # ... and it pays, so ``--preprocess auto`` takes it


def register_module(name: str, module: str) -> None:
    """Register a backend implemented outside this package (plugins, user code)."""
    _MODULES[name] = module


def get_backend(name: str) -> Backend:
    """The registered backend (its module is imported now; the heavy library only on use)."""
    if not isinstance(name, str) or name not in _MODULES:  # a list was "unhashable type: 'list'"
        raise EdgeError(f"unknown backend {name!r} (known: {', '.join(sorted(_MODULES))})")
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
