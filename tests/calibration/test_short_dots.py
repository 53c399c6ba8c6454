"""Short dot products (a rotation of points, a projection, a K=4 layer on coordinates) stay in float in
every INT8 form: found from shapes, skipped by the QDQ quantizer, NNCF's ignored scope and the gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edge.calibration.datasets import FeedSet  # noqa: E402
from edge.calibration.gate import candidate_nodes  # noqa: E402
from edge.calibration.quantize import MIN_INT8_DOT, quantize_int8, short_dots  # noqa: E402


def _graph(path: Path) -> Path:
    """pts [1, 64, 3] -> rotate (MatMul K=3, by an input) -> lift (MatMul K=3, weights) -> mix (MatMul K=32)
    -> reshape -> gemm_long (transB, K=32); and gemm_small (transB, K=4) on a second input [8, 4]."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((3, 32)).astype(np.float32), "w_lift"),
             numpy_helper.from_array(rng.standard_normal((32, 32)).astype(np.float32), "w_mix"),
             numpy_helper.from_array(rng.standard_normal((16, 4)).astype(np.float32), "w_small"),
             numpy_helper.from_array(rng.standard_normal((16, 32)).astype(np.float32), "w_long")]
    nodes = [helper.make_node("MatMul", ["pts", "R"], ["rot"], name="rotate"),
             helper.make_node("MatMul", ["rot", "w_lift"], ["lift"], name="lift"),
             helper.make_node("Relu", ["lift"], ["act"], name="relu"),
             helper.make_node("MatMul", ["act", "w_mix"], ["mix"], name="mix"),
             helper.make_node("Gemm", ["aux", "w_small"], ["small"], name="gemm_small", transB=1),
             helper.make_node("Reshape", ["mix", "shape"], ["flat"], name="flat"),
             helper.make_node("Gemm", ["flat", "w_long"], ["long"], name="gemm_long", transB=1)]
    inits.append(numpy_helper.from_array(np.array([64, 32], np.int64), "shape"))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("pts", TensorProto.FLOAT, [1, 64, 3]),
                                       helper.make_tensor_value_info("R", TensorProto.FLOAT, [3, 3]),
                                       helper.make_tensor_value_info("aux", TensorProto.FLOAT, [8, 4])],
                          [helper.make_tensor_value_info("long", TensorProto.FLOAT, [64, 16]),
                           helper.make_tensor_value_info("small", TensorProto.FLOAT, [8, 16])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _feeds(n: int) -> FeedSet:
    rng = np.random.default_rng(1)
    feeds = []
    for _ in range(n):
        q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        feeds.append({"pts": (rng.standard_normal((1, 64, 3)) * 30).astype(np.float32), "R": q.astype(np.float32),
                      "aux": rng.standard_normal((8, 4)).astype(np.float32)})
    return FeedSet(feeds, "synthetic", "calibration", [str(i) for i in range(n)])


def test_short_dots_are_found_from_shapes(tmp_path: Path) -> None:
    assert MIN_INT8_DOT == 16
    src = _graph(tmp_path / "g.onnx")
    assert short_dots(src) == ["rotate", "lift", "gemm_small"]  # K = 3, 3, 4; mix and gemm_long sum 32
    assert candidate_nodes(src, ("MatMul", "Gemm")) == ["mix", "gemm_long"]  # the gate never ranks the others


def test_qdq_leaves_short_dots_in_float(tmp_path: Path) -> None:
    src = _graph(tmp_path / "g.onnx")
    info = quantize_int8(src, tmp_path / "q.onnx", _feeds(4))
    assert info["short_dots"] == ["rotate", "lift", "gemm_small"] and info["excluded"] == []
    m = onnx.load(str(tmp_path / "q.onnx"))
    made_by = {o: n.op_type for n in m.graph.node for o in n.output}
    reads_dq = {n.name: any(made_by.get(i) == "DequantizeLinear" for i in n.input) for n in m.graph.node
                if n.op_type in ("MatMul", "Gemm")}
    assert reads_dq == {"rotate": False, "lift": False, "gemm_small": False, "mix": True, "gemm_long": True}
    # an exclusion the caller names is not listed twice
    info = quantize_int8(src, tmp_path / "q2.onnx", _feeds(4), exclude=["rotate", "mix"])
    assert info["short_dots"] == ["lift", "gemm_small"] and info["excluded"] == ["rotate", "mix"]


def test_openvino_finds_the_same_short_matmuls(tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    from edge.calibration.nncf_int8 import short_matmuls
    from edge.runtimes.openvino import read_model

    src = _graph(tmp_path / "g.onnx")
    found = short_matmuls(read_model(str(src)))
    # OpenVINO reads a Gemm as a MatMul (+ Add); the names keep the ONNX node's
    assert sorted(n.split("/")[0] for n in found) == ["gemm_small", "lift", "rotate"]


def test_nncf_leaves_short_matmuls_in_float(tmp_path: Path) -> None:
    pytest.importorskip("nncf")
    from edge.calibration.nncf_int8 import nncf_nodes, nncf_quantize_ir
    from edge.spec import IOSpec, TensorSpec

    src = _graph(tmp_path / "g.onnx")
    io = IOSpec(inputs=(TensorSpec("pts", "float32", (1, 64, 3)), TensorSpec("R", "float32", (3, 3)),
                        TensorSpec("aux", "float32", (8, 4))),
                outputs=(TensorSpec("long", "float32", (64, 16)), TensorSpec("small", "float32", (8, 16))))
    info = nncf_quantize_ir(str(src), str(tmp_path / "q.xml"), _feeds(4), io, transformer=False)
    assert sorted(n.split("/")[0] for n in info["short_dots"]) == ["gemm_small", "lift", "rotate"]
    quantized = {n.split("/")[0] for n in nncf_nodes(tmp_path / "q.xml")}
    assert "mix" in quantized and not quantized & {"rotate", "lift", "gemm_small"}


def test_a_computed_reshape_still_shows_its_short_dot(tmp_path: Path) -> None:
    """The points' Gram matrix (pairwise dot products, as a kNN computes distances) after a Reshape whose
    shape is computed from the input's (Shape -> Gather -> Concat): only data propagation in shape
    inference gives the summed length 3; without it the node counted as long and was quantized."""
    inits = [numpy_helper.from_array(np.array([0], np.int64), "i0"),
             numpy_helper.from_array(np.array([-1, 3], np.int64), "tail"),
             numpy_helper.from_array(np.random.default_rng(0).standard_normal((32, 32)).astype(np.float32), "w")]
    nodes = [helper.make_node("Shape", ["x"], ["sx"], name="shape"),
             helper.make_node("Gather", ["sx", "i0"], ["b"], name="batch", axis=0),
             helper.make_node("Concat", ["b", "tail"], ["shp"], name="cat", axis=0),
             helper.make_node("Reshape", ["x", "shp"], ["pts"], name="pts"),
             helper.make_node("Transpose", ["pts"], ["ptsT"], perm=[0, 2, 1]),  # unnamed
             helper.make_node("MatMul", ["pts", "ptsT"], ["gram"], name="gram"),
             helper.make_node("MatMul", ["gram", "w"], ["y"], name="mix")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 96])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    assert short_dots(model) == ["gram"]  # mix sums 32 (the weight's rows)
    # the caller's model is not changed: its unnamed node stays unnamed, no shapes are added to it
    assert [n.name for n in model.graph.node][-3:] == ["", "gram", "mix"] and len(model.graph.value_info) == 0


def test_unnamed_nodes_are_named_alike_by_every_int8_tool(tmp_path: Path) -> None:
    """A graph whose MatMuls carry no names (a user's own file): short_dots, the gate's candidates and the
    quantizer give the same names, so the short one stays float, the long one is quantized, and an
    exclusion by the given name holds (ONNX Runtime excludes by name; "" would have matched every
    unnamed node or none)."""
    src = _graph(tmp_path / "g.onnx")
    m = onnx.load(str(src))
    for n in m.graph.node:
        if n.name in ("rotate", "mix"):
            n.name = ""
    onnx.save(m, str(tmp_path / "u.onnx"))
    src = tmp_path / "u.onnx"
    assert short_dots(src) == ["MatMul_0", "lift", "gemm_small"]
    assert candidate_nodes(src, ("MatMul", "Gemm")) == ["MatMul_3", "gemm_long"]

    def reads_dq(path: Path) -> dict[str, bool]:
        q = onnx.load(str(path))
        made_by = {o: n.op_type for n in q.graph.node for o in n.output}
        return {n.name: any(made_by.get(i) == "DequantizeLinear" for i in n.input)
                for n in q.graph.node if n.op_type in ("MatMul", "Gemm")}

    info = quantize_int8(src, tmp_path / "q.onnx", _feeds(4))
    assert info["short_dots"] == ["MatMul_0", "lift", "gemm_small"]
    assert reads_dq(tmp_path / "q.onnx") == {"MatMul_0": False, "lift": False, "gemm_small": False,
                                            "MatMul_3": True, "gemm_long": True}
    quantize_int8(src, tmp_path / "q2.onnx", _feeds(4), exclude=["MatMul_3"])
    assert reads_dq(tmp_path / "q2.onnx") == {"MatMul_0": False, "lift": False, "gemm_small": False,
                                              "MatMul_3": False, "gemm_long": True}
    assert onnx.load(str(src)).graph.node[0].name == ""  # the source file is not rewritten
