"""OpenVINO's lowering of our EdgeAttention node reads graphs of any float type: an fp16 graph was refused
("Mixed input types are not supported": its scale and RMS epsilon were f32 constants)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")
pytest.importorskip("onnx")


@pytest.mark.parametrize("qk_norm", [0, 1])
def test_an_fp16_edge_attention_graph_reads_and_matches(tmp_path: Path, qk_norm: int) -> None:
    import onnx
    from onnx import TensorProto, helper

    from edge.ops.attention import PLUGIN_DOMAIN, PLUGIN_OP, attention_numpy
    from edge.runtimes.openvino import core, read_model

    shape = [1, 2, 4, 8]
    node = helper.make_node(PLUGIN_OP, ["q", "k", "v"], ["o"], domain=PLUGIN_DOMAIN, num_heads=2, scale=0.35,
                            qk_norm=qk_norm)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT16, shape) for n in "qkv"],
                          [helper.make_tensor_value_info("o", TensorProto.FLOAT16, shape)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid(PLUGIN_DOMAIN, 1)])
    onnx.save(m, str(tmp_path / "a16.onnx"))
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(shape).astype(np.float16) for _ in range(3))
    out = core().compile_model(read_model(str(tmp_path / "a16.onnx")), "CPU")([q, k, v])[0]
    want = attention_numpy(*(x.astype(np.float32) for x in (q, k, v)), scale=0.35, qk_norm=bool(qk_norm))
    assert out.dtype == np.float16 and np.abs(out.astype(np.float32) - want).max() < 1e-2
