"""torch -> ONNX with the dynamo exporter, then onnxslim and the full ONNX checker.

Facts this module is written around (torch 2.13): the dynamo exporter specializes a dim that has
value 1 in the example, so a dynamic batch is exported from an example with batch >= 2; weights go to
a side ``.onnx.data`` file unless ``external_data=False``, so small models are written as one file
and large ones (> ~1.8 GB) keep the side file, which the bundle then lists and hashes too.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ExportError, first_line
from edge.spec import IOSpec, TensorSpec

_EXTERNAL_BYTES = 1_800_000_000

#: torchlib registries built by torch.onnx.export, per (class, opset, operators torch knows): see
#: ``_torchlib_registry_reused``
_REGISTRIES: dict[Any, Any] = {}
_PATCH_LOCK = threading.RLock()


def _quiet() -> contextlib.AbstractContextManager[None]:
    """The exporter prints progress and warnings to stdout; keep the CLI output ours. stderr too: a failed trace
    prints the whole traced graph there (torch.export's ``_trace``: 36 lines for a two-op module) before the
    exception whose cause our one line says. Its loggers too: a failed trace logs pages of guard internals at
    ERROR, and its cause reaches our one line. Shared between threads (:mod:`edge.quiet_streams`)."""
    from edge.quiet_streams import silenced

    names = ("torch.onnx", "torch.export", "onnxscript", "torch._dynamo", "torch._guards",
             "torch.fx.experimental.symbolic_shapes")
    return silenced(("stdout", "stderr"), warnings_off=True, loggers=dict.fromkeys(names, logging.CRITICAL))


@contextlib.contextmanager
def _torchlib_registry_reused() -> Iterator[None]:
    """Inside: torch.onnx.export takes a copy of the torchlib registry it built before for the same opset and
    the same set of operators known to torch.

    Why: every call builds its registry of ATen -> ONNX functions from torchlib afresh (importing and
    wrapping ~500 functions: 1.1-1.3 s a call on a 2-core Zen 1, after 1.8 s for the first), the same
    each time, and an export writes several graphs and the INT8 forms re-export some. The registry lists
    only the operators torch knows when it is built (torchvision's or PT2E's appear when those are
    imported), so the number of operators torch knows is part of the key. Each export gets its own copy
    (the function lists copied), so a custom translation table registered into one cannot reach the next.
    One export at a time patches torch (a lock; another thread's export waits). Private torch API: where
    it is not what this was written for (another torch), torch builds its registry as before.
    """
    import torch

    try:
        from torch.onnx._internal.exporter import _registration

        cls = _registration.ONNXRegistry
        build = cls.__dict__["from_torchlib"]
        # as in torch 2.5-2.13: a classmethod, and the operator list the key counts
        ok = isinstance(build, classmethod) and hasattr(torch._C, "_dispatch_get_all_op_names")
    except (ImportError, AttributeError, KeyError):
        ok = False
    if not ok:
        yield
        return

    def reused(klass: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) + len(kwargs) > 1 or set(kwargs) - {"opset_version"}:  # not the call this was written for
            return build.__func__(klass, *args, **kwargs)
        opset = args[0] if args else kwargs.get("opset_version")
        key = (klass, opset, len(torch._C._dispatch_get_all_op_names()))
        base = _REGISTRIES.get(key)
        if base is None:
            base = build.__func__(klass, *args, **kwargs)
            if not isinstance(getattr(base, "functions", None), dict):  # not the registry this was written for
                return base
            _REGISTRIES[key] = base
        reg = copy.copy(base)
        reg.functions = {k: list(v) for k, v in base.functions.items()}
        return reg

    with _PATCH_LOCK:
        cls.from_torchlib = classmethod(reused)
        try:
            yield
        finally:
            cls.from_torchlib = build


def _dynamic_shapes(io: IOSpec, module: Any = None) -> tuple[Any, ...] | None:
    """torch.export's ``dynamic_shapes`` for the inputs in ``io`` order: one dict per input, except that
    the inputs a ``forward(a, *rest)`` takes through ``*rest`` are one tuple of them (torch.export
    matches the spec to the signature, and refused the flat form for such a forward)."""
    import inspect

    import torch

    dims: dict[str, Any] = {}
    shapes = []
    any_dyn = False
    for t in io.inputs:
        d = {}
        for axis, name in t.dynamic_dims.items():
            dims.setdefault(name, torch.export.Dim(name, min=1, max=4096))
            d[axis] = dims[name]
            any_dyn = True
        shapes.append(d)
    if not any_dyn:
        return None
    try:
        params = list(inspect.signature(module.forward).parameters.values()) if module is not None else []
    except (TypeError, ValueError):
        params = []
    star = next((i for i, p in enumerate(params) if p.kind == inspect.Parameter.VAR_POSITIONAL), None)
    if star is not None and star <= len(shapes):
        return (*shapes[:star], tuple(shapes[star:]))
    return tuple(shapes)


def _outputs_by_key(prog: Any, io: IOSpec) -> None:
    """A module that returns a dict keyed by the IOSpec's output names has its graph's outputs named by those keys
    and put in the IOSpec's order. Why: the exporter names outputs by position over the dict's own order, while the
    torch reference (and ``edge.export``) takes them by key; a card graph returning ``{"second": .., "first": ..}``
    failed parity as "ONNX Runtime differs from PyTorch", pointing at ``--rtol`` (a review). Anything else (a
    tensor, a tuple, a nested dict, other keys) is left as exported."""
    spec = getattr(getattr(prog, "exported_program", None), "call_spec", None)
    spec = getattr(spec, "out_spec", None)
    if spec is None or spec.type is not dict:
        return
    keys = [str(k) for k in spec.context]
    outs = list(prog.model.graph.outputs)
    if (keys == list(io.output_names) or sorted(keys) != sorted(io.output_names) or len(outs) != len(keys)
            or spec.num_leaves != len(keys)):
        return
    for i, v in enumerate(outs):  # two steps: a permutation of names would collide half-way
        v.name = f"__edge_output_{i}"
    for v, k in zip(outs, keys, strict=True):
        v.name = k
    by_name = {v.name: v for v in outs}
    prog.model.graph.outputs[:] = [by_name[n] for n in io.output_names]


def export_onnx(module: Any, example: Mapping[str, np.ndarray], io: IOSpec, path: str | os.PathLike[str], *,
                opset: int = 20, slim: bool = True) -> tuple[list[str], IOSpec]:
    """Export ``module`` (called with the inputs in ``io`` order) to ``path``; returns the written files and
    the graph's IOSpec (``io``, with the output dims the graph leaves open named: see ``_stamp_shapes``).

    The exported graph's input/output names and ranks are checked against ``io``; onnx.checker runs
    with full shape inference.
    """
    import onnx
    import torch

    path = Path(path)
    args = tuple(torch.from_numpy(np.ascontiguousarray(example[n])) for n in io.input_names)
    nbytes = sum(p.numel() * p.element_size() for p in module.parameters()) if hasattr(module, "parameters") else 0
    external = nbytes > _EXTERNAL_BYTES
    try:
        with _quiet(), torch.no_grad(), _torchlib_registry_reused():
            prog = torch.onnx.export(
                module, args, dynamo=True, input_names=io.input_names, output_names=io.output_names,
                dynamic_shapes=_dynamic_shapes(io, module), opset_version=opset, optimize=True, verbose=False,
            )
        _outputs_by_key(prog, io)
        try:
            prog.save(str(path), external_data=external)
        except OSError as e:  # a full disk, a file-size limit: the output's, not the model's ("export failed")
            raise ExportError(f"{Path(path).parent}: cannot write the ONNX graph {Path(path).name} "
                              f"({e.strerror or 'short write: disk full?'})") from None
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"torch.onnx.export failed for {type(module).__name__}: {export_failure(e)}") from None
    if slim:
        _slim(path, external)
    model = onnx.load(str(path), load_external_data=False)
    got_in = [i.name for i in model.graph.input]
    got_out = [o.name for o in model.graph.output]
    if got_in != io.input_names or got_out != io.output_names:
        unused = [n for n in io.input_names if n not in got_in]
        if not got_out:
            why = "forward returns no tensor, and a graph needs at least one output"
        elif unused and got_out == io.output_names and [n for n in io.input_names if n in got_in] == got_in:
            why = (f"input(s) {', '.join(unused)} are not used by forward (no output depends on them, and the exporter "
                   "drops such inputs); leave them out of the example inputs")
        else:
            why = f"exported names {got_in} -> {got_out} differ from the spec {io.input_names} -> {io.output_names}"
        raise ExportError(f"{type(module).__name__}: {why}")
    io = _no_negative_indices(module, args, _stamp_shapes(path, io, external))
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:
        raise ExportError(f"{path.name}: onnx.checker rejected the exported graph: {first_line(e, None)}") from None
    files = [path.name]
    data = path.with_name(path.name + ".data")
    if data.exists():
        files.append(data.name)
    return files, io


def _no_negative_indices(module: Any, args: tuple[Any, ...], io: IOSpec) -> IOSpec:
    """``io`` with the index range of each integer input that PyTorch refuses a negative value for narrowed to
    ``[0, n)``. Why: the graph's Gather takes ``-n <= i < n`` (ONNX's rule, and a Python index's), but an
    ``nn.Embedding`` raises on -1 where ONNX Runtime and OpenVINO returned the last row; the module decides,
    probed on the example with one value set to -1."""
    import torch

    for pos, t in enumerate(io.inputs):
        if t.index_range is None or t.index_range[0] >= 0 or not args[pos].numel():
            continue
        probe = list(args)
        probe[pos] = args[pos].clone()
        probe[pos].view(-1)[0] = -1
        try:
            with torch.no_grad():
                module(*probe)
        except Exception:
            io = replace(io, inputs=tuple(replace(x, index_range=(0, x.index_range[1])) if x.name == t.name else x
                                          for x in io.inputs))
    return io


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: torch.onnx's three steps, as its messages number them
_STEPS = {"1": "torch.export could not trace the model", "2": "decomposing the traced graph failed",
          "3": "an operator has no ONNX translation"}


def export_failure(e: BaseException) -> str:
    """What went wrong, in one line: torch.onnx's message is a generic "Failed to export ... This is step
    1/3 ... Next steps:" with colour codes, and the cause sits in its "## Exception summary" (the first
    line of the exception it wraps otherwise)."""
    text = _ANSI.sub("", str(e))
    step = re.search(r"This is step (\d)/3", text)
    summary = re.search(r"## Exception summary\s*<class '([^']+)'>: ([^\n]*)", text)
    if summary:
        cause = f"{summary.group(1).rsplit('.', 1)[-1]}: {summary.group(2)}"
    else:
        inner = e.__cause__ or e.__context__
        cause = _ANSI.sub("", first_line(inner if inner is not None else e, 300))
    cause = cause if len(cause) <= 300 else cause[:297] + "..."
    # the user's line that failed (a trace printed it on stderr, which the export keeps quiet): the last frame
    # the message names outside torch itself
    frames = [f for f in re.findall(r'File "([^"]+)", line (\d+), in (\w+)', text)
              if f"{os.sep}torch{os.sep}" not in f[0] and f"{os.sep}site-packages{os.sep}" not in f[0]]
    at = f" at {frames[-1][0]}:{frames[-1][1]} in {frames[-1][2]}" if frames else ""
    return f"{_STEPS[step.group(1)]}{at} ({cause})" if step else cause + at


def _slim(path: Path, external: bool) -> None:
    """onnxslim: constant folding, dead-node removal, shape cleanup. Skipped for external-data models."""
    if external:
        return
    try:
        import onnxslim
    except ImportError:
        return
    import onnx

    with _quiet():
        slimmed = onnxslim.slim(onnx.load(str(path)))
    onnx.save(slimmed, str(path))


def _stamp_shapes(path: Path, io: IOSpec, external: bool) -> IOSpec:
    """Write the IOSpec onto the graph I/O (dim names such as 'batch', not 's0') and drop the
    exporter's intermediate shape hints, which the checker's full inference then recomputes; returns
    the IOSpec the graph now has, with the index ranges of its integer inputs (:mod:`edge.export.index_ranges`).

    Output dims come from running the module eagerly, so they overrule the exporter's annotation
    (torch 2.13's ``torch.onnx.ops.attention`` annotates Dv as D when they differ); a fixed input
    dim that disagrees with the spec is still an error. An output dim the exporter names with a symbol
    of its own, derived from no input dim, depends on the input's values (``nonzero``, a mask's
    selection): it is named ``<output>_dim<axis>``, not fixed at the example's length (every other
    input's result then disagreed with the graph and the manifest; ONNX Runtime warned on each call)
    nor called "batch" under ``dynamic_batch`` (which would have let Triton batch on it).
    """
    import onnx

    from edge.onnx_file import name_nodes

    model = onnx.load(str(path), load_external_data=False)
    del model.graph.value_info[:]
    name_nodes(model)  # the INT8 tools pick nodes by name
    specs = {t.name: t for t in io.inputs + io.outputs}
    outputs = {o.name for o in model.graph.output}
    opened: dict[str, dict[int, str]] = {}
    # the exporter's names for the inputs' dynamic dims ("batch", "s0"): an output dim it names with none
    # of them ("u0") has a length the input's values decide, whatever the eager run's spec said
    symbols = {d.dim_param for vi in model.graph.input for d in vi.type.tensor_type.shape.dim if d.dim_param}

    def data_dependent(d: Any) -> bool:
        return bool(d.dim_param) and not any(re.search(rf"\b{re.escape(s)}\b", d.dim_param) for s in symbols)

    for vi in list(model.graph.input) + list(model.graph.output):
        t = specs[vi.name]
        dims = vi.type.tensor_type.shape.dim
        if len(dims) != t.rank:
            raise ExportError(f"exported '{vi.name}' has rank {len(dims)}, spec says {t.rank}")
        for axis, (d, want) in enumerate(zip(dims, t.shape)):
            if vi.name in outputs and data_dependent(d):
                d.dim_param = opened.setdefault(vi.name, {})[axis] = f"{vi.name}_dim{axis}"
            elif isinstance(want, str):
                if d.HasField("dim_value"):
                    # the exporter specialized a dim the spec says is dynamic: the graph would only
                    # run at that size, so refuse instead of relabelling it
                    if vi.name in outputs and axis == 0 and want == "batch":
                        # the inputs are checked first and kept the batch: this output's dim 0 does not follow it
                        # (it was blamed on "a reshape or view with a literal size", a cause that was not it)
                        raise ExportError(f"exported output '{vi.name}' fixed dynamic dim 'batch' to {d.dim_value} "
                                          "while the inputs' batch stays dynamic: its dim 0 does not follow the batch "
                                          "(the module fixes it: a reshape or view with a literal size, a transpose, a "
                                          "parameter or a reduction over the batch); return it batch first, or export "
                                          "without dynamic_batch")
                    why = ("export with an example size >= 2 for dynamic dims" if d.dim_value < 2 else
                           # the example was already >= 2: the module itself pins the size (the old advice led
                           # nowhere)
                           "the module fixes it: a reshape or view with a literal size, or a Python loop or "
                           "int() over that dim")
                    raise ExportError(f"exported '{vi.name}' fixed dynamic dim '{want}' to {d.dim_value} ({why})")
                d.dim_param = want
            else:
                if d.HasField("dim_value") and d.dim_value != want and vi.name not in outputs:
                    raise ExportError(f"exported '{vi.name}' has dim {d.dim_value}, spec says {want}")
                d.dim_value = want
    onnx.save(model, str(path))
    from edge.export.index_ranges import with_index_ranges

    io = with_index_ranges(model, io)  # the integer inputs that index a table of the graph: from the graph at hand
    if not opened:
        return io

    def open_dims(t: TensorSpec) -> TensorSpec:
        named = opened.get(t.name, {})
        return replace(t, shape=tuple(named.get(i, d) for i, d in enumerate(t.shape)))

    return replace(io, outputs=tuple(open_dims(t) for t in io.outputs))
