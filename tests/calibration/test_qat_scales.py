"""A quantization-aware checkpoint's trained scales in the symmetric INT8 export: found on the graph's tensors
by value, written into the QDQ graph in place of calibrated ones, so the INT8 graph computes what training
trained (the fake-quantized forward), and recorded in the manifest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edge.calibration.datasets import FeedSet  # noqa: E402
from edge.calibration.qat_scales import check_scales, tensor_scales  # noqa: E402
from edge.calibration.quantize import quantize_int8  # noqa: E402
from edge.errors import ExportError, ModelError  # noqa: E402
from edge.export.onnx_export import export_onnx  # noqa: E402
from edge.models.qat import attach  # noqa: E402
from edge.spec import IOSpec, TensorSpec  # noqa: E402


class Root(torch.nn.Module):
    """A whole model of which the graph exports only ``body`` (so layer names in the model and in the graph's
    module differ, as a family's graph wrappers make them differ)."""

    def __init__(self, padding_mode: str = "zeros") -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1, padding_mode=padding_mode), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 3, stride=2), torch.nn.ReLU(), torch.nn.Flatten(),
            torch.nn.Linear(8 * 3 * 3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
        self.other = torch.nn.Linear(32, 32)


IO = IOSpec((TensorSpec("x", "float32", (2, 3, 8, 8)),), (TensorSpec("y", "float32", (2, 4)),))


def _trained(root: Root) -> tuple[dict[str, float], Any]:
    """Scales from a few fake-quantized training forwards (inputs of several sizes: the running average is no
    one batch's max), and the fake-quantized eval forward of a probe input."""
    fq = attach([root.body])
    root.train()
    g = torch.Generator().manual_seed(1)
    for k in (1.0, 2.0, 0.5, 1.5):
        root.body(k * torch.randn(2, 3, 8, 8, generator=g))
    root.eval()
    probe = torch.randn(2, 3, 8, 8, generator=g)
    with torch.no_grad():
        want = root.body(probe).numpy()
    scales = fq.named_scales(root)
    fq.remove()
    return scales, (probe.numpy(), want)


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def _q_scales(path: Path) -> dict[str, float]:
    m = onnx.load(str(path))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    return {n.input[0]: float(inits[n.input[1]]) for n in m.graph.node
            if n.op_type == "QuantizeLinear" and n.input[0] not in inits}


def test_the_int8_graph_with_trained_scales_computes_what_training_trained(tmp_path: Path) -> None:
    root = Root()
    scales, (probe, want) = _trained(root)
    assert set(scales) == {"body.0", "body.2", "body.5"}  # the 8-input Linear stays float
    src = tmp_path / "body.onnx"
    g = torch.Generator().manual_seed(2)
    calib = [{"x": (3.0 * torch.randn(2, 3, 8, 8, generator=g)).numpy()} for _ in range(3)]  # another range
    export_onnx(root.body.eval(), calib[0], IO, src)
    found, missed = tensor_scales(src, root.body, IO, calib, root, scales)
    assert missed == [] and len(found) == 3 and "x" in found  # the first conv reads the graph input itself
    assert found["x"] == scales["body.0"] and sorted(found.values()) == sorted(scales.values())
    fs = FeedSet(calib, "test", "calibration", ["0", "1", "2"])
    info = quantize_int8(src, tmp_path / "qat.onnx", fs, tensor_scales=found)
    assert info["trained_scales"] == 3
    written = _q_scales(tmp_path / "qat.onnx")
    assert set(written) == set(found)  # the layers' inputs only: training rounded no output
    assert all(written[t] == pytest.approx(s, rel=1e-6) for t, s in found.items())
    got = _run(tmp_path / "qat.onnx", probe)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()  # the fake-quantized forward, to float rounding
    # calibrated scales are another grid, and the default form rounds the outputs too: another result
    quantize_int8(src, tmp_path / "cal.onnx", fs, quantize_outputs=True)  # the symmetric default before
    assert len(_q_scales(tmp_path / "cal.onnx")) == 6
    assert np.abs(_run(tmp_path / "cal.onnx", probe) - want).max() > 1e-2 * np.abs(want).max()
    quantize_int8(src, tmp_path / "both.onnx", fs, tensor_scales=found, quantize_outputs=True)  # outputs rounded
    assert len(_q_scales(tmp_path / "both.onnx")) == 6
    assert np.abs(_run(tmp_path / "both.onnx", probe) - want).max() > 1e-3 * np.abs(want).max()


def test_a_layer_whose_input_the_graph_changes_keeps_calibration_and_is_named(tmp_path: Path) -> None:
    root = Root(padding_mode="reflect")  # the exporter pads in a node of its own: the Conv reads another tensor
    scales, _ = _trained(root)
    src = tmp_path / "body.onnx"
    feed = {"x": np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)}
    export_onnx(root.body.eval(), feed, IO, src)
    found, missed = tensor_scales(src, root.body, IO, [feed], root, scales)
    assert missed == ["body.0"] and len(found) == 2
    assert tensor_scales(src, root.body, IO, [feed], root, {"other": 0.1}) == ({}, [])  # no trained layer here


def test_trained_scales_are_symmetric_only(tmp_path: Path) -> None:
    root = Root()
    feed = {"x": np.ones((2, 3, 8, 8), np.float32)}
    export_onnx(root.body.eval(), feed, IO, tmp_path / "b.onnx")
    with pytest.raises(ExportError, match="symmetric int8 scales"):
        quantize_int8(tmp_path / "b.onnx", tmp_path / "q.onnx", FeedSet([feed], "t", "calibration", ["0"]),
                      activations="u8s8", tensor_scales={"x": 0.1})


@pytest.mark.parametrize("value, match", [
    ([0.1], "not an object"),
    ({"body.0": -1.0}, "'body.0' is -1.0, not a positive number"),
    ({"body.0": float("nan")}, "not a positive number"),
    ({"body.0": True}, "not a positive number"),
    ({"body.0": "0.1"}, "not a positive number"),
    ({"body.0": 1e39}, r"'body\.0' is 1e\+39, outside float32's range"),  # inf in training: a NaN loss (a review)
    ({"body.0": 1e-50}, "outside float32's range"),  # 0 there: "no scale yet"
    ({"body.0": 10**400}, r"'body\.0' is 1000000000000000000000000000000000000\.\.\., outside float32's range"),
    ({"body.1": 0.1}, "names 'body.1', which is not a Conv or Linear layer"),
    ({"nope": 0.1}, "names 'nope'"),
])
def test_malformed_trained_scales_are_one_line(value: Any, match: str) -> None:
    with pytest.raises(ModelError, match=match) as e:
        check_scales(value, Root(), "ck.pt")
    assert str(e.value).startswith("ck.pt: ") and "\n" not in str(e.value)


@pytest.fixture
def toyqat(toy_as: Any) -> Iterator[Any]:
    with toy_as("toyqat") as mod:
        yield mod


def test_a_quantization_aware_checkpoint_exports_with_its_trained_scales(toyqat: Any, tmp_path: Path) -> None:
    """`edge train --qat` saves the scales in the checkpoint; `edge-export` of that checkpoint puts them into
    the symmetric INT8 graph, says so, and records them in the manifest."""
    import edge
    from edge.cli.train_cmd import run_train
    from edge.models.checkpoint import read_checkpoint

    ck = tmp_path / "t.pt"
    run_train("toyqat", ck, "tiny", 3, 2, None, 0, 0, None, True, qat=("embed",))
    meta = read_checkpoint(ck)["meta"]
    assert set(meta["qat_scales"]) == {"embed.conv.0", "embed.conv.2"} and min(meta["qat_scales"].values()) > 0
    said: list[str] = []
    b, _ = edge.export_card(str(ck), tmp_path / "b", precisions=["fp32", "int8"], calib_size=3, eval_size=4,
                            max_drop=100.0, progress=said.append)
    q = b.artifact(name="onnx-int8-embed")["quantization"]["trained_scales"]
    assert q["unmatched_layers"] == [] and len(q["tensors"]) == 2
    assert b.artifact(name="onnx-int8-embed")["quantization"]["outputs_quantized"] is False
    assert q["tensors"]["image"] == meta["qat_scales"]["embed.conv.0"]
    written = _q_scales(b.file(b.artifact(name="onnx-int8-embed")["file"]))
    assert all(written[t] == pytest.approx(s, rel=1e-6) for t, s in q["tensors"].items())
    assert any("int8 embed: 2 input(s) take the checkpoint's trained scales" in s for s in said)
    assert "trained_scales" not in b.artifact(name="onnx-int8-head")["quantization"]  # not trained aware


def test_integer_products_are_not_candidates_and_do_not_break_the_search(tmp_path: Path) -> None:
    """A graph may multiply integers (an index computation): its MatMul inputs are not float activations a
    trained layer could read; they are left out, and the float Conv input is still found (the search once
    declared every exposed tensor float, and ONNX Runtime refused the graph)."""
    from onnx import TensorProto, helper, numpy_helper

    from edge.calibration.qat_scales import _quantized_inputs

    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["y"]),
             helper.make_node("Add", ["i", "i"], ["i2"]), helper.make_node("MatMul", ["i2", "i"], ["z"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2]),
                                       helper.make_tensor_value_info("i", TensorProto.INT64, [2, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 2]),
                           helper.make_tensor_value_info("z", TensorProto.INT64, [2, 2])], [w])
    path = tmp_path / "ints.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 2, 2)
    [got] = _quantized_inputs(path, [{"x": x, "i": np.ones((2, 2), np.int64)}], ("Conv", "MatMul", "Gemm"))
    assert set(got) == {"x"} and np.array_equal(got["x"], x.ravel())


def test_a_constant_input_matches_no_tensor_and_is_named(tmp_path: Path) -> None:
    """On all-zero feeds the first conv's input is zero, as other zero tensors of a graph may be: it cannot be
    told apart, so it takes no trained scale (once it matched whatever zero tensor came first) and is named."""
    root = Root()
    scales, _ = _trained(root)
    src = tmp_path / "body.onnx"
    zeros = [{"x": np.zeros((2, 3, 8, 8), np.float32)} for _ in range(2)]
    export_onnx(root.body.eval(), zeros[0], IO, src)
    found, missed = tensor_scales(src, root.body, IO, zeros, root, scales)
    assert "x" not in found and missed[0] == "body.0"


def test_a_tensor_equal_on_one_feed_only_is_not_the_input(tmp_path: Path) -> None:
    """Matching asks for equality on every feed: a feed on which the graph input happens to equal a layer's
    input elsewhere does not place that layer's scale on it."""
    class Twin(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(16, 16)
            self.b = torch.nn.Linear(16, 16)

        def forward(self, x: Any) -> Any:
            return self.a(x) + self.b(torch.abs(x))  # b reads |x|: equal to x when x >= 0

    root = Twin()
    io = IOSpec((TensorSpec("x", "float32", (2, 16)),), (TensorSpec("y", "float32", (2, 16)),))
    pos = {"x": np.random.default_rng(0).uniform(0.1, 1.0, (2, 16)).astype(np.float32)}
    mixed = {"x": np.random.default_rng(1).standard_normal((2, 16)).astype(np.float32)}
    src = tmp_path / "twin.onnx"
    export_onnx(root.eval(), mixed, io, src)
    found, _ = tensor_scales(src, root, io, [pos], root, {"a": 0.1, "b": 0.2})
    assert found["x"] == 0.2  # one feed: |x| == x, and x takes b's (larger) scale too
    found, missed = tensor_scales(src, root, io, [pos, mixed], root, {"a": 0.1, "b": 0.2})
    assert found["x"] == 0.1 and sorted(found.values()) == [0.1, 0.2] and missed == []


class Kw(torch.nn.Module):
    """Calls its layers with the input as a keyword (``layer(input=x)``), which a positional pre-hook misses."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.lin = torch.nn.Linear(8 * 8 * 8, 4)

    def forward(self, x: Any) -> Any:
        return self.lin(input=torch.relu(self.conv(input=x)).flatten(1))


def test_layers_called_with_keyword_inputs_train_and_are_found(tmp_path: Path) -> None:
    root = Kw()
    fq = attach([root])
    root.train()
    root(torch.randn(2, 3, 8, 8))
    scales = fq.named_scales(root)
    fq.remove()
    assert set(scales) == {"conv", "lin"}
    src = tmp_path / "kw.onnx"
    feeds = [{"x": np.random.default_rng(k).standard_normal((2, 3, 8, 8)).astype(np.float32)} for k in range(2)]
    export_onnx(root.eval(), feeds[0], IO, src)
    found, missed = tensor_scales(src, root, IO, feeds, root, scales)
    assert missed == [] and found["x"] == scales["conv"] and sorted(found.values()) == sorted(scales.values())


def test_a_layer_the_graph_calls_but_does_not_own_is_found(tmp_path: Path) -> None:
    """A graph's module may call a trained layer it does not hold as a submodule (shared with another graph):
    what ran is what the graph computes, so its scale applies (it was once skipped without a word)."""
    root = Root()
    scales, _ = _trained(root)

    class Graph(torch.nn.Module):
        def __init__(self, body: Any) -> None:
            super().__init__()
            self.__dict__["body"] = body  # a plain attribute: not a submodule

        def forward(self, x: Any) -> Any:
            return self.body(x)

    g = Graph(root.body)
    assert not list(g.children())
    src = tmp_path / "g.onnx"
    feeds = [{"x": np.random.default_rng(k).standard_normal((2, 3, 8, 8)).astype(np.float32)} for k in range(2)]
    export_onnx(g.eval(), feeds[0], IO, src)
    found, missed = tensor_scales(src, g, IO, feeds, root, scales)
    assert missed == [] and len(found) == 3


def test_a_layer_matched_on_some_calls_only_says_how_many(tmp_path: Path) -> None:
    """A layer called twice, once on the input and once on a constant (which no graph tensor can be told to
    be): one call is placed, the other is named with its count (once the whole layer was named)."""
    class Twice(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(16, 16)

        def forward(self, x: Any) -> Any:
            return self.lin(x) + self.lin(torch.ones_like(x))

    root = Twice()
    io = IOSpec((TensorSpec("x", "float32", (2, 16)),), (TensorSpec("y", "float32", (2, 16)),))
    feeds = [{"x": np.random.default_rng(k).standard_normal((2, 16)).astype(np.float32)} for k in range(2)]
    src = tmp_path / "twice.onnx"
    export_onnx(root.eval(), feeds[0], io, src)
    found, missed = tensor_scales(src, root, io, feeds, root, {"lin": 0.1})
    assert found == {"x": 0.1} and missed == ["lin (1 of 2 calls)"]


def test_a_graph_too_large_for_one_protobuf_string_goes_through_external_data(tmp_path: Path,
                                                                             monkeypatch: Any) -> None:
    """Past protobuf's 2 GiB a model cannot be serialized to one string: the probe then writes it with external
    data (forced here by a 0-byte limit) and finds the same tensors."""
    import edge.calibration.activations as acts

    root = Root()
    scales, _ = _trained(root)
    src = tmp_path / "body.onnx"
    feeds = [{"x": np.random.default_rng(k).standard_normal((2, 3, 8, 8)).astype(np.float32)} for k in range(2)]
    export_onnx(root.body.eval(), feeds[0], IO, src)
    want = tensor_scales(src, root.body, IO, feeds, root, scales)
    monkeypatch.setattr(acts, "INLINE_BYTES", 0)
    assert tensor_scales(src, root.body, IO, feeds, root, scales) == want and len(want[0]) == 3


def test_an_input_empty_on_one_feed_is_compared_as_empty(tmp_path: Path) -> None:
    """A layer on the selected rows of its input (detections, a mask) may get none on some feed: an empty input
    equals the graph's empty tensor there, and the other feed decides (it once crashed on max() of nothing)."""
    class Masked(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(16, 8)

        def forward(self, x: Any) -> Any:
            return self.lin(x[x[:, 0] > 0]).sum(0, keepdim=True)

    root = Masked().eval()
    src = tmp_path / "mask.onnx"
    torch.onnx.export(root, (torch.randn(5, 16),), str(src), input_names=["x"], output_names=["y"], dynamo=False,
                      dynamic_axes={"x": {0: "n"}})
    rng = np.random.default_rng(0)
    some = rng.standard_normal((5, 16)).astype(np.float32)
    some[:, 0] = np.abs(some[:, 0]) + 0.1
    none = some.copy()
    none[:, 0] = -none[:, 0]
    io = IOSpec((TensorSpec("x", "float32", ("n", 16)),), (TensorSpec("y", "float32", (1, 8)),))
    found, missed = tensor_scales(src, root, io, [{"x": some}, {"x": none}], root, {"lin": 0.05})
    assert list(found.values()) == [0.05] and missed == []


def test_calls_that_differ_between_feeds_keep_calibration_and_are_named(tmp_path: Path) -> None:
    """Control flow that depends on the input runs the trained layers differently on different feeds: no call
    can be paired, so each layer that ran is named and calibrated, and the export goes on (it once aborted)."""
    class Branch(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(16, 16)
            self.b = torch.nn.Linear(16, 16)

        def forward(self, x: Any) -> Any:
            y = self.a(x)
            return y + self.b(x) if float(x.mean()) > 0 else y

    root = Branch().eval()
    io = IOSpec((TensorSpec("x", "float32", (2, 16)),), (TensorSpec("y", "float32", (2, 16)),))
    pos = {"x": np.random.default_rng(0).uniform(0.1, 1.0, (2, 16)).astype(np.float32)}
    src = tmp_path / "branch.onnx"
    torch.onnx.export(root, (torch.from_numpy(pos["x"]),), str(src), input_names=["x"], output_names=["y"],
                      dynamo=False)  # traced: the branch the positive feed takes
    found, missed = tensor_scales(src, root, io, [pos, {"x": -pos["x"]}], root, {"a": 0.1, "b": 0.2})
    assert found == {} and missed == ["a (calls differ between calibration feeds)",
                                      "b (calls differ between calibration feeds)"]


def test_fake_quantization_finds_the_input_however_a_layer_subclass_takes_it() -> None:
    """A Conv/Linear subclass may name its input otherwise (``layer(x=...)``) or take a tuple: the first is
    rounded like ``input=``, the second runs untouched (both once raised inside the hook)."""
    class Named(torch.nn.Linear):
        def forward(self, x: Any) -> Any:  # type: ignore[override]
            return super().forward(x)

    class Pair(torch.nn.Linear):
        def forward(self, pair: Any) -> Any:  # type: ignore[override]
            return super().forward(pair[0]) + pair[1]

    named, pair = Named(16, 4), Pair(16, 4)
    fq = attach([torch.nn.ModuleList([named, pair])])
    named.train()
    pair.train()
    x = torch.randn(3, 16)
    named(x=x)
    out = pair((x, torch.ones(3, 4)))
    with torch.no_grad():
        plain = torch.nn.functional.linear(x, pair.weight, pair.bias) + 1
    assert fq.named_scales(torch.nn.ModuleDict({"n": named, "p": pair})) == {
        "n": pytest.approx(float(x.abs().max()) / 127.0)}
    assert torch.equal(out, plain)  # the tuple call ran as a float layer
    fq.remove()


def test_trained_scales_naming_no_tensor_of_the_graph_are_refused(tmp_path: Path) -> None:
    root = Root()
    feed = {"x": np.ones((2, 3, 8, 8), np.float32)}
    export_onnx(root.body.eval(), feed, IO, tmp_path / "b.onnx")
    with pytest.raises(ExportError, match=r"b\.onnx: trained scales name tensors the graph does not have: nope"):
        quantize_int8(tmp_path / "b.onnx", tmp_path / "q.onnx", FeedSet([feed], "t", "calibration", ["0"]),
                      tensor_scales={"x": 0.1, "nope": 0.2})
