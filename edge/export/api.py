"""``edge.export``: any ``nn.Module`` or a model family's card -> a validated bundle.

Flow: build the IOSpec of each graph -> export it to ONNX (dynamo exporter, attention lowered as
asked) -> onnxslim + onnx.checker -> the target backends' lowerings (ONNX Runtime: opset-23
Attention) -> parity against PyTorch on fresh inputs (fails above tolerance) -> reduced precisions
and per-backend conversions -> the ``programs`` section (which artifacts each program runs at each
precision on each backend) -> everything, hashed, into a bundle that appears only when complete.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import Bundle, BundleWriter
from edge.errors import EdgeError, ExportError, ModelError, first_line
from edge.names import name_list
from edge.spec import IOSpec, TensorSpec

#: backends a bundle can be exported for (``--to``); "onnx" means the ONNX files, run by ONNX Runtime
TARGETS = ("onnx", "openvino", "tensorrt")


@dataclass
class GraphJob:
    """One graph to export: its module, spec, example feeds, extra parity feed sets and file stem."""

    name: str
    module: Any
    io: IOSpec
    example: dict[str, np.ndarray]
    checks: list[tuple[str, dict[str, np.ndarray]]] = field(default_factory=list)
    stem: str = ""

    @property
    def file(self) -> str:
        return f"{self.stem or self.name}.onnx"


def tool_versions() -> dict[str, str]:
    """Versions of the tools that made a bundle (recorded in its manifest)."""
    out = {"python": platform.python_version()}
    for dist in ("edge-deploy", "torch", "onnx", "onnxruntime", "onnxscript", "onnxslim", "numpy", "openvino",
                 "nncf"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def artifact_name(fmt: str, precision: str, graph: str, flavor: str = "") -> str:
    """One naming rule for every artifact: ``onnx-fp32-encoder``, ``openvino-int8-nncf-full``."""
    return f"{fmt}-{precision}{'-' + flavor if flavor else ''}-{graph}"


#: opsets the exporter writes (torch's dynamo exporter starts at 18; the standard Attention op at 23)
MIN_OPSET = 18
#: the opset written when none is asked for; attention mode "onnx" writes ATTENTION_OPSET
DEFAULT_OPSET = 20
ATTENTION_OPSET = 23


def check_args(out: str | os.PathLike[str], opset: int | None, attention: str, calib_method: str | None = None,
               rtol: float = 1e-4) -> None:
    """The export's arguments, checked before any work: one line each, nothing written. ``opset`` None is
    the default (:data:`DEFAULT_OPSET`, or :data:`ATTENTION_OPSET` where the attention mode needs it); an
    opset asked for that the attention mode cannot be written in is refused, not silently raised."""
    import math

    from edge.bundle import check_out

    if not isinstance(out, str | os.PathLike):
        raise ExportError(f"out: the bundle's folder path, got {type(out).__name__}")
    if isinstance(rtol, bool) or not isinstance(rtol, int | float):
        raise ExportError(f"--rtol {rtol!r}: the parity tolerance must be a number")
    if not (math.isfinite(rtol) and rtol > 0):
        raise ExportError(f"--rtol {rtol}: the parity tolerance must be a finite number > 0")

    from edge.export.attention_modes import check_mode

    check_mode(attention)
    import onnx

    top = onnx.defs.onnx_opset_version()
    converts = None  # torch writes opset 18 and onnxscript's version converter takes it up: only as far as it goes
    try:
        from onnxscript.version_converter import _version_converter

        converts = int(_version_converter.SUPPORTED_MAX_ONNX_OPSET)
    except (ImportError, AttributeError, TypeError, ValueError):  # another onnxscript: the onnx package's bound
        pass
    if converts is not None and converts < top:
        top = converts
    if opset is None:
        opset = DEFAULT_OPSET
    elif attention == "onnx" and isinstance(opset, int) and not isinstance(opset, bool) and opset < ATTENTION_OPSET:
        raise ExportError(f"--opset {opset}: attention mode 'onnx' writes the standard Attention op, which exists "
                          f"from opset {ATTENTION_OPSET}; give --opset {ATTENTION_OPSET} or more, or leave it out")
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise ExportError(f"--opset {opset!r}: an integer ({MIN_OPSET} to {top})")
    if not MIN_OPSET <= opset <= top:
        by = (f"onnxscript's version converter; the onnx package {onnx.__version__} knows "
              f"{onnx.defs.onnx_opset_version()}" if top == converts else f"the onnx package {onnx.__version__}")
        raise ExportError(f"--opset {opset}: the exporter writes opsets {MIN_OPSET} to {top} ({by})"
                          + (f"; attention mode 'onnx' uses {ATTENTION_OPSET}" if attention == "onnx" else ""))
    if calib_method is not None:
        from edge.calibration.quantize import METHODS

        if calib_method not in METHODS:
            raise ExportError(f"--calib-method {calib_method!r}: choose one of {', '.join(METHODS)}")
    check_out(out)


def check_targets(targets: Sequence[str], option: str) -> None:
    """Refuse a target that is not one (``torch`` and ``onnxruntime`` are backends, not export targets; the API
    took them and ignored them, and a typo was "unknown backend" listing backends), in the CLI's words."""
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise ExportError(f"{option} {','.join(targets)!r}: supported targets: {', '.join(TARGETS)}"
                          + (f" ({unknown[0]!r} is not one)" if unknown else ""))


def _backends(targets: Sequence[str]) -> tuple[str, ...]:
    """Target names -> backend names ("onnx" is run by ONNX Runtime)."""
    return tuple(dict.fromkeys("onnxruntime" if t == "onnx" else t for t in targets))


def _write(out: str | os.PathLike[str], jobs: Sequence[GraphJob], manifest: dict[str, Any], *, attention: str,
           opset: int | None, rtol: float, torch_artifact: tuple[str, str, Any] | None,
           extra: Callable[[Any, dict[str, Any]], None] | None = None,
           targets: tuple[str, ...] = ("onnx",)) -> tuple[Bundle, dict]:
    from edge.export.attention_modes import resolve_attention
    from edge.export.onnx_export import export_onnx
    from edge.ops.attention import export_mode, masked_nodes
    from edge.parity import parity
    from edge.runtimes.registry import get_backend

    requested = attention
    backends = _backends(targets)
    attention, reason = resolve_attention(attention, backends)
    if opset is None:  # the default, what the resolved mode needs (check_args refused one asked for below it)
        opset = ATTENTION_OPSET if attention == "onnx" else DEFAULT_OPSET
    if attention == "plugin":
        from edge.ops.onnx_schema import register_schemas

        register_schemas()
    report: dict[str, Any] = {"graphs": {}, "attention": attention}
    masked_onnx: list[str] = []  # graphs exported as opset-23 Attention in a plugin bundle (masked, for TensorRT)
    manifest = {**manifest, "attention": {"requested": requested, "mode": attention, "reason": reason}}
    manifest = {**manifest, "graphs": {j.name: j.io.to_dict() for j in jobs}, "io": jobs[0].io.to_dict()}
    manifest.setdefault("tools", tool_versions())
    manifest["created_unix"] = int(time.time())
    # ONNX Runtime checks parity, so it gets its lowering whatever the targets are
    lowering = [b for b in dict.fromkeys(("onnxruntime", *backends)) if get_backend(b).lower is not None]
    try:
        with BundleWriter(out, manifest) as w:
            for job in jobs:
                fname = job.file
                t0 = time.time()
                with export_mode(attention):
                    files, io = export_onnx(job.module, job.example, job.io, w.path_for(fname), opset=opset)
                if io != job.io:  # output lengths the input's values decide: the manifest says so too
                    w.manifest["graphs"][job.name] = io.to_dict()
                    if job is jobs[0]:
                        w.manifest["io"] = io.to_dict()
                    # ... and so do the runtimes the gate opens on the files being written (an integer input's
                    # index range: a --calib set of indices past the table was ONNX Runtime's error about a
                    # temporary file instead of the input's one line)
                    job.io = io
                export_s = time.time() - t0
                import onnx

                graph = onnx.load(str(w.path_for(fname)), load_external_data=False)  # read once: node and opsets
                graph_attention = attention if _has_attention_node(graph, attention) else "none"
                if requested == "plugin" and "tensorrt" in backends and masked_nodes(graph):
                    # asked for by name, the node stays: TensorRT's plugin could never build it (the export said
                    # nothing, exit 0, and printed an `edge build` line that was then refused)
                    raise ExportError(f"--attention plugin --to tensorrt: graph '{job.name}' has masked attention "
                                      f"(EdgeAttention node '{masked_nodes(graph)[0].name}' with a mask input), which "
                                      "the TensorRT EdgeAttention plugin does not take (q, k, v only); export with "
                                      "--attention auto, onnx (TensorRT >= 10.14) or decomposed")
                if requested == "auto" and attention == "plugin" and "tensorrt" in backends and masked_nodes(graph):
                    # TensorRT's EdgeAttention plugin takes q, k, v only; auto picks the plugin for TensorRT only
                    # where it parses the standard opset-23 Attention too (>= 10.14), so this graph goes as that
                    for f in files:
                        w.path_for(f).unlink(missing_ok=True)
                    with export_mode("onnx"):
                        files, io = export_onnx(job.module, job.example, job.io, w.path_for(fname),
                                                opset=max(opset, ATTENTION_OPSET))
                    graph = onnx.load(str(w.path_for(fname)), load_external_data=False)
                    graph_attention = "onnx"
                    masked_onnx.append(job.name)
                for f in files:
                    w.register(f, "onnx" if f == fname else "onnx_external_data")
                opsets = {o.domain or "ai.onnx": o.version for o in graph.opset_import}
                run_file, lowered = fname, {}
                if attention == "plugin" and graph_attention != "onnx":  # backends with a lowering run the cached
                    # lowered graph, not the node
                    for b in lowering:
                        be = get_backend(b)
                        lname = fname.replace(".onnx", f".{be.tag or be.name}.onnx")
                        be.lower(w.path_for(fname), w.path_for(lname))
                        w.register(lname, "onnx_lowered")
                        lowered[b] = lname
                    run_file = lowered.get("onnxruntime", fname)
                sets = [("export_example", job.example), *job.checks]
                par = parity(job.module, str(w.path_for(run_file)), io, sets)
                par["tolerance_rel"] = rtol
                par["passed"] = par["max_rel"] <= rtol
                if par.get("not_finite"):
                    raise ExportError(f"{job.name}: {not_finite_cause(par['not_finite'][0])}; nothing was written")
                if not par["passed"]:
                    raise ExportError(f"{job.name}: ONNX Runtime differs from PyTorch: max rel error "
                                      f"{par['max_rel']:.2e} > tolerance {rtol:.0e} (max abs {par['max_abs']:.2e}; "
                                      "--rtol / rtol= sets the tolerance); nothing was written")
                w.add_artifact({"name": artifact_name("onnx", "fp32", job.name), "format": "onnx",
                                "file": fname, "extra_files": files[1:], "graph": job.name, "precision": "fp32",
                                "attention": graph_attention, "opset": opsets, "lowered": lowered, "parity": par})
                report["graphs"][job.name] = {"file": fname, "bytes": sum(w.path_for(f).stat().st_size for f in files),
                                              "export_s": round(export_s, 2), "max_abs": par["max_abs"],
                                              "max_rel": par["max_rel"]}
            if masked_onnx:
                w.manifest["attention"]["onnx_graphs"] = masked_onnx
                w.manifest["attention"]["reason"] += (
                    f"; graph(s) {', '.join(masked_onnx)} as the standard opset-23 Attention: their attention is "
                    "masked, which TensorRT's EdgeAttention plugin does not take")
                if not any(a.get("attention") == "plugin" for a in w.manifest["artifacts"]):
                    # no graph holds the plugin node now: the bundle is the standard op's (trtexec can build it)
                    w.manifest["attention"]["mode"] = report["attention"] = "onnx"
            if attention in ("plugin", "onnx") and all(a.get("attention") == "none" for a in w.manifest["artifacts"]):
                # no graph holds the node (the model's attention, if any, is not edge.ops.attention and traced
                # as plain MatMul/Softmax): saying "plugin" would send users and tools after a node not there
                w.manifest["attention"] = {"requested": requested, "mode": "none", "reason": (
                    f"no attention node in the graphs ({attention} asked; the model does not call "
                    "edge.ops.attention, so its attention, if any, is plain MatMul/Softmax)")}
                report["attention"] = "none"
            if extra is not None:  # more artifacts derived from the validated fp32 graphs (fp16, int8, IR)
                extra(w, report)
            if torch_artifact is not None:
                fname, fmt, writer = torch_artifact
                writer(w.path_for(fname))
                w.register(fname, fmt)
                w.add_artifact({"name": "torch", "format": fmt, "file": fname, "graphs": [j.name for j in jobs],
                                "precision": "fp32"})
            record_programs(w)
            bundle = w.commit()
    except OSError as e:  # a full disk or a quota mid-export: the writer removed its partial folder
        where = f" writing {Path(e.filename).name}" if e.filename else ""
        raise ExportError(f"{out}: the export failed{where} ({e.strerror or e}); nothing was written") from None
    return bundle, report


def _image_inputs(card: Any, cfg: dict[str, Any], graphs: set[str], sample: Sequence[Any] | None) -> dict[str, Any]:
    """``{"image_inputs": [...]}`` for the card's image inputs among the exported graphs (checked against
    each graph's IOSpec: a float [batch, 3, h, w] input of that size), or nothing when there are none.

    An input whose feed the card's ``preprocess`` does more to than :func:`edge.data.images.image_feed` (a
    flip after it, its own normalisation) is not recorded, so no engine takes camera bytes for it, and
    ``image_inputs_numpy_only`` says why: the engine's front reproduces image_feed, not the card's extra
    step (a card that mirrored its image after image_feed ran, with in-engine preprocessing, on the
    colour channels mirrored instead, and scored silently other numbers).
    """
    from edge.errors import ModelError

    specs = [s for s in card.image_inputs(cfg) if s.graph in graphs]
    for s in specs:
        t = next((t for t in card.graphs[s.graph].io(cfg).inputs if t.name == s.input), None)
        if t is None or t.rank != 4 or list(t.shape[1:]) != [3, *s.size_hw] or not t.dtype.startswith("float"):
            raise ModelError(f"family '{card.name}': image input {s.graph}.{s.input} is not a float "
                             f"[batch, 3, {s.size_hw[0]}, {s.size_hw[1]}] input of that graph")
    refused = _fronts_unlike_preprocess(card, cfg, specs, sample)
    kept = [s for s in specs if (s.graph, s.input) not in refused]
    out: dict[str, Any] = {"image_inputs": [s.to_dict() for s in kept]} if kept else {}
    if refused:
        out["image_inputs_numpy_only"] = [{"graph": g, "input": i, "why": why} for (g, i), why in refused.items()]
    return out


def _fronts_unlike_preprocess(card: Any, cfg: dict[str, Any], specs: list[Any], sample: Sequence[Any] | None
                              ) -> dict[tuple, str]:
    """(graph, input) -> why an engine's front would not reproduce the card's ``preprocess`` there, checked on
    the first frame set of ``sample`` (the synthetic one the export records feeds from): with camera bytes
    asked for, the feed must be uint8 [B, H, W, 3], and the reference normalisation of those bytes must be
    exactly what ``preprocess`` gives otherwise. A card without data (no sample) is not checked."""
    if not specs or not sample:
        return {}
    from edge.data.images import chw_feed, raw_images

    frames = sample[0]
    plain = card.preprocess(frames, cfg)
    with raw_images(specs):
        raw = card.preprocess(frames, cfg)
    out = {}
    for s in specs:
        r, n = raw.get(s.input), plain.get(s.input)
        if not (isinstance(r, np.ndarray) and r.dtype == np.uint8 and r.ndim == 4 and r.shape[-1] == 3):
            out[(s.graph, s.input)] = ("the card's preprocess does not pass this input through image_feed (it gave "
                                       f"{getattr(r, 'dtype', type(r).__name__)} {tuple(getattr(r, 'shape', ()))} "
                                       "where camera bytes were asked for)")
            continue
        ref = np.stack([chw_feed(x, s.size_hw, s.mean, s.std) for x in r])
        if not isinstance(n, np.ndarray) or n.shape != ref.shape or not np.allclose(n, ref, rtol=0, atol=1e-5):
            out[(s.graph, s.input)] = ("the card's preprocess changes this input after image_feed (an engine would "
                                       "normalise the camera bytes only)")
    return out


def record_programs(w: Any) -> None:
    """Fill ``manifest["programs"][name]["precisions"][precision][backend] = {graph: artifact}``.

    A precision is listed for a backend only when every graph of the program has an artifact the
    backend can load at that precision (:func:`edge.program.program_precisions`: the same choice
    :func:`edge.runtimes.load` makes).
    """
    from edge.bundle import Bundle
    from edge.program import program_precisions

    view = Bundle(w.tmp, w.manifest)
    for prog in w.manifest.get("programs", {}).values():
        prog["precisions"] = program_precisions(view, prog["graphs"])


def _names(names: Sequence[str] | None, what: str) -> list[str] | None:
    """``input_names`` / ``output_names`` as a list of strings: a string given for them was read letter by letter
    ("2 output names for 1 outputs" for ``output_names="yy"``)."""
    if names is None:
        return None
    if isinstance(names, str | bytes) or not isinstance(names, Iterable) or not all(isinstance(n, str) for n in names):
        raise ExportError(f"{what}: a list of names, got {names!r:.60}")
    return list(names)


def export(module: Any, example_inputs: Mapping[str, Any] | Sequence[Any], out: str | os.PathLike[str], *,
           input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
           dynamic_batch: bool = False, name: str = "custom", attention: str = "auto", opset: int | None = None,
           rtol: float | None = None, seed: int = 0) -> Bundle:
    """Export any ``nn.Module`` to a validated bundle: ``edge.export(model, {"x": x}, "out/my_model")``.

    ``example_inputs`` is a dict name -> array/tensor (or a sequence, named ``input0..``); a dict's
    entries go to ``forward``'s parameters of the same names, whatever the dict's order (keys that name
    none of them are passed in the dict's order). The outputs may be a tensor, a tuple/list or a
    (nested) dict of tensors: the graph returns them flat, named by their keys (``output{i}``
    otherwise) unless ``output_names`` says. With
    ``dynamic_batch`` dim 0 of every input and output is named "batch" (the export uses batch >= 2
    internally so the dim is not specialized). Parity is checked on the examples and on fresh random inputs of the
    same shapes (each float input drawn in its example's range), within ``rtol`` of the largest output value: 1e-4,
    or 1e-2 for a module that computes in float16 (its inputs or weights), whose own rounding is ~1e-3.
    The bundle holds ONNX (and the targets' conversions) only: no ``torch.export`` program,
    whose loading would unpickle data, so the torch backend cannot run it (the module you hold is
    the torch reference). The module is exported in eval mode and left in the mode it came in (a module exported
    mid-training trains on with its Dropout and BatchNorm as they were).
    """
    import torch

    input_names, output_names = _names(input_names, "input_names"), _names(output_names, "output_names")
    modes = [(m, m.training) for m in module.modules()] if isinstance(module, torch.nn.Module) else []
    try:
        return _export_module(module, example_inputs, out, input_names=input_names, output_names=output_names,
                              dynamic_batch=dynamic_batch, name=name, attention=attention, opset=opset, rtol=rtol,
                              seed=seed)
    finally:
        for m, training in modes:
            m.training = training


def _export_module(module: Any, example_inputs: Mapping[str, Any] | Sequence[Any], out: str | os.PathLike[str], *,
                   input_names: Sequence[str] | None, output_names: Sequence[str] | None, dynamic_batch: bool,
                   name: str, attention: str, opset: int | None, rtol: float | None, seed: int) -> Bundle:
    """:func:`export`'s work (the module in eval mode; :func:`export` restores its mode)."""
    import torch

    from edge.export.user_module import bind_inputs, bound, flatten_outputs, is_flat
    from edge.export.user_module import output_names as default_names

    check_args(out, opset, attention, rtol=1e-4 if rtol is None else rtol)
    _check_flags(seed=seed, dynamic_batch=dynamic_batch)
    if not isinstance(module, torch.nn.Module):
        raise ExportError(f"module: a torch.nn.Module, got {type(module).__name__}")
    if isinstance(example_inputs, np.ndarray | torch.Tensor):  # one tensor: the one input (as torch.onnx takes it)
        example_inputs = [example_inputs]
    if not isinstance(example_inputs, Mapping | Sequence) or isinstance(example_inputs, str) or not example_inputs:
        raise ExportError(f"example_inputs: a dict name -> array/tensor, a sequence of them or one tensor, got "
                          f"{type(example_inputs).__name__ if example_inputs is not None else 'None'}"
                          f"{' (empty)' if isinstance(example_inputs, Mapping | list | tuple) else ''}")
    keywords: list[str] | None = None
    if isinstance(example_inputs, Mapping):
        keys = [str(k) for k in example_inputs]
        names = list(input_names or keys)
        arrays = [_as_numpy(example_inputs[k]) for k in example_inputs]
    else:
        keys = None
        arrays = [_as_numpy(x) for x in example_inputs]
        names = list(input_names or [f"input{i}" for i in range(len(arrays))])
    if len(names) != len(arrays):
        raise ExportError(f"{len(names)} input names for {len(arrays)} example inputs")
    if rtol is None:
        rtol = HALF_RTOL if computes_in_half(module, arrays) else 1e-4
    module = module.eval()
    if keys is not None:  # a dict's entries reach forward's parameters of the same names, in any order
        order, by_keyword = bind_inputs(module, keys)
        if by_keyword:
            keywords = keys
        else:
            names, arrays = [names[i] for i in order], [arrays[i] for i in order]
    scalars = [n for n, a in zip(names, arrays, strict=True) if a.ndim == 0]
    if dynamic_batch:
        _no_scalars(scalars)
    if scalars:  # torch.onnx writes a 0-d input as rank 1: "exported 'x' has rank 1, spec says 0" said nothing useful
        raise ExportError(f"example input {scalars[0]!r} is 0-d (a scalar): give it as an array of shape [1]")
    if dynamic_batch:  # the export runs at batch >= 2, so a batch-1 example cannot fix the batch dim to 1
        arrays = [np.concatenate([a, a]) if a.shape[0] == 1 else a for a in arrays]
    try:
        with torch.no_grad():
            tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
            result = module(**dict(zip(keywords, tensors, strict=True))) if keywords else module(*tensors)
    except Exception as e:  # the module refuses its examples (a shape, a missing input): one line, as export_card
        raise ExportError(f"{type(module).__name__} fails on the example inputs ({', '.join(names)}: "
                          f"{', '.join(str(list(a.shape)) for a in arrays)}): {type(e).__name__}: "
                          f"{first_line(e, 200)}; nothing was written") from None
    flat = flatten_outputs(result)
    if keywords or not is_flat(result):
        module = bound(module, keywords)
    outs = [t for _, t in flat]
    onames = list(output_names or default_names(flat))
    if len(onames) != len(outs):
        raise ExportError(f"{len(onames)} output names for {len(outs)} outputs")
    clash = [n for n in onames if n in names]
    if clash:  # it was "IOSpec has duplicate tensor names"
        raise ExportError(f"output name(s) {', '.join(map(repr, clash))} also name an input, and a graph's inputs and "
                          "outputs need distinct names: pass output_names=[...] (or input_names)")

    def shape(a: Any) -> tuple[int | str, ...]:
        s = [int(d) for d in a.shape]
        return ("batch", *s[1:]) if dynamic_batch else tuple(s)

    if dynamic_batch:  # dim 0 of every output is the batch too
        _no_scalars([n for n, o in zip(onames, outs) if o.ndim == 0])

    io = IOSpec(tuple(TensorSpec(n, str(a.dtype), shape(a)) for n, a in zip(names, arrays)),
                tuple(TensorSpec(n, str(o.detach().numpy().dtype), shape(o)) for n, o in zip(onames, outs)))
    rng = np.random.default_rng(seed + 1)
    fresh = {n: (like_example(a, a.shape, rng) if a.dtype.kind == "f" else random_bools(a, rng)
                 if a.dtype == np.bool_ else a.copy()) for n, a in zip(names, arrays)}
    checks = [("random", fresh)]
    if dynamic_batch:  # three rows of every input (the example's rows repeated: B + 1 rows failed a batch of 3 or
        # more beside a float input's 3; a review), bools drawn afresh as above
        three = {n: a[np.arange(3) % len(a)] if len(a) else a for n, a in zip(names, arrays)}
        checks.append(("random_batch3", {n: (like_example(a, (3, *a.shape[1:]), rng) if a.dtype.kind == "f"
                                             else random_bools(three[n], rng) if a.dtype == np.bool_ else three[n])
                                         for n, a in zip(names, arrays)}))
    job = GraphJob("full", module, io, dict(zip(names, arrays)), checks, stem="model")

    manifest = {"model": {"name": name, "family": "custom", "version": "1"}, "preprocess": {},
                "programs": {"model": {"graphs": ["full"], "description": "the exported module"}}}
    # no torch artifact: the only way to carry a user's module without its code is a torch.export
    # program, and loading one unpickles data (code execution from a forged bundle); the module was
    # checked against ONNX Runtime above and its parity is in the manifest
    bundle, _ = _write(out, [job], manifest, attention=attention, opset=opset, rtol=rtol, torch_artifact=None)
    return bundle


def not_finite_cause(where: str) -> str:
    """What a parity entry ``"<feed set>: <output> (<side>)"`` with NaN or infinite values says, in words: on the
    example itself the module's (or graph's) own numbers are broken; on the random check inputs the module may need
    inputs in a range (a sqrt, a log: the check draws each float input in its example's range, so an example that
    spans the valid range passes); a graph alone non-finite where PyTorch is finite is a conversion fault."""
    head, _, side = where.rpartition(" (")
    side = side.rstrip(")")
    if side == "runtime":
        return (f"the exported graph gives NaN or infinite values where PyTorch's are finite ({head}): the conversion "
                "lost range (an op in lower precision, an overflow)")
    if head.startswith("export_example"):
        return f"outputs hold NaN or infinite values on the example inputs themselves ({head}; broken weights?)"
    return (f"outputs hold NaN or infinite values on the random check inputs ({head}; each float input is drawn in its "
            "example's range, or standard normal where the example is constant): give example inputs that span the "
            "values the model takes")


def _check_flags(*, seed: Any, dynamic_batch: Any) -> None:
    """``seed`` an integer >= 0 and ``dynamic_batch`` a bool: a string seed was a TypeError deep in the example
    inputs, and ``dynamic_batch="no"`` made the batch dynamic (a non-empty string is true)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ExportError(f"seed: an integer >= 0, got {seed!r}")
    if not isinstance(dynamic_batch, bool | np.bool_):
        raise ExportError(f"dynamic_batch: True or False, got {dynamic_batch!r}")


#: the parity tolerance of a module that computes in float16 (fp16's own rounding is ~1e-3 of a value)
HALF_RTOL = 1e-2


def computes_in_half(module: Any, arrays: Sequence[np.ndarray]) -> bool:
    """Whether the module computes in float16: a float16 example input, or float16 weights, every float parameter
    (a ``.half()`` module; a float16 buffer beside float32 weights does not loosen the check)."""
    import torch

    floats = [p.dtype for p in module.parameters() if p.dtype.is_floating_point]
    return any(a.dtype == np.float16 for a in arrays) or (bool(floats) and all(d == torch.float16 for d in floats))


def like_example(a: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Random values for a float input's parity check, drawn uniformly between the example's smallest and largest
    finite values (standard normal where the example is constant, e.g. zeros). Why: a model that takes only positive
    values (a sqrt, a log of an intensity) gave NaN on standard normal inputs, and the export failed blaming its
    weights; the example says what the input holds."""
    finite = a[np.isfinite(a)] if a.size else a
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if hi > lo:
        return rng.uniform(lo, hi, shape).astype(a.dtype)
    return rng.standard_normal(shape).astype(a.dtype)


def random_bools(example: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random values for a bool input's parity check (a mask), of the example's shape: each True with probability
    1/2, with at least one True and one False along the last axis; the example itself where that axis has fewer
    than 2 entries (or none). Why: the check copied bool inputs from the example, so a graph that ignored or
    mis-broadcast its mask passed. Both values in every row because a mask's meaning is the model's: for SDPA True
    allows a key, for ``nn.MultiheadAttention``'s ``key_padding_mask`` True hides it, and a row hiding every key is
    where PyTorch and its ONNX lowering differ by design (zeros or finite values against NaN or the mean of the
    values), not the conversion fault this check is after (a review: an all-True padding row failed an export)."""
    if example.ndim == 0 or example.shape[-1] < 2:
        return example.copy()
    b = rng.random(example.shape) < 0.5
    b[..., 0] |= ~b.any(axis=-1)  # a True in every row
    b[..., -1] &= ~b.all(axis=-1)  # and a False (the first entry, True, stays)
    return b


def _no_scalars(names: list[str]) -> None:
    """Under ``dynamic_batch`` dim 0 of every input and output is the batch: a scalar has none (one line, by name;
    a scalar input failed with an IndexError, a scalar output as a rank mismatch after the export)."""
    if names:
        one = len(names) == 1
        raise ExportError(f"dynamic_batch: {', '.join(names)} {'is a scalar' if one else 'are scalars'}, with no "
                          f"dim 0 to be the batch; export with dynamic_batch=False, or give {'it' if one else 'them'} "
                          "a batch dim")


def _has_attention_node(model: Any, mode: str) -> bool:
    """Whether the exported graph (an ``onnx.ModelProto``) holds the attention node ``mode`` lowers to (any
    graph does in ``decomposed`` mode: its attention is MatMul/Softmax by design)."""
    if mode not in ("plugin", "onnx"):
        return True
    from edge.ops.attention import PLUGIN_DOMAIN, PLUGIN_OP

    domains, op = ((PLUGIN_DOMAIN,), PLUGIN_OP) if mode == "plugin" else (("", "ai.onnx"), "Attention")
    nodes = [*model.graph.node, *(n for f in model.functions for n in f.node)]
    return any(n.op_type == op and n.domain in domains for n in nodes)


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):
        if getattr(x, "is_meta", False):  # torch's "Cannot copy out of meta tensor" (NotImplementedError) before
            raise ExportError("example input is a meta tensor (a shape without data): give a real tensor or array "
                              "of example values")
        layout = str(getattr(x, "layout", "torch.strided"))
        if layout != "torch.strided":  # a sparse tensor was told its float32 dtype has no numpy form
            raise ExportError(f"example input has layout {layout.removeprefix('torch.')}: give a dense tensor "
                              "(.to_dense()) or array")
        try:
            return x.detach().cpu().numpy()
        except TypeError as e:  # bfloat16: numpy has no such type (a raw TypeError before)
            raise ExportError(f"example input of dtype {str(x.dtype).removeprefix('torch.')} has no numpy form "
                              f"({first_line(e)}): give float32 (or float16) inputs and cast inside forward") from None
    raise ExportError(f"example inputs must be numpy arrays or torch tensors, got {type(x).__name__}")


def _fix_batch(io: IOSpec, batch: int) -> IOSpec:
    """``io`` with its dims named "batch" fixed to ``batch`` (other named dims stay dynamic)."""

    def fix(t: TensorSpec) -> TensorSpec:
        return TensorSpec(t.name, t.dtype, tuple(batch if d == "batch" else d for d in t.shape), t.description)

    return IOSpec(tuple(fix(t) for t in io.inputs), tuple(fix(t) for t in io.outputs))


def _batch_of(io: IOSpec, feeds: dict[str, np.ndarray] | None) -> int:
    """The batch a program feeds a graph with (1 when unknown)."""
    for t in io.inputs:
        if feeds is not None and t.name in feeds:
            for axis, d in enumerate(t.shape):
                if d == "batch" and np.ndim(feeds[t.name]) > axis:
                    return int(np.shape(feeds[t.name])[axis])
    return 1


def _recorded_feeds(card: Any, module: Any, cfg: dict[str, Any], programs: list[str],
                    sample: Sequence[Any] | None) -> dict[str, dict[str, np.ndarray]]:
    """Realistic feeds for each graph: what the torch program gives it on one synthetic ``sample`` (its
    frame sets in order; none for a card without data)."""
    from edge.program import torch_program

    if not sample:
        return {}
    out: dict[str, dict[str, np.ndarray]] = {}
    for pname in programs:
        prog = torch_program(card, module, cfg, card.program(pname))
        try:
            rec = prog.graph_feeds(card, [sample])
        except EdgeError:
            raise
        except Exception as e:  # the model itself fails (a config its layers cannot take): one line, not a traceback
            raise ExportError(f"model '{card.name}': program '{pname}' failed in PyTorch on a synthetic sample "
                              f"({type(e).__name__}: {first_line(e, 200)}); nothing was written") from None
        finally:
            prog.close()
        for g, feeds in rec.items():
            if feeds and g not in out:
                out[g] = feeds[-1]
    return out


def _apply_options(card: Any, module: Any, cfg: dict[str, Any], options: Mapping[str, Any]) -> tuple[Any, dict]:
    """The model rebuilt with the export options in its config, carrying the same weights."""
    new_cfg = card.with_options(cfg, options)
    try:  # build, not make: this wrapper names the --set values (make's line would drop them)
        new = card.build(new_cfg)
        new.load_state_dict(module.state_dict())
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise ModelError(f"model '{card.name}': --set {', '.join(f'{k}={v}' for k, v in options.items())}: "
                         f"{first_line(str(e))}") from None
    return new.eval(), new_cfg


def _check_config_name(card: Any, config: str, recorded: dict[str, Any], path: Path, progress: Any) -> None:
    """That a checkpoint is of the config ``--config`` names: every key it recorded has that config's value
    (:func:`~edge.models.checkpoint.continues`). Keys the card gained since take their ``config_added`` values,
    the model as trained, and a note says so: a tiny checkpoint from before a family's new stage was refused as
    "trained with another config than 'tiny'" while its record named tiny. A real difference names its keys."""
    from edge.models.checkpoint import continues

    want = card.config(config)
    if not continues(recorded, want):
        differ = [k for k in sorted(recorded) if want.get(k, object()) != recorded[k]]
        said = "; ".join(f"{k}: {recorded[k]!r} there, {want[k]!r} in '{config}'" if k in want
                         else f"{k}: {recorded[k]!r} there, no such key in '{config}'" for k in differ[:3])
        raise ModelError(f"{path}: checkpoint was trained with another config than '{config}' ({said}); leave "
                         "out --config to export it as it was trained")
    older = sorted(set(want) - set(recorded))
    if older and progress is not None:
        progress(f"note: {path} predates config option(s) {', '.join(older)}: exported as trained, with the "
                 "values they had before (the card's config_added)")


def export_card(model: str | os.PathLike[str], out: str | os.PathLike[str], *, config: str | None = None,
                checkpoint: str | os.PathLike[str] | None = None, attention: str = "auto",
                dynamic_batch: bool = False, programs: str | Sequence[str] | None = None, opset: int | None = None,
                rtol: float = 1e-4, seed: int = 0, precisions: str | list[str] | None = None, calib: str = "synthetic",
                calib_size: int = 32, eval_size: int | None = None, max_drop: float | str | None = None,
                calib_method: str = "minmax", progress: Any = None, targets: str | tuple[str, ...] = ("onnx",),
                options: Mapping[str, Any] | None = None, score_every: bool = False,
                eval_data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
                ) -> tuple[Bundle, dict[str, Any]]:
    """Export a model family (by name, or a checkpoint path) with the graphs of its programs.

    ``programs`` (default: all the card declares) chooses which host programs the bundle can run;
    the graphs they call are exported. ``precisions`` adds fp16 / gated int8 copies of every graph,
    gated per program on the family's metric (:mod:`edge.calibration.precision`). ``options`` sets
    config keys the card lists as ``export_options`` (the same weights, another setting). A program whose
    card names another's gates as its own (``ProgramSpec.gated_by``) is not scored when both are exported,
    unless ``score_every``. ``eval_data``: the gates score on this labelled data (specs as ``edge val --data``
    takes them, read by the family's own reader) instead of held-out synthetic samples. ``calib``: "synthetic", an
    image folder, a video, an .npz/.npy of step feeds, or labelled data in the family's format (the same specs; its
    labels unread), the one real source for a family that needs several sensors at once.
    """
    from edge.models import get_card
    from edge.models.checkpoint import model_from_checkpoint, read_checkpoint, save_checkpoint

    check_args(out, opset, attention, calib_method, rtol=rtol)
    from edge.models.registry import list_models

    # a name list given as one string is read as the CLI reads it (comma-separated): "int8" was taken letter by
    # letter ("--precision ['i', 'n', 't', '8']")
    _check_flags(seed=seed, dynamic_batch=dynamic_batch)
    if options is not None and not isinstance(options, Mapping):  # a string was read key by key: "--set a"
        raise ExportError(f"options: a mapping of KEY -> VALUE (what --set takes), got {type(options).__name__}")
    precisions = name_list("precisions", precisions)
    programs = name_list("programs", programs)
    targets = tuple(name_list("targets", targets) or ())
    check_targets(targets, "targets")
    if eval_data is not None:
        from edge.val import data_specs

        eval_data = data_specs(eval_data, "--eval-data", ExportError)
        if eval_size is not None:
            raise ExportError("--eval-size counts held-out synthetic samples; --eval-data gates on the samples it "
                              "names: give one or the other")
    ckpt_path: Path | None = None
    if isinstance(model, os.PathLike):  # a checkpoint given as a Path, as the docstring allows
        model = os.fspath(model)
    if not isinstance(model, str):
        raise ExportError(f"model: a family's name or a checkpoint path, got {type(model).__name__}")
    if isinstance(config, str) and not config.strip():  # "" exported the default config without a word
        raise ExportError(f"--config {config!r}: name one of the family's configs (tiny, default, ...), or leave it "
                          "out")
    if config is not None and not isinstance(config, str):
        raise ExportError(f"config: the name of one of the family's configs (tiny, default, ...), got "
                          f"{type(config).__name__}; a custom config is trained into a checkpoint, which "
                          "export_card takes as model or checkpoint=")
    # a family's name is the family, even where the working folder holds a file of that name
    if model.endswith((".pt", ".pth")) or (Path(model).is_file() and (os.sep in model or model not in list_models())):
        ckpt_path = Path(model)
        model = read_checkpoint(ckpt_path)["model"]
        try:
            card = get_card(model)
        except ModelError as e:
            raise ModelError(f"{ckpt_path}: {e}") from None
    else:
        card = get_card(model)
    asked = list(dict.fromkeys(programs)) if programs else None
    for p in asked or ():
        card.program(p)  # ModelError naming the programs for a typo
    if checkpoint is not None:
        if not isinstance(checkpoint, str | os.PathLike):
            raise ExportError(f"checkpoint: a checkpoint file's path, got {type(checkpoint).__name__}")
        if ckpt_path is not None:  # the one named as the model was dropped for this one without a word
            raise ExportError(f"a checkpoint is given twice ({ckpt_path} as the model and --checkpoint {checkpoint}); "
                              "give one")
        ckpt_path = Path(checkpoint)
    if ckpt_path is None and card.checkpoint_for(config) is not None:
        ckpt_path = card.checkpoint_for(config)
    if ckpt_path is not None:
        ck = read_checkpoint(ckpt_path)
        module, cfg, meta = model_from_checkpoint(ck, ckpt_path, expect_model=model)
        if config is not None:
            _check_config_name(card, config, ck["config"], ckpt_path, progress)
        weights = {"checkpoint": str(ckpt_path), "trained": meta}
    else:
        import torch

        cfg = card.config(config)
        torch.manual_seed(seed)
        module = card.make(cfg).eval()
        meta = {}
        weights = {"checkpoint": None, "trained": "random init (no checkpoint for this config)"}
    if options:
        module, cfg = _apply_options(card, module, cfg, options)
        weights["options"] = dict(options)
    have = [p.name for p in card.programs_for(cfg)]
    for p in asked or ():
        if p not in have:
            raise ModelError(f"model '{card.name}': program '{p}' is not available for this config (available: "
                             f"{', '.join(have)})")
    chosen = asked or have
    graph_names = card.graphs_of(chosen)
    # one synthetic sample serves both the recorded feeds and the image-input check
    sample = card.data.samples(cfg, "calibration", 1, seed)[0] if card.data is not None else None
    realistic = _recorded_feeds(card, module, cfg, chosen, sample)
    ios, batches = {}, {}
    for g in graph_names:
        io = card.graphs[g].io(cfg)
        # static: the batch the program really feeds the graph with (1 for most; e.g. V camera views)
        batches[g] = 2 if dynamic_batch else _batch_of(io, realistic.get(g))
        ios[g] = io if dynamic_batch else _fix_batch(io, batches[g])
        if g in realistic:
            try:
                ios[g].validate_feeds(realistic[g])
            except Exception as e:
                raise ExportError(f"graph '{g}': what program(s) {', '.join(chosen)} feed it does not fit its IOSpec "
                                  f"({e}); fix the card's io or runner") from None
    jobs = []
    for i, gname in enumerate(graph_names):
        g = card.graphs[gname]
        batch = batches[gname]
        checks = [("random", g.example_inputs(cfg, batch, seed + 100 + i))]
        if dynamic_batch:  # a dynamic dim must work at sizes other than the export example's
            checks += [("random_batch1", g.example_inputs(cfg, 1, seed + 200 + i)),
                       ("random_batch3", g.example_inputs(cfg, 3, seed + 300 + i))]
        if gname in realistic:
            checks.append(("synthetic", realistic[gname]))
        jobs.append(GraphJob(gname, g.module(module), ios[gname], g.example_inputs(cfg, batch, seed + i), checks,
                             stem=g.stem))
    manifest = {
        "model": {"name": card.name, "family": card.name, "version": "1", "config": cfg, "weights": weights},
        "preprocess": {**card.preprocess_params(cfg),
                       **_image_inputs(card, cfg, {g for p in chosen for g in card.program(p).graphs}, sample)},
        "programs": {p: {"graphs": list(card.program(p).graphs), "description": card.program(p).description}
                     for p in chosen},
        "task": {"sensors": {"required": list(card.sensors.required), "optional": list(card.sensors.optional)},
                 "metric": ({"name": card.metric.name, "unit": card.metric.unit,
                             "higher_is_better": card.metric.higher_is_better} if card.metric else None),
                 "results": card.results_name},
    }

    def write_ckpt(path: Path) -> None:
        save_checkpoint(path, card.name, cfg, module, meta)

    from edge.calibration.precision import (
        PrecisionJob,
        add_nncf_int8,
        add_ort_int8,
        add_precisions,
        check_request,
        drop_reduced_sources,
        inherit_gates,
        parse_max_drop,
    )

    # no budget named: the card's (its metric's scale decides what a small drop is); 1.0 for a card without
    # a metric
    if max_drop is None:
        max_drop = card.metric.max_drop if card.metric is not None else 1.0
    drop_abs, drop_rel = parse_max_drop(max_drop)
    qat_scales = {}
    if "qat_scales" in meta:  # a quantization-aware checkpoint: its trained scales go into the symmetric INT8 form
        from edge.calibration.qat_scales import check_scales

        qat_scales = check_scales(meta["qat_scales"], module, str(ckpt_path))
    job = PrecisionJob(card=card, cfg=cfg, module=module, jobs=jobs, programs=chosen,
                       precisions=list(precisions or ["fp32"]), calib=calib, calib_size=calib_size,
                       eval_size=eval_size, max_drop=drop_abs, max_drop_rel=drop_rel, method=calib_method, seed=seed,
                       say=progress or (lambda _m: None), qat_scales=qat_scales, score_every=score_every,
                       eval_data=eval_data)
    check_request(job)  # a bad --calib or budget fails now, before any graph is exported
    if "openvino" in targets:
        from edge.runtimes import require

        require("openvino")

    def extra(w: Any, report: dict[str, Any]) -> None:
        try:
            add_precisions(w, report, job)
            if "openvino" in targets:
                from edge.export.openvino_ir import add_openvino

                add_openvino(w, report, jobs, rtol=rtol)
                if "int8" in job.precisions:
                    from edge.calibration.openvino_qdq import gate_openvino_qdq

                    add_nncf_int8(w, report, job)
                    gate_openvino_qdq(w, report, job)  # where no NNCF IR was kept, OpenVINO runs the QDQ graphs
            if "int8" in job.precisions:  # after the IRs: these forms are ONNX Runtime's and TensorRT's alone
                from edge.calibration.trt_int8 import add_trt_int8

                add_ort_int8(w, report, job)
                add_trt_int8(w, report, job)
            inherit_gates(w, report, job)
        finally:
            drop_reduced_sources(w)

    bundle, report = _write(out, jobs, manifest, attention=attention, opset=opset, rtol=rtol,
                            torch_artifact=("weights.pt", "checkpoint", write_ckpt), extra=extra, targets=targets)
    report["weights"] = str(ckpt_path) if ckpt_path is not None else None
    return bundle, report
