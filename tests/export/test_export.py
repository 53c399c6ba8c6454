"""ONNX export: parity with PyTorch, graph contents of the decomposed mode, atomic failure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import edge  # noqa: E402
from edge.bundle import Bundle  # noqa: E402
from edge.errors import ExportError  # noqa: E402
from edge.models.checkpoint import load_model  # noqa: E402
from edge.models.lane import card as lane  # noqa: E402
from edge.parity import compare  # noqa: E402


def test_bundle_contents_and_recorded_parity(tiny_bundle: Path) -> None:
    b = Bundle.load(tiny_bundle)
    assert {"model.onnx", "encoder.onnx", "temporal.onnx", "weights.pt"} <= set(b.manifest["files"])
    assert set(b.manifest["graphs"]) == {"full", "encoder", "temporal"}
    for art in b.artifacts:
        if art["format"] == "onnx":
            assert art["parity"]["passed"] and art["parity"]["max_rel"] < 1e-4
            assert {"random", "synthetic", "export_example"} <= set(art["parity"]["sets"])
    assert b.manifest["preprocess"]["mean"] == lane.MEAN.tolist()
    assert "torch" in b.manifest["tools"] and "onnx" in b.manifest["tools"]


@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_matches_torch_on_synthetic_clips(tiny_bundle: Path, batch: int) -> None:
    """Fresh synthetic roads through the real preprocessing; fp32 rel error < 1e-4 (dynamic batch)."""
    module, cfg, _ = load_model(tiny_bundle / "weights.pt")
    from edge.models.lane.samples import samples

    clips = [lane.preprocess_clip([f["camera"].data for f in s], cfg) for s in samples(cfg, "calibration", batch, 99)]
    feeds = {"clip": np.concatenate(clips)}
    rt = edge.load(tiny_bundle, backend="onnxruntime")
    got = rt.infer(feeds)
    with torch.no_grad():
        loc, ex = module(torch.from_numpy(feeds["clip"]))
    errs = compare({"loc": loc.numpy(), "exist": ex.numpy()}, got)
    assert max(e["rel"] for e in errs.values()) < 1e-4, errs


def _producer(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in graph.node for o in n.output}


@pytest.fixture(scope="module")
def decomposed_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dec") / "lane"
    edge.export_card("lane", out, config="tiny", attention="decomposed", programs=["clip"])
    return out


def test_decomposed_graph_is_portable(decomposed_bundle: Path) -> None:
    """No custom domain, no op newer than opset 20, and the scale is folded into Q (Mul -> MatMul)."""
    model = onnx.load(str(decomposed_bundle / "model.onnx"))
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}
    assert max(o.version for o in model.opset_import) <= 20
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
    schema_ok = [onnx.defs.get_schema(n.op_type, 20, "").since_version <= 20 for n in model.graph.node]
    assert all(schema_ok)
    assert not any(n.op_type == "Attention" for n in model.graph.node)
    prod = _producer(model.graph)
    softmaxes = [n for n in model.graph.node if n.op_type == "Softmax"]
    assert len(softmaxes) == lane.CONFIGS["tiny"]["blocks"] + 1  # temporal blocks + row block
    for sm in softmaxes:
        mm = prod[sm.input[0]]
        while mm.op_type != "MatMul":  # possibly through Add (mask) nodes
            mm = prod[mm.input[0]]
        q_side = prod.get(mm.input[0])
        assert q_side is not None and q_side.op_type == "Mul", f"scale not folded into Q before {mm.name}"
    onnx.checker.check_model(model, full_check=True)


def test_export_any_user_module(tmp_path: Path) -> None:
    """edge.export works for a module that is not one of ours, with attention inside."""

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(8, 24)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q, k, v = self.proj(x).reshape(x.shape[0], x.shape[1], 3, 2, 4).permute(2, 0, 3, 1, 4)
            return edge.ops.attention(q, k, v).sum(1)

    m = Tiny().eval()
    b = edge.export(m, {"x": torch.randn(1, 5, 8)}, tmp_path / "user", dynamic_batch=True,
                    output_names=["y"])
    x = np.random.default_rng(0).standard_normal((4, 5, 8)).astype(np.float32)
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    for backend in ("onnxruntime", "openvino"):
        got = edge.load(b.path, backend=backend).infer({"x": x})["y"]
        assert np.abs(got - want).max() / np.abs(want).max() < 1e-4


def test_failed_validation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edge.parity

    real = edge.parity.parity

    def worse(*a: object, **kw: object) -> dict:  # a parity failure (a negative --rtol is refused up front now)
        return {**real(*a, **kw), "max_rel": 1.0}

    monkeypatch.setattr(edge.parity, "parity", worse)
    out = tmp_path / "never"
    with pytest.raises(ExportError, match="differs from PyTorch"):
        edge.export_card("lane", out, config="tiny", programs=["clip"])
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_manifest_is_plain_json(tiny_bundle: Path) -> None:
    m = json.loads((tiny_bundle / "manifest.json").read_text())
    assert m["schema_version"] == 1
    assert m["io"]["inputs"][0]["shape"][0] == "batch"


def test_the_torchlib_registry_is_built_once_and_each_export_gets_its_own_copy(tmp_path: Path) -> None:
    """torch.onnx.export builds its ATen -> ONNX registry afresh on every call (~1 s); export_onnx reuses it. The
    graph written is byte-identical to one exported with a fresh registry, a custom op registered into one
    export's registry reaches no other, and torch's own builder is back after each export."""
    from torch.onnx._internal.exporter import _registration

    from edge.export import onnx_export
    from edge.spec import IOSpec, TensorSpec

    class Net(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(x @ x.transpose(1, 2), -1) @ x

    io = IOSpec((TensorSpec("x", "float32", (1, 4, 8)),), (TensorSpec("y", "float32", (1, 4, 8)),))
    ex = {"x": np.zeros((1, 4, 8), np.float32)}
    own = _registration.ONNXRegistry.__dict__["from_torchlib"]
    calls = []
    real = own.__func__

    def counting(cls, *a, **k):  # the builder torch calls, counted
        calls.append(a or tuple(k.values()))
        return real(cls, *a, **k)

    _registration.ONNXRegistry.from_torchlib = classmethod(counting)
    onnx_export._REGISTRIES.clear()
    try:
        files = []
        for i in range(3):
            onnx_export.export_onnx(Net(), ex, io, tmp_path / f"m{i}.onnx", opset=20)
            files.append((tmp_path / f"m{i}.onnx").read_bytes())
            assert _registration.ONNXRegistry.__dict__["from_torchlib"].__func__ is counting  # restored
        assert len(calls) == 1  # built once, for opset 20
        with onnx_export._torchlib_registry_reused():
            a = _registration.ONNXRegistry.from_torchlib(20)
            a.register_op(torch.ops.aten.relu.default, lambda x: x)
            b = _registration.ONNXRegistry.from_torchlib(20)
        assert a is not b and len(a.get_decomps(torch.ops.aten.relu.default)) == \
            len(b.get_decomps(torch.ops.aten.relu.default)) + 1
    finally:
        _registration.ONNXRegistry.from_torchlib = own
        onnx_export._REGISTRIES.clear()
    import contextlib

    real_reuse = onnx_export._torchlib_registry_reused
    onnx_export._torchlib_registry_reused = contextlib.nullcontext  # torch's own registry, built by torch
    try:
        onnx_export.export_onnx(Net(), ex, io, tmp_path / "fresh.onnx", opset=20)
    finally:
        onnx_export._torchlib_registry_reused = real_reuse
    assert files[0] == files[1] == files[2] == (tmp_path / "fresh.onnx").read_bytes()


@pytest.mark.parametrize("keys", [("second", "first"), ("first", "second")])
def test_dict_outputs_are_taken_by_key_in_any_order(tmp_path: Path, keys: tuple[str, str]) -> None:
    """A review: a card graph returning ``{"second": .., "first": ..}`` against an IOSpec ``(first, second)`` got its
    outputs named by position (the dict's order) and failed parity as "ONNX Runtime differs from PyTorch"."""
    import onnxruntime as ort

    from edge.export import onnx_export
    from edge.spec import IOSpec, TensorSpec

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(8, 8)

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
            out = {"first": self.lin(a), "second": self.lin(b) * 3 + 1}
            return {k: out[k] for k in keys}

    spec = (TensorSpec("first", "float32", ("batch", 8)), TensorSpec("second", "float32", ("batch", 8)))
    io = IOSpec((TensorSpec("a", "float32", ("batch", 8)), TensorSpec("b", "float32", ("batch", 8))), spec)
    rng = np.random.default_rng(0)
    ex = {n: rng.standard_normal((2, 8)).astype(np.float32) for n in ("a", "b")}
    net = Net().eval()
    onnx_export.export_onnx(net, ex, io, tmp_path / "m.onnx", opset=20)
    s = ort.InferenceSession(str(tmp_path / "m.onnx"))
    assert [o.name for o in s.get_outputs()] == ["first", "second"]
    got = dict(zip(["first", "second"], s.run(None, ex), strict=True))
    with torch.no_grad():
        ref = net(*(torch.from_numpy(ex[n]) for n in ("a", "b")))
    for k in ("first", "second"):
        np.testing.assert_allclose(got[k], ref[k].numpy(), rtol=1e-5, atol=1e-6)
