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
    assert _say_if_float(job, _graph(tmp_path / "f.onnx", False), "enc", "int8 (u8s8)") == 0
    assert said == ["warning: enc int8 (u8s8): every node left in float to meet the budget; this graph runs in fp32 "
                    "in the int8 program"]
