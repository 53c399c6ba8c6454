"""Every attention export mode x runtime (ONNX Runtime, OpenVINO) against torch eager and numpy.

Small attention-only modules are exported through ``edge.export`` in each mode: masks (bool and
additive), odd lengths, cross-attention with different q/kv lengths, QK-norm, and axial attention on
non-square maps. fp32 relative error (max |diff| / max |ref|) must stay below 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import edge  # noqa: E402
from edge.export.attention_modes import resolve_attention  # noqa: E402
from edge.ops import attention, attention_numpy, axial_attention, axial_attention_numpy  # noqa: E402
from edge.ops.onnx_schema import register_schemas  # noqa: E402

MODES = ["plugin", "onnx", "decomposed"]


class Attn(torch.nn.Module):
    def __init__(self, scale: float | None = None, qk_norm: bool = False) -> None:
        super().__init__()
        self.scale, self.qk_norm = scale, qk_norm

    def forward(self, q, k, v, mask=None):  # type: ignore[no-untyped-def]
        return attention(q, k, v, scale=self.scale, mask=mask, qk_norm=self.qk_norm)


class Axial(torch.nn.Module):
    def __init__(self, heads: int, axis: int) -> None:
        super().__init__()
        self.heads, self.axis = heads, axis

    def forward(self, x):  # type: ignore[no-untyped-def]
        return axial_attention(x, x * 0.5, x, heads=self.heads, axis=self.axis)


def _rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape).astype(np.float32)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def _backends() -> list[str]:
    """ONNX Runtime always; OpenVINO (plugin graphs through our extension) where it is installed."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return ["onnxruntime"]
    return ["onnxruntime", "openvino"]


def _export_and_run(tmp: Path, module: torch.nn.Module, feeds: dict[str, np.ndarray], mode: str):  # type: ignore[no-untyped-def]
    """Export in ``mode``; run on every available backend; returns (bundle, {backend: out}, torch out)."""
    b = edge.export(module, feeds, tmp / mode, attention=mode, output_names=["y"])
    got = {be: edge.load(b.path, backend=be).infer(feeds)["y"] for be in _backends()}
    with torch.no_grad():
        want = module(*(torch.from_numpy(feeds[n]) for n in feeds)).numpy()
    return b, got, want


CASES = {
    "self_odd": ({"q": _rand(1, 2, 7, 8), "k": _rand(1, 2, 7, 8, seed=1), "v": _rand(1, 2, 7, 8, seed=2)}, {}),
    "cross": ({"q": _rand(2, 3, 5, 16), "k": _rand(2, 3, 11, 16, seed=1), "v": _rand(2, 3, 11, 8, seed=2)},
              {"scale": 0.3}),
    "qk_norm": ({"q": _rand(1, 2, 9, 8) * 5, "k": _rand(1, 2, 13, 8, seed=1), "v": _rand(1, 2, 13, 8, seed=2)},
                {"qk_norm": True}),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_mode_matches_torch_and_numpy(tmp_path: Path, mode: str, case: str) -> None:
    feeds, kw = CASES[case]
    _, outs, want = _export_and_run(tmp_path, Attn(**kw), feeds, mode)
    ref = attention_numpy(feeds["q"], feeds["k"], feeds["v"], scale=kw.get("scale"), qk_norm=kw.get("qk_norm", False))
    for be, got in outs.items():
        assert _rel(got, want) < 1e-4, be
        assert _rel(got, ref) < 1e-4, be


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("mask_kind", ["bool", "float", "key_padding", "float_2d", "all_padding"])
def test_masks(tmp_path: Path, mode: str, mask_kind: str) -> None:
    """Masks of every shape SDPA broadcasts: [B, 1, Sq, Sk], a key-padding [B, 1, 1, Sk] and a 2-D
    [Sq, Sk] (ONNX Runtime's Attention kernel refused the last two until the nodes got the full shape)."""
    q, k, v = _rand(2, 2, 5, 8), _rand(2, 2, 6, 8, seed=1), _rand(2, 2, 6, 8, seed=2)
    if mask_kind == "bool":
        mask = np.random.default_rng(3).random((2, 1, 5, 6)) > 0.4
        mask[..., 0] = True
    elif mask_kind == "key_padding":
        mask = np.array([[True] * 4 + [False] * 2, [True] * 6])[:, None, None, :]
    elif mask_kind == "all_padding":  # a review: a sample with every key padded was NaN on OpenVINO and decomposed
        mask = np.array([[True] * 4 + [False] * 2, [False] * 6])[:, None, None, :]
    elif mask_kind == "float_2d":
        mask = _rand(5, 6, seed=5)
    else:
        mask = _rand(2, 1, 5, 6, seed=4)
    feeds = {"q": q, "k": k, "v": v, "mask": mask}
    _, outs, want = _export_and_run(tmp_path, Attn(), feeds, mode)
    for be, got in outs.items():
        assert _rel(got, want) < 1e-4, be
        assert _rel(got, attention_numpy(q, k, v, mask=mask)) < 1e-4, be
        if mask_kind == "all_padding":
            assert np.all(got[1] == 0) and np.all(want[1] == 0), be


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("axis", [-1, -2])
def test_axial_non_square(tmp_path: Path, mode: str, axis: int) -> None:
    x = _rand(1, 8, 5, 7)
    _, outs, want = _export_and_run(tmp_path, Axial(2, axis), {"x": x}, mode)
    for be, got in outs.items():
        assert _rel(got, want) < 1e-4, be
        assert _rel(got, axial_attention_numpy(x, x * 0.5, x, heads=2, axis=axis)) < 1e-4, be


def test_axial_numpy_reference_3d() -> None:
    x = _rand(2, 4, 3, 4, 5)
    for axis in (2, 3, 4):
        got = axial_attention(torch.from_numpy(x), torch.from_numpy(x), torch.from_numpy(x), heads=2, axis=axis)
        assert _rel(got.numpy(), axial_attention_numpy(x, x, x, heads=2, axis=axis)) < 1e-5


def test_plugin_graph_is_one_checked_node(tmp_path: Path) -> None:
    """plugin: one EdgeAttention node per call with its attributes; checker + strict shape inference pass."""
    feeds, kw = CASES["cross"]
    b, _, _ = _export_and_run(tmp_path, Attn(**kw), feeds, "plugin")
    model = onnx.load(str(b.path / "model.onnx"))
    nodes = [n for n in model.graph.node if n.op_type == "EdgeAttention"]
    assert len(nodes) == 1 and nodes[0].domain == "edge.ai"
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[0].attribute}
    assert attrs["num_heads"] == 3 and abs(attrs["scale"] - 0.3) < 1e-7
    assert attrs["plugin_namespace"] == b"edge" and attrs["plugin_version"] == b"1"
    assert not any(n.op_type in ("Attention", "Softmax") for n in model.graph.node)
    register_schemas()
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    del stripped.graph.value_info[:]
    for o in stripped.graph.output:
        o.type.tensor_type.ClearField("shape")
    inferred = onnx.shape_inference.infer_shapes(stripped, strict_mode=True, check_type=True)
    dims = [d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [2, 3, 5, 8]  # V's last dim
    onnx.checker.check_model(inferred, full_check=True)
    lowered = onnx.load(str(b.path / "model.ort.onnx"))
    assert [n.op_type for n in lowered.graph.node].count("Attention") == 1
    assert all(o.domain in ("", "ai.onnx") for o in lowered.opset_import)


class Mha(torch.nn.Module):
    """Heads split by view + transpose and merged back, as models write it. ``leak``: the split q and the
    attention's own [B, H, S, D] output are returned too (so q's Transpose stays, and the output is made
    4-D again); ``kv_heads``: K and V with that many heads (1: broadcast over the query's heads)."""

    def __init__(self, heads: int, qk_norm: bool = False, leak: bool = False, kv_heads: int | None = None) -> None:
        super().__init__()
        self.h, self.qk_norm, self.leak, self.kv = heads, qk_norm, leak, kv_heads or heads

    def forward(self, x, mem, mask=None):  # type: ignore[no-untyped-def]
        b, s, e = x.shape
        d = e // self.h
        q = x.view(b, s, self.h, d).transpose(1, 2)
        k = (mem[..., :self.kv * d] * 0.5).reshape(b, mem.shape[1], self.kv, d).transpose(1, 2)
        v = mem[..., :self.kv * d].reshape(b, mem.shape[1], self.kv, d).transpose(1, 2)
        a = attention(q, k, v, mask=mask, qk_norm=self.qk_norm)
        y = a.transpose(1, 2).reshape(b, s, e) + 1.0
        return (y, q * 2.0, a) if self.leak else y


@pytest.mark.parametrize("kind", ["qk_norm_mask", "leak"])
def test_ort_lowering_drops_head_transposes(tmp_path: Path, kind: str) -> None:
    """The ONNX Runtime lowering feeds the un-transposed [B, S, H, D] tensors to 3-D Attention (no head
    Transposes left unless something else reads them) and stays equal to PyTorch (with QK-norm and a
    mask; plain)."""
    x, mem = _rand(2, 5, 12), _rand(2, 7, 12, seed=1)
    feeds: dict[str, np.ndarray] = {"x": x, "mem": mem}
    if kind == "qk_norm_mask":
        mask = np.random.default_rng(5).random((1, 1, 5, 7)) > 0.4
        mask[..., 0] = True
        feeds["mask"] = mask
    module = Mha(3, qk_norm=kind == "qk_norm_mask", leak=kind == "leak")
    names = ["y", "q", "a"] if kind == "leak" else ["y"]
    b = edge.export(module, feeds, tmp_path / kind, attention="plugin", output_names=names)
    lowered = onnx.load(str(b.path / "model.ort.onnx"))
    att = [n for n in lowered.graph.node if n.op_type == "Attention"]
    assert len(att) == 1
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in att[0].attribute}
    transposes = sum(n.op_type == "Transpose" for n in lowered.graph.node)
    # leak: q's swap stays for its other reader; the output, also read as [B, H, S, D], is swapped back to it
    # (and the model's own merge Transpose reads that)
    assert attrs["q_num_heads"] == 3 and transposes == (3 if kind == "leak" else 0)
    got = edge.load(b.path, backend="onnxruntime").infer(feeds)
    with torch.no_grad():
        want = module(*(torch.from_numpy(feeds[n]) for n in feeds))
    for name, w in zip(names, want if kind == "leak" else [want], strict=True):
        assert _rel(got[name], w.numpy()) < 1e-5, name


def test_ort_lowering_keeps_4d_for_broadcast_kv_heads() -> None:
    """K/V of one head broadcast over the query's heads in the 4-D form; the 3-D form would read them as H
    heads, so a graph whose K/V sources have fewer heads than the node keeps its Transposes (hand-made graph:
    torch writes no Transpose for a one-head swap)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from edge.runtimes.plugins.ort_lowering import lower_edge_attention

    register_schemas()
    heads, d = 3, 4
    swaps = [helper.make_node("Transpose", [n], [f"{n}_t"], perm=[0, 2, 1, 3]) for n in ("q", "k", "v")]
    att = helper.make_node("EdgeAttention", ["q_t", "k_t", "v_t"], ["a"], domain="edge.ai", num_heads=heads,
                           scale=0.5)
    merge = helper.make_node("Transpose", ["a"], ["y"], perm=[0, 2, 1, 3])
    ins = [helper.make_tensor_value_info("q", TensorProto.FLOAT, [1, 5, heads, d])] + [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 7, 1, d]) for n in ("k", "v")]
    g = helper.make_graph([*swaps, att, merge], "g", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid("edge.ai", 1)])
    lowered = lower_edge_attention(model)
    assert sum(n.op_type == "Transpose" for n in lowered.graph.node) == 4
    feeds = {"q": _rand(1, 5, heads, d), "k": _rand(1, 7, 1, d, seed=1), "v": _rand(1, 7, 1, d, seed=2)}
    got = ort.InferenceSession(lowered.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    sw = {k: v.transpose(0, 2, 1, 3) for k, v in feeds.items()}
    want = attention_numpy(sw["q"], sw["k"], sw["v"], scale=0.5).transpose(0, 2, 1, 3)
    assert _rel(got, want) < 1e-5
    for i, n in ((1, "k"), (2, "v")):
        model.graph.input[i].CopyFrom(helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 7, heads, d]))
    assert sum(n.op_type == "Transpose" for n in lower_edge_attention(model).graph.node) == 0  # H heads: folded


def test_onnx_mode_uses_standard_attention(tmp_path: Path) -> None:
    b, _, _ = _export_and_run(tmp_path, Attn(), CASES["self_odd"][0], "onnx")
    model = onnx.load(str(b.path / "model.onnx"))
    assert any(n.op_type == "Attention" and n.domain == "" for n in model.graph.node)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 23


def test_auto_choice_is_recorded(tmp_path: Path) -> None:
    mode, reason = resolve_attention("auto")
    assert mode in ("plugin", "decomposed") and reason
    b = edge.export(Attn(), CASES["self_odd"][0], tmp_path / "auto", output_names=["y"])
    assert b.manifest["attention"]["requested"] == "auto"
    assert b.manifest["attention"]["mode"] == mode
    with pytest.raises(edge.EdgeError, match="choose one of"):
        resolve_attention("fastest")


@pytest.mark.parametrize("mode", MODES)
def test_edge_export_lane_every_mode(tmp_path: Path, mode: str) -> None:
    """`edge-export lane --attention MODE --to onnx` works for every mode; each backend matches torch."""
    import subprocess
    import sys

    out = tmp_path / "lane"
    r = subprocess.run([sys.executable, "-c", "from edge.cli.main import export_main; export_main()", "lane",
                        "--config", "tiny", "--attention", mode, "--to", "onnx", "--programs", "clip",
                        "--out", str(out),
                        "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    b = edge.Bundle.load(out)
    assert b.manifest["attention"]["mode"] == mode
    from edge.models.lane import card as lane

    feeds = lane.example_full(b.manifest["model"]["config"], 1, 11)
    want = edge.load(b, backend="torch").infer(feeds)
    for be in _backends():
        got = edge.load(b, backend=be).infer(feeds)
        assert max(_rel(got[k], want[k]) for k in want) < 1e-4, be
