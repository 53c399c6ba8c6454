"""TensorRT backend without TensorRT: version rules, profiles, engine records, the bundle cache, and
the build/run call sequence against a stand-in of the documented ``tensorrt`` API (the real library
cannot be installed here; benchmarks/gpu_check.sh runs the real thing on a GPU machine)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.errors import BackendUnavailable, BundleError, DataError, SpecError
from edge.runtimes import trt_engine as te
from edge.spec import IOSpec, TensorSpec

# ---------------------------------------------------------------------------- version rules


@pytest.mark.parametrize(("ver", "flag", "attn", "plugins", "builder_flags"), [
    ("10.3.0.30", True, "decomposed", False, True),   # JetPack 6
    ("10.7.0", True, "decomposed", True, True),
    ("10.14.1", True, "plugin", True, True),          # imports opset-23 Attention itself
    ("11.0.0", False, "plugin", True, False),         # strongly typed always; no FP16/INT8 flags
    ("11.4.2", False, "plugin", True, False),
])
def test_version_choices(ver: str, flag: bool, attn: str, plugins: bool, builder_flags: bool) -> None:
    c = te.choices_for(ver)
    assert (c.strongly_typed_flag, c.attention_mode, c.python_plugins, c.builder_precision_flags) == \
        (flag, attn, plugins, builder_flags)
    assert c.implicit_int8 == builder_flags and c.native_attention == (attn == "plugin")


@pytest.mark.parametrize(("installed", "mode"), [((10, 3, 0), "decomposed"), ((10, 13, 2), "decomposed"),
                                                 ((10, 14, 0), "plugin"), ((11, 1, 0), "plugin"), (None, "decomposed")])
def test_auto_attention_for_a_tensorrt_target(monkeypatch: pytest.MonkeyPatch, installed: Any, mode: str) -> None:
    from edge.export import attention_modes

    monkeypatch.setattr(attention_modes, "dist_version", lambda dist: installed if dist == "tensorrt" else (1, 32, 0))
    assert attention_modes.resolve_attention("auto", ("tensorrt",))[0] == mode
    assert attention_modes.resolve_attention("auto", ("onnxruntime",))[0] == "plugin"


def test_version_parse() -> None:
    assert str(te.TrtVersion.parse("10.3.0.30")) == "10.3.0"
    assert te.TrtVersion.parse("11.0") == te.TrtVersion(11, 0, 0) > te.TrtVersion.parse("10.16.1")
    with pytest.raises(ValueError):
        te.TrtVersion.parse("abc")


# ---------------------------------------------------------------------------- profiles

IO = IOSpec((TensorSpec("clip", "float32", ("batch", 3, 3, 64, 128)), TensorSpec("pts", "float32", ("batch", "n", 4))),
            (TensorSpec("y", "float32", ("batch", 5)),))


def test_profile_from_iospec_named_dims() -> None:
    prof = te.profile_shapes(IO, te.parse_dim_ranges(["n=1024:4096:16384"]))
    assert prof["clip"] == {"min": [1, 3, 3, 64, 128], "opt": [1, 3, 3, 64, 128], "max": [8, 3, 3, 64, 128]}
    assert prof["pts"] == {"min": [1, 1024, 4], "opt": [1, 4096, 4], "max": [8, 16384, 4]}
    prof = te.profile_shapes(IO, te.parse_dim_ranges(["batch=2:4:16", "n=100"]))
    assert prof["pts"]["min"] == [2, 100, 4] and prof["clip"]["max"][0] == 16
    # the manifest may carry ranges; the CLI wins
    prof = te.profile_shapes(IO, {"batch": (1, 1, 1)}, {"n": [10, 20, 30], "batch": [1, 2, 4]})
    assert prof["pts"] == {"min": [1, 10, 4], "opt": [1, 20, 4], "max": [1, 30, 4]}


@pytest.mark.parametrize(("dims", "needle"), [([], "'n' with no range"), (["m=1:2:3", "n=5"], "no such dynamic dim"),
                                              (["n=4:2:8"], "MIN <= OPT <= MAX"), (["n"], "NAME=MIN:OPT:MAX"),
                                              (["n=a:b:c"], "NAME=MIN:OPT:MAX"), (["n=0"], "1 <= MIN"),
                                              (["n=1", "n=4"], "given twice")])
def test_profile_errors(dims: list[str], needle: str) -> None:
    with pytest.raises(SpecError, match=needle):
        te.profile_shapes(IO, te.parse_dim_ranges(dims))


def test_each_graph_takes_the_dim_ranges_of_its_own_dims() -> None:
    """One `edge build` gives every graph the same --dim ranges: each takes those of its own dims (a graph without
    a dim another has raised 'no such dynamic dim' for it), while one graph's profile, as the build API makes it,
    still refuses a name it lacks; a name no graph has is one line."""
    from edge.cli.build_cmd import dims_per_graph
    from edge.errors import DataError
    from edge.runtimes.tensorrt import engine_profile
    from edge.runtimes.trt_engine import dim_names

    clip_only = IOSpec((IO.inputs[0],), IO.outputs)

    class TwoGraphs:
        def __init__(self) -> None:
            self.manifest: dict = {}

        def graph_io(self, g: str) -> IOSpec:
            return IO if g == "both" else clip_only

    dims = te.parse_dim_ranges(["batch=1:2:4", "n=100:200:300"])
    assert dim_names(IO) == {"batch", "n"} and dim_names(clip_only) == {"batch"}
    mine = dims_per_graph(dims, {"both": dim_names(IO), "clip": dim_names(clip_only)}, {}, "b")
    assert mine == {"both": dims, "clip": {"batch": (1, 2, 4)}}
    assert engine_profile(TwoGraphs(), "clip", mine["clip"])["clip"]["max"][0] == 4
    assert engine_profile(TwoGraphs(), "both", mine["both"])["pts"]["max"] == [4, 300, 4]
    with pytest.raises(SpecError, match="no such dynamic dim"):  # the API: a typo is not ignored
        engine_profile(TwoGraphs(), "clip", {"tokenz": (1, 2, 3)})
    with pytest.raises(DataError, match="--dim tokenz: the graphs built have no such dynamic dim"):
        dims_per_graph({"tokenz": (1, 2, 3)}, {"both": dim_names(IO)}, {}, "b")
    # batch on graphs all built with a camera front (one frame each), though the bundle's batch is dynamic
    with pytest.raises(DataError, match="takes one camera frame"):
        dims_per_graph({"batch": (1, 2, 4)}, {"enc": {"batch"}}, {"enc": {"camera_height", "camera_width"}}, "b")
    with pytest.raises(DataError, match="fixed batch"):
        dims_per_graph({"batch": (1, 2, 4)}, {"enc": set()}, {}, "b")


@pytest.mark.parametrize(("dim", "needle"), [
    ("batch=1:1:4", "fixed batch (exported without --dynamic-batch)"),
    ("tokens=1:2:3", "--dim tokens: the graphs built have no such dynamic dim")])
def test_cli_build_refuses_a_dim_range_no_graph_takes(tiny_clip_bundle: Path, dim: str, needle: str) -> None:
    """A fixed-batch bundle (exported without --dynamic-batch) given --dim batch=...: it was silently ignored (the
    README's example did nothing); one line, exit 2, before TensorRT is needed."""
    r = subprocess.run([sys.executable, "-m", "edge.cli.main", "build", str(tiny_clip_bundle), "--precision", "fp32",
                        "--dim", dim], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cli_build_refuses_an_unknown_cuda_before_tensorrt_is_needed(tiny_clip_bundle: Path) -> None:
    """`--cuda bogus` was only the TensorRT-missing line here (and where TensorRT is, a failure after the build)."""
    r = subprocess.run([sys.executable, "-m", "edge.cli.main", "build", str(tiny_clip_bundle), "--precision", "fp32",
                        "--cuda", "bogus"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--cuda 'bogus': use cuda-python or pycuda" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "trtexec" not in r.stdout


def test_feed_outside_profile_is_a_spec_error() -> None:
    prof = te.profile_shapes(IO, {"n": (16, 32, 64)})
    ok = {"clip": np.zeros((2, 3, 3, 64, 128)), "pts": np.zeros((2, 40, 4))}
    te.check_feed_in_profile(prof, ok)
    with pytest.raises(SpecError, match=r"'pts' shape \[2, 65, 4\] is outside"):
        te.check_feed_in_profile(prof, {**ok, "pts": np.zeros((2, 65, 4))})
    with pytest.raises(SpecError, match="'clip'"):
        te.check_feed_in_profile(prof, {**ok, "clip": np.zeros((9, 3, 3, 64, 128))})


# ---------------------------------------------------------------------------- records

DEV = {"tensorrt": "10.3.0", "gpu": "Orin", "compute_capability": "8.7", "cuda_runtime": "12.6", "l4t": "36.4.0"}


def _record(**kw: Any) -> te.EngineRecord:
    base = dict(graph="full", precision="fp16", onnx_file="model.fp16.onnx", onnx_sha256="a" * 64,
                tensorrt="10.3.0", gpu="Orin", compute_capability="8.7", cuda_runtime="12.6", l4t="36.4.0",
                profile={"x": {"min": [1], "opt": [1], "max": [8]}})
    return te.EngineRecord(**{**base, **kw})


def test_record_roundtrip_and_key() -> None:
    r = _record()
    assert te.EngineRecord.from_json(r.to_json()) == r
    assert r.key() == _record(build_s=99.0, host="other", cuda_driver="540").key()  # not validity facts
    for change in ({"tensorrt": "10.3.1"}, {"compute_capability": "8.6"}, {"onnx_sha256": "b" * 64},
                   {"plugins": {"edge::EdgeAttention": "c" * 64}}, {"precision": "int8"}, {"l4t": "36.3.0"},
                   {"profile": {"x": {"min": [1], "opt": [1], "max": [16]}}}):
        assert _record(**change).key() != r.key(), change
    eng, rec = te.engine_paths(r)
    assert eng == f"engines/full.fp16.{r.key()}.plan" and rec.endswith(".json")
    for bad in ("{", "[]", json.dumps({"schema": 1}), json.dumps({"schema": 99, "graph": "x"})):
        with pytest.raises(BundleError):
            te.EngineRecord.from_json(bad, where="e.json")


def test_mismatches() -> None:
    r = _record()
    assert te.mismatches(r, DEV, "a" * 64, {}) == []
    assert te.mismatches(r, {**DEV, "cuda_runtime": "12.8"}) == []  # CUDA minor updates keep engines
    # nor does the CUDA runtime our binding reports (cuda-python's own, pycuda's compile-time one) decide
    assert te.mismatches(r, {**DEV, "cuda_runtime": "13.0"}) == []
    cases = [({**DEV, "tensorrt": "10.3.1"}, None, None, "TensorRT 10.3.0, this is 10.3.1"),
             ({**DEV, "gpu": "RTX 4090", "compute_capability": "8.9"}, None, None, "RTX 4090"),
             ({**DEV, "l4t": "36.3.0"}, None, None, "L4T"),
             ({**DEV, "l4t": ""}, None, None, "L4T"),
             (DEV, "b" * 64, None, "changed since the build"),
             (DEV, None, {"edge::EdgeAttention": "d" * 64}, "plugin implementation changed")]
    for dev, sha, plugins, needle in cases:
        why = te.mismatches(r, dev, sha, plugins)
        assert len(why) == 1 and needle in why[0], (dev, why)


def test_l4t_release(tmp_path: Path) -> None:
    f = tmp_path / "nv_tegra_release"
    f.write_text("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13\n")
    assert te.l4t_release(str(f)) == "36.4.0"
    assert te.l4t_release(str(tmp_path / "missing")) == ""


# ---------------------------------------------------------------------------- without TensorRT


def test_backend_reports_unavailable_with_reason() -> None:
    from edge.runtimes.registry import get_backend

    ok, why = get_backend("tensorrt").is_available()
    if ok:
        pytest.skip("TensorRT works here")
    assert "tensorrt" in why.lower()


def test_cuda_python_fails_lazily_with_a_reason() -> None:
    from edge.runtimes.cuda_mem import get_cuda

    try:
        api = get_cuda()
    except BackendUnavailable as e:
        assert "cuda" in str(e).lower() and "\n" not in str(e)
    else:
        pytest.skip(f"a GPU is usable here ({api.name})")
    with pytest.raises(BackendUnavailable, match="unknown CUDA implementation"):
        get_cuda("opencl")


def test_cli_build_and_load_without_tensorrt(tiny_bundle: Path, tmp_path: Path) -> None:
    import edge

    r = subprocess.run([sys.executable, "-m", "edge.cli.main", "build", str(tiny_bundle), "--precision", "fp32"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "tensorrt" in r.stderr.lower() and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, "-m", "edge.cli.main", "build", str(tiny_bundle), "--precision", "int8"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no int8 ONNX" in r.stderr and "--precision int8" in r.stderr
    from edge.runtimes.registry import get_backend

    if not get_backend("tensorrt").is_available()[0]:  # said too, or a re-export only leads to that line
        assert "and backend 'tensorrt' is not available here" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    with pytest.raises(BackendUnavailable, match="tensorrt"):
        edge.load(tiny_bundle, backend="tensorrt")


# ---------------------------------------------------------------------------- stand-ins


class FakeCuda:
    """Host memory standing in for device memory: enough to check TrtRuntime's buffer and copy logic."""

    name = "fake"

    def __init__(self) -> None:
        self.mem: dict[int, bytearray] = {}
        self.next = 4096
        self.freed: list[int] = []
        self.events: list[str] = []  # the order of synchronize / free / destroy_stream calls

    def malloc(self, nbytes: int) -> int:
        ptr, self.next = self.next, self.next + nbytes + 256
        self.mem[ptr] = bytearray(nbytes)
        return ptr

    def free(self, ptr: int) -> None:
        self.freed.append(ptr)
        self.events.append("free")

    def host_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return np.empty(shape, dtype)

    def host_free(self, arr: np.ndarray) -> None:
        pass

    def stream(self) -> str:
        return "stream"

    def stream_handle(self, stream: Any) -> int:
        return 77

    def htod_async(self, dst: int, src: np.ndarray, stream: Any) -> None:
        self.mem[dst][: src.nbytes] = src.tobytes()

    def dtoh_async(self, dst: np.ndarray, src: int, stream: Any) -> None:
        dst.reshape(-1).view(np.uint8)[:] = np.frombuffer(bytes(self.mem[src][: dst.nbytes]), np.uint8)

    def synchronize(self, stream: Any) -> None:
        self.events.append("sync")

    def destroy_stream(self, stream: Any) -> None:
        self.events.append("destroy_stream")

    def device(self) -> dict[str, Any]:
        return {"gpu": "Fake GPU", "compute_capability": "8.7", "cuda_runtime": "12.6", "cuda_driver": "12.6"}


def fake_tensorrt(version: str, calls: list[tuple], cuda: FakeCuda) -> types.ModuleType:
    """The subset of the documented tensorrt API our backend calls; records every call. The 'engine'
    doubles its input (the test model is y = 2x)."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version

    class Logger:
        WARNING = 2

        def __init__(self, level: int) -> None:
            calls.append(("logger",))

    class Flag:
        STRONGLY_TYPED = 0

    class Pool:
        WORKSPACE = "workspace"

    class BuilderFlag:
        TF32 = "tf32"

    class Cache:
        def serialize(self) -> bytes:
            return b"timing-cache-v1"

    class Config:
        progress_monitor = None

        def __init__(self) -> None:
            self.profiles: list[Any] = []

        def set_memory_pool_limit(self, pool: str, n: int) -> None:
            calls.append(("workspace", pool, n))

        def clear_flag(self, flag: Any) -> None:
            calls.append(("clear_flag", flag))

        def add_optimization_profile(self, p: Any) -> int:
            calls.append(("profile", dict(p.shapes)))
            if trt.fake_refuse_profile:
                return -1  # the profile is invalid in itself
            self.profiles.append(p)
            return len(self.profiles) - 1  # the profile's index

        def create_timing_cache(self, blob: bytes) -> Cache | None:
            calls.append(("timing_cache_in", bytes(blob)))
            return None if blob == b"foreign" else Cache()  # a blob TensorRT cannot read: no cache at all

        def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
            calls.append(("set_timing_cache", ignore_mismatch))
            return True

        def get_timing_cache(self) -> Cache:
            return Cache()

    class Profile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple] = {}

        def set_shape(self, name: str, lo: list[int], opt: list[int], hi: list[int]) -> None:
            # the bindings raise (pyCore.cpp opt_profile_set_shape) for shapes inconsistent with each other
            if len({len(lo), len(opt), len(hi)}) > 1 or any(a > o or o > b for a, o, b in zip(lo, opt, hi)):
                raise RuntimeError("Shape provided for opt is inconsistent with other shapes.")
            self.shapes[name] = (list(lo), list(opt), list(hi))

    class Tensor:
        def __init__(self, name: str) -> None:
            self.name = name

    class Network:
        """What the parser made of the ONNX: its graph inputs (not its initializers), unless a test says."""

        def __init__(self) -> None:
            self.inputs: list[str] = []

        def take(self, model: Any) -> None:
            inits = {t.name for t in model.graph.initializer}
            self.inputs = trt.fake_network_inputs or [i.name for i in model.graph.input if i.name not in inits]

        @property
        def num_inputs(self) -> int:
            return len(self.inputs)

        def get_input(self, i: int) -> Tensor:
            return Tensor(self.inputs[i])

    class Builder:
        def __init__(self, logger: Any) -> None:
            pass

        def create_network(self, flags: int) -> Network:
            calls.append(("create_network", flags))
            return Network()

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Any, config: Any) -> bytes | None:
            calls.append(("build",))
            # a profile naming what the network lacks fails only here, as TensorRT does (None, a log line)
            if any(name not in network.inputs for p in config.profiles for name in p.shapes):
                return None
            return b"FAKE-ENGINE"

    class OnnxParser:
        num_errors = 0

        def __init__(self, network: Any, logger: Any) -> None:
            self.network = network

        def parse_from_file(self, path: str) -> bool:
            import onnx

            calls.append(("parse", Path(path).name))
            self.network.take(onnx.load(path, load_external_data=False))
            return True

        def parse(self, model: bytes, path: str | None = None) -> bool:
            import onnx

            calls.append(("parse_bytes", Path(path).name if path else None, bytes(model)))
            self.network.take(onnx.load_from_string(bytes(model)))
            return True

    class Context:
        def __init__(self) -> None:
            self.addr: dict[str, int] = {}
            self.shapes: dict[str, tuple] = {}

        def set_tensor_address(self, name: str, ptr: int) -> bool:
            if trt.fake_refuse_address:
                return False
            self.addr[name] = ptr
            return True

        def set_input_shape(self, name: str, shape: Any) -> bool:
            if trt.fake_refuse_shape:
                return False
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name: str) -> tuple:
            return self.shapes.get(name) or self.shapes.get("x") or next(iter(self.shapes.values()))

        def execute_async_v3(self, handle: int) -> bool:
            calls.append(("execute", handle))
            if trt.fake_execute_fails:
                return False
            n = int(np.prod(self.shapes["x"])) * 4
            x = np.frombuffer(bytes(cuda.mem[self.addr["x"]][:n]), np.float32)
            y = np.full_like(x, np.nan) if trt.fake_nan_output else 2 * x
            cuda.mem[self.addr["y"]][:n] = y.astype(np.float32).tobytes()
            return True

    class Engine:
        def __init__(self) -> None:
            self.names = trt.fake_io  # the double model's; a test of another graph sets its names

        @property
        def num_io_tensors(self) -> int:
            return len(self.names)

        def get_tensor_name(self, i: int) -> str:
            return self.names[i]

        def get_tensor_dtype(self, name: str) -> str:
            return "float32"

        def create_execution_context(self) -> Context | None:
            return None if trt.fake_no_context else Context()

    class Runtime:
        def __init__(self, logger: Any) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes) -> Engine | None:
            return Engine() if data == b"FAKE-ENGINE" else None

    class IProgressMonitor:
        def __init__(self) -> None:
            pass

    trt.Logger, trt.NetworkDefinitionCreationFlag, trt.MemoryPoolType, trt.BuilderFlag = Logger, Flag, Pool, BuilderFlag
    trt.Builder, trt.OnnxParser, trt.Runtime, trt.IProgressMonitor = Builder, OnnxParser, Runtime, IProgressMonitor
    trt.init_libnvinfer_plugins = lambda logger, ns: calls.append(("init_plugins",))
    trt.nptype = lambda dt: np.float32
    trt.fake_io = ["x", "y"]
    trt.fake_execute_fails = trt.fake_no_context = trt.fake_refuse_profile = trt.fake_nan_output = False
    trt.fake_refuse_address = trt.fake_refuse_shape = False
    trt.fake_network_inputs = None  # the parsed network's input names; None: the ONNX's
    return trt


@pytest.fixture(scope="module")
def double_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    import edge

    class Double(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            return x * 2

    out = tmp_path_factory.mktemp("trt") / "double"
    edge.export(Double(), {"x": np.zeros((1, 3, 4), np.float32)}, out, dynamic_batch=True, input_names=["x"],
                output_names=["y"])
    return out


@pytest.fixture()
def fake_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    from edge.runtimes import cuda_mem

    def install(version: str) -> tuple[list[tuple], FakeCuda]:
        calls: list[tuple] = []
        cuda = FakeCuda()
        monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(version, calls, cuda))
        monkeypatch.setattr(cuda_mem, "get_cuda", lambda prefer=None: cuda)
        return calls, cuda

    return install


@pytest.mark.parametrize(("version", "flags"), [("10.3.0", 1), ("11.2.0", 0)])
def test_build_call_sequence_cache_and_run(fake_env: Any, double_bundle: Path, tmp_path: Path, version: str,
                                           flags: int) -> None:
    import edge
    from edge.bundle import Bundle
    from edge.runtimes.tensorrt import build_engine

    calls, cuda = fake_env(version)
    b = tmp_path / "b"
    shutil.copytree(double_bundle, b)
    cache = tmp_path / "timing.cache"
    msgs: list[str] = []
    rec, reused = build_engine(b, precision="fp32", dims={"batch": (1, 2, 4)}, workspace_mb=64, timing_cache=cache,
                               progress=msgs.append)
    assert not reused and rec.tensorrt == version and rec.gpu == "Fake GPU" and rec.plugins == {}
    assert ("create_network", flags) in calls  # STRONGLY_TYPED bit on 10.x; 11.x is strongly typed already
    assert ("workspace", "workspace", 64 << 20) in calls and ("parse", "model.onnx") in calls
    assert ("profile", {"x": ([1, 3, 4], [2, 3, 4], [4, 3, 4])}) in calls
    assert cache.read_bytes() == b"timing-cache-v1" and ("set_timing_cache", False) in calls
    bundle = Bundle.load(b)  # verifies the engine and record hashes the manifest now lists
    art = bundle.artifact(fmt="tensorrt_engine", graph="full", precision="fp32")
    assert (b / art["file"]).read_bytes() == b"FAKE-ENGINE" and art["derived_from"] == "model.onnx"
    # second build: reused from the bundle, and the timing cache is read back in
    calls.clear()
    rec2, reused = build_engine(b, precision="fp32", dims={"batch": (1, 2, 4)}, timing_cache=cache)
    assert reused and rec2.key() == rec.key() and ("build",) not in calls
    calls.clear()
    build_engine(b, precision="fp32", dims={"batch": (1, 2, 4)}, timing_cache=cache, force=True)
    assert ("timing_cache_in", b"timing-cache-v1") in calls and ("build",) in calls
    assert len(Bundle.load(b).manifest["artifacts"]) == len(bundle.manifest["artifacts"])  # replaced, not added
    assert len(list((b / "engines").iterdir())) == 2  # the replaced engine + record were deleted
    # run: batch 3 within the profile, through pinned/host -> device -> execute -> host
    rt = edge.load(b, backend="tensorrt")
    x = np.arange(36, dtype=np.float32).reshape(3, 3, 4)
    out = rt.infer({"x": x})
    assert np.array_equal(out["y"], 2 * x) and ("execute", 77) in calls
    with pytest.raises(SpecError, match="outside the engine's profile"):
        rt.infer({"x": np.zeros((5, 3, 4), np.float32)})
    rt.close()
    assert len(cuda.freed) == 2


def test_stale_engine_is_refused_with_the_command_to_run(fake_env: Any, double_bundle: Path, tmp_path: Path) -> None:
    import edge
    from edge.runtimes.tensorrt import build_engine

    fake_env("10.3.0")
    b = tmp_path / "b"
    shutil.copytree(double_bundle, b)
    build_engine(b, precision="fp32")
    fake_env("10.3.1")  # TensorRT upgraded on the device
    with pytest.raises(BundleError, match=r"TensorRT 10\.3\.0, this is 10\.3\.1.*edge build .* --precision fp32"):
        edge.load(b, backend="tensorrt", precision="fp32")
    shutil.rmtree(b)
    shutil.copytree(double_bundle, b)
    with pytest.raises(BundleError, match=r"the 'tensorrt' backend loads tensorrt_engine artifacts and this bundle has "
                                          r"none: build them on this device with `edge build .* --backend tensorrt`"):
        edge.load(b, backend="tensorrt")


def test_corrupt_engine_file_fails_the_bundle_check(fake_env: Any, double_bundle: Path, tmp_path: Path) -> None:
    """A cached engine of the manifest's size whose sha256 differs is left out of the load (never handed to
    TensorRT); the rest of the bundle loads (it failed the whole bundle before 2026-12-06)."""
    from edge.bundle import Bundle
    from edge.runtimes.tensorrt import build_engine

    fake_env("11.0.0")
    b = tmp_path / "b"
    shutil.copytree(double_bundle, b)
    rec, _ = build_engine(b, precision="fp32")
    (b / rec.engine_file).write_bytes(b"FAKE-ENGINX")
    loaded = Bundle.load(b)
    assert [w for w in loaded.broken_engines.values()] and "sha256" in next(iter(loaded.broken_engines.values()))
    assert not [a for a in loaded.artifacts if a["format"] == "tensorrt_engine"]


def test_plugin_hashes_follow_the_attention_mode(tiny_bundle: Path, tmp_path: Path) -> None:
    from edge.bundle import Bundle
    from edge.runtimes.tensorrt import plugin_hashes

    b = Bundle.load(tiny_bundle)
    mode = b.manifest["attention"]["mode"]
    h = plugin_hashes(b.file(b.artifact(fmt="onnx", graph="full")["file"]))
    assert (set(h) == {"edge::EdgeAttention"}) == (mode == "plugin")
    assert all(len(v) == 64 for v in h.values())


def test_real_tensorrt_engine_matches_onnxruntime(tmp_path: Path) -> None:
    """With real TensorRT and a GPU: build the tiny lane fp32 engine and compare with ONNX Runtime."""
    from edge.runtimes.registry import get_backend

    ok, why = get_backend("tensorrt").is_available()
    if not ok:
        pytest.skip(f"tensorrt backend unavailable: {why}")
    import edge
    from edge.export.api import export_card
    from edge.models.lane import card as lane
    from edge.runtimes.tensorrt import build_engine

    b = tmp_path / "b"  # decomposed attention: parses on every TensorRT, no plugin needed
    export_card("lane", b, config="tiny", attention="decomposed", programs=["clip"], dynamic_batch=True)
    rec, reused = build_engine(b, precision="fp32", dims={"batch": (1, 1, 2)})
    assert not reused and rec.engine_file
    cfg = edge.Bundle.load(b).manifest["model"]["config"]
    feeds = lane.example_full(cfg, 1, 0)
    ref = edge.load(b, backend="onnxruntime").infer(feeds)
    got = edge.load(b, backend="tensorrt", precision="fp32").infer(feeds)
    for k in ref:
        assert np.abs(got[k] - ref[k]).max() <= 1e-3 * np.abs(ref[k]).max(), k


def test_trtexec_command_matches_what_edge_build_would_build(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from edge.runtimes.trt_engine import trtexec_command
    from edge.spec import IOSpec, TensorSpec

    fixed = IOSpec((TensorSpec("x", "float32", (1, 3, 8)), TensorSpec("y", "float32", (1,))), ())
    b = SimpleNamespace(path=tmp_path, manifest={"attention": {"mode": "decomposed"}}, graph_io=lambda g: fixed,
                        artifacts=[{"format": "onnx", "graph": "g", "precision": "fp32", "file": "g.onnx"},
                                   {"format": "onnx", "graph": "g", "precision": "int8", "file": "g.int8.onnx"}])
    static = {"x": {"min": [1, 3, 8], "opt": [1, 3, 8], "max": [1, 3, 8]}}
    line = trtexec_command(b, "g", "int8", static, 512)
    assert line == (f"trtexec --onnx={tmp_path / 'g.int8.onnx'} --saveEngine=g.int8.plan --stronglyTyped "
                    "--memPoolSize=workspace:512M")
    b.graph_io = lambda g: IOSpec((TensorSpec("x", "float32", ("batch", 3, 8)), TensorSpec("y", "float32", (1,))), ())
    dyn = {"x": {"min": [1, 3, 8], "opt": [2, 3, 8], "max": [8, 3, 8]}, "y": {"min": [1], "opt": [1], "max": [1]}}
    line = trtexec_command(b, "g", "fp32", dyn, 512)
    assert "--minShapes=x:1x3x8,y:1 --optShapes=x:2x3x8,y:1 --maxShapes=x:8x3x8,y:1" in line
    # a named dim fixed by the profile (--dim batch=8) is still given: trtexec took it as 1 (a batch-1 engine)
    eight = {"x": {"min": [8, 3, 8], "opt": [8, 3, 8], "max": [8, 3, 8]}, "y": {"min": [1], "opt": [1], "max": [1]}}
    assert "--minShapes=x:8x3x8,y:1 --optShapes=x:8x3x8,y:1 --maxShapes=x:8x3x8,y:1" in trtexec_command(
        b, "g", "fp32", eight, 512)
    b.graph_io = lambda g: fixed
    assert " --noTF32" in line  # fp32 as edge build makes it (int8 above: no such flag)
    # the hint goes by the file's own form: a plugin bundle's graph without attention (or its decomposed int8
    # copy) needs no plugin; it said so for every graph of a plugin bundle
    b.manifest["attention"]["mode"] = "plugin"
    assert trtexec_command(b, "g", "fp32", static, 512).startswith("trtexec ")
    b.artifacts[0]["attention"] = "plugin"
    assert trtexec_command(b, "g", "fp32", static, 512).startswith("# needs the EdgeAttention plugin")
    b.artifacts[1]["attention"] = "decomposed"
    assert trtexec_command(b, "g", "int8", static, 512).startswith("trtexec ")


def test_engine_with_camera_preprocessing(fake_env: Any, tiny_bundle: Path, tmp_path: Path) -> None:
    """``edge build --preprocess engine``: the parser gets the graph with the TensorRT form of the camera front
    (from memory, with the ONNX's path for its external weights), the camera size is a profile range, the
    record and manifest say so, and ``edge run --preprocess engine`` loads that engine taking uint8 frames
    while the plain one stays what a numpy-preprocessing run loads. The bytes handed to the parser are
    checked by running their front in ONNX Runtime against the numpy path at the model's size."""
    import onnx
    import onnxruntime as ort

    import edge
    from edge.bundle import Bundle
    from edge.data.images import image_feed
    from edge.models.contract import ImageInput
    from edge.runtimes.tensorrt import build_engine

    calls, _cuda = fake_env("10.8.0")
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    bundle = Bundle.load(b)
    spec = ImageInput.from_dict(bundle.manifest["preprocess"]["image_inputs"][0])
    cam = {"camera_height": (16, 72, 128), "camera_width": (16, 128, 256)}
    rec, reused = build_engine(b, graph=spec.graph, precision="fp32", front=spec, dims=cam)
    assert not reused and rec.front == spec.to_dict() and ".camera." in rec.engine_file
    assert rec.profile[spec.input] == {"min": [1, 16, 16, 3], "opt": [1, 72, 128, 3], "max": [1, 128, 256, 3]}
    src = Bundle.load(b).artifact(fmt="onnx", graph=spec.graph, precision="fp32")["file"]
    (_, where, blob), = [c for c in calls if c[0] == "parse_bytes"]
    assert where == Path(src).name and not [c for c in calls if c[0] == "parse"]
    m = onnx.load_from_string(blob)
    inp = next(i for i in m.graph.input if i.name == spec.input)
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [n.op_type for n in m.graph.node[:4]] == ["Cast", "Transpose", "Resize", "Gather"]
    # the front TensorRT parses, cut out and run: at the model's size it is the numpy preprocessing
    nodes = [n for n in m.graph.node if n.name.startswith(f"{spec.input}__front_")]
    used = {i for n in nodes for i in n.input}
    front = onnx.helper.make_model(
        onnx.helper.make_graph(nodes, "front", [inp], [onnx.helper.make_tensor_value_info(
            f"{spec.input}__normalised", onnx.TensorProto.FLOAT, None)],
            [t for t in m.graph.initializer if t.name in used]), opset_imports=m.opset_import)
    img = np.random.default_rng(3).integers(0, 256, (*spec.size_hw, 3), dtype=np.uint8)
    got = ort.InferenceSession(front.SerializeToString()).run(None, {spec.input: img[None]})[0]
    np.testing.assert_allclose(got, image_feed(img, spec)[None], rtol=0, atol=2e-5)
    # reused with the same front; the plain engine is another one, built beside it
    assert build_engine(b, graph=spec.graph, precision="fp32", front=spec, dims=cam)[1]
    plain, reused = build_engine(b, graph=spec.graph, precision="fp32")
    assert not reused and not plain.front and plain.key() != rec.key()
    arts = [a for a in Bundle.load(b).artifacts if a["format"] == "tensorrt_engine"]
    assert sorted(a.get("preprocess", "-") for a in arts) == ["-", "engine"]
    # loading: each kind where it is asked for
    sys.modules["tensorrt"].fake_io = [t.name for t in (*bundle.graph_io(spec.graph).inputs,
                                                         *bundle.graph_io(spec.graph).outputs)]
    with edge.load(b, backend="tensorrt", graph=spec.graph, precision="fp32", front=spec) as rt:
        t = rt.inputs.inputs[0]
        assert (t.name, t.dtype, t.shape) == (spec.input, "uint8", (1, "camera_height", "camera_width", 3))
    with edge.load(b, backend="tensorrt", graph=spec.graph, precision="fp32") as rt:
        assert rt.inputs.inputs[0].dtype == "float32"
    other = ImageInput(spec.graph, spec.input, (spec.size_hw[0] * 2, spec.size_hw[1]), spec.mean, spec.std)
    with pytest.raises(BundleError, match=r"camera preprocessing .* is not this bundle.s.*--preprocess engine"):
        edge.load(b, backend="tensorrt", graph=spec.graph, precision="fp32", front=other)


def _front_bundle(fake_env: Any, tiny_bundle: Path, tmp_path: Path) -> tuple[Path, Any, Any]:
    """A copy of the tiny bundle with a plain engine of its camera graph built (fake TensorRT): (path, the
    camera ImageInput, the program holding that graph)."""
    from edge.bundle import Bundle
    from edge.models.contract import ImageInput
    from edge.program import bundle_programs, card_for_bundle
    from edge.runtimes.tensorrt import build_engine

    fake_env("10.8.0")
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    bundle = Bundle.load(b)
    spec = ImageInput.from_dict(bundle.manifest["preprocess"]["image_inputs"][0])
    prog = next(p for p in bundle_programs(bundle, card_for_bundle(bundle)) if spec.graph in p.graphs)
    build_engine(b, graph=spec.graph, precision="fp32")
    return b, spec, prog


def test_preprocess_auto_takes_the_engines_built_with_the_front(fake_env: Any, tiny_bundle: Path,
                                                                tmp_path: Path) -> None:
    """``--preprocess auto`` on TensorRT: the front where an engine was built with it for the graph at that
    precision, numpy otherwise; an engine the caller names decides by its kind under auto and must match
    an explicit --preprocess (one line), never swapped for the other kind."""
    from edge.bundle import Bundle
    from edge.program import image_fronts
    from edge.runtimes.tensorrt import build_engine

    b, spec, prog = _front_bundle(fake_env, tiny_bundle, tmp_path)
    assert image_fronts(Bundle.load(b), prog, "tensorrt", "auto", precision="fp32") == {}  # only a plain engine
    build_engine(b, graph=spec.graph, precision="fp32", front=spec,
                 dims={"camera_height": (16, 72, 128), "camera_width": (16, 128, 256)})
    bundle = Bundle.load(b)
    assert image_fronts(bundle, prog, "tensorrt", "auto", precision="fp32") == {spec.graph: spec}
    assert image_fronts(bundle, prog, "tensorrt", "auto", precision="fp16") == {}  # none built at fp16
    engines = {a.get("preprocess", "numpy"): a["name"] for a in bundle.artifacts if a["format"] == "tensorrt_engine"}
    assert image_fronts(bundle, prog, "tensorrt", "auto", named={spec.graph: engines["numpy"]}) == {}
    assert image_fronts(bundle, prog, "tensorrt", "auto", named={spec.graph: engines["engine"]}) == {spec.graph: spec}
    for kind, asked, needle in (("engine", "numpy", "built with camera preprocessing.*--preprocess engine"),
                                ("numpy", "engine", "built without camera preprocessing.*--preprocess numpy")):
        with pytest.raises(BundleError, match=needle) as e:
            image_fronts(bundle, prog, "tensorrt", asked, named={spec.graph: engines[kind]})
        assert engines[kind] in str(e.value) and "\n" not in str(e.value)
    # two image graphs named with different kinds under auto: each its own (here the one graph, both ways)
    assert image_fronts(bundle, prog, "tensorrt", "auto", named={spec.graph: engines["engine"], "x": "y"}) == {
        spec.graph: spec}


def test_preprocess_auto_falls_back_when_the_front_engine_does_not_load(fake_env: Any, tiny_bundle: Path,
                                                                        tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A front engine built for another device (or a stale ONNX) does not make an auto run fail: the graph's
    plain engine runs with numpy preprocessing; asked for explicitly, the refusal stands."""
    import types

    import edge.runtimes as registry
    from edge.program import load_program
    from edge.runtimes.tensorrt import build_engine

    b, spec, prog = _front_bundle(fake_env, tiny_bundle, tmp_path)
    build_engine(b, graph=spec.graph, precision="fp32", front=spec,
                 dims={"camera_height": (16, 72, 128), "camera_width": (16, 128, 256)})
    import edge.program as program_mod

    # the other graphs' engines (attention: the fake TensorRT has no plugin module) are only named here
    monkeypatch.setattr(program_mod, "_artifact_names", lambda *a: {g: f"engine-{g}" for g in prog.graphs})
    seen: list[tuple[str, bool]] = []

    def load(bundle: Any, backend: str, *, graph: str, front: Any = None, **_: Any) -> Any:
        seen.append((graph, front is not None))
        if front is not None:
            raise BundleError(f"{bundle.path}: no TensorRT engine here fits (built for another GPU)")
        return types.SimpleNamespace(close=lambda: None, backend="tensorrt")

    monkeypatch.setattr(registry, "load", load)
    with load_program(b, "tensorrt", program=prog.name, precision="fp32", preprocess="auto") as got:
        assert got.fronts == ()
    assert seen[:2] == [(spec.graph, True), (spec.graph, False)] and len(seen) == len(prog.graphs) + 1
    with pytest.raises(BundleError, match="no TensorRT engine here fits"):
        load_program(b, "tensorrt", program=prog.name, precision="fp32", preprocess="engine")


def test_cli_build_preprocess_engine_refusals(tiny_bundle: Path, double_bundle: Path) -> None:
    """One line, exit 2, before TensorRT is needed: no camera input, camera dims without the option, a bad
    value; with a camera input and no TensorRT here, the usual 'not available' line."""
    def build(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "edge.cli.main", "build", *args], capture_output=True,
                              text=True, timeout=120)

    for args, needle in (([str(double_bundle), "--preprocess", "engine", "--precision", "fp32"],
                          "no camera-image input"),
                         ([str(tiny_bundle), "--dim", "camera_height=1:720:1080", "--precision", "fp32"],
                          "only of engines built with --preprocess engine"),
                         ([str(tiny_bundle), "--preprocess", "gpu", "--precision", "fp32"], "--preprocess 'gpu'")):
        r = build(*args)
        assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = build(str(tiny_bundle), "--preprocess", "engine", "--precision", "fp32", "--dim", "camera_width=64:1280:1920")
    if r.returncode != 2 or "not available" not in r.stderr:
        pytest.skip("TensorRT is usable here")
    assert "camera front added in memory" in r.stdout and len(r.stderr.strip().splitlines()) == 1


def test_an_engine_record_that_is_not_text_is_one_line(tmp_path: Path) -> None:
    """The record beside an engine is read before TensorRT is touched: bytes that are not UTF-8 are a
    corrupt record naming the file, not a UnicodeDecodeError."""
    from types import SimpleNamespace

    from edge.errors import BundleError
    from edge.runtimes.tensorrt import _read_record

    (tmp_path / "r.json").write_bytes(b"\xff\xfe{not text")
    b = SimpleNamespace(path=tmp_path, file=lambda name: tmp_path / name)
    with pytest.raises(BundleError, match=r"r\.json: corrupt engine record \(not UTF-8 text\)"):
        _read_record(b, {"name": "e", "extra_files": ["r.json"]})


def test_one_logger_and_the_stream_drained_before_anything_is_freed(fake_env: Any, double_bundle: Path,
                                                                      tmp_path: Path) -> None:
    """TensorRT keeps a raw pointer to the logger init_libnvinfer_plugins gets: one logger for the process,
    kept alive. Queued copies read the pinned buffers: the stream is synchronised before close frees them,
    and before a failed submit returns (the next call would overwrite what a copy still reads)."""
    import edge
    from edge.runtimes.tensorrt import _logger, build_engine

    calls, cuda = fake_env("10.8.0")
    b = tmp_path / "b"
    shutil.copytree(double_bundle, b)
    build_engine(b, precision="fp32", dims={"batch": (1, 2, 4)})
    rt = edge.load(b, backend="tensorrt")
    rt2 = edge.load(b, backend="tensorrt")
    assert calls.count(("logger",)) == 1 and _logger(sys.modules["tensorrt"]) is _logger(sys.modules["tensorrt"])
    trt = sys.modules["tensorrt"]
    trt.fake_execute_fails = True
    cuda.events.clear()
    with pytest.raises(edge.EdgeError, match="execute_async_v3 failed"):
        rt.infer({"x": np.ones((2, 3, 4), np.float32)})
    assert cuda.events == ["sync"]
    cuda.events.clear()
    rt.close()
    assert cuda.events == ["sync", "free", "free", "destroy_stream"]
    rt2.close()


def test_no_execution_context_a_refused_profile_and_a_foreign_timing_cache(fake_env: Any, double_bundle: Path,
                                                                           tmp_path: Path) -> None:
    """What the C++ API reports by a null or -1 is one line here (not an AttributeError later); a timing cache
    TensorRT cannot read at all is replaced by an empty one."""
    import edge
    from edge.runtimes.tensorrt import build_engine

    calls, _ = fake_env("10.8.0")
    trt = sys.modules["tensorrt"]
    b = tmp_path / "b"
    shutil.copytree(double_bundle, b)
    cache = tmp_path / "t.cache"
    cache.write_bytes(b"foreign")
    trt.fake_refuse_profile = True
    with pytest.raises(edge.EdgeError, match="refused the optimization profile"):
        build_engine(b, precision="fp32", dims={"batch": (1, 2, 4)}, timing_cache=cache)
    trt.fake_refuse_profile = False
    calls.clear()
    build_engine(b, precision="fp32", dims={"batch": (1, 2, 4)}, timing_cache=cache)
    assert [c for c in calls if c[0] == "timing_cache_in"] == [("timing_cache_in", b"foreign"),
                                                              ("timing_cache_in", b"")]
    trt.fake_no_context = True
    with pytest.raises(edge.EdgeError, match="could not create an execution context"):
        edge.load(b, backend="tensorrt")


def test_an_engine_record_profile_needs_min_opt_and_max() -> None:
    """A profile entry without its three shapes passed the type check and failed later as a KeyError."""
    rec = json.loads(te.EngineRecord(graph="g", precision="fp32", onnx_file="m.onnx", onnx_sha256="0" * 64,
                                     tensorrt="10.8.0", gpu="x", compute_capability="8.7",
                                     profile={"x": {"min": [1], "opt": [2], "max": [4]}}).to_json())
    te.EngineRecord.from_json(json.dumps(rec), where="r.json")
    for bad in ({}, {"min": [1], "opt": [2]}, {"min": [1], "opt": [2], "max": [4, 4]}):
        with pytest.raises(BundleError, match=r"r\.json: engine record field 'profile' needs min, opt and max"):
            te.EngineRecord.from_json(json.dumps({**rec, "profile": {"x": bad}}), where="r.json")


def test_two_threads_never_share_the_execution_context(fake_env: Any, double_bundle: Path, tmp_path: Path) -> None:
    """TensorRT: no two threads in one IExecutionContext, and the pinned buffers are one set; calls queue."""
    import threading
    import time

    import edge
    from edge.runtimes.tensorrt import build_engine

    fake_env("10.3.0")
    b = tmp_path / "b"
    shutil.copytree(double_bundle, b)
    build_engine(b, precision="fp32", dims={"batch": (1, 2, 4)}, timing_cache=tmp_path / "c")
    rt = edge.load(b, backend="tensorrt")
    inside, seen = [0], []
    real = rt.context.execute_async_v3

    def slow(handle: int) -> bool:
        inside[0] += 1
        seen.append(inside[0])
        time.sleep(0.01)
        ok = real(handle)
        inside[0] -= 1
        return ok

    rt.context.execute_async_v3 = slow
    xs = [np.full((1, 3, 4), i, np.float32) for i in range(8)]
    got: dict[int, Any] = {}
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, rt.infer({"x": xs[i]}))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rt.close()
    assert max(seen) == 1 and all(np.array_equal(got[i]["y"], 2 * xs[i]) for i in range(8))


@pytest.fixture(scope="module")
def masked_plugin_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle whose one graph is attention with a key mask, exported in plugin mode: an EdgeAttention node
    with 4 inputs (q, k, v, mask)."""
    torch = pytest.importorskip("torch")
    import edge
    from edge.ops.attention import attention

    class Masked(torch.nn.Module):
        def forward(self, q: Any, k: Any, v: Any, mask: Any) -> Any:
            return attention(q, k, v, mask=mask)

    rng = np.random.default_rng(0)
    qkv = {n: rng.standard_normal((1, 2, 4, 8)).astype(np.float32) for n in ("q", "k", "v")}
    out = tmp_path_factory.mktemp("trt") / "masked"
    edge.export(Masked(), {**qkv, "mask": np.ones((1, 1, 1, 4), bool)}, out, attention="plugin")
    return out


def test_masked_plugin_attention_is_refused_before_the_build(fake_env: Any, masked_plugin_bundle: Path,
                                                             tmp_path: Path) -> None:
    """The TensorRT EdgeAttention plugin declares q, k, v only and TensorRT hands it every input of the node: a
    masked node is one line naming the graph file and the exports that work, from the plugin lookup (before
    the parse and the build), and from ``edge build`` before TensorRT is even needed."""
    import onnx

    from edge.bundle import Bundle
    from edge.errors import ExportError
    from edge.runtimes.tensorrt import build_engine, plugin_hashes

    b = tmp_path / "b"
    shutil.copytree(masked_plugin_bundle, b)
    onnx_path = Bundle.load(b).file(Bundle.load(b).artifact(fmt="onnx", graph="full")["file"])
    m = onnx.load(str(onnx_path), load_external_data=False)
    assert [len(n.input) for n in m.graph.node if n.op_type == "EdgeAttention"] == [4]
    needle = r"model\.onnx: EdgeAttention node .* mask input.*--attention onnx .*--attention decomposed"
    with pytest.raises(ExportError, match=needle):
        plugin_hashes(onnx_path)
    calls, _ = fake_env("10.8.0")
    with pytest.raises(ExportError, match=needle) as e:
        build_engine(b, precision="fp32")
    assert str(onnx_path) in str(e.value) and "\n" not in str(e.value)
    assert not [c for c in calls if c[0] in ("parse", "parse_bytes", "build")]
    r = subprocess.run([sys.executable, "-m", "edge.cli.main", "build", str(b), "--precision", "fp32"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--attention decomposed" in r.stderr and str(onnx_path) in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "trtexec" not in r.stdout


def test_fp32_engines_are_built_without_tf32(fake_env: Any, double_bundle: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """BuilderFlag.TF32 is on by default: an fp32 engine clears it (10-bit mantissas otherwise) and its record
    says so; other precisions keep it; a TensorRT without the flag still builds; an fp32 engine recorded with
    TF32 on is rebuilt, not reused, once the flag can be cleared."""
    from edge.runtimes import tensorrt as trt_mod

    calls, _ = fake_env("10.8.0")
    trt = sys.modules["tensorrt"]
    b = tmp_path / "b"
    shutil.copytree(double_bundle, b)
    rec, _ = trt_mod.build_engine(b, precision="fp32")
    assert ("clear_flag", "tf32") in calls and rec.tf32 is False
    assert te.EngineRecord.from_json((b / rec.engine_file.replace(".plan", ".json")).read_text()).tf32 is False
    calls.clear()
    assert trt_mod.build_engine(b, precision="fp32")[1]  # reused: it was built without TF32
    # fp16 (the double bundle has no fp16 ONNX: its fp32 one stands in) keeps the default
    monkeypatch.setattr(trt_mod, "onnx_for", lambda bundle, graph, precision: te.onnx_for(bundle, graph, "fp32"))
    rec16, _ = trt_mod.build_engine(b, precision="fp16")
    assert not [c for c in calls if c[0] == "clear_flag"] and rec16.tf32 is True
    # a TensorRT without the flag: nothing to clear, and the record says TF32 may be used
    other = tmp_path / "other"
    shutil.copytree(double_bundle, other)
    flags = trt.BuilderFlag
    monkeypatch.delattr(trt, "BuilderFlag")
    calls.clear()
    old, _ = trt_mod.build_engine(other, precision="fp32")
    assert not [c for c in calls if c[0] == "clear_flag"] and old.tf32 is True
    monkeypatch.setattr(trt, "BuilderFlag", flags, raising=False)
    calls.clear()
    new, reused = trt_mod.build_engine(other, precision="fp32")
    assert not reused and ("clear_flag", "tf32") in calls and new.tf32 is False


class _FakePinned:
    """A pycuda.driver stand-in whose pinned allocator, like CUDA's, refuses 0 bytes."""

    class Error(Exception):
        pass

    def __init__(self) -> None:
        self.asked: list[tuple[int, ...]] = []
        ctx = types.SimpleNamespace(push=lambda: None)
        self.Device = type("Device", (), {"count": staticmethod(lambda: 1),
                                          "__init__": lambda self, i: None,
                                          "retain_primary_context": lambda self: ctx})
        self.Context = types.SimpleNamespace(pop=lambda: None)

    def init(self) -> None:
        pass

    def pagelocked_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        self.asked.append(tuple(shape))
        if int(np.prod(shape)) == 0:
            raise self.Error("cuMemHostAlloc failed: invalid argument")
        return np.empty(shape, dtype)


def test_pycuda_pads_empty_pinned_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty tensor (a 0 dim) gets a one-element pinned buffer and a zero-length view of it, as with
    cuda-python: a 0-byte pinned allocation is invalid."""
    from edge.runtimes.cuda_mem import PyCudaApi

    drv = _FakePinned()
    pkg = types.ModuleType("pycuda")
    pkg.driver = drv  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pycuda", pkg)
    monkeypatch.setitem(sys.modules, "pycuda.driver", drv)  # type: ignore[arg-type]
    api = PyCudaApi()
    empty = api.host_empty((2, 0, 3), np.float16)
    assert empty.shape == (2, 0, 3) and empty.dtype == np.float16 and drv.asked == [(1,)]
    full = api.host_empty((2, 3), np.float32)
    assert full.shape == (2, 3) and drv.asked[-1] == (6,)
    full[...] = 1.0
    assert full.sum() == 6.0


def test_cuda_python_pads_empty_pinned_buffers_and_frees_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cuda-python path through the same padding: one element for an empty tensor, found again by
    ``host_free``."""
    import ctypes

    from edge.runtimes.cuda_mem import CudaPythonApi

    bufs: dict[int, Any] = {}
    asked: list[int] = []
    freed: list[int] = []

    def malloc_host(n: int) -> tuple[int, int]:
        asked.append(n)
        buf = ctypes.create_string_buffer(n)
        bufs[ctypes.addressof(buf)] = buf
        return 0, ctypes.addressof(buf)

    rt = types.SimpleNamespace(cudaGetDeviceCount=lambda: (0, 1), cudaSetDevice=lambda i: (0,),
                               cudaMallocHost=malloc_host, cudaFreeHost=lambda p: freed.append(p) or (0,))
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = rt  # type: ignore[attr-defined]
    cuda_pkg = types.ModuleType("cuda")
    cuda_pkg.bindings = bindings  # type: ignore[attr-defined]
    for name, mod in (("cuda", cuda_pkg), ("cuda.bindings", bindings), ("cuda.bindings.runtime", rt)):
        monkeypatch.setitem(sys.modules, name, mod)
    api = CudaPythonApi()
    empty = api.host_empty((0, 5), np.float32)
    full = api.host_empty((3,), np.float32)
    assert empty.shape == (0, 5) and full.shape == (3,) and asked == [4, 12]
    api.host_free(empty)
    api.host_free(full)
    assert sorted(freed) == sorted(bufs)


def test_refused_tensor_addresses_and_input_shapes_are_one_line(fake_env: Any, double_bundle: Path,
                                                               tmp_path: Path) -> None:
    """set_tensor_address and set_input_shape answer False rather than raise: each is one line naming the
    tensor (and the shape), not a generic execute_async_v3 failure later."""
    import edge
    from edge.runtimes.tensorrt import build_engine

    calls, _ = fake_env("10.8.0")
    trt = sys.modules["tensorrt"]
    b = tmp_path / "b"
    shutil.copytree(double_bundle, b)
    build_engine(b, precision="fp32", dims={"batch": (1, 2, 4)})
    trt.fake_refuse_address = True
    with pytest.raises(edge.EdgeError, match=r"\.plan: TensorRT refused the device address of tensor 'x'"):
        edge.load(b, backend="tensorrt")
    trt.fake_refuse_address = False
    trt.fake_refuse_shape = True  # at load: the outputs are sized at the profile's max input shapes
    with pytest.raises(edge.EdgeError, match=r"refused shape \[4, 3, 4\] for input 'x'"):
        edge.load(b, backend="tensorrt")
    trt.fake_refuse_shape = False
    rt = edge.load(b, backend="tensorrt")
    trt.fake_refuse_shape = True
    calls.clear()
    with pytest.raises(edge.EdgeError, match=r"refused shape \[3, 3, 4\] for input 'x'") as e:
        rt.infer({"x": np.zeros((3, 3, 4), np.float32)})
    assert "\n" not in str(e.value) and not [c for c in calls if c[0] == "execute"]
    rt.close()


def test_profile_refusals_are_one_line_before_the_build(fake_env: Any, double_bundle: Path, tmp_path: Path) -> None:
    """``profile.set_shape`` raises RuntimeError for inconsistent min/opt/max: one line naming the input and its
    three shapes. A profile name the parsed network lacks passes ``add_optimization_profile`` and fails only
    as ``build_serialized_network`` -> None: it is refused before the build, naming the network's inputs."""
    from edge.errors import ExportError
    from edge.runtimes.tensorrt import build_engine

    calls, _ = fake_env("10.8.0")
    trt = sys.modules["tensorrt"]
    b = tmp_path / "b"
    shutil.copytree(double_bundle, b)
    with pytest.raises(ExportError, match=r"model\.onnx: TensorRT 10\.8\.0 refused the shapes of input 'x': "
                                          r"min \[4, 3, 4\], opt \[2, 3, 4\], max \[8, 3, 4\]"):
        build_engine(b, precision="fp32", dims={"batch": (4, 2, 8)})
    assert ("build",) not in calls
    trt.fake_network_inputs = ["images"]
    with pytest.raises(ExportError, match=r"model\.onnx: TensorRT 10\.8\.0: the optimization profile names input "
                                          r"'x', which the parsed network does not have \(its inputs: images\)"):
        build_engine(b, precision="fp32", dims={"batch": (1, 2, 4)})
    assert ("build",) not in calls


def test_edge_build_checks_each_engine_against_onnxruntime(fake_env: Any, double_bundle: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``edge build`` runs every engine it builds (or reuses) against ONNX Runtime fp32 on the same inputs (of
    the profile's shapes: batch 2 here) and reports the worst error. An engine whose outputs are not finite
    where ONNX Runtime's are (forced here) is refused in one line, exit 2 through the CLI's error boundary: a
    new one never enters the bundle (a --force rebuild keeps the engine it would have replaced), a cached one
    is removed. A check that cannot run leaves the engine and says why; --no-check keeps what was built."""
    import json
    import sys

    from edge.bundle import Bundle
    from edge.cli.build_cmd import run_build
    from edge.cli.main import _invoke, app
    from edge.runtimes import engine_check

    fake_env("10.3.0")
    b = tmp_path / "b"
    shutil.copytree(double_bundle, b)
    args = dict(backend="tensorrt", precision="fp32", graphs=[], dims=["batch=2:2:4"], workspace_mb=64,
                timing_cache=None, cuda=None, json_out=True)
    out = run_build(b, force=False, **args)
    check = out["engines"][0]["check"]
    assert check == {"reference": "onnxruntime fp32", "feeds": 3, "max_rel": 0.0, "not_finite": 0}
    good = json.loads((b / "manifest.json").read_text())
    capsys.readouterr()
    sys.modules["tensorrt"].fake_nan_output = True
    cli = ["build", str(b), "--precision", "fp32", "--dim", "batch=2:2:4", "--workspace-mb", "64"]
    assert _invoke(app, [*cli, "--force"], "edge") == 2  # a broken rebuild: refused before it replaces anything
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err == ("error: new engine: tensorrt fp32 engine of graph 'full' gives outputs that are not finite on 3 "
                   "of 3 inputs where ONNX Runtime fp32 does not; not added to the bundle (another --precision may "
                   "build; --no-check keeps it)")
    assert json.loads((b / "manifest.json").read_text()) == good  # the good engine is still there
    Bundle.load(b)
    assert _invoke(app, cli, "edge") == 2  # the cached engine, now giving NaN (the stand-in's switch), is removed
    assert "removed from the bundle" in capsys.readouterr().err
    after = Bundle.load(b)  # verifies every listed file
    assert not [a for a in after.artifacts if a["format"] == "tensorrt_engine"]
    assert not list((b / "engines").iterdir())
    assert set(after.manifest["files"]) == {f for f in good["files"] if not f.startswith("engines/")}
    out = run_build(b, force=True, check_engines=False, **args)
    assert "check" not in out["engines"][0]  # --no-check keeps what was built
    sys.modules["tensorrt"].fake_nan_output = False

    def cannot(*a: Any, **k: Any) -> dict[str, Any]:
        raise ImportError("No module named 'onnxruntime'")

    monkeypatch.setattr(engine_check, "check_engine_file", cannot)
    out = run_build(b, force=True, **args)
    assert out["engines"][0]["check"] == {"reference": "onnxruntime fp32",
                                          "not_checked": "No module named 'onnxruntime'"}
    assert [a for a in Bundle.load(b).artifacts if a["format"] == "tensorrt_engine"]  # kept, unchecked


def test_a_missing_or_corrupt_cached_engine_leaves_the_rest_usable_and_build_replaces_it(
        fake_env: Any, double_bundle: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A cached engine whose file was deleted (or one byte flipped) made every command refuse the whole bundle, ONNX
    Runtime included, and `edge build --force` could not load it to replace it: it is left out of the load, with a
    warning naming it, and the next build takes it out of the manifest."""
    import json
    import logging

    from edge.bundle import Bundle
    from edge.cli.build_cmd import run_build

    fake_env("10.3.0")
    b = tmp_path / "b"
    shutil.copytree(double_bundle, b)
    args = dict(backend="tensorrt", precision="fp32", graphs=[], dims=["batch=2:2:4"], workspace_mb=64,
                timing_cache=None, cuda=None, json_out=True, check_engines=False)
    run_build(b, force=False, **args)
    plan = next((b / "engines").glob("*.plan"))
    for damage in ("flip", "delete"):
        if damage == "flip":
            data = bytearray(plan.read_bytes())
            data[-1] ^= 1
            plan.write_bytes(bytes(data))
        else:
            plan.unlink()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="edge.bundle"):
            loaded = Bundle.load(b)
        assert [a for a in loaded.artifacts if a["format"] == "tensorrt_engine"] == []
        assert len(loaded.broken_engines) == 1 and "left out" in caplog.text and plan.name in caplog.text
        assert loaded.artifact(fmt="onnx", graph="full")["file"]  # the rest of the bundle is there
        with pytest.raises(BundleError, match="is not listed"):  # nothing that loads from this bundle opens it
            loaded.file(plan.relative_to(b).as_posix())
    run_build(b, force=True, **args)
    after = Bundle.load(b)
    listed = json.loads((b / "manifest.json").read_text())["files"]
    assert not after.broken_engines and plan.relative_to(b).as_posix() not in listed
    assert len([a for a in after.artifacts if a["format"] == "tensorrt_engine"]) == 1
    # a security review: with engines/ a link to a folder elsewhere, the cleanup of the engine it left out deleted
    # that folder's files through the link, and a new engine would have been written there
    elsewhere = tmp_path / "elsewhere"
    shutil.move(b / "engines", elsewhere)
    (b / "engines").symlink_to(elsewhere)
    kept = sorted(p.name for p in elsewhere.iterdir())
    assert Bundle.load(b).broken_engines
    with pytest.raises(BundleError, match="engines: a link out of the bundle"):
        run_build(b, force=True, **args)
    from edge.runtimes.tensorrt import remove_engine

    remove_engine(Bundle.load(b), "nothing-by-this-name")  # drops the broken entries from the manifest only
    assert sorted(p.name for p in elsewhere.iterdir()) == kept and not Bundle.load(b).broken_engines


def test_edge_build_writes_the_triton_repository_of_the_engines_it_built(
        fake_env: Any, double_bundle: Path, tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only edge-export wrote Triton repositories, and it refused TensorRT without an engine of its own, advising an
    `edge build` that could not write one: on the target, `edge build --triton-repo DIR` does. Without TensorRT,
    `edge build --json` printed trtexec lines on stdout: they go to stderr, stdout stays JSON or nothing."""
    from edge.cli.build_cmd import run_build
    from edge.cli.main import _invoke, app

    b = tmp_path / "b"
    shutil.copytree(double_bundle, b)
    code = _invoke(app, ["build", str(b), "--precision", "fp32", "--json"], "edge")  # no tensorrt here
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "trtexec --onnx=" in err
    for device in ("cpu", "bogus"):  # the choices said are edge build's (it listed cpu, then refused it)
        with pytest.raises(DataError, match=rf"^--triton-device {device}: edge build's engines take auto or gpu"):
            run_build(b, backend="tensorrt", precision="fp32", graphs=[], dims=[], workspace_mb=64, timing_cache=None,
                      cuda=None, force=False, json_out=True, triton_repo=tmp_path / "r", triton_device=device)
    # without --triton-repo it was taken and unused, whatever its value (a review)
    with pytest.raises(DataError, match=r"^--triton-device bogus: sets the instance kind .* give --triton-repo$"):
        run_build(b, backend="tensorrt", precision="fp32", graphs=[], dims=[], workspace_mb=64, timing_cache=None,
                  cuda=None, force=False, json_out=True, triton_device="bogus")
    fake_env("10.3.0")
    res = run_build(b, backend="tensorrt", precision="fp32", graphs=[], dims=["batch=1:2:4"], workspace_mb=64,
                    timing_cache=None, cuda=None, force=False, json_out=True, check_engines=False,
                    triton_repo=tmp_path / "repo")
    configs = list((tmp_path / "repo").glob("*/config.pbtxt"))
    assert res["triton_repo"] == str(tmp_path / "repo") and len(configs) == 1
    assert 'platform: "tensorrt_plan"' in configs[0].read_text()
    assert "max_batch_size: 4\n" in configs[0].read_text()  # the profile's batch=1:2:4 (it said 8: a review)
    assert list((tmp_path / "repo").glob("*/1/model.plan"))
    # a profile that refuses batches below 4: the dynamic batcher sends them, so refused, before any build (a review)
    engines = sorted(p.name for p in (b / "engines").iterdir())
    with pytest.raises(DataError, match=r"^--dim batch=4:\.\.\.: graph '.*' would take batches from 4 only; Triton's "
                                        r"dynamic batcher .* `edge build --dim batch=1:OPT:MAX` for Triton$"):
        run_build(b, backend="tensorrt", precision="fp32", graphs=[], dims=["batch=4:4:8"], workspace_mb=64,
                  timing_cache=None, cuda=None, force=False, json_out=True, check_engines=False,
                  triton_repo=tmp_path / "repo4")
    assert not (tmp_path / "repo4").exists() and sorted(p.name for p in (b / "engines").iterdir()) == engines
    # refused before any build, not by the repository's writer after them (a review)
    with pytest.raises(DataError, match="--triton-repo with --preprocess engine"):
        run_build(b, backend="tensorrt", precision="fp32", graphs=[], dims=[], workspace_mb=64, timing_cache=None,
                  cuda=None, force=False, json_out=True, check_engines=False, preprocess="engine",
                  triton_repo=tmp_path / "repo2")
    assert not (tmp_path / "repo2").exists()
    p = tmp_path / "p"
    shutil.copytree(tiny_bundle, p)  # its graphs use the Python EdgeAttention plugin
    with pytest.raises(DataError, match=r"--triton-repo: graph '.*' uses the Python EdgeAttention plugin"):
        run_build(p, backend="tensorrt", precision="fp32", graphs=[], dims=[], workspace_mb=64, timing_cache=None,
                  cuda=None, force=False, json_out=True, check_engines=False, triton_repo=tmp_path / "repo3")
    assert not (tmp_path / "repo3").exists() and not list(p.glob("engines/*"))


def test_the_check_feeds_each_graph_what_its_program_gives_it(tiny_bundle: Path) -> None:
    """The engine check's inputs for a family's graph come from its fp32 program on an evaluation sample:
    the per-frame encoder gets preprocessed frames and the temporal head the ring buffers the stream builds
    (what the program recorded), not random arrays of the right shape."""
    from edge.bundle import Bundle
    from edge.program import card_for_bundle, load_program
    from edge.runtimes.engine_check import graph_feeds

    b = Bundle.load(tiny_bundle)
    for g in b.graphs:
        feeds = graph_feeds(b, g)
        io = b.graph_io(g)
        assert 1 <= len(feeds) <= 3 and all(set(f) == set(io.input_names) for f in feeds), g
    card = card_for_bundle(b)
    cfg = b.manifest["model"]["config"]
    sample = card.data.samples(cfg, "evaluation", 1, 0)[0]
    with load_program(b, "onnxruntime", program="stream", precision="fp32") as prog:
        prog.record(True)
        prog.reset()
        for frames in sample:
            prog.step(card.preprocess(frames, cfg))
        want = prog.record(False)
    for g in ("encoder", "temporal"):
        got = graph_feeds(b, g)
        assert all(np.array_equal(got[i][k], want[g][i][k]) for i in range(len(got)) for k in got[i]), g
