"""Runtimes: the Runtime protocol, the backend registry and the ways to get a Runtime.

Every Runtime in the toolchain is made here, through the registry: :func:`load` (a bundle's
artifact), :func:`open_file` (a model file outside a bundle: parity checks and the INT8 gate run
files still being written) and :func:`from_module` (a torch module: the reference).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from edge.runtimes.base import BaseRuntime, Runtime
from edge.runtimes.registry import Backend, get_backend, list_backends, register_module, require

__all__ = ["Backend", "BaseRuntime", "Runtime", "from_module", "get_backend", "list_backends", "load",
           "open_file", "register_module", "require"]


def load(bundle: str | os.PathLike[str] | Any, backend: str = "onnxruntime", *, graph: str | None = None,
         precision: str | None = None, artifact: str | None = None, **options: Any) -> Runtime:
    """Open a bundle's artifact on a backend: ``edge.load("out/my_model", backend="onnxruntime")``.

    The bundle's files are verified against the manifest first; the artifact is chosen by the
    backend's formats, the graph (default: the bundle's first graph) and precision, or by ``artifact``
    name (e.g. "openvino-int8-nncf-full"). ``precision`` None is fp32 where the bundle has it for this backend
    and graph, as :func:`edge.load_program` takes it (it was the backend's preferred form, an INT8 one, so the
    outputs were quantized without a word), else the backend's own form (a TensorRT bundle built fp16 only).
    """
    from edge.bundle import Bundle
    from edge.errors import BundleError

    b = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    if graph is None and artifact is not None:  # a named artifact of one graph: that graph
        with contextlib.suppress(BundleError):  # no such name: backend_artifact says so below
            graph = b.artifact(name=artifact).get("graph")
    graph = graph or b.default_graph
    be = require(backend)
    art = None
    if precision is None and artifact is None:
        with contextlib.suppress(BundleError):
            art = backend_artifact(b, backend, graph, "fp32")
    if art is None:
        art = backend_artifact(b, backend, graph, precision, artifact)
    return _opened(be, lambda: be.load(b, art, graph=graph, **_checked(options)))


#: the most threads a runtime is given (as ``--threads`` takes)
MAX_THREADS = 1024


def _checked(options: dict[str, Any]) -> dict[str, Any]:
    """The options every backend takes, checked here once: ``threads`` an integer 0..MAX_THREADS (0 or None: its
    default; None reached ONNX Runtime as int(None), and 10**20 each backend's own overflow)."""
    from edge.errors import EdgeError

    t = options.get("threads")
    if t is None and "threads" in options:
        return {**options, "threads": 0}
    if t is not None and (isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= MAX_THREADS):
        raise EdgeError(f"threads: an integer from 0 (the backend's default) to {MAX_THREADS}, got {t!r}")
    return options


def _opened(be: Any, make: Any) -> Runtime:
    """``make()``, with an option backend ``be`` does not take said in one line (a TypeError from its class)."""
    from edge.errors import EdgeError

    opener = be.open
    # only the runtime class refusing a keyword (its message names it); any other TypeError is a bug, as is
    prefix = f"{opener.__name__}.__init__() got an unexpected keyword argument" if isinstance(opener, type) else None
    try:
        return make()
    except TypeError as e:
        msg = str(e)
        if prefix is None or not msg.startswith(prefix):
            raise
        raise EdgeError(f"backend '{be.name}' takes no option {msg[len(prefix):].strip()}") from None


def backend_artifact(bundle: Any, backend: str, graph: str, precision: str | None, name: str | None = None
                     ) -> dict[str, Any]:
    """The artifact ``backend`` loads for ``graph`` at ``precision`` (or the one called ``name``): the first of its
    formats, in its order of preference, that the bundle has (:meth:`edge.bundle.Bundle.artifact` with ``prefer``:
    its own form first, never another backend's). The torch reference (a checkpoint) is fp32 only: a request for
    int8 must not quietly get fp32. The one rule for :func:`load` and a program's artifacts; BundleError naming
    what is missing."""
    from edge.errors import BundleError

    be = get_backend(backend)
    formats = be.formats
    if not any(a.get("format") in formats for a in bundle.artifacts):
        why = (f": build them on this device with `edge build {bundle.path} --backend {backend}`" if be.build else
               " (edge.export of your own module keeps ONNX only: run the module itself as the reference)"
               if "checkpoint" in formats else "")
        raise BundleError(f"{bundle.path}: the '{backend}' backend loads {', '.join(formats)} artifacts and this "
                          f"bundle has none{why}")
    last: BundleError | None = None
    for fmt in formats:
        reference = fmt in ("checkpoint", "torch_export")
        if reference and precision not in (None, "fp32") and name is None:
            continue
        try:
            return bundle.artifact(fmt=fmt, graph=graph, precision=None if reference else precision, name=name,
                                   prefer=backend)
        except BundleError as e:
            last = e
    raise BundleError(f"{bundle.path}: nothing the '{backend}' backend can load for graph '{graph}'"
                      f"{f' at {precision}' if precision else ''}" + (f" ({last})" if last else ""))


def open_file(backend: str, path: str | os.PathLike[str], io: Any, **options: Any) -> Runtime:
    """A model file outside a bundle on ``backend`` (ONNX for onnxruntime, ONNX or IR for openvino)."""
    from edge.errors import BackendUnavailable

    be = require(backend)
    if be.open is None:
        raise BackendUnavailable(f"backend '{backend}' runs only a bundle's artifacts ({', '.join(be.formats)})")
    return _opened(be, lambda: be.open(str(path), io, **_checked(options)))


def from_module(module: Any, io: Any, **options: Any) -> Runtime:
    """A torch ``nn.Module`` behind the Runtime protocol (the reference every parity check uses)."""
    return require("torch").open(module, io, **options)
