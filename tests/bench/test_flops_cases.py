"""MAC counts from ONNX graphs on hand-made cases, and pruning visible in the ETA-VLA policy graph's count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edge.bench.flops import count_macs  # noqa: E402


def _save(tmp_path: Path, nodes: list, inputs: list, outputs: list, inits: list | None = None,
          opset: int = 18) -> str:
    g = helper.make_graph(nodes, "g", inputs, outputs, inits or [])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]), path)
    return str(path)


def _vi(name: str, shape: list | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_matmul_gemm_conv_and_a_dynamic_batch(tmp_path: Path) -> None:
    w = numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "w")
    b = numpy_helper.from_array(np.zeros((6, 7), np.float32), "b")
    p = _save(tmp_path, [helper.make_node("MatMul", ["a", "c"], ["y"]),
                         helper.make_node("Conv", ["x", "w"], ["z"], pads=[1, 1, 1, 1]),
                         helper.make_node("Gemm", ["g", "b"], ["h"])],
              [_vi("a", ["batch", 3, 4]), _vi("c", [4, 5]), _vi("x", [1, 3, 10, 10]), _vi("g", [4, 6])],
              [_vi("y", None), _vi("z", None), _vi("h", None)], [w, b])
    assert count_macs(p) == 3 * 4 * 5 + 8 * 10 * 10 * 3 * 9 + 4 * 6 * 7
    assert count_macs(p, batch=3) == 3 * (3 * 4 * 5) + 8 * 10 * 10 * 3 * 9 + 4 * 6 * 7


def test_grouped_conv_counts_per_group(tmp_path: Path) -> None:
    w = numpy_helper.from_array(np.zeros((8, 1, 3, 3), np.float32), "w")
    p = _save(tmp_path, [helper.make_node("Conv", ["x", "w"], ["z"], pads=[1, 1, 1, 1], group=8)],
              [_vi("x", [1, 8, 10, 10])], [_vi("z", None)], [w])
    assert count_macs(p) == 8 * 10 * 10 * 9


def test_opset23_attention(tmp_path: Path) -> None:
    p = _save(tmp_path, [helper.make_node("Attention", ["q", "k", "v"], ["o"])],
              [_vi("q", [2, 4, 10, 16]), _vi("k", [2, 4, 20, 16]), _vi("v", [2, 4, 20, 16])], [_vi("o", None)],
              opset=23)
    assert count_macs(p) == 2 * 4 * 10 * 20 * (16 + 16)


def test_opset23_attention_in_its_3d_form(tmp_path: Path) -> None:
    """A review: the lowered lane graphs' Attention takes (batch, tokens, heads x width) with q_num_heads /
    kv_num_heads; it was counted as 0 (6 % of the default clip's MACs missing from GMAC, GFLOP/s, of peak)."""
    p = _save(tmp_path, [helper.make_node("Attention", ["q", "k", "v"], ["o"], q_num_heads=4, kv_num_heads=2)],
              [_vi("q", [2, 10, 64]), _vi("k", [2, 20, 32]), _vi("v", [2, 20, 24])], [_vi("o", None)], opset=23)
    # per query head: QK^T over a 16-wide head, then AV with a 12-wide value head
    assert count_macs(p) == 2 * 4 * 10 * 20 * (16 + 12)


@pytest.mark.slow  # two ETA-VLA exports (~25-30 s on a Zen 1 pair): the default suite's 15 min
def test_pruning_shows_in_the_exported_policy_graph(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from edge.export.api import export_card

    macs = {}
    for keep in (1.0, 0.25):
        b, _ = export_card("etavla", tmp_path / f"k{keep}", config="tiny", options={"keep": keep},
                           attention="decomposed")
        macs[keep] = {g: count_macs(str(b.path / f"{g}.onnx")) for g in ("encode", "policy")}
    assert macs[0.25]["encode"] == macs[1.0]["encode"] > 0
    assert 0 < macs[0.25]["policy"] < 0.8 * macs[1.0]["policy"]
