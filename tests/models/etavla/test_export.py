"""The ETA-VLA bundle: every shape static after export (one TensorRT profile), pruning kept in the graph."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edge.export.api import export_card

    out = tmp_path_factory.mktemp("eta") / "b"
    export_card("etavla", out, config="tiny", options={"keep": 0.25})
    return out


def test_every_tensor_shape_is_static(bundle: Path) -> None:
    import onnx

    for name in ("encode", "policy"):
        model = onnx.shape_inference.infer_shapes(onnx.load(bundle / f"{name}.onnx"), strict_mode=True)
        g = model.graph
        values = [*g.input, *g.output, *g.value_info]
        assert len(values) > len(g.input) + len(g.output)  # inference reached the inner tensors
        for v in values:
            dims = v.type.tensor_type.shape.dim
            assert all(d.HasField("dim_value") for d in dims), (name, v.name, dims)
        ops = {n.op_type for n in g.node}
        assert not ops & {"NonZero", "Loop", "If", "Scan", "Unique"}, (name, ops)
    assert "TopK" in {n.op_type for n in onnx.load(bundle / "policy.onnx").graph.node}


def test_edge_build_says_how_tensorrt_would_build_it(bundle: Path) -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "edge.cli.main", "build", str(bundle), "--precision", "fp32"],
                       capture_output=True, text=True,
                       timeout=120)
    text = r.stdout + r.stderr
    assert "Traceback" not in text
    assert r.returncode == 2 and "trtexec" in text and "policy.onnx" in text and "encode.onnx" in text, text[-2000:]
