"""Everything about TensorRT engines that does not need TensorRT: versions, profiles, records.

TensorRT engines are valid only for the TensorRT version, GPU (compute capability) and plugins they
were built with, and only for the ONNX they came from. We build on the target, cache the engine in
the bundle under a key made of exactly those facts, keep a sidecar record of them, and refuse an
engine whose record does not match this device with a one-line message that says what to run,
instead of letting ``deserialize_cuda_engine`` crash or, worse, run a stale graph. This module is
pure Python so every rule here is unit-tested on machines without a GPU.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import typing
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edge.errors import BundleError, SpecError, first_line
from edge.spec import IOSpec

RECORD_SCHEMA = 1
#: deepest nesting of lists/objects a record value may have (its own fields are at most 4 deep)
RECORD_DEPTH = 32
#: default range of a dynamic batch dim when neither the manifest nor the CLI gives one
DEFAULT_BATCH = (1, 1, 8)
#: camera sizes an engine that preprocesses camera frames takes when the CLI gives no range (``--dim
#: camera_height=... --dim camera_width=...``): anything from a thumbnail to 4K, tuned for 1280x720
DEFAULT_CAMERA = {"camera_height": (16, 720, 2160), "camera_width": (16, 1280, 3840)}
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True, order=True)
class TrtVersion:
    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> TrtVersion:
        parts = []
        for p in str(text).split(".")[:3]:
            digits = "".join(ch for ch in p if ch.isdigit())
            parts.append(int(digits) if digits else 0)
        while len(parts) < 3:
            parts.append(0)
        if parts[0] < 1:
            raise ValueError(f"not a TensorRT version: {text!r}")
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class TrtChoices:
    """What a TensorRT version can do, and so how we build for it (tested for 10.3, 10.14, 11.x)."""

    version: TrtVersion
    strongly_typed_flag: bool  # 10.x: pass NetworkDefinitionCreationFlag.STRONGLY_TYPED; 11: always on
    attention_mode: str        # ONNX attention form its parser takes: "decomposed" (< 10.14) or "plugin"
    native_attention: bool     # >= 10.14 imports opset-23 Attention itself
    python_plugins: bool       # tensorrt.plugin (quickly deployable plugins) exists (>= 10.7)
    builder_precision_flags: bool  # BuilderFlag.FP16/INT8 exist (removed in 11: precision is in the ONNX)
    implicit_int8: bool        # IInt8Calibrator exists (removed in 11: INT8 is QDQ only)


def choices_for(version: TrtVersion | str) -> TrtChoices:
    v = version if isinstance(version, TrtVersion) else TrtVersion.parse(version)
    eleven = v.major >= 11
    return TrtChoices(
        version=v,
        strongly_typed_flag=not eleven,
        attention_mode="plugin" if (v.major, v.minor) >= (10, 14) else "decomposed",
        native_attention=(v.major, v.minor) >= (10, 14),
        python_plugins=(v.major, v.minor) >= (10, 7),
        builder_precision_flags=not eleven,
        implicit_int8=not eleven,
    )


def installed_version() -> TrtVersion | None:
    """The TensorRT version installed here (from its distribution metadata; nothing is imported)."""
    from edge.export.attention_modes import dist_version

    for dist in ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt_libs"):
        v = dist_version(dist)
        if v is not None:
            return TrtVersion(*([*list(v), 0, 0])[:3])
    return None


# ------------------------------------------------------------------------------------ profiles
def parse_dim_ranges(items: list[str] | None) -> dict[str, tuple[int, int, int]]:
    """``["batch=1:4:8", "points=1024"]`` -> {"batch": (1, 4, 8), "points": (1024, 1024, 1024)}."""
    out: dict[str, tuple[int, int, int]] = {}
    for item in items or []:
        name, sep, rng = item.partition("=")
        vals = rng.split(":")
        try:
            nums = [int(v) for v in vals]
        except ValueError:
            nums = []
        if not sep or not name or len(nums) not in (1, 3):
            raise SpecError(f"--dim {item!r}: use NAME=MIN:OPT:MAX or NAME=VALUE, e.g. batch=1:4:8")
        lo, opt, hi = (nums * 3)[:3] if len(nums) == 1 else nums
        if not 1 <= lo <= opt <= hi:
            raise SpecError(f"--dim {item!r}: need 1 <= MIN <= OPT <= MAX")
        if name in out:  # the last one silently won
            raise SpecError(f"--dim {name}: given twice; give each dimension once")
        out[name] = (lo, opt, hi)
    return out


def profile_shapes(io: IOSpec, dims: dict[str, tuple[int, int, int]] | None = None,
                   manifest_dims: dict[str, Any] | None = None) -> dict[str, dict[str, list[int]]]:
    """One optimization profile from the IOSpec: input -> {"min", "opt", "max"} shapes.

    Fixed dims are copied; a named dim takes its range from ``dims`` (CLI), else from the manifest's
    ``dynamic_dims`` ({name: [min, opt, max]}), else ``batch`` gets DEFAULT_BATCH; any other named dim
    without a range is a SpecError naming the input and the dim (TensorRT needs bounds for each).
    """
    ranges: dict[str, tuple[int, int, int]] = {}
    for k, v in (manifest_dims or {}).items():
        ranges[k] = tuple(int(x) for x in v)  # type: ignore[assignment]
    ranges.update(dims or {})
    used = set()
    prof: dict[str, dict[str, list[int]]] = {}
    for t in io.inputs:
        shapes: dict[str, list[int]] = {"min": [], "opt": [], "max": []}
        for d in t.shape:
            if isinstance(d, int):
                r = (d, d, d)
            elif d in ranges:
                r = ranges[d]
                used.add(d)
            elif d == "batch":
                r = DEFAULT_BATCH
            else:
                raise SpecError(f"input '{t.name}' has dynamic dim '{d}' with no range: pass --dim {d}=MIN:OPT:MAX")
            for key, val in zip(("min", "opt", "max"), r):
                shapes[key].append(int(val))
        prof[t.name] = shapes
    unknown = set(dims or {}) - used - {"batch"}
    if unknown:
        names = sorted(dim_names(io))
        raise SpecError(f"--dim {', '.join(sorted(unknown))}: the model has no such dynamic dim (it has: "
                        f"{', '.join(names) or 'none'})")
    return prof


def dim_names(io: IOSpec) -> set[str]:
    """The named (dynamic) dims of an IOSpec's inputs."""
    return {d for t in io.inputs for d in t.dynamic_dims.values()}


def check_feed_in_profile(profile: dict[str, dict[str, list[int]]], feeds: dict[str, Any]) -> None:
    """SpecError naming the input when a feed's shape is outside the engine's profile."""
    for name, rng in profile.items():
        shape = list(feeds[name].shape)
        lo, hi = rng["min"], rng["max"]
        if len(shape) != len(lo) or any(s < a or s > b for s, a, b in zip(shape, lo, hi)):
            raise SpecError(f"input '{name}' shape {shape} is outside the engine's profile (min {lo}, max {hi}); "
                            "rebuild with a wider --dim range")


# ------------------------------------------------------------------------------------ records
@dataclass
class EngineRecord:
    """Sidecar of one engine: what it was built from and for. Compared against the device at load."""

    graph: str
    precision: str
    onnx_file: str
    onnx_sha256: str
    tensorrt: str
    gpu: str
    compute_capability: str
    cuda_runtime: str = ""
    cuda_driver: str = ""
    l4t: str = ""
    plugins: dict[str, str] = field(default_factory=dict)  # plugin id -> sha256 of its implementation
    profile: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    strongly_typed: bool = True
    #: whether fp32 layers may run in TF32 (``BuilderFlag.TF32``, on by default): False for fp32 engines, whose
    #: build clears it; records written before this field were all built with it on
    tf32: bool = True
    workspace_mb: int = 0
    engine_file: str = ""
    engine_sha256: str = ""
    build_s: float = 0.0
    host: str = field(default_factory=platform.node)
    schema: int = RECORD_SCHEMA
    #: the camera image input this engine preprocesses itself (``ImageInput.to_dict()``; {} = none): its
    #: input then takes uint8 [1, H, W, 3] BGR frames (:mod:`edge.runtimes.front`)
    front: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        """Cache key: the facts that make an engine valid (not the build time or the host)."""
        facts = {k: getattr(self, k) for k in ("graph", "precision", "onnx_sha256", "tensorrt",
                                                "compute_capability", "gpu", "plugins", "profile", "l4t")}
        if self.front:  # only then, so the keys of engines without one stay what they were
            facts["front"] = self.front
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:12]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "engine record") -> EngineRecord:
        """Parse a record file; anything malformed is a one-line BundleError naming ``where``.

        The record sits beside a cached engine where anyone may edit or truncate it, and its fields are
        used as strings, dicts and lists far from here (``mismatches``, ``key``): a field of the wrong
        JSON type would surface there as an AttributeError, so every field is checked against the
        dataclass annotation now. Unknown keys are ignored (a newer writer may add fields).
        """
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise BundleError(f"{where}: corrupt engine record ({e.msg})") from None
        except (ValueError, RecursionError) as e:  # an int over 4300 digits; nesting deeper than the stack
            raise BundleError(f"{where}: corrupt engine record ({type(e).__name__}: {first_line(e)})") from None
        if not isinstance(d, dict) or d.get("schema") != RECORD_SCHEMA:
            raise BundleError(f"{where}: not an engine record this edge-deploy understands")
        types = _record_types()
        missing = [f.name for f in fields(cls)
                   if f.default is MISSING and f.default_factory is MISSING and f.name not in d]
        if missing:
            raise BundleError(f"{where}: engine record lacks {missing}")
        for k, tp in types.items():
            bad = _misfit(d[k], tp, k) if k in d else None
            if bad is not None:
                raise BundleError(f"{where}: engine record field '{k}' must be {_json_type_name(tp)}; "
                                  f"{bad[0][:80]} is {bad[1]}")
        for name, r in d.get("profile", {}).items():  # each input's range is used as r["min"] ... r["max"]
            if set(r) != {"min", "opt", "max"} or len({len(v) for v in r.values()}) != 1:
                raise BundleError(f"{where}: engine record field 'profile' needs min, opt and max of one rank "
                                  f"for '{name[:40]}'")
        return cls(**{k: v for k, v in d.items() if k in types})


@functools.cache
def _record_types() -> dict[str, Any]:
    """EngineRecord's field annotations, resolved (they are strings under ``from __future__``)."""
    hints = typing.get_type_hints(EngineRecord)
    return {f.name: hints[f.name] for f in fields(EngineRecord)}


def _misfit(value: Any, tp: Any, at: str) -> tuple[str, str] | None:
    """Where a ``json.loads`` value breaks annotation ``tp``: (path of the element, what it is), or None.

    A bool is not an int (JSON tells them apart and ``mismatches`` would compare True with 1); an int
    is a number (some writers drop the ``.0``). A value the annotation leaves open (``Any``) may still
    not be nested deeper than RECORD_DEPTH: ``to_json``'s ``asdict`` recurses in Python.
    """
    if tp is Any:
        return (at, f"nested deeper than {RECORD_DEPTH}") if _too_deep(value, RECORD_DEPTH) else None
    origin = typing.get_origin(tp)
    if origin is list:
        if not isinstance(value, list):
            return at, _json_kind(value)
        (item,) = typing.get_args(tp)
        return next((m for i, v in enumerate(value) if (m := _misfit(v, item, f"{at}[{i}]"))), None)
    if origin is dict:
        if not isinstance(value, dict):
            return at, _json_kind(value)
        _, item = typing.get_args(tp)  # JSON object keys are always strings
        return next((m for k, v in value.items() if (m := _misfit(v, item, f"{at}[{json.dumps(k)}]"))), None)
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif tp is str:
        ok = isinstance(value, str)
    else:
        raise TypeError(f"EngineRecord: no JSON rule for annotation {tp!r}")  # a new field type needs one here
    return None if ok else (at, _json_kind(value))


def _too_deep(value: Any, limit: int) -> bool:
    """Whether lists/objects nest deeper than ``limit`` (iterative: the value may be ~1000 deep)."""
    stack = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (list, dict)):
            if d >= limit:
                return True
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return False


def _json_type_name(tp: Any) -> str:
    """``dict[str, list[int]]`` -> ``{string: [integer]}``: the expected type in JSON words, for the message."""
    origin = typing.get_origin(tp)
    if origin is list:
        return f"[{_json_type_name(typing.get_args(tp)[0])}]"
    if origin is dict:
        key, item = typing.get_args(tp)
        return f"{{{_json_type_name(key)}: {_json_type_name(item)}}}"
    return {str: "string", int: "integer", float: "number", bool: "true/false"}.get(tp, "any JSON value")


def _json_kind(value: Any) -> str:
    """The JSON type of a parsed value, for the message (nested values are not shown: one line)."""
    for t, name in ((bool, "true/false"), (int, "an integer"), (float, "a number"), (str, "a string"),
                    (list, "a list"), (dict, "an object")):
        if isinstance(value, t):
            return name
    return "null"


def l4t_release(path: str = "/etc/nv_tegra_release") -> str:
    """The Jetson L4T release ("36.4.0") from /etc/nv_tegra_release, "" off-Jetson."""
    try:
        head = Path(path).read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return ""
    # "# R36 (release), REVISION: 4.0, GCID: ..., BOARD: generic, EABI: aarch64, DATE: ..."
    rel, rev = "", ""
    for part in head.replace("#", "").split(","):
        part = part.strip()
        if part.startswith("R") and "(release)" in part:
            rel = part.split()[0][1:]
        elif part.upper().startswith("REVISION:"):
            rev = part.split(":", 1)[1].strip()
    return f"{rel}.{rev}" if rel else ""


def mismatches(record: EngineRecord, device: dict[str, Any], onnx_sha256: str | None = None,
               plugins: dict[str, str] | None = None) -> list[str]:
    """Why ``record``'s engine cannot run on ``device`` (empty = it can).

    Exact: TensorRT version (engines are not portable across versions), GPU name and compute
    capability, L4T release on Jetson, plugin implementation hashes, source ONNX (a re-export makes the
    engine stale). CUDA runtime: major version only (minor updates keep engines loadable).
    """
    why = []
    if record.tensorrt != device.get("tensorrt"):
        why.append(f"built with TensorRT {record.tensorrt}, this is {device.get('tensorrt')}")
    if record.compute_capability != device.get("compute_capability") or record.gpu != device.get("gpu"):
        why.append(f"built for {record.gpu} (sm {record.compute_capability}), this is {device.get('gpu')} "
                   f"(sm {device.get('compute_capability')})")
    if (record.l4t or device.get("l4t")) and record.l4t != device.get("l4t", ""):
        why.append(f"built on L4T {record.l4t or '(none)'}, this is L4T {device.get('l4t') or '(none)'}")
    # the record's cuda_runtime is information, not a key: cuda-python's runtime module is linked against its own
    # CUDA runtime and pycuda reports the CUDA it was compiled for, neither the libcudart TensorRT loads, so a
    # major differing between them refused good engines (cuda-python 13 at build, a pycuda for 12 on the
    # Jetson) and missed real changes; the TensorRT version and the GPU above are what an engine is bound to
    if onnx_sha256 is not None and record.onnx_sha256 != onnx_sha256:
        why.append(f"{record.onnx_file} changed since the build (re-exported)")
    if plugins is not None and record.plugins != plugins:
        differ = {k for k in plugins if record.plugins.get(k) != plugins[k]}
        changed = sorted(set(record.plugins) ^ set(plugins) | differ)
        why.append(f"plugin implementation changed ({', '.join(changed)})")
    return why


def engine_paths(record: EngineRecord) -> tuple[str, str]:
    """Bundle-relative engine and record file names for ``record`` (keyed, so builds never collide)."""
    base = f"engines/{record.graph}.{record.precision}{'.camera' if record.front else ''}.{record.key()}"
    return f"{base}.plan", f"{base}.json"


def onnx_for(bundle: Any, graph: str, precision: str) -> dict[str, Any]:
    """The ONNX artifact an engine of ``precision`` is built from (precision lives in the ONNX graph).

    fp32: the graph's exported ONNX; fp16: the fp16 ONNX (fp32 I/O kept); int8: the symmetric QDQ
    ONNX whose float layers are fp16 where the export kept that form (``preferred_by: ["tensorrt"]``,
    :mod:`edge.calibration.trt_int8`), else the symmetric QDQ ONNX (float layers in fp32: older bundles,
    or a program that missed its budget with fp16). The same files build on TensorRT 10.x (with
    STRONGLY_TYPED) and 11.x.
    """
    if precision not in PRECISIONS:
        raise BundleError(f"--precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    found = []
    for a in bundle.artifacts:
        if a.get("format") != "onnx" or a.get("graph", "full") != graph:
            continue
        if a.get("quantization", {}).get("symmetric") is False:
            continue  # ONNX Runtime's U8S8 form: TensorRT's INT8 needs zero points of 0
        if "tensorrt" in a.get("refused_by", ()):
            continue
        if a.get("precision", "fp32") == precision:
            found.append(a)
    from edge.bundle import for_backend

    found = for_backend(found, "tensorrt")
    if found:
        return dict(found[0])
    have = sorted({a.get("precision", "fp32") for a in bundle.artifacts
                   if a.get("format") == "onnx" and a.get("graph", "full") == graph})
    what = "QDQ INT8 from a calibration set" if precision == "int8" else "FP16 with fp32 I/O"
    hint = f" (export with --precision {precision}: {what})" if precision != "fp32" else ""
    raise BundleError(f"{bundle.path}: no {precision} ONNX for graph '{graph}' (has: {', '.join(have) or 'none'})"
                      f"{hint}")


def find_engines(bundle: Any, graph: str, precision: str | None) -> list[dict[str, Any]]:
    """Engine artifacts in the bundle for ``graph`` (and ``precision`` when given), newest first."""
    arts = [a for a in bundle.artifacts if a.get("format") == "tensorrt_engine" and a.get("graph") == graph
            and (precision is None or a.get("precision") == precision)]
    return list(reversed(arts))


def trtexec_command(bundle: Any, graph: str, precision: str, profile: Mapping[str, Mapping[str, list[int]]],
                    workspace_mb: int) -> str:
    """The ``trtexec`` line that builds the same engine as ``edge build`` (for a machine where only the
    TensorRT tools exist, or to compare): the same ONNX, a strongly typed network (precision lives in the
    ONNX), the same single optimization profile (omitted when every input is static: a dim the graph names gets
    its shapes even when the profile fixes it, since trtexec takes a named dim not given as 1) and workspace, and
    fp32 without TF32."""
    import shlex

    art = onnx_for(bundle, graph, precision)
    parts = ["trtexec", f"--onnx={bundle.path / art['file']}", f"--saveEngine={graph}.{precision}.plan",
             "--stronglyTyped", f"--memPoolSize=workspace:{int(workspace_mb)}M"]
    if precision == "fp32":
        parts.append("--noTF32")  # as edge build's fp32 engines: TF32 is on by default
    # a graph with a named dim takes shapes, fixed ones too (--dim batch=8): trtexec sets an unnamed one to 1
    io = bundle.graph_io(graph)
    dynamic = any(isinstance(d, str) for t in io.inputs for d in t.shape)
    if dynamic or any(p["min"] != p["max"] for p in profile.values()):
        for key, flag in (("min", "--minShapes"), ("opt", "--optShapes"), ("max", "--maxShapes")):
            parts.append(flag + "=" + ",".join(f"{n}:{'x'.join(str(d) for d in p[key])}" for n, p in profile.items()))
    line = " ".join(shlex.quote(p) for p in parts)
    if art.get("attention") == "plugin":  # this file's form (a graph without attention, or a decomposed copy, has none)
        # our EdgeAttention plugin is a Python (tensorrt.plugin) one that edge build registers; trtexec
        # cannot load it, so say so rather than print a line that fails on the first attention node
        line = ("# needs the EdgeAttention plugin, which only edge build registers (Python); for trtexec export "
                "with --attention decomposed (or onnx on TensorRT >= 10.14):\n# " + line)
    return line
