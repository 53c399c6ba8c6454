"""An "int8" graph in which the gate's fallback left every node in float says so (it ran in fp32 unnoticed)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edge.calibration.precision import _say_if_float  # noqa: E402


def _graph(path: Path, quantized: bool) -> str:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    if quantized:
        inits = [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                 numpy_helper.from_array(np.array(0, np.int8), "z")]
        nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                 helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    else:
        inits, nodes = [], [helper.make_node("Relu", ["x"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 20)])
    onnx.save(model, path)
    return str(path)


def test_a_graph_left_all_in_float_is_reported(tmp_path: Path) -> None:
    said: list[str] = []
    job = SimpleNamespace(say=said.append)
    assert _say_if_float(job, _graph(tmp_path / "q.onnx", True), "enc", "int8 (u8s8)") == 1
    assert said == []
    assert _say_if_float(job, _graph(tmp_path / "f.onnx", False), "enc", "int8 (u8s8)", "to meet the budget") == 0
    assert said == ["warning: enc int8 (u8s8): every node left in float to meet the budget; this graph runs in fp32 "
                    "in the int8 program"]


def _products(path: Path, widths: tuple[int, ...]) -> str:
    """x [1, 4, widths[0]] through a chain of MatMuls summing ``widths`` terms each (the last writes 8)."""
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i, w in enumerate(widths):
        out = widths[i + 1] if i + 1 < len(widths) else 8
        inits.append(numpy_helper.from_array(rng.standard_normal((w, out)).astype(np.float32), f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"y{i}"], name=f"mm{i}"))
        prev = f"y{i}"
    g = helper.make_graph(nodes or [helper.make_node("Relu", ["x"], ["y"], name="relu")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, widths[0] if widths else 8])],
                          [helper.make_tensor_value_info(prev if widths else "y", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


def test_why_a_graph_has_nothing_to_quantize(tmp_path: Path) -> None:
    """The warning for a graph left float says the real reason: no Conv/MatMul/Gemm at all, or only dot
    products too short for int8 (it said "to meet the budget" for both, though the gate had excluded nothing)."""
    from edge.calibration.precision import _nothing_to_quantize

    assert _nothing_to_quantize(_products(tmp_path / "none.onnx", ())) == "because it has no Conv, MatMul or Gemm"
    assert _nothing_to_quantize(_products(tmp_path / "short.onnx", (3, 8))) == (
        "because its MatMul/Gemm nodes all sum fewer than 16 terms (kept float in every INT8 form)")
    assert _nothing_to_quantize(_products(tmp_path / "long.onnx", (3, 16, 4))) is None  # mm1 sums 16
    assert _nothing_to_quantize(_products(tmp_path / "wide.onnx", (16,))) is None
    said: list[str] = []
    _say_if_float(SimpleNamespace(say=said.append), _graph(tmp_path / "f.onnx", False), "g", "int8")
    assert said == ["warning: g int8: every node left in float (the quantizer wrote no int8 node); this graph runs "
                    "in fp32 in the int8 program"]


def test_nncf_lists_a_quantized_product_of_two_activations(tmp_path: Path) -> None:
    """NNCF quantizes the inputs of a Multiply of two activations: nncf_nodes lists it (it skipped every
    Multiply as a weight's dequantization step), so ignoring every listed node leaves no FakeQuantize and
    the gate can keep that product in float. A weight's own dequantization ops are still not listed."""
    pytest.importorskip("nncf")
    from edge.calibration.nncf_int8 import nncf_nodes, nncf_quantize_ir
    from edge.runtimes.openvino import read_model

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("w1", (8, 3, 3, 3)), ("w2", (8, 3, 3, 3)), ("w3", (8, 8, 3, 3)))]
    conv = {"pads": [1, 1, 1, 1]}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="conva", **conv),
             helper.make_node("Conv", ["x", "w2"], ["b"], name="convb", **conv),
             helper.make_node("Mul", ["a", "b"], ["ab"], name="mul_ab"),
             helper.make_node("Add", ["ab", "a"], ["s"], name="add_s"),
             helper.make_node("Conv", ["s", "w3"], ["y"], name="convy", **conv)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    feeds = [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(4)]
    from edge.calibration.datasets import FeedSet

    calib = FeedSet(feeds, "random", "calibration", [str(i) for i in range(4)], samples=2)  # 2 feeds a sample
    io = SimpleNamespace(input_names=["x"])

    def fed_by_fq(xml: Path) -> set[str]:
        return {t.get_node().get_friendly_name() for op in read_model(str(xml)).get_ordered_ops()
                if op.get_type_name() == "FakeQuantize" for o in op.outputs() for t in o.get_target_inputs()}

    import logging

    logging.getLogger("nncf").setLevel(logging.DEBUG)  # a caller's own NNCF logging is theirs after the call
    rec = nncf_quantize_ir(str(tmp_path / "m.onnx"), str(tmp_path / "q.xml"), calib, io, transformer=False)
    assert logging.getLogger("nncf").level == logging.DEBUG
    # a review: the record said the 4 feeds were 4 samples; now as the QDQ artifacts say it
    assert (rec["calibration"], rec["calibration_samples"], rec["calibration_feeds"]) == ("random", 2, 4)
    logging.getLogger("nncf").setLevel(logging.INFO)
    listed = nncf_nodes(tmp_path / "q.xml")
    assert "mul_ab" in listed and "mul_ab" in fed_by_fq(tmp_path / "q.xml")
    assert not [n for n in listed if "dequantize" in n.lower() or "/fq_weights" in n.lower()]
    nncf_quantize_ir(str(tmp_path / "m.onnx"), str(tmp_path / "f.xml"), calib, io, ignored=listed, transformer=False)
    assert fed_by_fq(tmp_path / "f.xml") == set()
