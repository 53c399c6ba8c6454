"""Triton model repositories written from bundles (edge.export.triton_repo).

No tritonserver here, so the configs are checked two ways: the tiny lane config against its exact
expected text, and every other one parsed back by a small protobuf-text parser below. The copied
models are opened by ONNX Runtime / OpenVINO and compared with ``edge.load`` on the bundle.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.bundle import Bundle, BundleWriter
from edge.errors import ExportError
from edge.export import triton_repo
from edge.export.triton_repo import MARKER, TRITON_DTYPES, batch_dim, triton_config, write_triton_repo
from edge.spec import _DTYPES, IOSpec, TensorSpec

# -- a tiny protobuf text-format parser (enough for config.pbtxt) ----------------------------------------
_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"#]+')


def parse_pbtxt(text: str) -> dict[str, Any]:
    """Messages -> dicts; a key seen twice, or a ``[...]`` value, -> list; strings unquoted; ints as int."""
    toks = [t for t in _TOKEN.findall(text) if t.strip() and not t.startswith("#")]
    pos = 0

    def value() -> Any:
        nonlocal pos
        t = toks[pos]
        pos += 1
        if t == "{":
            return message("}")
        if t == "[":
            items = []
            while toks[pos] != "]":
                items.append(value())
                if toks[pos] == ",":
                    pos += 1
            pos += 1
            return items
        if t.startswith('"'):
            return json.loads(t)
        return int(t) if re.fullmatch(r"-?\d+", t) else t

    def message(end: str | None) -> dict[str, Any]:
        nonlocal pos
        out: dict[str, Any] = {}
        repeated: set[str] = set()
        while pos < len(toks) and toks[pos] != end:
            key = toks[pos]
            pos += 1
            if toks[pos] == ":":
                pos += 1
            v = value()
            if key in out:  # a repeated field written as several `key {...}` entries
                prev = out[key]
                out[key] = [*prev, v] if isinstance(prev, list) and key in repeated else [prev, v]
                repeated.add(key)
            else:
                out[key] = v
        pos += 1
        return out

    msg = message(None)
    assert pos >= len(toks), f"trailing tokens: {toks[pos:]}"
    return msg


def test_parser_reads_the_forms_we_write() -> None:
    cfg = parse_pbtxt('# c\nname: "a\\"b"\nmax_batch_size: 0\ninput [\n  {\n    dims: [ 1, -1 ]\n'
                      '    reshape: { shape: [ ] }\n  },\n  { name: "y" }\n]\nd { k: KIND_GPU }\n')
    assert cfg == {"name": 'a"b', "max_batch_size": 0,
                   "input": [{"dims": [1, -1], "reshape": {"shape": []}}, {"name": "y"}], "d": {"k": "KIND_GPU"}}


# -- bundles -----------------------------------------------------------------------------------------------
def _derive(src: Path, out: Path, add: Any) -> Path:
    """Copy bundle ``src`` to ``out`` through BundleWriter, letting ``add(writer)`` add files and artifacts."""
    b = Bundle.load(src)
    with BundleWriter(out, b.manifest) as w:
        for name in b.manifest["files"]:
            shutil.copyfile(b.file(name), w.path_for(name))
        add(w)
        w.commit()
    return out


@pytest.fixture(scope="session")
def engine_bundle(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_bundle plus a stand-in TensorRT engine artifact (bytes only: nothing here can build one)."""
    def add(w: BundleWriter) -> None:
        w.write_bytes("model.fp16.engine", b"not really an engine " * 50, "tensorrt_engine")
        w.add_artifact({"name": "tensorrt-fp16", "format": "tensorrt_engine", "file": "model.fp16.engine",
                        "graph": "full", "precision": "fp16", "attention": "decomposed", "device": "Orin (sm_87)"})
    return _derive(tiny_bundle, tmp_path_factory.mktemp("engine") / "lane", add)


@pytest.fixture(scope="session")
def ir_bundle(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_bundle plus an OpenVINO IR of its full graph (what `--to onnx,openvino` adds)."""
    pytest.importorskip("openvino")
    from edge.runtimes.openvino import save_ir

    def add(w: BundleWriter) -> None:
        files = save_ir(str(w.path_for("model.onnx")), str(w.path_for("model.xml")))
        for f in files:
            w.register(f, "openvino_ir")
        w.add_artifact({"name": "openvino-fp32", "format": "openvino_ir", "file": files[0],
                        "extra_files": files[1:], "graph": "full", "precision": "fp32"})
    return _derive(tiny_bundle, tmp_path_factory.mktemp("ir") / "lane", add)


W = np.array([[2.0], [-3.0]], dtype=np.float32)


@pytest.fixture(scope="session")
def fixed_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hand-made graph with no batch dim, one other named dim, a scalar output, seven dtypes and its
    weight in an external-data file (the layout torch uses above ~1.8 GB)."""
    import onnx
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper

    nodes = [
        helper.make_node("Cast", ["x"], ["xf"], to=T.FLOAT),
        helper.make_node("Mul", ["xf", "w"], ["y"]),
        helper.make_node("ReduceSum", ["y"], ["total"], keepdims=0),
        helper.make_node("Cast", ["idx"], ["idx32"], to=T.INT32),
        helper.make_node("Cast", ["img"], ["img8"], to=T.INT8),
        helper.make_node("Not", ["mask"], ["notmask"]),
    ]
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        nodes, "fixed",
        [vi("x", T.FLOAT16, [2, "n"]), vi("idx", T.INT64, [4]), vi("img", T.UINT8, [1, 2, 2]), vi("mask", T.BOOL, [3])],
        [vi("y", T.FLOAT, [2, "n"]), vi("total", T.FLOAT, []), vi("idx32", T.INT32, [4]), vi("img8", T.INT8, [1, 2, 2]),
         vi("notmask", T.BOOL, [3])],
        [numpy_helper.from_array(W, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    io = IOSpec(
        (TensorSpec("x", "float16", (2, "n")), TensorSpec("idx", "int64", (4,)), TensorSpec("img", "uint8", (1, 2, 2)),
         TensorSpec("mask", "bool", (3,))),
        (TensorSpec("y", "float32", (2, "n")), TensorSpec("total", "float32", ()),
         TensorSpec("idx32", "int32", (4,)), TensorSpec("img8", "int8", (1, 2, 2)),
         TensorSpec("notmask", "bool", (3,))))
    out = tmp_path_factory.mktemp("fixed") / "fixed"
    with BundleWriter(out, {"model": {"name": "fixed"}, "io": io.to_dict(), "graphs": {"full": io.to_dict()}}) as w:
        onnx.save_model(model, str(w.path_for("fixed.onnx")), save_as_external_data=True,
                        all_tensors_to_one_file=True, location="fixed.onnx.data", size_threshold=0)
        w.register("fixed.onnx", "onnx")
        w.register("fixed.onnx.data", "onnx_external_data")
        w.add_artifact({"name": "onnx-fp32", "format": "onnx", "file": "fixed.onnx",
                        "extra_files": ["fixed.onnx.data"], "graph": "full", "precision": "fp32"})
        w.commit()
    return out


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.endswith(".partial") or ".old-" in p.name)


# -- configs ------------------------------------------------------------------------------------------------
LANE_CONFIG = """\
# written by edge-deploy from bundle 'lane' (graph full, artifact 'onnx-fp32-full'); regenerate rather than edit
name: "lane"
backend: "onnxruntime"
max_batch_size: 8
input [
  {
    name: "clip"
    data_type: TYPE_FP32
    dims: [ 3, 3, 64, 128 ]
  }
]
output [
  {
    name: "loc"
    data_type: TYPE_FP32
    dims: [ 6, 14, 16 ]
  },
  {
    name: "exist"
    data_type: TYPE_FP32
    dims: [ 6, 14 ]
  }
]
dynamic_batching {
  preferred_batch_size: [ 2, 4 ]
  max_queue_delay_microseconds: 100
}
instance_group [
  {
    count: 1
    kind: KIND_AUTO
  }
]
"""


def test_dynamic_batch_config_exact_text(tiny_bundle: Path, tmp_path: Path) -> None:
    out = write_triton_repo(tiny_bundle, tmp_path / "repo", preferred_batch_sizes=[4, 2])
    assert out == (tmp_path / "repo").resolve()
    assert (out / "lane" / "config.pbtxt").read_text() == LANE_CONFIG
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "README.txt", "lane"])
    assert [p.name for p in (out / "lane" / "1").iterdir()] == ["model.onnx"]
    readme = (out / "README.txt").read_text()
    assert f"tritonserver --model-repository={out}" in readme
    assert "clip: float32 [batch, 3, 3, 64, 128]" in readme
    # the preprocessing line: short values in full, a long table (the decoder's row anchors) as its length
    pre = json.loads(readme.split("(manifest 'preprocess'): ")[1].splitlines()[0])
    manifest = Bundle.load(tiny_bundle).manifest["preprocess"]
    assert pre["mean"] == manifest["mean"] and pre["size_hw"] == manifest["size_hw"]
    assert pre["row_anchors"] == f"<{len(manifest['row_anchors'])} values>" and len(manifest["row_anchors"]) > 8


def test_streaming_graph_options(tiny_bundle: Path, tmp_path: Path) -> None:
    out = write_triton_repo(Bundle.load(tiny_bundle), tmp_path / "r", graph="temporal", max_batch_size=16,
                            max_queue_delay_us=2500, instances=3, version=7)
    cfg = parse_pbtxt((out / "lane_temporal" / "config.pbtxt").read_text())
    assert cfg["name"] == "lane_temporal" and cfg["backend"] == "onnxruntime" and cfg["max_batch_size"] == 16
    assert cfg["input"] == [{"name": "tokens", "data_type": "TYPE_FP32", "dims": [3, 8, 32]},
                            {"name": "skip", "data_type": "TYPE_FP32", "dims": [16, 8, 16]}]
    assert [o["name"] for o in cfg["output"]] == ["loc", "exist"]
    assert cfg["dynamic_batching"] == {"max_queue_delay_microseconds": 2500}
    assert cfg["instance_group"] == [{"count": 3, "kind": "KIND_AUTO"}]  # GPU when the server has one, else CPU
    src = Bundle.load(tiny_bundle).file("temporal.ort.onnx")
    assert _sha(out / "lane_temporal" / "7" / "model.onnx") == _sha(src)


def test_batching_switched_off_keeps_the_batch_dim_as_minus_one(tiny_bundle: Path, tmp_path: Path) -> None:
    out = write_triton_repo(tiny_bundle, tmp_path / "r", max_batch_size=0, name="lane_b1")
    cfg = parse_pbtxt((out / "lane_b1" / "config.pbtxt").read_text())
    assert cfg["name"] == "lane_b1" and cfg["max_batch_size"] == 0 and "dynamic_batching" not in cfg
    assert cfg["input"][0]["dims"] == [-1, 3, 3, 64, 128]
    assert cfg["output"][1]["dims"] == [-1, 6, 14]


def test_non_batch_bundle_full_dims_and_dtypes(fixed_bundle: Path, tmp_path: Path) -> None:
    out = write_triton_repo(fixed_bundle, tmp_path / "r")
    cfg = parse_pbtxt((out / "fixed" / "config.pbtxt").read_text())
    assert cfg["max_batch_size"] == 0 and "dynamic_batching" not in cfg
    assert cfg["input"] == [
        {"name": "x", "data_type": "TYPE_FP16", "dims": [2, -1]},
        {"name": "idx", "data_type": "TYPE_INT64", "dims": [4]},
        {"name": "img", "data_type": "TYPE_UINT8", "dims": [1, 2, 2]},
        {"name": "mask", "data_type": "TYPE_BOOL", "dims": [3]},
    ]
    assert cfg["output"] == [
        {"name": "y", "data_type": "TYPE_FP32", "dims": [2, -1]},
        {"name": "total", "data_type": "TYPE_FP32", "dims": [1], "reshape": {"shape": []}},  # scalar
        {"name": "idx32", "data_type": "TYPE_INT32", "dims": [4]},
        {"name": "img8", "data_type": "TYPE_INT8", "dims": [1, 2, 2]},
        {"name": "notmask", "data_type": "TYPE_BOOL", "dims": [3]},
    ]
    # Triton would prepend a batch dim the model does not have
    with pytest.raises(ExportError, match="cannot batch"):
        write_triton_repo(fixed_bundle, tmp_path / "r2", max_batch_size=4)
    assert not (tmp_path / "r2").exists()


def test_every_spec_dtype_maps() -> None:
    assert set(TRITON_DTYPES) == set(_DTYPES)  # a new spec dtype must get a Triton type
    expect = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "bfloat16": "TYPE_BF16", "int8": "TYPE_INT8",
              "uint8": "TYPE_UINT8", "int32": "TYPE_INT32", "int64": "TYPE_INT64", "bool": "TYPE_BOOL"}
    io = IOSpec(tuple(TensorSpec(f"i_{d}", d, ("batch", 2)) for d in sorted(expect)),
                (TensorSpec("o", "float32", ("batch",)),))
    cfg = parse_pbtxt(triton_config(io, name="m", backend="tensorrt", max_batch_size=2))
    assert cfg["platform"] == "tensorrt_plan" and cfg["max_batch_size"] == 2
    assert {i["name"][2:]: i["data_type"] for i in cfg["input"]} == expect
    assert all(i["dims"] == [2] for i in cfg["input"])
    assert cfg["output"] == [{"name": "o", "data_type": "TYPE_FP32", "dims": [1], "reshape": {"shape": []}}]


@pytest.mark.parametrize(("shapes", "expect"), [
    ((("batch", 3), ("batch",)), "batch"),
    ((("n", 3), ("n", 1)), "n"),
    ((("batch", 3), (4, 1)), None),        # an output without the batch dim
    ((("batch", 3), ("b2", 1)), None),     # two different names
    (((2, 3), (2, 1)), None),              # fixed dim 0
    ((("batch", 3), ()), None),            # a scalar output
])
def test_batch_dim_rules(shapes: tuple, expect: str | None) -> None:
    io = IOSpec((TensorSpec("a", "float32", shapes[0]),), (TensorSpec("b", "float32", shapes[1]),))
    assert batch_dim(io) == expect
    cfg = parse_pbtxt(triton_config(io, name="m"))
    assert cfg["max_batch_size"] == (8 if expect else 0)


def test_quoting_of_odd_tensor_names() -> None:
    io = IOSpec((TensorSpec('in"put\\0', "float32", (1,)),), (TensorSpec("out:0", "float32", (1,)),))
    cfg = parse_pbtxt(triton_config(io, name="m"))
    assert cfg["input"][0]["name"] == 'in"put\\0' and cfg["output"][0]["name"] == "out:0"


# -- files ----------------------------------------------------------------------------------------------------
def test_onnxruntime_gets_the_lowered_graph_and_matches_edge_load(tiny_bundle: Path, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    import edge

    b = Bundle.load(tiny_bundle)
    out = write_triton_repo(b, tmp_path / "r")
    copied = out / "lane" / "1" / "model.onnx"
    assert _sha(copied) == _sha(b.file("model.ort.onnx")) != _sha(b.file("model.onnx"))
    domains = {n.domain for n in onnx.load(str(b.file("model.onnx"))).graph.node}
    assert "edge.ai" in domains  # the un-lowered graph would not load in a stock onnxruntime
    assert "edge.ai" not in {n.domain for n in onnx.load(str(copied)).graph.node}

    feeds = {"clip": np.random.default_rng(0).standard_normal((2, 3, 3, 64, 128), dtype=np.float32)}
    rt = edge.load(b, backend="onnxruntime")
    try:
        ref = rt.infer(feeds)
    finally:
        rt.close()
    sess = ort.InferenceSession(str(copied), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    assert set(got) == {"loc", "exist"}
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-6)


def test_external_data_is_copied_and_the_model_loads(fixed_bundle: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    out = write_triton_repo(fixed_bundle, tmp_path / "r", backends="onnxruntime")
    vdir = out / "fixed" / "1"
    assert sorted(p.name for p in vdir.iterdir()) == ["fixed.onnx.data", "model.onnx"]
    sess = ort.InferenceSession(str(vdir / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float16)
    feeds = {"x": x, "idx": np.arange(4, dtype=np.int64), "img": np.full((1, 2, 2), 200, np.uint8),
             "mask": np.array([True, False, True])}
    y, total, idx32, img8, notmask = sess.run(["y", "total", "idx32", "img8", "notmask"], feeds)
    np.testing.assert_array_equal(y, x.astype(np.float32) * W)
    assert total.shape == () and float(total) == float((x.astype(np.float32) * W).sum())
    assert idx32.dtype == np.int32 and img8.dtype == np.int8 and notmask.tolist() == [False, True, False]


def test_openvino_folder(ir_bundle: Path, tmp_path: Path) -> None:
    import openvino as ov

    b = Bundle.load(ir_bundle)
    out = write_triton_repo(b, tmp_path / "r", backends=["openvino"], preferred_batch_sizes=[8])
    vdir = out / "lane" / "1"
    assert sorted(p.name for p in vdir.iterdir()) == ["model.bin", "model.xml"]
    assert _sha(vdir / "model.xml") == _sha(b.file("model.xml"))
    assert _sha(vdir / "model.bin") == _sha(b.file("model.bin"))
    cfg = parse_pbtxt((out / "lane" / "config.pbtxt").read_text())
    assert cfg["backend"] == "openvino" and "platform" not in cfg
    assert cfg["instance_group"] == [{"count": 1, "kind": "KIND_CPU"}]
    assert cfg["dynamic_batching"]["preferred_batch_size"] == [8]

    # the copied IR (found by the name model.xml, weights beside it) runs and matches onnxruntime
    feeds = {"clip": np.random.default_rng(1).standard_normal((3, 3, 3, 64, 128), dtype=np.float32)}
    compiled = ov.Core().compile_model(str(vdir / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    res = compiled(feeds)
    import edge

    rt = edge.load(b, backend="onnxruntime")
    try:
        ref = rt.infer(feeds)
    finally:
        rt.close()
    for k in ref:
        np.testing.assert_allclose(res[compiled.output(k)], ref[k], rtol=1e-4, atol=1e-5)


def test_openvino_without_ir_is_one_line(tiny_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="--to onnx,openvino"):
        write_triton_repo(tiny_bundle, tmp_path / "r", backends=["openvino"])


def test_tensorrt_without_engine_fails_before_writing(tiny_bundle: Path, tmp_path: Path) -> None:
    parent = tmp_path / "new" / "deeper"
    with pytest.raises(ExportError) as ei:
        write_triton_repo(tiny_bundle, parent / "repo", backends=["onnxruntime", "tensorrt"])
    msg = str(ei.value)
    assert "\n" not in msg and "edge build" in msg and "--triton-repo DIR" in msg
    # with a precision the bundle has (edge build's default fp16 is not in an fp32-only bundle: the line failed)
    assert f"`edge build {tiny_bundle} --precision fp32 --triton-repo DIR`" in msg, msg
    assert not (tmp_path / "new").exists()


def test_tensorrt_engine_and_several_backends(engine_bundle: Path, tmp_path: Path) -> None:
    b = Bundle.load(engine_bundle)
    out = write_triton_repo(b, tmp_path / "r", backends=("onnxruntime", "tensorrt"), name="lanes")
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "README.txt", "lanes_onnxruntime", "lanes_tensorrt"]
    assert _sha(out / "lanes_tensorrt" / "1" / "model.plan") == _sha(b.file("model.fp16.engine"))
    cfg = parse_pbtxt((out / "lanes_tensorrt" / "config.pbtxt").read_text())
    assert cfg["name"] == "lanes_tensorrt" and cfg["platform"] == "tensorrt_plan" and "backend" not in cfg
    assert cfg["instance_group"] == [{"count": 1, "kind": "KIND_GPU"}]
    assert parse_pbtxt((out / "lanes_onnxruntime" / "config.pbtxt").read_text())["name"] == "lanes_onnxruntime"
    readme = (out / "README.txt").read_text()
    assert "Orin (sm_87)" in readme and "tensorrt-fp16" in readme
    marker = json.loads((out / MARKER).read_text())
    assert marker["models"]["lanes_tensorrt"] == {"backend": "tensorrt", "artifact": "tensorrt-fp16"}
    # precision selects the artifact: there is no fp16 ONNX in this bundle
    with pytest.raises(ExportError, match="precision fp16"):
        write_triton_repo(b, tmp_path / "r2", backends=("onnxruntime",), precision="fp16")


def test_tensorrt_max_batch_size_is_the_engine_profiles(engine_bundle: Path, tmp_path: Path) -> None:
    """Found by a review: the config said max_batch_size 8 whatever the engine's profile (edge build --dim
    batch=1:2:4 stops at 4), which Triton's TensorRT backend refuses to load."""
    def add(w: BundleWriter) -> None:
        w.manifest["artifacts"] = [dict(a, max_batch=4) if a["format"] == "tensorrt_engine" else a
                                   for a in w.manifest["artifacts"]]
    src = _derive(engine_bundle, tmp_path / "b4", add)
    out = write_triton_repo(src, tmp_path / "r", backends=("tensorrt", "onnxruntime"))
    assert parse_pbtxt((out / "lane_tensorrt" / "config.pbtxt").read_text())["max_batch_size"] == 4
    assert parse_pbtxt((out / "lane_onnxruntime" / "config.pbtxt").read_text())["max_batch_size"] == 8
    out = write_triton_repo(src, tmp_path / "r2", backends=("tensorrt",), max_batch_size=2)
    assert parse_pbtxt((out / "lane" / "config.pbtxt").read_text())["max_batch_size"] == 2
    with pytest.raises(ExportError, match="max_batch_size 8: engine 'tensorrt-fp16' was built for batches up to 4"):
        write_triton_repo(src, tmp_path / "r3", backends=("tensorrt",), max_batch_size=8)
    assert not (tmp_path / "r3").exists()


def test_tensorrt_engine_with_python_plugin_is_refused(engine_bundle: Path, tmp_path: Path) -> None:
    def add(w: BundleWriter) -> None:
        w.manifest["artifacts"] = [dict(a, attention="plugin") if a["format"] == "tensorrt_engine" else a
                                   for a in w.manifest["artifacts"]]
    src = _derive(engine_bundle, tmp_path / "plugin_bundle", add)
    with pytest.raises(ExportError, match="plugin"):
        write_triton_repo(src, tmp_path / "r", backends=["tensorrt"])


# -- atomic output ------------------------------------------------------------------------------------------
def test_refuses_a_foreign_folder_or_a_file(tiny_bundle: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not a Triton repository edge-deploy wrote"):
        write_triton_repo(tiny_bundle, foreign)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"] and (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(ExportError, match="is not a folder"):
        write_triton_repo(tiny_bundle, foreign / "notes.txt")
    with pytest.raises(ExportError, match="must be separate folders"):
        write_triton_repo(tiny_bundle, tiny_bundle)  # the bundle folder itself
    with pytest.raises(ExportError, match="must be separate folders"):
        write_triton_repo(tiny_bundle, tiny_bundle / "triton")  # a repository inside the bundle
    assert _leftovers(tmp_path) == [] and _leftovers(tiny_bundle.parent) == []


def test_replaces_an_empty_folder_and_our_previous_repo(engine_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "repo"
    out.mkdir()
    write_triton_repo(engine_bundle, out, backends=["onnxruntime", "tensorrt"])
    assert (out / "lane_tensorrt").is_dir()
    write_triton_repo(engine_bundle, out, backends=["tensorrt"], version=2)
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "README.txt", "lane"])
    assert sorted(p.name for p in (out / "lane").iterdir()) == ["2", "config.pbtxt"]
    assert _leftovers(tmp_path) == []


def test_failure_midway_leaves_the_previous_repo_and_no_temp(engine_bundle: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "repo"
    write_triton_repo(engine_bundle, out, backends=["onnxruntime"])
    before = {p.relative_to(out).as_posix(): _sha(p) for p in out.rglob("*") if p.is_file()}

    calls = []
    real = shutil.copyfile

    def flaky(src: Any, dst: Any) -> Any:
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(triton_repo.shutil, "copyfile", flaky)
    with pytest.raises(ExportError, match=r"No space left on device.*nothing was written"):
        write_triton_repo(engine_bundle, out, backends=["onnxruntime", "tensorrt"])
    assert len(calls) == 2
    after = {p.relative_to(out).as_posix(): _sha(p) for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert _leftovers(tmp_path) == []


def test_a_user_model_or_file_added_to_our_repo_is_never_deleted(engine_bundle: Path, tmp_path: Path) -> None:
    """A review: the marker alone made a folder ours, so a re-export deleted another model a user had put beside
    ours (a repository is where several models are served from) and a notes file, exit 0. Only a repository
    holding exactly what the marker lists is replaced."""
    out = write_triton_repo(engine_bundle, tmp_path / "repo", backends=["onnxruntime"])
    marker = json.loads((out / MARKER).read_text())
    assert "lane/config.pbtxt" in marker["files"] and "README.txt" in marker["files"]
    (out / "my_model" / "1").mkdir(parents=True)
    (out / "my_model" / "config.pbtxt").write_text('name: "my_model"')
    (out / "lane" / "2").mkdir()  # a version the user added to our model folder
    (out / "lane" / "2" / "model.onnx").write_bytes(b"theirs")
    (out / "NOTES.txt").write_text("keep me")
    with pytest.raises(ExportError, match=r"only \(it also holds NOTES\.txt, lane/2/, my_model/, which a "
                                          r"re-export would delete\)"):
        write_triton_repo(engine_bundle, out, backends=["onnxruntime"])
    assert (out / "NOTES.txt").read_text() == "keep me"
    assert (out / "lane" / "2" / "model.onnx").read_bytes() == b"theirs"
    for extra in (out / "NOTES.txt", out / "lane" / "2" / "model.onnx", out / "lane" / "2"):
        extra.unlink() if extra.is_file() else extra.rmdir()
    shutil.rmtree(out / "my_model")
    write_triton_repo(engine_bundle, out, backends=["tensorrt"])  # ours alone again: replaced
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "README.txt", "lane"])
    # a repository from before the marker listed its files: its top level is checked against its model folders
    old = {k: v for k, v in json.loads((out / MARKER).read_text()).items() if k != "files"}
    (out / MARKER).write_text(json.dumps(old))
    (out / "theirs").mkdir()
    with pytest.raises(ExportError, match=r"it also holds theirs/"):
        write_triton_repo(engine_bundle, out, backends=["onnxruntime"])
    (out / "theirs").rmdir()
    write_triton_repo(engine_bundle, out, backends=["onnxruntime"])
    assert _leftovers(tmp_path) == []


def test_an_unusable_place_for_the_repo_is_refused_before_any_work(tiny_bundle: Path, tmp_path: Path) -> None:
    """A review: a repository under a file's name (or on a read-only mount) was found only when the finished
    repository was moved in: after the whole export, whose bundle then stayed behind while the command failed."""
    from edge.export.triton_repo import check_repo_out

    (tmp_path / "afile").write_text("x")
    with pytest.raises(ExportError, match=r"afile/deeper/tr: cannot be written: .*afile is a file, not a folder"):
        check_repo_out(tmp_path / "afile" / "deeper" / "tr", tiny_bundle)
    assert (tmp_path / "afile").read_text() == "x" and _leftovers(tmp_path) == []
    # a name that is not UTF-8: the README naming it failed to be written after the whole export (a review)
    with pytest.raises(ExportError, match=r"is not valid UTF-8, and the repository's README"):
        check_repo_out(tmp_path / "r\udcff", tiny_bundle)


def test_a_tensorrt_engine_that_takes_no_single_sample_is_refused_for_batching(tiny_bundle: Path,
                                                                                tmp_path: Path) -> None:
    """A review: an engine built with --dim batch=4:4:8 was served with a dynamic batcher, which also sends
    batches of 1-3 that the engine's profile refuses. It is refused for batching, allowed without it."""
    from edge.runtimes import tensorrt
    from edge.runtimes import trt_engine as te

    def add(w: BundleWriter) -> None:
        w.manifest["attention"] = {"mode": "decomposed", "reason": "test"}

    b = Bundle.load(_derive(tiny_bundle, tmp_path / "lane", add))
    io = b.graph_io("full")
    sha = b.manifest["files"]["model.onnx"]["sha256"]
    for low, name in ((4, "b4"), (1, "b1")):
        prof = {t.name: {"min": [low, *t.shape[1:]], "opt": [4, *t.shape[1:]], "max": [8, *t.shape[1:]]}
                for t in io.inputs}
        rec = te.EngineRecord(graph="full", precision="fp16", onnx_file="model.onnx", onnx_sha256=sha,
                              tensorrt="10.3.0", gpu="H100", compute_capability="9.0", profile=prof)
        eb = tensorrt.add_engine(Bundle.load(_derive(b.path, tmp_path / name, lambda w: None)), rec, b"plan")
        if low > 1:
            with pytest.raises(ExportError, match=r"built for batches from 4; .*--dim batch=1:OPT:MAX"):
                write_triton_repo(eb, tmp_path / f"r_{name}", backends=("tensorrt",))
            assert not (tmp_path / f"r_{name}").exists()
            out = write_triton_repo(eb, tmp_path / f"r0_{name}", backends=("tensorrt",), max_batch_size=0)
            assert parse_pbtxt((out / "lane" / "config.pbtxt").read_text())["max_batch_size"] == 0
        else:
            out = write_triton_repo(eb, tmp_path / f"r_{name}", backends=("tensorrt",))
            assert parse_pbtxt((out / "lane" / "config.pbtxt").read_text())["max_batch_size"] == 8


def test_never_deletes_a_bundle_kept_inside_an_old_repo(fixed_bundle: Path, tmp_path: Path) -> None:
    out = write_triton_repo(fixed_bundle, tmp_path / "repo")
    inner = shutil.copytree(fixed_bundle, out / "bundle")
    with pytest.raises(ExportError, match="must be separate folders"):
        write_triton_repo(inner, out)
    assert Bundle.load(inner).model_name == "fixed"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"backends": ["onnx"]}, "choose each at most once"),
    ({"backends": ["onnxruntime", "onnxruntime"]}, "choose each at most once"),
    ({"backends": []}, "non-empty"),
    ({"version": 0}, "version"),
    ({"name": "../up"}, "model name"),
    ({"instances": 0}, "instances"),
    ({"max_batch_size": -1}, "max_batch_size"),
    ({"preferred_batch_sizes": [16]}, r"1\.\.8"),
    ({"max_queue_delay_us": -5}, "max_queue_delay_us"),
    ({"graph": "nope"}, "no graph 'nope'"),
])
def test_bad_arguments_are_one_line_errors(tiny_bundle: Path, tmp_path: Path, kwargs: dict, match: str) -> None:
    from edge.errors import EdgeError

    with pytest.raises(EdgeError, match=match):
        write_triton_repo(tiny_bundle, tmp_path / "r", **kwargs)
    assert not (tmp_path / "r").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize(("backend", "device", "kind"), [
    ("onnxruntime", "auto", "KIND_AUTO"), ("onnxruntime", "cpu", "KIND_CPU"), ("onnxruntime", "gpu", "KIND_GPU"),
    ("openvino", "auto", "KIND_CPU"), ("tensorrt", "auto", "KIND_GPU"),
    ("openvino", "gpu", "runs on cpu only"), ("tensorrt", "cpu", "runs on gpu only"), ("onnxruntime", "tpu", "choose"),
])
def test_instance_kind_per_backend_and_device(backend: str, device: str, kind: str) -> None:
    from edge.export.triton_repo import instance_kind

    if kind.startswith("KIND_"):
        assert instance_kind(backend, device) == kind
    else:
        with pytest.raises(ExportError, match=kind):
            instance_kind(backend, device)


def test_cpu_only_server_repository(tiny_bundle: Path, tmp_path: Path) -> None:
    out = write_triton_repo(tiny_bundle, tmp_path / "r", device="cpu")
    assert parse_pbtxt((out / "lane" / "config.pbtxt").read_text())["instance_group"] == [
        {"count": 1, "kind": "KIND_CPU"}]


def test_a_camera_preprocessing_engine_is_not_what_triton_serves() -> None:
    """Triton is sent preprocessed tensors: of a graph's TensorRT engines it takes one built without
    ``--preprocess engine`` (whose input would be camera bytes, not the config's tensor)."""
    from types import SimpleNamespace

    front = {"name": "t-enc-cam", "format": "tensorrt_engine", "graph": "encoder", "precision": "fp16",
             "preprocess": "engine"}
    plain = {"name": "t-enc", "format": "tensorrt_engine", "graph": "encoder", "precision": "fp16"}
    b = SimpleNamespace(artifacts=[front, plain])
    assert triton_repo._find_artifact(b, "tensorrt_engine", "encoder", "fp16", "tensorrt")["name"] == "t-enc"
    assert triton_repo._find_artifact(b, "tensorrt_engine", "encoder", None, "tensorrt")["name"] == "t-enc"
    b.artifacts = [front]
    assert triton_repo._find_artifact(b, "tensorrt_engine", "encoder", "fp16", "tensorrt") is None


def test_tensorrt_serves_the_engine_built_for_this_device(tiny_bundle: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle with engines for two devices: the repository, written on the device that serves it, takes the one
    whose record fits (as edge.load does); it took the first listed whatever the GPU. With no engine for this
    device (a build host writing for another GPU), or no TensorRT here, the first listed, as before."""
    from edge.export import triton_repo
    from edge.runtimes import tensorrt
    from edge.runtimes import trt_engine as te

    def add(w: BundleWriter) -> None:  # engines that need no Python plugin (Triton serves plans alone)
        w.manifest["attention"] = {"mode": "decomposed", "reason": "test"}

    b = Bundle.load(_derive(tiny_bundle, tmp_path / "lane", add))
    sha = b.manifest["files"]["model.onnx"]["sha256"]
    gpus = {"H100": ("9.0", ""), "Orin": ("8.7", "36.4.0")}
    for gpu, (cc, l4t) in gpus.items():
        rec = te.EngineRecord(graph="full", precision="fp16", onnx_file="model.onnx", onnx_sha256=sha,
                              tensorrt="10.3.0", gpu=gpu, compute_capability=cc, l4t=l4t)
        b = tensorrt.add_engine(b, rec, f"plan for {gpu}".encode())
    for gpu in ("Orin", "H100"):
        cc, l4t = gpus[gpu]
        monkeypatch.setattr(triton_repo, "_trt_device", lambda cc=cc, l4t=l4t, gpu=gpu: {
            "tensorrt": "10.3.0", "gpu": gpu, "compute_capability": cc, "l4t": l4t})
        out = write_triton_repo(b, tmp_path / f"r_{gpu}", backends=("tensorrt",))
        assert (out / "lane" / "1" / "model.plan").read_bytes() == f"plan for {gpu}".encode()
    monkeypatch.setattr(triton_repo, "_trt_device", lambda: {"tensorrt": "10.3.0", "gpu": "RTX 4090",
                                                             "compute_capability": "8.9", "l4t": ""})
    out = write_triton_repo(b, tmp_path / "r_rtx", backends=("tensorrt",))  # none built for it: the first listed
    assert (out / "lane" / "1" / "model.plan").read_bytes() == b"plan for H100"
    monkeypatch.setattr(triton_repo, "_trt_device", lambda: None)
    out = write_triton_repo(b, tmp_path / "r_none", backends=("tensorrt",))
    assert (out / "lane" / "1" / "model.plan").read_bytes() == b"plan for H100"


def test_the_export_cli_serves_the_last_precision_asked(tiny_bundle: Path, tmp_path: Path) -> None:
    """A review: `edge-export --precision int8 --triton-repo DIR` served the fp32 graphs and said nothing. The
    repository serves the last precision of --precision every graph has for the backend, and the CLI names it."""
    from edge.cli.export_cmd import _triton

    b = Bundle.load(tiny_bundle)

    def int8_of(graphs: list[str]) -> Any:
        def add(w: BundleWriter) -> None:  # a copy of each fp32 ONNX stands in for its INT8 form (served by name)
            for g in graphs:
                art = b.artifact(fmt="onnx", graph=g, precision="fp32")
                name = art["file"].replace(".onnx", ".int8.onnx")
                w.write_bytes(name, b.file(art["file"]).read_bytes(), "onnx")
                w.add_artifact({"name": f"onnx-int8-{g}", "format": "onnx", "file": name, "graph": g,
                                "precision": "int8"})
        return add

    every = Bundle.load(_derive(tiny_bundle, tmp_path / "every" / "lane", int8_of(b.graphs)))
    path, precision = _triton(every, tmp_path / "r1", ["onnxruntime"], "auto", ["fp32", "int8"])
    assert precision == "int8"
    listed = (Path(path) / "README.txt").read_text()
    assert all(f"onnx-int8-{g}" in listed for g in b.graphs) and "(fp32)" not in listed, listed
    # one graph without its INT8 form: the whole repository serves the last precision every graph has
    one = Bundle.load(_derive(tiny_bundle, tmp_path / "one" / "lane", int8_of(b.graphs[:1])))
    path, precision = _triton(one, tmp_path / "r2", ["onnxruntime"], "auto", ["fp32", "int8"])
    assert precision == "fp32" and "onnx-int8" not in (Path(path) / "README.txt").read_text()
