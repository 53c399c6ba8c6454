"""TensorRT backend: build strongly typed engines on the target, cache them in the bundle, run them.

Written against the TensorRT Python API of 10.x and 11.x (see :mod:`edge.runtimes.trt_engine` for
the version rules). The code that touches TensorRT is kept to the calls themselves; everything it
decides (profiles, records, cache keys, which ONNX, which flags) lives in ``trt_engine`` and is
unit-tested without a GPU. ``tensorrt`` and the CUDA bindings are imported inside functions only.

Build: register our plugins (the ONNX parser finds ``EdgeAttention`` by op name + plugin_namespace
+ plugin_version; a masked node, which the plugin cannot take, is refused first), parse the bundle's
ONNX for the precision (fp32 / fp16 ONNX / QDQ INT8 ONNX), strongly typed network (flag on 10.x,
default on 11.x), one optimization profile from the IOSpec (its names checked against the parsed
network's inputs), workspace limit, no TF32 in fp32 engines, timing cache reused across builds,
progress through ``IProgressMonitor``; the serialized engine and its record are added to the bundle
atomically.

Run: refuse an engine whose record does not match this device; deserialize with the plugin
registered; pinned host buffers, device buffers and a stream from :mod:`edge.runtimes.cuda_mem`;
``set_input_shape`` + ``set_tensor_address`` + ``execute_async_v3``; ``submit`` + ``wait`` for the loop (one
call in flight: an execution context and its pinned buffers are not for two threads at once).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import BackendUnavailable, BundleError, EdgeError, ExportError, first_line
from edge.runtimes.base import BaseRuntime
from edge.runtimes.registry import Backend
from edge.runtimes.trt_engine import (
    DEFAULT_CAMERA,
    EngineRecord,
    TrtVersion,
    check_feed_in_profile,
    choices_for,
    engine_paths,
    find_engines,
    l4t_release,
    mismatches,
    onnx_for,
    profile_shapes,
)
from edge.spec import IOSpec

log = logging.getLogger("edge.runtimes")

PLUGIN_OPS = {"EdgeAttention": "edge::EdgeAttention"}


def _available() -> tuple[bool, str]:
    try:
        import tensorrt as trt
    except ImportError as e:  # absent (the pip line), or there but broken (a wheel whose .so does not load): not
        from edge.deps import import_failure  # "not installed" for both, as it said

        return False, f"{import_failure('tensorrt', e)}; on a Jetson it comes with JetPack"
    except Exception as e:  # a wheel without its libnvinfer/libnvonnxparser fails with OSError
        return False, f"tensorrt does not import: {type(e).__name__}: {first_line(e, 120)}"
    from edge.runtimes.cuda_mem import get_cuda

    try:
        get_cuda()
    except BackendUnavailable as e:
        return False, f"tensorrt {trt.__version__} but no usable CUDA: {e}"
    return True, f"tensorrt {trt.__version__}"


def _trt() -> Any:
    ok, why = _available()
    if not ok:
        raise BackendUnavailable(f"backend 'tensorrt' is not available here: {why}")
    import tensorrt as trt

    return trt


def device_facts(trt: Any, cuda: Any) -> dict[str, Any]:
    """This machine as an engine record sees it."""
    return {"tensorrt": str(TrtVersion.parse(trt.__version__)), **cuda.device(), "l4t": l4t_release()}


_LOGGERS: dict[int, tuple[Any, Any]] = {}


def _logger(trt: Any) -> Any:
    """The process's one TensorRT logger, kept alive for good: ``init_libnvinfer_plugins`` keeps a raw pointer
    to the logger it is given (a throwaway one left TensorRT's plugins logging through freed memory), and
    TensorRT warns when runtimes and builders of one process are given different loggers."""
    got = _LOGGERS.get(id(trt))
    if got is None or got[0] is not trt:
        got = _LOGGERS[id(trt)] = (trt, trt.Logger(trt.Logger.WARNING))
    return got[1]


def plugin_ops(onnx_path: Path) -> set[str]:
    """Which of our plugin ops the ONNX uses; an ExportError (one line, before any build) for a node the plugin
    cannot take: the TensorRT EdgeAttention plugin declares q, k, v only, and the parser hands a plugin every
    input of its node, so a masked node (a 4th input) fails deep inside the build with a TypeError."""
    from edge.onnx_file import read_model
    from edge.ops.attention import masked_nodes
    from edge.runtimes.plugins.tensorrt_plugin import INPUTS

    m = read_model(onnx_path)
    nodes = [n for n in m.graph.node if n.op_type in PLUGIN_OPS]
    masked = masked_nodes(m)
    if masked:
        more = f" (+{len(masked) - 1} more)" if len(masked) > 1 else ""
        raise ExportError(f"{onnx_path}: EdgeAttention node '{masked[0].name}'{more} has a mask input, which the "
                          f"TensorRT EdgeAttention plugin does not take ({', '.join(INPUTS)} only): for TensorRT "
                          "export with --attention onnx (TensorRT >= 10.14) or --attention decomposed")
    return {n.op_type for n in nodes}


def plugin_hashes(onnx_path: Path) -> dict[str, str]:
    """Plugin id -> sha256 of its implementation, for each of our plugin ops the ONNX uses (refusing what the
    plugins cannot build: :func:`plugin_ops`)."""
    used = plugin_ops(onnx_path)
    if not used:
        return {}
    import importlib.util

    h = hashlib.sha256()
    # their source files, found without importing them (triton_attention imports triton at module level, absent
    # on a machine that builds only; the build's plugin registration then says so in one line)
    for mod in ("edge.runtimes.plugins.tensorrt_plugin", "edge.runtimes.plugins.triton_attention"):
        spec = importlib.util.find_spec(mod)
        h.update(Path(spec.origin if spec is not None and spec.origin else "").read_bytes())
    return {PLUGIN_OPS[op]: h.hexdigest() for op in sorted(used)}


def _use_timing_cache(config: Any, blob: bytes) -> bool:
    """Whether ``config`` took a timing cache made from ``blob``: a corrupt or foreign blob may come back as no
    cache at all (None) rather than one ``set_timing_cache`` refuses."""
    try:
        cache = config.create_timing_cache(blob)
        return cache is not None and bool(config.set_timing_cache(cache, ignore_mismatch=False))
    except (TypeError, RuntimeError):
        return False


def _register_plugins(trt: Any, plugins: dict[str, str]) -> None:
    trt.init_libnvinfer_plugins(_logger(trt), "")
    if not plugins:
        return
    if not choices_for(trt.__version__).python_plugins:
        raise BackendUnavailable(f"TensorRT {trt.__version__} has no tensorrt.plugin (needs >= 10.7) for "
                                 f"{', '.join(plugins)}: re-export with --attention decomposed")
    from edge.runtimes.plugins.tensorrt_plugin import register

    register()


def _progress_monitor(trt: Any, callback: Callable[[str], None]) -> Any:
    """An ``IProgressMonitor`` that reports phases and steps to ``callback(text)`` (built lazily: the
    base class comes from tensorrt)."""

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.steps: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self.steps[phase_name] = num_steps
            callback(f"{phase_name} (0/{num_steps})")

        def step_complete(self, phase_name: str, step: int) -> bool:
            callback(f"{phase_name} ({step + 1}/{self.steps.get(phase_name, '?')})")
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            callback(f"{phase_name} done")

    return Monitor()


def engine_profile(bundle: Any, graph: str, dims: dict[str, tuple[int, int, int]] | None = None,
                   front: Any = None) -> dict[str, dict[str, list[int]]]:
    """The optimization profile of ``graph``'s engine; with ``front`` (an ``ImageInput``) its image input is
    the camera's uint8 [1, H, W, 3], H and W ranging over ``dims`` or :data:`DEFAULT_CAMERA`."""
    io = bundle.graph_io(graph)
    if front is None:  # camera ranges are for the graphs with a front (one `edge build` run builds both kinds)
        return profile_shapes(io, {k: v for k, v in (dims or {}).items() if k not in DEFAULT_CAMERA},
                              bundle.manifest.get("dynamic_dims"))
    from edge.runtimes.front import camera_io

    return profile_shapes(camera_io(io, front), {**DEFAULT_CAMERA, **(dims or {})},
                          bundle.manifest.get("dynamic_dims"))


def _front_onnx(onnx_path: Path, front: Any) -> bytes:
    """The graph's ONNX with the camera front TensorRT can parse (``float_resize``), serialized; its
    external weights stay references, resolved by the parser beside ``onnx_path``."""
    import onnx

    from edge.runtimes.front import onnx_front

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as e:
        raise BundleError(f"{onnx_path}: not a readable ONNX model ({first_line(e)})") from None
    try:
        return onnx_front(model, front, float_resize=True).SerializeToString()
    except BundleError as e:
        raise BundleError(f"{onnx_path}: {e}") from None


def _wants_tf32(trt: Any, precision: str) -> bool:
    """Whether an engine of ``precision`` built by this TensorRT may use TF32 for its fp32 math: not an fp32
    one (``BuilderFlag.TF32`` is on by default and gives fp32 Conv/MatMul a 10-bit mantissa on Ampere and
    later), unless this TensorRT has no such flag to clear."""
    return precision != "fp32" or getattr(getattr(trt, "BuilderFlag", None), "TF32", None) is None


def _allow_tf32(trt: Any, config: Any, precision: str) -> bool:
    """Clear ``BuilderFlag.TF32`` on ``config`` where :func:`_wants_tf32` says so; returns whether TF32 stays
    allowed (the engine record's ``tf32``)."""
    if _wants_tf32(trt, precision):
        return True
    config.clear_flag(trt.BuilderFlag.TF32)
    return False


def _add_profile(builder: Any, config: Any, network: Any, prof: Mapping[str, Mapping[str, list[int]]],
                 where: str) -> None:
    """Add ``prof`` as the build's one optimization profile, each refusal one line starting with ``where``.

    Its names are checked against the parsed network's inputs first: TensorRT takes a profile for a name the
    network lacks without a word (``add_optimization_profile`` returns -1 only for a profile that is invalid
    in itself) and fails later, as ``build_serialized_network`` returning None.
    """
    inputs = [network.get_input(i).name for i in range(network.num_inputs)]
    unknown = [name for name in prof if name not in inputs]
    if unknown:
        raise ExportError(f"{where}: the optimization profile names input '{unknown[0]}', which the parsed network "
                          f"does not have (its inputs: {', '.join(inputs) or 'none'})")
    profile = builder.create_optimization_profile()
    for name, r in prof.items():
        try:
            profile.set_shape(name, r["min"], r["opt"], r["max"])
        except RuntimeError as e:  # the bindings raise for min/opt/max that are inconsistent with each other
            raise ExportError(f"{where} refused the shapes of input '{name}': min {list(r['min'])}, opt "
                              f"{list(r['opt'])}, max {list(r['max'])} ({first_line(e)})") from None
    if config.add_optimization_profile(profile) < 0:  # -1: the profile is invalid (e.g. an input left unset)
        raise ExportError(f"{where} refused the optimization profile {dict(prof)}")


def build_engine(bundle: Any, *, graph: str | None = None, precision: str = "fp16",
                 dims: dict[str, tuple[int, int, int]] | None = None, workspace_mb: int = 2048,
                 timing_cache: str | os.PathLike[str] | None = None, cuda_impl: str | None = None,
                 progress: Callable[[str], None] | None = None, force: bool = False,
                 front: Any = None, verify: Callable[[Path, EngineRecord], None] | None = None,
                 ) -> tuple[EngineRecord, bool]:
    """Build (or reuse) the engine for ``graph`` at ``precision`` and add it to the bundle.

    ``verify(engine_path, record)`` runs on a newly built engine before it enters the bundle (from a temporary
    file outside it); when it raises, the bundle is unchanged, so a ``force`` rebuild that fails it keeps the
    engine it would have replaced. A reused engine is returned as it is (the caller checks it).

    Returns (record, reused). The engine is reused when the bundle already holds one whose record
    matches this device, the source ONNX, the plugins, the profile and the front, unless ``force``.
    ``front`` (an ``ImageInput`` of this graph): the engine takes camera bytes for that input and
    resizes and normalises them itself (:func:`edge.runtimes.front.onnx_front` with ``float_resize``);
    the camera size is the profile's range of ``camera_height`` / ``camera_width`` (``dims``).
    """
    from edge.bundle import Bundle

    trt = _trt()
    from edge.runtimes.cuda_mem import get_cuda

    cuda = get_cuda(cuda_impl)
    b = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    graph = graph or b.default_graph
    src = onnx_for(b, graph, precision)
    onnx_path = b.file(src["file"])
    onnx_sha = b.manifest["files"][src["file"]]["sha256"]
    plugins = plugin_hashes(onnx_path)
    dev = device_facts(trt, cuda)
    prof = engine_profile(b, graph, dims, front)
    want_front = front.to_dict() if front is not None else {}
    if not force:
        for art in find_engines(b, graph, precision):
            rec = _read_record(b, art)
            if (not mismatches(rec, dev, onnx_sha, plugins) and rec.profile == prof and rec.front == want_front
                    and rec.tf32 == _wants_tf32(trt, precision)):
                return rec, True
    model = _front_onnx(onnx_path, front) if front is not None else None
    ch = choices_for(dev["tensorrt"])
    _register_plugins(trt, plugins)
    logger = _logger(trt)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if ch.strongly_typed_flag else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    # from the file, or the front + graph from memory with the file's path (its external weights are found
    # next to it either way)
    parsed = parser.parse(model, str(onnx_path)) if model is not None else parser.parse_from_file(str(onnx_path))
    if not parsed:
        errs = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ExportError(f"{onnx_path}: TensorRT {dev['tensorrt']} cannot parse it: "
                          f"{errs[0].splitlines()[0] if errs else 'unknown error'}"
                          f"{f' (+{len(errs) - 1} more)' if len(errs) > 1 else ''}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    tf32 = _allow_tf32(trt, config, precision)
    _add_profile(builder, config, network, prof, f"{onnx_path}: TensorRT {dev['tensorrt']}")
    cache_path = Path(timing_cache) if timing_cache else None
    cache_blob = cache_path.read_bytes() if cache_path is not None and cache_path.is_file() else b""
    if not _use_timing_cache(config, cache_blob) and cache_blob:
        # a cache from another GPU / TensorRT: start from an empty one (it is rewritten after the build)
        _use_timing_cache(config, b"")
    if progress is not None and hasattr(trt, "IProgressMonitor"):
        config.progress_monitor = _progress_monitor(trt, progress)
    t0 = time.perf_counter()
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise ExportError(f"{onnx_path}: TensorRT {dev['tensorrt']} failed to build a {precision} engine "
                          "(see the TensorRT log above)")
    build_s = time.perf_counter() - t0
    rec = EngineRecord(graph=graph, precision=precision, onnx_file=src["file"], onnx_sha256=onnx_sha,
                       tensorrt=dev["tensorrt"], gpu=dev["gpu"], compute_capability=dev["compute_capability"],
                       cuda_runtime=dev.get("cuda_runtime", ""), cuda_driver=dev.get("cuda_driver", ""),
                       l4t=dev.get("l4t", ""), plugins=plugins, profile=prof, strongly_typed=True,
                       workspace_mb=int(workspace_mb), build_s=round(build_s, 2), front=want_front, tf32=tf32)
    data = bytes(memoryview(blob))
    if verify is not None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="edge-engine-") as tmp:
            path = Path(tmp) / "engine.plan"
            path.write_bytes(data)
            verify(path, rec)
    add_engine(b, rec, data)
    if cache_path is not None:  # best effort, after the engine is safe: a cache is only a speed-up
        try:
            from edge.files import atomic_write_bytes

            cache = config.get_timing_cache()
            if cache is not None:
                atomic_write_bytes(cache_path, bytes(memoryview(cache.serialize())))
        except (OSError, EdgeError) as e:
            if progress is not None:
                progress(f"timing cache not saved ({e})")
    return rec, False


def add_engine(bundle: Any, rec: EngineRecord, data: bytes) -> Any:
    """Write the engine + record into the bundle and list them in the manifest, atomically.

    Files first (temp name + rename each), then the manifest (temp + rename): a crash in between
    leaves an unlisted file, never a manifest that lists a missing or partial engine. An engine of
    the same graph, precision and key replaces the old entry.
    """
    from edge.bundle import Bundle, drop_artifact, rewrite_manifest
    from edge.files import atomic_write_bytes, atomic_write_text, inside, sha256_file

    engine_file, record_file = engine_paths(rec)
    # a rebuild gets new file names, so the files the manifest lists are never overwritten in place
    stamp = f".{time.time_ns():x}"
    engine_file = engine_file.replace(".plan", f"{stamp}.plan")
    record_file = record_file.replace(".json", f"{stamp}.json")
    from edge.manifest_schema import check_rel

    where = str(Path(bundle.path) / "manifest.json")
    check_rel(engine_file, where)  # the names come from the graph's name: never a path out of the bundle
    check_rel(record_file, where)
    rec.engine_file = engine_file
    rec.engine_sha256 = hashlib.sha256(data).hexdigest()
    root = Path(bundle.path)
    (root / "engines").mkdir(exist_ok=True)
    if inside(root, engine_file) is None:  # an engines/ link out of the bundle: the engine would land elsewhere
        raise BundleError(f"{root / 'engines'}: a link out of the bundle; engines are written inside it (remove the "
                          "link)")
    atomic_write_bytes(root / engine_file, data)
    atomic_write_text(root / record_file, rec.to_json())
    m = json.loads((root / "manifest.json").read_text())
    for f, role in ((engine_file, "tensorrt_engine"), (record_file, "tensorrt_record")):
        m["files"][f] = {"sha256": sha256_file(root / f), "size": (root / f).stat().st_size, "role": role}
    name = engine_artifact_name(rec)
    old_files = drop_artifact(m, name)
    for gone in getattr(bundle, "broken_engines", {}):  # cache entries whose files were missing or corrupt: dropped
        old_files += drop_artifact(m, gone)
    batch = {tuple(r["max"][:1]) for r in rec.profile.values()}
    m["artifacts"].append({"name": name, "format": "tensorrt_engine", "file": engine_file,
                           "extra_files": [record_file], "graph": rec.graph, "precision": rec.precision,
                           "derived_from": rec.onnx_file, "device": f"{rec.gpu} sm {rec.compute_capability}",
                           "tensorrt": rec.tensorrt,
                           # a plugin engine needs our Python plugin at run time (not in tritonserver)
                           "attention": "plugin" if rec.plugins else m.get("attention", {}).get("mode", "decomposed"),
                           **({"preprocess": "engine"} if rec.front else {}),
                           **({"max_batch": batch.pop()[0]} if len(batch) == 1 and () not in batch else {})})
    rewrite_manifest(root, m)
    for f in old_files:  # only now that the manifest no longer lists them; never through a link out of the bundle
        if (p := inside(root, f)) is not None:
            p.unlink(missing_ok=True)
    return Bundle.load(root)


def engine_artifact_name(rec: EngineRecord) -> str:
    """The manifest name of ``rec``'s engine (one per graph, precision and cache key)."""
    return f"tensorrt-{rec.graph}-{rec.precision}-{rec.key()}"


def remove_engine(bundle: Any, name: str) -> Any:
    """Take engine artifact ``name`` and its files out of the bundle: the manifest first (temp + rename),
    then the files, so a crash in between leaves unlisted files, never a listed missing one."""
    from edge.bundle import Bundle, drop_artifact, rewrite_manifest
    from edge.files import inside

    root = Path(bundle.path)
    m = json.loads((root / "manifest.json").read_text())
    files = drop_artifact(m, name)
    for gone in getattr(bundle, "broken_engines", {}):  # as add_engine does
        files += drop_artifact(m, gone)
    rewrite_manifest(root, m)
    for f in files:  # never through a link out of the bundle (a broken engine's may be one)
        if (p := inside(root, f)) is not None:
            p.unlink(missing_ok=True)
    return Bundle.load(root)


#: the largest engine record read (one is a few KB: the engine's key, shapes and the build's settings)
RECORD_MAX_BYTES = 16 << 20


def _read_record(bundle: Any, art: Mapping[str, Any]) -> EngineRecord:
    files = list(art.get("extra_files", []))
    if not files:
        raise BundleError(f"{bundle.path}: engine '{art.get('name')}' has no record file")
    path = bundle.file(files[0])
    try:
        if (size := path.stat().st_size) > RECORD_MAX_BYTES:  # read whole: `edge run` loads bundles unverified
            raise BundleError(f"{path}: {size} bytes, over the {RECORD_MAX_BYTES >> 20} MiB an engine record may be")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BundleError(f"{path}: corrupt engine record (not UTF-8 text)") from None
    except OSError as e:
        raise BundleError(f"{path}: cannot read ({e.strerror})") from None
    return EngineRecord.from_json(text, where=str(path))


def select_engine(bundle: Any, graph: str, precision: str | None, dev: dict[str, Any],
                  artifact: str | None = None, front: Any = None) -> tuple[dict[str, Any], EngineRecord]:
    """The engine artifact valid on ``dev`` (and preprocessing camera frames itself exactly when ``front``
    is given); else a one-line BundleError saying to run ``edge build``."""
    arts = find_engines(bundle, graph, precision)
    if artifact is not None:
        arts = [a for a in arts if a.get("name") == artifact]
    # the manifest marks engines with a front; whether it is this front, the record says (below)
    arts = [a for a in arts if (a.get("preprocess") == "engine") == (front is not None)]
    prec = precision or "fp16"
    how = (f"run `edge build {bundle.path} --backend tensorrt --precision {prec}"
           f"{' --preprocess engine' if front is not None else ''}` on this device")
    if not arts:
        raise BundleError(f"{bundle.path}: no TensorRT engine for graph '{graph}'"
                          f"{f' at {precision}' if precision else ''}"
                          f"{' that preprocesses camera frames' if front is not None else ''}: {how}")
    reasons = []
    for art in arts:
        rec = _read_record(bundle, art)
        src_sha = bundle.manifest["files"].get(rec.onnx_file, {}).get("sha256")
        why = mismatches(rec, dev, src_sha, None)
        if front is not None and rec.front != front.to_dict():
            why.append(f"its camera preprocessing ({rec.front.get('input')} at {rec.front.get('size_hw')}) is not "
                       f"this bundle's ({front.input} at {list(front.size_hw)})")
        if not why:
            return art, rec
        reasons.append(f"{art['name']}: {why[0]}")
    raise BundleError(f"{bundle.path}: no TensorRT engine here fits ({reasons[0]}"
                      f"{f'; +{len(reasons) - 1} more' if len(reasons) > 1 else ''}): {how}")


class TrtRuntime(BaseRuntime):
    """One engine, one execution context, one stream; buffers sized for the profile's max shapes."""

    backend = "tensorrt"

    def __init__(self, engine_path: Path, record: EngineRecord, io: IOSpec, *, cuda_impl: str | None = None) -> None:
        if record.front:  # the engine preprocesses camera frames: that input takes their bytes
            from edge.models.contract import ImageInput
            from edge.runtimes.front import camera_io

            io = camera_io(io, ImageInput.from_dict(record.front))
        super().__init__(io)
        trt = _trt()
        from edge.runtimes.cuda_mem import get_cuda

        self.trt, self.record, self.engine_path = trt, record, engine_path
        self.cuda = get_cuda(cuda_impl)
        _register_plugins(trt, record.plugins)
        self._rt = trt.Runtime(_logger(trt))
        self.engine = self._rt.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise BundleError(f"{engine_path}: TensorRT could not deserialize the engine (see its log): "
                              f"run `edge build` again on this device")
        self.context = self.engine.create_execution_context()
        if self.context is None:  # e.g. no device memory left for its activations
            raise EdgeError(f"{engine_path}: TensorRT could not create an execution context (out of device "
                            "memory? see its log)")
        self.stream = self.cuda.stream()
        self._calls = threading.Lock()
        self._dev: dict[str, int] = {}
        self._host: dict[str, np.ndarray] = {}
        try:
            self._allocate(engine_path, io)
        except BaseException:
            self.close()  # free what was allocated before the failure
            raise

    def _allocate(self, engine_path: Path, io: IOSpec) -> None:
        trt = self.trt
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        want = set(io.input_names) | set(io.output_names)
        if set(names) != want:
            raise BundleError(f"{engine_path}: engine tensors {sorted(names)} differ from the IOSpec {sorted(want)}")
        for name in names:
            shape = self._max_shape(name)
            if any(d < 0 for d in shape):
                raise BundleError(f"{engine_path}: tensor '{name}' has a data-dependent shape {shape}, which this "
                                  "runtime does not support")
            try:
                dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            except TypeError:
                raise BundleError(f"{engine_path}: tensor '{name}' has type {self.engine.get_tensor_dtype(name)}, "
                                  "which numpy cannot hold; export with fp32/fp16 I/O") from None
            self._host[name] = self.cuda.host_empty(tuple(shape), dtype)
            self._dev[name] = self.cuda.malloc(int(np.prod(shape)) * dtype.itemsize)
            # False (not an exception) for a name the engine lacks or an address it cannot take: unchecked, it
            # surfaced only as a failed execute_async_v3
            if not self.context.set_tensor_address(name, self._dev[name]):
                raise EdgeError(f"{engine_path}: TensorRT refused the device address of tensor '{name}' "
                                "(set_tensor_address returned False; see the TensorRT log)")

    def _max_shape(self, name: str) -> list[int]:
        if name in self.record.profile:
            return list(self.record.profile[name]["max"])
        # outputs: their shape at the max input shapes
        for inp, r in self.record.profile.items():
            self._set_input_shape(inp, r["max"])
        return [int(d) for d in self.context.get_tensor_shape(name)]

    def _set_input_shape(self, name: str, shape: Sequence[int]) -> None:
        """``set_input_shape``, whose False (a shape outside the engine's profile, another rank) would otherwise
        surface only as a failed execute_async_v3, as one line naming the input and the shape."""
        if not self.context.set_input_shape(name, shape):
            raise EdgeError(f"{self.engine_path}: TensorRT refused shape {[int(d) for d in shape]} for input "
                            f"'{name}' (set_input_shape returned False; see the TensorRT log)")

    def submit(self, feeds: Mapping[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
        """Enqueue copies + inference on the stream (no wait); returns the output shapes."""
        self.io.validate_feeds(feeds)
        check_feed_in_profile(self.record.profile, dict(feeds))
        queued = False
        try:
            for t in self.io.inputs:
                x = np.ascontiguousarray(feeds[t.name])
                host = self._host[t.name].reshape(-1)[: x.size].reshape(x.shape)
                host[...] = x
                self._set_input_shape(t.name, x.shape)
                self.cuda.htod_async(self._dev[t.name], host, self.stream)
                queued = True
            if not self.context.execute_async_v3(self.cuda.stream_handle(self.stream)):
                raise EdgeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
            shapes = {}
            for t in self.io.outputs:
                shape = tuple(int(d) for d in self.context.get_tensor_shape(t.name))
                host = self._host[t.name].reshape(-1)[: int(np.prod(shape))].reshape(shape)
                self.cuda.dtoh_async(host, self._dev[t.name], self.stream)
                shapes[t.name] = shape
        except BaseException:
            if queued:  # copies may still read the pinned buffers the next call (or close) reuses
                self._drain()
            raise
        return shapes

    def _drain(self) -> None:
        """Wait for whatever is queued on the stream; errors here are not the caller's (best effort)."""
        try:
            self.cuda.synchronize(self.stream)
        except Exception:
            log.debug("stream synchronize failed", exc_info=True)

    def wait(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
        """Wait for the stream and return copies of the outputs (the pinned buffers are reused)."""
        self.cuda.synchronize(self.stream)
        return {k: self._host[k].reshape(-1)[: int(np.prod(s))].reshape(s).copy() for k, s in shapes.items()}

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._calls:  # TensorRT: no two threads in one execution context; the pinned buffers are shared too
            return self.wait(self.submit(feeds))

    def close(self) -> None:
        if self._closed:
            return
        self._drain()  # queued copies and kernels must be done before what they read and write is freed
        self.context = None
        for ptr in self._dev.values():
            self.cuda.free(ptr)
        for arr in self._host.values():
            self.cuda.host_free(arr)
        self.cuda.destroy_stream(self.stream)
        self._dev.clear()
        self._host.clear()
        self.engine = None
        super().close()


def load(bundle: Any, artifact: Mapping[str, Any], *, graph: str, cuda: str | None = None,
         precision: str | None = None, front: Any = None, **_: Any) -> TrtRuntime:
    """Registry entry: the engine for this device (checked against its record) as a Runtime; with
    ``front`` (an ``ImageInput``) the one built with ``--preprocess engine``, taking camera bytes."""
    trt = _trt()
    from edge.runtimes.cuda_mem import get_cuda

    dev = device_facts(trt, get_cuda(cuda))
    # the artifact picked for this graph may be the other kind (with / without camera preprocessing): then the
    # graph's engine of the kind asked for, by the same rules
    name = artifact.get("name") if (artifact.get("preprocess") == "engine") == (front is not None) else None
    art, rec = select_engine(bundle, graph, artifact.get("precision") or precision, dev, name, front=front)
    return TrtRuntime(bundle.file(art["file"]), rec, bundle.graph_io(graph), cuda_impl=cuda)


def _attention() -> tuple[str, str]:
    """The form this TensorRT's ONNX parser takes (:func:`~edge.runtimes.trt_engine.choices_for`)."""
    from edge.runtimes.trt_engine import installed_version

    v = installed_version()
    if v is None:
        return "decomposed", "TensorRT (not installed) < 10.14 cannot parse opset-23 Attention"
    ch = choices_for(v)
    if ch.attention_mode == "decomposed":
        return "decomposed", f"TensorRT {v} < 10.14 cannot parse opset-23 Attention"
    return "plugin", f"TensorRT {v} runs the EdgeAttention plugin"


# image_front: engines built with `edge build --preprocess engine` take camera bytes; `--preprocess auto` takes
# them where such an engine was built (edge.program.image_fronts), not by default: it needs that build first
BACKEND = Backend("tensorrt", "NVIDIA TensorRT (engines built on the target)", ("tensorrt_engine",), _available,
                  load, attention=_attention, build=build_engine, builds="TensorRT engines", image_front=True)
