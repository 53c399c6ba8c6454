"""FLOPs counted from ONNX graphs on hand-made cases, and pruning visible in the ETA-VLA graph's count."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edge.flops import count  # noqa: E402


def _model(nodes: list, inputs: list, outputs: list, inits: list | None = None, opset: int = 18) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", inputs, outputs, inits or [])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_matmul_gemm_conv() -> None:
    w = numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "w")
    b = numpy_helper.from_array(np.zeros((6, 7), np.float32), "b")
    m = _model([helper.make_node("MatMul", ["a", "c"], ["y"]),
                helper.make_node("Conv", ["x", "w"], ["z"], pads=[1, 1, 1, 1]),
                helper.make_node("Gemm", ["g", "b"], ["h"])],
               [_vi("a", ["batch", 3, 4]), _vi("c", [4, 5]), _vi("x", [1, 3, 10, 10]), _vi("g", [4, 6])],
               [_vi("y", None), _vi("z", None), _vi("h", None)], [w, b])
    f = count(m)
    assert f["MatMul"] == 2 * 1 * 3 * 4 * 5 and f["Conv"] == 2 * 8 * 10 * 10 * 3 * 9 and f["Gemm"] == 2 * 4 * 6 * 7
    assert f["total"] == f["MatMul"] + f["Conv"] + f["Gemm"]
    assert count(m, batch=3)["MatMul"] == 3 * f["MatMul"]  # a dynamic batch counted at the size asked


def test_grouped_conv_counts_its_groups() -> None:
    w = numpy_helper.from_array(np.zeros((8, 1, 3, 3), np.float32), "w")
    m = _model([helper.make_node("Conv", ["x", "w"], ["z"], pads=[1, 1, 1, 1], group=8)],
               [_vi("x", [1, 8, 10, 10])], [_vi("z", None)], [w])
    assert count(m)["Conv"] == 2 * 8 * 10 * 10 * 9


def test_opset23_attention() -> None:
    m = _model([helper.make_node("Attention", ["q", "k", "v"], ["o"])],
               [_vi("q", [2, 4, 10, 16]), _vi("k", [2, 4, 20, 16]), _vi("v", [2, 4, 20, 16])], [_vi("o", None)],
               opset=23)
    assert count(m)["Attention"] == 2 * 2 * 4 * 10 * 20 * (16 + 16)


def test_pruning_shows_in_the_exported_policy_graph(tmp_path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from edge.export.api import export_card
    from edge.flops import bundle_flops

    per = {}
    for keep in (1.0, 0.25):
        b, _ = export_card("etavla", tmp_path / f"k{keep}", config="tiny", options={"keep": keep},
                           attention="decomposed")
        per[keep] = bundle_flops(b, {"encode": 3, "policy": 1})
    assert per[0.25]["graphs"]["encode"] == per[1.0]["graphs"]["encode"]
    assert per[0.25]["graphs"]["policy"]["total"] < 0.8 * per[1.0]["graphs"]["policy"]["total"]
    assert per[1.0]["per_step"] == 3 * per[1.0]["graphs"]["encode"]["total"] + per[1.0]["graphs"]["policy"]["total"]
