"""A Triton Inference Server model repository made from a bundle.

Triton serves a folder of ``<model>/config.pbtxt`` + ``<model>/<version>/model.<ext>``. We write it from
the bundle rather than by hand because everything the config needs is already in the manifest: the
IOSpec gives tensor names, dtypes and dims (a shared named dim 0 such as ``batch`` becomes Triton's
implicit batch dimension), and the artifacts say which file each backend must open. The ONNX Runtime
model is the bundle's ORT lowering (``*.ort.onnx``) when there is one, since stock ONNX Runtime (and
so Triton's onnxruntime backend) cannot run our ``edge.ai::EdgeAttention`` node.

The config is protobuf text format written by hand (no protobuf/tritonclient dependency); field names
follow Triton's ``model_config.proto``. The repository is built in a hidden temp folder beside
``out_dir`` and renamed into place, like a bundle: it is complete or absent, and only a previous
repository written by this module (it carries a marker file) is ever replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.bundle import Bundle
from edge.errors import BundleError, ExportError, first_line
from edge.files import StagedFolder
from edge.spec import IOSpec, TensorSpec

MARKER = ".edge-triton-repo.json"
MARKER_KIND = "edge-deploy triton model repository"
DEFAULT_MAX_BATCH = 8
BACKENDS = ("onnxruntime", "openvino", "tensorrt")
#: a preprocessing value listing more than this many items is given in the README line as its count only
LONG_LIST = 8

# our dtype strings (edge.spec) -> Triton's DataType enum names
TRITON_DTYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "bfloat16": "TYPE_BF16",
    "int8": "TYPE_INT8",
    "uint8": "TYPE_UINT8",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "bool": "TYPE_BOOL",
}

# backend -> (config line naming it, bundle artifact format, file name Triton looks for, devices it runs on)
_PLATFORM = {
    "onnxruntime": ('backend: "onnxruntime"', "onnx", "model.onnx", ("gpu", "cpu")),
    # Triton's OpenVINO backend runs on the CPU only; it must be named with `backend`
    "openvino": ('backend: "openvino"', "openvino_ir", "model.xml", ("cpu",)),
    "tensorrt": ('platform: "tensorrt_plan"', "tensorrt_engine", "model.plan", ("gpu",)),
}
#: ``device`` -> instance_group kind; "auto" = KIND_AUTO (GPU when the server has one) for a backend that
#: runs on both, else the one device the backend has (KIND_GPU alone would not load on a CPU-only server)
DEVICES = ("auto", "gpu", "cpu")


def instance_kind(backend: str, device: str = "auto") -> str:
    """The ``instance_group`` kind for ``backend`` on ``device`` (ExportError for a device it lacks)."""
    devices = _PLATFORM[backend][3]
    if device not in DEVICES:
        raise ExportError(f"triton device {device!r}: choose from {', '.join(DEVICES)}")
    if device == "auto":
        return "KIND_AUTO" if len(devices) > 1 else f"KIND_{devices[0].upper()}"
    if device not in devices:
        raise ExportError(f"triton device {device!r}: Triton's {backend} backend runs on {', '.join(devices)} only")
    return f"KIND_{device.upper()}"

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class _Copy:
    src: Path
    dest: str  # path relative to the version folder


@dataclass(frozen=True)
class _ModelPlan:
    folder: str
    backend: str
    artifact: dict[str, Any]
    copies: tuple[_Copy, ...]
    config: str
    notes: tuple[str, ...]


# -- config.pbtxt -----------------------------------------------------------------------------------
def batch_dim(io: IOSpec) -> str | None:
    """The named dim that is dim 0 of every input and output, or None (then Triton cannot batch)."""
    tensors = io.inputs + io.outputs
    if not tensors or any(t.rank == 0 for t in tensors):
        return None
    first = tensors[0].shape[0]
    if not isinstance(first, str) or any(t.shape[0] != first for t in tensors):
        return None
    return first


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _tensor_block(t: TensorSpec, batching: bool) -> list[str]:
    dims = [d if isinstance(d, int) else -1 for d in (t.shape[1:] if batching else t.shape)]
    lines = ["  {", f"    name: {_quote(t.name)}", f"    data_type: {TRITON_DTYPES[t.dtype]}"]
    if dims:
        lines.append(f"    dims: [ {', '.join(str(d) for d in dims)} ]")
    else:
        # Triton needs at least one dim: a [batch] vector or a scalar is exposed as [1] and reshaped back
        lines += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
    lines.append("  }")
    return lines


def triton_config(io: IOSpec, *, name: str, backend: str = "onnxruntime", max_batch_size: int | None = None,
                  preferred_batch_sizes: Sequence[int] | None = None, max_queue_delay_us: int = 100,
                  instances: int = 1, comment: str = "", device: str = "auto") -> str:
    """The ``config.pbtxt`` text of one model (``device``: see :func:`instance_kind`).

    Batching (``max_batch_size`` > 0, dims without the batch dim, a dynamic batcher) is used only when
    :func:`batch_dim` finds a shared named dim 0; ``max_batch_size=None`` then means 8, and 0 turns
    batching off (full dims, the batch dim as -1). A graph without one gets ``max_batch_size: 0`` and
    full dims; asking it for a batch size > 0 is an ExportError, because Triton would then prepend a
    batch dimension the model does not have.
    """
    if backend not in _PLATFORM:
        raise ExportError(f"triton backend {backend!r}: choose from {list(BACKENDS)}")
    if not _NAME_RE.fullmatch(name):
        raise ExportError(f"triton model name {name!r}: use letters, digits, '_', '.', '-' (no leading '.'/'-')")
    for label, v, lo in (("instances", instances, 1), ("max_queue_delay_us", max_queue_delay_us, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ExportError(f"triton {label} must be an integer >= {lo}, got {v!r}")
    bdim = batch_dim(io)
    if max_batch_size is not None and (isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int)
                                       or max_batch_size < 0):
        raise ExportError(f"triton max_batch_size must be an integer >= 0, got {max_batch_size!r}")
    if bdim is None and max_batch_size:
        raise ExportError(f"triton max_batch_size {max_batch_size}: the graph has no named dim 0 shared by all "
                          "inputs and outputs (export with --dynamic-batch), so it cannot batch; use 0")
    mbs = (DEFAULT_MAX_BATCH if max_batch_size is None else max_batch_size) if bdim is not None else 0
    batching = mbs > 0
    preferred = sorted(set(preferred_batch_sizes or ()))
    if preferred and not batching:
        raise ExportError("triton preferred_batch_sizes need batching (max_batch_size > 0 and a batch dim)")
    bad = [p for p in preferred if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= mbs]
    if bad:
        raise ExportError(f"triton preferred_batch_sizes {bad}: each must be an integer in 1..{mbs}")
    platform_line = _PLATFORM[backend][0]
    kind = instance_kind(backend, device)

    lines = [f"# {line}" for line in comment.splitlines()]
    lines += [f"name: {_quote(name)}", platform_line, f"max_batch_size: {mbs}"]
    for section, tensors in (("input", io.inputs), ("output", io.outputs)):
        lines.append(f"{section} [")
        blocks = [_tensor_block(t, batching) for t in tensors]
        for i, block in enumerate(blocks):
            lines += [*block[:-1], block[-1] + ("," if i < len(blocks) - 1 else "")]
        lines.append("]")
    if batching:
        lines.append("dynamic_batching {")
        if preferred:
            lines.append(f"  preferred_batch_size: [ {', '.join(str(p) for p in preferred)} ]")
        lines += [f"  max_queue_delay_microseconds: {max_queue_delay_us}", "}"]
    lines += ["instance_group [", "  {", f"    count: {instances}", f"    kind: {kind}", "  }", "]"]
    return "\n".join(lines) + "\n"


# -- choosing and copying files ---------------------------------------------------------------------
def _find_artifact(bundle: Bundle, fmt: str, graph: str, precision: str | None,
                   backend: str) -> dict[str, Any] | None:
    if fmt == "tensorrt_engine":  # Triton is sent preprocessed tensors: not an engine that takes camera bytes
        from edge.runtimes.trt_engine import find_engines

        arts = [a for a in find_engines(bundle, graph, precision) if a.get("preprocess") != "engine"]
        if not arts:
            return None
        here = _trt_device()
        if here is not None:  # written on the device that serves it, as edge.load chooses: the engine whose
            from edge.runtimes.tensorrt import select_engine  # record fits this GPU and TensorRT

            with contextlib.suppress(BundleError):  # none fits (a build host writing for another GPU)
                return dict(select_engine(bundle, graph, precision, here)[0])
        return dict(arts[-1])  # the first the manifest lists (find_engines: newest first)
    try:  # at a given precision the backend's preferred artifact (OpenVINO int8: the NNCF IR)
        return bundle.artifact(fmt=fmt, graph=graph, precision=precision, prefer=backend if precision else None)
    except BundleError:
        return None


def _trt_device() -> dict[str, Any] | None:
    """This machine's TensorRT device facts (what an engine record is checked against), None without TensorRT
    or a CUDA device."""
    try:
        from edge.runtimes.cuda_mem import get_cuda
        from edge.runtimes.tensorrt import _trt, device_facts

        return device_facts(_trt(), get_cuda(None))
    except Exception:  # not installed, no driver, no GPU: nothing to match an engine with
        return None


def _walk_tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto of a graph, including constants and subgraphs (If/Loop bodies)."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _walk_tensors(attr.g)
            for g in attr.graphs:
                yield from _walk_tensors(g)


def _onnx_copies(bundle: Bundle, fname: str) -> tuple[list[_Copy], int]:
    """The ONNX file as ``model.onnx`` plus the external-data files it references (same relative names).

    Also returns the graph's ai.onnx opset (the README says which ONNX Runtime the server needs).
    """
    from onnx.external_data_helper import uses_external_data

    from edge.onnx_file import read_model

    src = bundle.file(fname)
    model = read_model(src, error=ExportError)
    copies = [_Copy(src, "model.onnx")]
    seen: set[str] = set()
    root = bundle.path.resolve()
    for t in _walk_tensors(model.graph):
        if not uses_external_data(t):
            continue
        loc = next((e.value for e in t.external_data if e.key == "location"), "")
        if loc in seen:
            continue
        seen.add(loc)
        rel = Path(loc)
        data = (src.parent / rel).resolve()
        if (not loc or rel.is_absolute() or ".." in rel.parts or rel.as_posix() in ("model.onnx", "config.pbtxt")
                or not data.is_relative_to(root)):
            raise ExportError(f"{src}: external data location {loc!r} is not a plain file name inside the bundle")
        listed = data.relative_to(root).as_posix()
        if listed not in bundle.manifest["files"]:
            raise ExportError(f"{src}: external data file {listed!r} is not listed in the bundle manifest")
        copies.append(_Copy(bundle.file(listed), rel.as_posix()))
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return copies, opset


def _plan_backend(bundle: Bundle, backend: str, graph: str, precision: str | None) -> tuple[dict[str, Any],
                                                                                          list[_Copy], list[str]]:
    """Artifact, files to copy and README notes for one backend; ExportError if the bundle lacks it."""
    _, fmt, _, _ = _PLATFORM[backend]
    art = _find_artifact(bundle, fmt, graph, precision, backend)
    want = f"graph '{graph}'" + (f", precision {precision}" if precision else "")
    notes: list[str] = []
    if backend == "onnxruntime":
        if art is None:
            raise ExportError(f"{bundle.path}: no ONNX artifact for {want}; nothing for Triton's onnxruntime backend")
        fname = art.get("lowered", {}).get("onnxruntime", art["file"])
        copies, opset = _onnx_copies(bundle, fname)
        if opset >= 23:
            notes.append(f"model.onnx uses ai.onnx opset {opset} (the Attention op): the server's onnxruntime "
                         "backend must be built with ONNX Runtime >= 1.23.")
        return art, copies, notes
    if backend == "openvino":
        if art is None:
            raise ExportError(f"{bundle.path}: no OpenVINO IR for {want}; export with --to onnx,openvino")
        xml = art["file"]
        bins = [f for f in art.get("extra_files", []) if f.endswith(".bin")]
        if not bins and str(Path(xml).with_suffix(".bin")) in bundle.manifest["files"]:
            bins = [str(Path(xml).with_suffix(".bin"))]
        if not bins:
            raise ExportError(f"{bundle.path}: OpenVINO artifact '{art['name']}' lists no .bin weights file")
        notes.append("Triton's OpenVINO backend runs on the CPU; on a CPU with bf16 it may pick bf16 unless told "
                     "otherwise (edge-deploy's own runtime compiles with INFERENCE_PRECISION_HINT=f32, bf16 only "
                     "for an INT8 IR whose gate passed with bf16 float layers, on a CPU with native bf16).")
        return art, [_Copy(bundle.file(xml), "model.xml"), _Copy(bundle.file(bins[0]), "model.bin")], notes
    # tensorrt
    if art is None:
        # a precision the bundle has an ONNX of (edge build's default, fp16, is not in an fp32-only bundle)
        have = [a.get("precision") for a in bundle.artifacts if a.get("format") == "onnx" and a.get("graph") == graph]
        p = precision if precision in have else next((x for x in ("fp16", "int8", "fp32") if x in have), "fp32")
        raise ExportError(f"{bundle.path}: no TensorRT engine for {want}; TensorRT engines are specific to the "
                          f"GPU and TensorRT version: on the target, `edge build {bundle.path} --precision {p} "
                          "--triton-repo DIR` builds them and writes the repository")
    if art.get("attention") == "plugin":
        raise ExportError(f"{bundle.path}: engine '{art['name']}' uses the Python EdgeAttention plugin, which "
                          "tritonserver cannot load; build it from an export with --attention decomposed or onnx")
    notes.append("model.plan runs only on the GPU model and TensorRT version it was built with"
                 + "".join(f"; {k}: {art[k]}" for k in ("device", "target", "tensorrt") if k in art) + ".")
    return art, [_Copy(bundle.file(art["file"]), "model.plan")], notes


def _engine_min_batch(bundle: Bundle, art: dict[str, Any]) -> int:
    """The smallest batch a TensorRT engine takes: the largest minimum of dim 0 over its profile's inputs, read from
    the engine's record (1 when it lists none)."""
    from edge.runtimes.trt_engine import EngineRecord

    low = 1
    for f in art.get("extra_files", []):
        if bundle.manifest["files"].get(f, {}).get("role") != "tensorrt_record":
            continue
        path = bundle.file(f)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ExportError(f"{path}: cannot read the engine record ({getattr(e, 'strerror', None) or e})") from None
        rec = EngineRecord.from_json(text, where=str(path))
        low = max(low, profile_min_batch(rec.profile))
    return low


def profile_min_batch(profile: Mapping[str, Mapping[str, Sequence[int]]]) -> int:
    """The smallest batch an engine of this optimisation ``profile`` takes (input -> min/opt/max shapes): the
    largest minimum of dim 0 over its inputs, 1 when none is above it."""
    return max([1, *(int(r["min"][0]) for r in profile.values() if r.get("min"))])


def min_batch_advice(dim: str) -> str:
    """Why an engine that refuses small batches cannot serve a batching Triton model, and what to build instead."""
    return (f"Triton's dynamic batcher also sends smaller batches, down to 1: build it with `edge build --dim "
            f"{dim}=1:OPT:MAX` for Triton")


# -- the repository ---------------------------------------------------------------------------------
def _foreign(folder: Path) -> list[str] | None:
    """What in a Triton repository folder edge-deploy did not write (folders end in ``/``); None when the folder
    carries no marker of ours. Why: a re-export replaces the whole folder, and a repository is where a user keeps
    other models beside ours; a marker alone once let one re-export delete them. The marker lists every file
    written (``files``); one from before that list names its model folders, and only the top level is checked."""
    from edge.files import folders_above, json_file, unlisted_entries

    data = json_file(folder / MARKER)
    if not (isinstance(data, dict) and data.get("kind") == MARKER_KIND):
        return None
    files, models = data.get("files"), data.get("models")
    if isinstance(files, list) and all(isinstance(f, str) for f in files):
        listed = set(files) | {MARKER}
        dirs = folders_above(listed)
        return unlisted_entries(folder, lambda rel, is_dir: rel in dirs if is_dir else rel in listed)
    if isinstance(models, dict):
        top = set(models) | {"README.txt", MARKER}
        return unlisted_entries(folder, lambda rel, _is_dir: rel in top, top_only=True)
    return None


def _is_our_repo(folder: Path) -> bool:
    """A repository we wrote holding nothing else: the only kind a re-export replaces."""
    return _foreign(folder) == []


def _why_not_ours(folder: Path) -> str:
    from edge.files import deleted_note

    return deleted_note(_foreign(folder) or [])


def check_repo_out(out: Path, bundle_root: Path) -> None:
    """Refuse a repository folder that is a file, or not empty and not ours, or that is the bundle's folder or
    inside or around it: called again before writing, and by the export CLI before any work (so nothing is
    exported in vain)."""
    if out == bundle_root or out.is_relative_to(bundle_root) or bundle_root.is_relative_to(out):
        raise ExportError(f"{out}: the Triton repository and the bundle ({bundle_root}) must be separate folders, "
                          "neither inside the other")
    from edge.files import check_replaceable, utf8_name_problem

    if utf8_name_problem(out, absolute=True) is not None:  # found when the README was written, after the export
        raise ExportError(f"{out}: its name (or a folder's in its path) is not valid UTF-8, and the repository's "
                          "README and tritonserver's --model-repository name it; rename it")
    # what the writer's StagedFolder checks, now (another user's repository was found only after the export)
    check_replaceable(out, _is_our_repo, what="Triton repository", error=ExportError, explain=_why_not_ours)


def _readme(out: Path, plans: Sequence[_ModelPlan], bundle: Bundle, graphs: Sequence[str], version: int) -> str:
    lines = [
        f"Triton Inference Server model repository written by edge-deploy from bundle {bundle.path}",
        f"(model '{bundle.model_name}', graph{'s' if len(graphs) > 1 else ''} {', '.join(repr(g) for g in graphs)}). "
        "Regenerate it rather than editing it by hand.",
        "",
        "Serve it:",
        f"  tritonserver --model-repository={out}",
        "or in NVIDIA's container (pick the <yy.mm> release whose backends match the notes below):",
        f"  docker run --rm --gpus all -p 8000:8000 -p 8001:8001 -p 8002:8002 -v {out}:/models \\",
        "    nvcr.io/nvidia/tritonserver:<yy.mm>-py3 tritonserver --model-repository=/models",
        "Check:  curl -s localhost:8000/v2/models/<model>/ready && curl -s localhost:8000/v2/models/<model>/config",
        "",
        "Models:",
    ]
    for p in plans:
        files = ", ".join(c.dest for c in p.copies)
        lines.append(f"  {p.folder}/  backend {p.backend}, artifact '{p.artifact['name']}' "
                     f"({p.artifact.get('precision', '?')}), {version}/: {files}")
        lines += [f"    note: {n}" for n in p.notes]
    for graph in graphs:
        io = bundle.graph_io(graph)
        lines += ["", f"Tensors of graph '{graph}' (named dims are dynamic, -1 in config.pbtxt):"]
        lines += [f"  in  {t.name}: {t.dtype} {t.pretty_shape()}" for t in io.inputs]
        lines += [f"  out {t.name}: {t.dtype} {t.pretty_shape()}" for t in io.outputs]
    if len(graphs) > 1 and bundle.manifest.get("programs"):
        lines += ["", "The graphs are separate models; the host program that chains them (ring buffers, "
                  "iterations) runs on the client: " + "; ".join(f"{k}: {' -> '.join(v['graphs'])}" for k, v in
                                                               bundle.manifest["programs"].items())]
    pre = bundle.manifest.get("preprocess")
    if pre:
        # a long table (a decoder's anchors, say) would bury the line's point: its length, the values in the manifest
        brief = {k: f"<{len(v)} values>" if isinstance(v, list) and len(v) > LONG_LIST else v for k, v in pre.items()}
        lines += ["", "Inputs are preprocessed tensors (manifest 'preprocess'): " + json.dumps(brief, sort_keys=True)]
    return "\n".join(lines) + "\n"


def write_triton_repo(bundle: Bundle | str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                      backends: Sequence[str] = ("onnxruntime",), name: str | None = None,
                      max_batch_size: int | None = None, preferred_batch_sizes: Sequence[int] | None = None,
                      max_queue_delay_us: int = 100, instances: int = 1, graph: str | None = None, version: int = 1,
                      precision: str | None = None, graphs: Sequence[str] | None = None,
                      device: str = "auto") -> Path:
    """Write a Triton model repository for graphs of ``bundle`` into ``out_dir``; returns its path.

    ``graphs`` (or the single ``graph``; default: the bundle's first) are served as separate models
    (a family's program, e.g. a ring buffer between an encoder and a head, stays on the client). One
    model folder per graph and backend: ``name`` (default: the model name, plus ``_<graph>`` for a
    graph other than the bundle's first or when several are written), plus ``_<backend>`` when several
    backends are asked. ``precision`` picks the artifact (default: the first of the graph, normally
    fp32; OpenVINO int8 = the NNCF IR when there is one). Everything is checked before a byte is
    written, so a bundle without an engine fails with one line and leaves nothing behind.
    """
    b = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    graphs = list(graphs) if graphs else [graph or b.default_graph]
    for g in graphs:
        b.graph_io(g)  # BundleError naming the graphs for a typo
    if isinstance(backends, str):
        backends = [backends]
    backends = list(backends)
    if not backends:
        raise ExportError(f"triton backends: give a non-empty list from {list(BACKENDS)}")
    unknown = [x for x in backends if x not in _PLATFORM]
    if unknown or len(set(backends)) != len(backends):
        raise ExportError(f"triton backends {backends}: choose each at most once from {list(BACKENDS)}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ExportError(f"triton model version must be an integer >= 1, got {version!r}")
    plans: list[_ModelPlan] = []
    for graph in graphs:
        io = b.graph_io(graph)
        if len(graphs) == 1:
            base = name or (b.model_name if graph == b.default_graph else f"{b.model_name}_{graph}")
        else:
            base = f"{name or b.model_name}_{graph}"
        for backend in backends:
            folder = base if len(backends) == 1 else f"{base}_{backend}"
            art, copies, notes = _plan_backend(b, backend, graph, precision)
            comment = (f"written by edge-deploy from bundle '{b.model_name}' (graph {graph}, artifact "
                       f"'{art['name']}'); regenerate rather than edit")
            mbs = max_batch_size
            engine_max = art.get("max_batch") if backend == "tensorrt" and batch_dim(io) is not None else None
            if engine_max is not None:  # the engine's profile stops there: Triton refuses a larger max_batch_size
                if mbs is not None and mbs > engine_max:
                    raise ExportError(f"triton max_batch_size {mbs}: engine '{art['name']}' was built for batches "
                                      f"up to {engine_max} (edge build --dim batch=MIN:OPT:MAX sets its range)")
                mbs = engine_max if mbs is None else mbs
            low = _engine_min_batch(b, art) if backend == "tensorrt" and batch_dim(io) is not None else 1
            if low > 1 and (mbs is None or mbs > 0):
                # the dynamic batcher sends whatever batch it has gathered, down to one request: the engine refuses
                # any below its profile's minimum
                raise ExportError(f"engine '{art['name']}' was built for batches from {low}; "
                                  f"{min_batch_advice(str(batch_dim(io)))} (or write the repository with "
                                  "max_batch_size=0: no batching)")
            config = triton_config(io, name=folder, backend=backend, max_batch_size=mbs,
                                   preferred_batch_sizes=preferred_batch_sizes,
                                   max_queue_delay_us=max_queue_delay_us, instances=instances, comment=comment,
                                   device=device)
            plans.append(_ModelPlan(folder, backend, art, tuple(copies), config, tuple(notes)))

    out = Path(out_dir).resolve()
    check_repo_out(out, b.path.resolve())
    try:
        with StagedFolder(out, _is_our_repo, what="Triton repository", error=ExportError, given=str(out_dir),
                          explain=_why_not_ours) as st:
            tmp = st.tmp
            for plan in plans:
                vdir = tmp / plan.folder / str(version)
                vdir.mkdir(parents=True)
                for c in plan.copies:
                    dest = vdir / c.dest
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(c.src, dest)
                (tmp / plan.folder / "config.pbtxt").write_text(plan.config, encoding="utf-8")
            (tmp / "README.txt").write_text(_readme(out, plans, b, graphs, version), encoding="utf-8")
            written = sorted(q.relative_to(tmp).as_posix() for q in tmp.rglob("*") if q.is_file())
            marker = {"kind": MARKER_KIND, "bundle": str(b.path.resolve()), "model": b.model_name, "graphs": graphs,
                      "models": {pl.folder: {"backend": pl.backend, "artifact": pl.artifact["name"]} for pl in plans},
                      "version": version, "created_unix": int(time.time()), "files": written}
            (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
            check_repo_out(out, b.path.resolve())  # again: the folder may have changed while we copied
            st.commit()
    except OSError as e:
        raise ExportError(f"{out}: cannot write the Triton repository ({e.strerror or first_line(e)}); "
                          "nothing was written") from None
    return out
