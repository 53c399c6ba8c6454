"""edge.export of a user's module: dict inputs bound to forward by name, dict / nested outputs made flat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import edge  # noqa: E402
from edge.errors import ExportError  # noqa: E402
from edge.export.user_module import bind_inputs, flatten_outputs, output_names  # noqa: E402


class Sub(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a - 2 * b


class Skip(torch.nn.Module):
    def forward(self, a: torch.Tensor, scale: torch.Tensor | None = None, b: torch.Tensor | None = None
                ) -> torch.Tensor:
        return a - 2 * b


class Outputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> dict:
        y = self.lin(x)
        return {"logits": y, "aux": (y.softmax(-1), {"twice": 2 * y})}


def _ones(v: float) -> np.ndarray:
    return np.full((1, 4), v, np.float32)


@pytest.mark.parametrize("module", [Sub(), Skip()])
def test_dict_inputs_reach_forward_by_name(tmp_path: Path, module: torch.nn.Module) -> None:
    """The dict's order is not forward's: the export used to pass them in dict order (a - 2b came out as
    b - 2a, no error). Skip needs keywords (b is forward's third parameter)."""
    b = edge.export(module, {"b": torch.ones(1, 4), "a": torch.zeros(1, 4)}, tmp_path / "m")
    got = edge.load(b.path, backend="onnxruntime").infer({"a": _ones(10), "b": _ones(1)})["output0"]
    np.testing.assert_allclose(got, _ones(8))


def test_dict_keys_that_name_no_parameter_go_in_order(tmp_path: Path) -> None:
    b = edge.export(Sub(), {"first": torch.zeros(1, 4), "second": torch.ones(1, 4)}, tmp_path / "m")
    got = edge.load(b.path, backend="onnxruntime").infer({"first": _ones(10), "second": _ones(1)})["output0"]
    np.testing.assert_allclose(got, _ones(8))


def test_a_key_that_names_no_parameter_beside_ones_that_do_is_refused() -> None:
    with pytest.raises(ExportError, match=r"'bb' name no parameter of Sub.forward\(a, b\)"):
        bind_inputs(Sub(), ["a", "bb"])


def test_binding_rules() -> None:
    assert bind_inputs(Sub(), ["a", "b"]) == ([0, 1], False)
    assert bind_inputs(Sub(), ["b", "a"]) == ([1, 0], False)
    assert bind_inputs(Skip(), ["a", "b"]) == ([0, 1], True)  # skips `scale`: by keyword

    class Star(torch.nn.Module):
        def forward(self, *xs: torch.Tensor) -> torch.Tensor:
            return xs[0]

    assert bind_inputs(Star(), ["y", "x"]) == ([0, 1], False)

    class KeywordOnly(torch.nn.Module):
        def forward(self, x: torch.Tensor, *, mask: torch.Tensor) -> torch.Tensor:
            return x * mask

    assert bind_inputs(KeywordOnly(), ["mask", "x"]) == ([0, 1], True)  # mask cannot go positionally


@pytest.mark.parametrize("dynamic", [False, True])
def test_dict_and_nested_outputs_are_flat_and_named(tmp_path: Path, dynamic: bool) -> None:
    """Failed with "'dict' object has no attribute 'detach'" (a traceback)."""
    m = Outputs().eval()
    b = edge.export(m, {"x": torch.randn(1, 8)}, tmp_path / "m", dynamic_batch=dynamic)
    assert [t["name"] for t in b.manifest["io"]["outputs"]] == ["logits", "aux.0", "aux.1.twice"]
    x = np.random.default_rng(0).standard_normal((3 if dynamic else 1, 8)).astype(np.float32)
    with torch.no_grad():
        want = m(torch.from_numpy(x))
    got = edge.load(b.path, backend="onnxruntime").infer({"x": x})
    for name, ref in (("logits", want["logits"]), ("aux.0", want["aux"][0]), ("aux.1.twice", want["aux"][1]["twice"])):
        np.testing.assert_allclose(got[name], ref.numpy(), rtol=1e-5, atol=1e-6)


def test_outputs_that_are_not_tensors_are_one_line() -> None:
    with pytest.raises(ExportError, match="output 'n' is a int"):
        flatten_outputs({"y": torch.zeros(1), "n": 3})
    with pytest.raises(ExportError, match="output0 occur twice"):
        output_names([(None, 0), ("output0", 1)])


class _NoOutputs(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple:
        return ()


class _Unused(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x * 2


class _KeywordOnly(torch.nn.Module):
    def forward(self, x: torch.Tensor, *, y: torch.Tensor | None = None) -> torch.Tensor:
        return x * 2


@pytest.mark.parametrize(("module", "needle"), [
    (_NoOutputs(), "_NoOutputs: forward returns no tensor"),
    (_Unused(), "_Unused: input(s) y are not used by forward"),
    (_KeywordOnly(), "_KeywordOnly: input(s) y are not used by forward"),  # was "Bound: ...", the wrapper's name
])
def test_no_outputs_or_an_unused_input_is_said_plainly(tmp_path: Path, module: torch.nn.Module, needle: str) -> None:
    """Both said "exported names [...] differ from the spec [...]", which names neither cause."""
    with pytest.raises(ExportError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        edge.export(module, {"x": torch.randn(2, 4), "y": torch.randn(2, 4)} if not isinstance(module, _NoOutputs)
                    else {"x": torch.randn(2, 4)}, tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


class _Sqrt(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(x)


class _Transposed(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(0, 1)


class _Twice(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> dict:
        return {"x": 2 * x}


def test_a_model_that_takes_only_positive_values_exports(tmp_path: Path) -> None:
    """The parity check drew standard normal inputs: sqrt gave NaN and the export failed, blaming the weights. Now
    each float input is drawn in its example's range; a NaN on the example itself says so."""
    b = edge.export(_Sqrt(), {"x": torch.rand(2, 3) + 0.5}, tmp_path / "ok")
    assert b.manifest["artifacts"][0]["parity"]["passed"]
    with pytest.raises(ExportError, match=r"NaN or infinite values on the example inputs themselves \(export_example"):
        edge.export(_Sqrt(), {"x": -torch.rand(2, 3) - 0.5}, tmp_path / "nan")
    assert not (tmp_path / "nan").exists()


@pytest.mark.parametrize(("module", "example", "options", "needle"), [
    (torch.nn.Linear(3, 3).bfloat16(), {"x": torch.randn(2, 3).bfloat16()}, {},
     "example input of dtype bfloat16 has no numpy form"),
    (_Transposed(), {"x": torch.randn(2, 5)}, {"dynamic_batch": True},
     "exported output 'output0' fixed dynamic dim 'batch' to 5 while the inputs' batch stays dynamic: its dim 0 "
     "does not follow the batch (the module fixes it: a reshape or view with a literal size, a transpose"),
    (_Twice(), {"x": torch.randn(2, 5)}, {}, "output name(s) 'x' also name an input"),
])
def test_export_refusals_name_the_cause(tmp_path: Path, module: torch.nn.Module, example: dict, options: dict,
                                        needle: str) -> None:
    """A review: a raw TypeError for bfloat16; a batch-second output blamed on 'a reshape with a literal size'; an
    output named as an input was 'IOSpec has duplicate tensor names'."""
    with pytest.raises(ExportError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        edge.export(module, example, tmp_path / "b", **options)
    assert not (tmp_path / "b").exists()


def test_a_float16_module_is_held_to_float16s_tolerance(tmp_path: Path) -> None:
    """fp16's own rounding (~1e-3) failed the default 1e-4 with no word of rtol; such a module's default is 1e-2,
    and a parity failure names the option."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.LayerNorm(256),
                            torch.nn.Linear(256, 64)).half()
    b = edge.export(m, {"x": torch.randn(8, 64).half()}, tmp_path / "b")
    par = b.manifest["artifacts"][0]["parity"]
    assert par["tolerance_rel"] == 1e-2 and par["passed"]
    with pytest.raises(ExportError, match=r"> tolerance 1e-09 .*--rtol / rtol= sets the tolerance"):
        edge.export(m, {"x": torch.randn(8, 64).half()}, tmp_path / "c", rtol=1e-9)
    lin = torch.nn.Linear(4, 4)
    lin.register_buffer("unused", torch.zeros(3, dtype=torch.float16))  # fp32 compute: the fp32 tolerance
    par = edge.export(lin, {"x": torch.randn(2, 4)}, tmp_path / "d").manifest["artifacts"][0]["parity"]
    assert par["tolerance_rel"] == 1e-4


def test_a_padded_transformer_encoder_exports(tmp_path: Path) -> None:
    """Eval-mode PyTorch under no_grad takes nn.MultiheadAttention's fast path, which zeroes padded tokens; the
    graph computes the layer's arithmetic, so parity failed (0.97) on a correct graph. The reference runs with
    the fast path off (and restores it); the graph matches eager on every token that is not padding."""
    torch.manual_seed(0)
    enc = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 1).eval()

    class Padded(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = enc

        def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
            return self.enc(x, src_key_padding_mask=pad)

    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[0, -2:] = True
    fast = torch.backends.mha.get_fastpath_enabled()
    edge.export(Padded(), {"x": torch.randn(2, 6, 16), "pad": pad}, tmp_path / "b")
    assert torch.backends.mha.get_fastpath_enabled() == fast
    x = torch.randn(2, 6, 16)
    got = edge.load(tmp_path / "b", backend="onnxruntime").infer({"x": x.numpy(), "pad": pad.numpy()})["output0"]
    with torch.no_grad():
        want = Padded()(x, pad).numpy()
    np.testing.assert_allclose(got[~pad.numpy()], want[~pad.numpy()], atol=1e-5)


def test_a_run_onnxruntime_refuses_is_one_error_of_ours(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """An index past an embedding's table escaped as ONNX Runtime's own InvalidArgument (not an EdgeError), with
    ORT's coloured log line of the same reason on stderr."""
    from edge.errors import DataError

    class Shifted(torch.nn.Module):  # the index is computed (no range recorded on the input): ORT's own refusal
        def __init__(self) -> None:
            super().__init__()
            self.e = torch.nn.Embedding(10, 4)

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            return self.e(idx % 1000)

    edge.export(Shifted(), {"idx": torch.randint(0, 10, (2, 3))}, tmp_path / "b")
    rt = edge.load(tmp_path / "b", backend="onnxruntime")
    capfd.readouterr()
    with pytest.raises(DataError, match=r"model\.ort\.onnx: onnxruntime cannot run these inputs \(.*out of"):
        rt.infer({"idx": np.full((2, 3), 99, np.int64)})
    assert capfd.readouterr().err == ""
    assert rt.infer({"idx": np.full((2, 3), 9, np.int64)})["output0"].shape == (2, 3, 4)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_an_index_past_an_embeddings_table_is_refused_on_every_backend(tmp_path: Path, backend: str) -> None:
    """Found by a review: OpenVINO returned zeros for an index past an embedding's table, without an error, where
    ONNX Runtime refused it. The export records the range on the input, and every runtime checks it."""
    import json

    from edge.errors import SpecError

    pytest.importorskip(backend)

    class Two(torch.nn.Module):  # through a reshape, and the smaller of two tables wins
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Embedding(10, 4), torch.nn.Embedding(7, 4)

        def forward(self, idx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return self.a(idx.reshape(-1)).sum(0) + self.b(idx).sum((0, 1)) + x

    edge.export(Two(), {"idx": torch.randint(0, 7, (2, 3)), "x": torch.zeros(4)}, tmp_path / "b")
    io = json.loads((tmp_path / "b" / "manifest.json").read_text())["io"]["inputs"]
    assert [t.get("index_range") for t in io] == [[0, 7], None]  # nn.Embedding refuses a negative index
    rt = edge.load(tmp_path / "b", backend=backend)
    x = np.zeros(4, np.float32)
    with pytest.raises(SpecError, match=r"input 'idx': values 0\.\.9, outside 0\.\.6: it indexes an axis of length 7"):
        rt.infer({"idx": np.array([[0, 9, 1], [2, 3, 4]]), "x": x})
    # a review: ONNX Runtime and OpenVINO read -1 as the last row, where torch's embedding raises
    with pytest.raises(SpecError, match=r"values -1\.\.6, outside 0\.\.6: .*the model refuses a negative index"):
        rt.infer({"idx": np.array([[-1, 6, 1], [2, 3, 4]]), "x": x})
    assert rt.infer({"idx": np.array([[0, 6, 1], [2, 3, 4]]), "x": x})["output0"].shape == (4,)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_an_index_past_a_gathered_axis_is_refused_whatever_op_gathers(tmp_path: Path, backend: str) -> None:
    """A review: only ONNX Gather was followed, so ``table[idx]`` (exported as GatherND) got no range and OpenVINO
    returned zeros for index 10 of a 10-row table, and ``torch.gather`` (GatherElements) read -1 as the last
    column on both backends where torch raises."""
    import json

    from edge.errors import SpecError

    pytest.importorskip(backend)

    class Table(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.t = torch.nn.Parameter(torch.randn(10, 3))

        def forward(self, idx: torch.Tensor, x: torch.Tensor, cols: torch.Tensor, labels: torch.Tensor,
                    i: torch.Tensor, j: torch.Tensor) -> tuple[torch.Tensor, ...]:
            # the review of the fix: two index tensors (Unsqueeze, Concat, then GatherND) were not followed
            return self.t[idx], torch.gather(x, 1, cols), x[torch.arange(x.shape[0]), labels], self.t[i, j]

    model = Table().eval()
    example = {"idx": torch.tensor([1, 2, 3]), "x": torch.randn(2, 5), "cols": torch.tensor([[0, 4], [1, 2]]),
               "labels": torch.tensor([4, 0]), "i": torch.tensor([9, 0]), "j": torch.tensor([2, 1])}
    edge.export(model, example, tmp_path / "b")
    io = json.loads((tmp_path / "b" / "manifest.json").read_text())["io"]["inputs"]
    # python indexing takes -1 (the last row), torch.gather refuses it; each of t[i, j] has its own axis
    assert {t["name"]: t.get("index_range") for t in io} == {"idx": [-10, 10], "x": None, "cols": [0, 5],
                                                             "labels": [-5, 5], "i": [-10, 10], "j": [-3, 3]}
    rt = edge.load(tmp_path / "b", backend=backend)
    feeds = {k: v.numpy() for k, v in example.items()}
    for name, bad, says in (("idx", [10, 0, 0], r"values 0\.\.10, outside -10\.\.9"),
                            ("cols", [[-1, 4], [1, 2]], r"values -1\.\.4, outside 0\.\.4: .*refuses a negative"),
                            ("labels", [5, 0], r"values 0\.\.5, outside -5\.\.4"),
                            ("j", [3, 0], r"values 0\.\.3, outside -3\.\.2")):
        with pytest.raises(SpecError, match=rf"input '{name}': {says}"):
            rt.infer({**feeds, name: np.array(bad)})
    feeds.update(x=np.arange(10, dtype=np.float32).reshape(2, 5), idx=np.array([-1, 0, 9]), labels=np.array([-1, 3]),
                 i=np.array([-10, 9]), j=np.array([-3, 2]))
    got = list(rt.infer(feeds).values())
    table, x = model.t.detach().numpy(), feeds["x"]
    np.testing.assert_allclose(got[0], table[[-1, 0, 9]], rtol=1e-6)
    np.testing.assert_array_equal(got[1], np.take_along_axis(x, feeds["cols"], 1))
    np.testing.assert_array_equal(got[2], x[[0, 1], [-1, 3]])
    np.testing.assert_allclose(got[3], table[[-10, 9], [-3, 2]], rtol=1e-6)


def test_the_indexed_axis_is_found_for_each_indexing_op() -> None:
    """Hand-made graphs: the length of the axis each op's indices address (its attribute, a negative axis, GatherND's
    batch_dims and tuple width), and no range where that length is not fixed or differs between a tuple's axes."""
    import onnx
    from onnx import TensorProto, helper

    from edge.export.index_ranges import index_ranges

    def graph(op: str, data: list, idx: list, **attrs: int) -> onnx.ModelProto:
        inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, data),
                  helper.make_tensor_value_info("i", TensorProto.INT64, idx)]
        names = ["data", "i"]
        if op.startswith("Scatter"):
            names.append("u")
            inputs.append(helper.make_tensor_value_info("u", TensorProto.FLOAT, None))
        node = helper.make_node(op, names, ["y"], **attrs)
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
        return helper.make_model(helper.make_graph([node], "g", inputs, [out]),
                                 opset_imports=[helper.make_opsetid("", 18)])

    assert index_ranges(graph("Gather", [4, 6], [3], axis=1)) == {"i": (-6, 6)}
    assert index_ranges(graph("Gather", [4, 6], [3], axis=-2)) == {"i": (-4, 4)}
    assert index_ranges(graph("Gather", ["n", 6], [3])) == {}  # the indexed axis is dynamic
    assert index_ranges(graph("GatherElements", [4, 6], [4, 2], axis=1)) == {"i": (-6, 6)}
    assert index_ranges(graph("GatherND", [7, 6], [3, 1])) == {"i": (-7, 7)}
    assert index_ranges(graph("GatherND", [2, 5, 5], [2, 3, 2], batch_dims=1)) == {"i": (-5, 5)}
    assert index_ranges(graph("GatherND", [4, 6], [3, 2])) == {}  # columns of 4 and 6: one range cannot say it
    assert index_ranges(graph("GatherND", [4, 6], [3, "k"])) == {}  # the tuple's width is not fixed
    assert index_ranges(graph("ScatterElements", [4, 6], [4, 2], axis=0)) == {"i": (-4, 4)}
    assert index_ranges(graph("ScatterND", [8, 6], [3, 1])) == {"i": (-8, 8)}

    # t[i, j]: each index fills one column of the tuples (Unsqueeze -> Concat on the last axis), so its own axis counts
    data = helper.make_tensor_value_info("data", TensorProto.FLOAT, [4, 6])
    ij = [helper.make_tensor_value_info(n, TensorProto.INT64, [3]) for n in ("i", "j")]
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [-1])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [3, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    head = [helper.make_node("Unsqueeze", ["i", "axes"], ["i1"]), helper.make_node("Unsqueeze", ["j", "axes"], ["j1"]),
            helper.make_node("Concat", ["i1", "j1"], ["ij0"], axis=-1)]

    def tail(*nodes: onnx.NodeProto) -> onnx.ModelProto:
        return helper.make_model(helper.make_graph([*head, *nodes], "g", [data, *ij], [y], initializer=[axes, shape]),
                                 opset_imports=[helper.make_opsetid("", 18)])

    assert index_ranges(tail(helper.make_node("GatherND", ["data", "ij0"], ["y"]))) == {"i": (-4, 4), "j": (-6, 6)}
    # the columns moved by a reshape after the Concat: the tuple's axes differ in length, so no range is claimed
    assert index_ranges(tail(helper.make_node("Reshape", ["ij0", "shape"], ["ij"]),
                             helper.make_node("GatherND", ["data", "ij"], ["y"]))) == {}


def test_a_run_openvino_refuses_is_one_error_of_ours(tmp_path: Path) -> None:
    """A review: OpenVINO's own check of an index (GatherElements past its data, computed in the graph so no range
    is recorded) escaped as its multi-line RuntimeError, where ONNX Runtime's is a one-line DataError."""
    from edge.errors import DataError

    pytest.importorskip("openvino")

    class Computed(torch.nn.Module):
        def forward(self, x: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
            return torch.gather(x, 1, cols.abs())  # abs: no range

    edge.export(Computed(), {"x": torch.randn(2, 5), "cols": torch.tensor([[0, 4], [1, 2]])}, tmp_path / "b")
    rt = edge.load(tmp_path / "b", backend="openvino")
    x = np.zeros((2, 5), np.float32)
    with pytest.raises(DataError, match=r"^\S*model\.(xml|onnx): openvino cannot run these inputs \([^\n]*\)$"):
        rt.infer({"x": x, "cols": np.array([[5, 0], [1, 2]])})
    assert rt.infer({"x": x, "cols": np.array([[4, 0], [1, 2]])})["output0"].shape == (2, 2)


def test_the_negative_index_probe_narrows_only_where_the_module_refuses() -> None:
    """The graph's Gather reads -n..n-1; a module that takes -1 keeps that range, one that raises on it gets 0..n-1."""
    from edge.export.onnx_export import _no_negative_indices
    from edge.spec import IOSpec, TensorSpec

    io = IOSpec((TensorSpec("idx", "int64", (2,), index_range=(-5, 5)), TensorSpec("x", "float32", (2,))),
                (TensorSpec("y", "float32", (2,)),))
    args = (torch.tensor([1, 2]), torch.zeros(2))
    table = torch.arange(5.0)

    def python_indexing(idx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return table[idx] + x

    def embedding(idx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.embedding(idx, table[:, None])[:, 0] + x

    assert _no_negative_indices(python_indexing, args, io).inputs[0].index_range == (-5, 5)
    assert _no_negative_indices(embedding, args, io).inputs[0].index_range == (0, 5)
    assert args[0].tolist() == [1, 2]  # the example is left as it was


def test_an_index_range_follows_only_casts_that_keep_every_value(tmp_path: Path) -> None:
    """The review of the range: a float input cast to an index had a range put on it (the export died refusing
    it), and a cast to bool was followed (`seg(ids.bool().long())`: a 2-row table then refused ids 0..7)."""
    import json

    class Mixed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok, self.seg, self.pos = (torch.nn.Embedding(1000, 4), torch.nn.Embedding(2, 4),
                                            torch.nn.Embedding(10, 4))

        def forward(self, ids: torch.Tensor, t: torch.Tensor, small: torch.Tensor, big: torch.Tensor
                    ) -> torch.Tensor:
            return (self.tok(ids) + self.seg(ids.bool().long())).sum(1) + self.pos(t.long()).sum(1) + \
                self.pos(small.long()).sum(1) + self.pos(big.int()).sum(1)

    edge.export(Mixed(), {"ids": torch.tensor([[5, 0, 7]]), "t": torch.tensor([[1.0, 2.0, 3.0]]),
                          "small": torch.tensor([[1, 2, 3]], dtype=torch.int32), "big": torch.tensor([[1, 2, 3]])},
                tmp_path / "b")
    io = json.loads((tmp_path / "b" / "manifest.json").read_text())["io"]["inputs"]
    # the tok table alone bounds ids; t is float; small (int32 to int64) and big (int64 to int32: a narrower type
    # keeps every index) reach the 10-row table
    assert {t["name"]: t.get("index_range") for t in io} == {"ids": [0, 1000], "t": None, "small": [0, 10],
                                                             "big": [0, 10]}


def test_a_model_without_our_attention_is_not_recorded_as_plugin(tmp_path: Path) -> None:
    """SDPA / nn.MultiheadAttention trace to MatMul/Softmax: the manifest said mode "plugin" (a node not in
    the graph), which sends trtexec and Triton users away from a graph they could use."""
    class Sdpa(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q = x.reshape(x.shape[0], x.shape[1], 2, 4).transpose(1, 2)
            return torch.nn.functional.scaled_dot_product_attention(q, q, q).sum(1)

    class Ours(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q = x.reshape(x.shape[0], x.shape[1], 2, 4).transpose(1, 2)
            return edge.ops.attention(q, q, q).sum(1)

    x = {"x": torch.randn(1, 5, 8)}
    plain = edge.export(Sdpa().eval(), x, tmp_path / "sdpa")
    rec = plain.manifest["attention"]
    assert rec["mode"] == "none" and "edge.ops.attention" in rec["reason"]
    assert plain.artifact(name="onnx-fp32-full")["attention"] == "none"
    ours = edge.export(Ours().eval(), x, tmp_path / "ours")
    assert ours.manifest["attention"]["mode"] == "plugin"
    assert ours.artifact(name="onnx-fp32-full")["attention"] == "plugin"


def test_an_operator_onnx_cannot_express_is_named_in_one_line(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """torch.onnx's own message is "Failed to export ... \\x1b[96mThis is step 3/3\\x1b[0m ... Next steps:" with
    the cause pages below; the one line now says which step failed and why."""
    class Eigh(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.linalg.eigh(x @ x.transpose(-1, -2))[0]

    with pytest.raises(ExportError) as info:
        edge.export(Eigh().eval(), {"x": torch.randn(1, 4, 4)}, tmp_path / "m")
    msg = str(info.value)
    assert "an operator has no ONNX translation" in msg and "aten._linalg_eigh" in msg and "\x1b" not in msg
    assert "\n" not in msg and not (tmp_path / "m").exists()


def test_a_module_that_cannot_be_traced_is_one_line_and_nothing_on_stderr(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Found by a review: a forward branching on its data printed torch.export's whole traced graph (36 lines) on
    stderr before the one-line ExportError."""
    class Branch(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2 if x.sum() > 0 else x

    # the line that failed, which the graph on stderr had shown, is in the one line (the review of that change)
    with pytest.raises(ExportError, match=r"torch\.export could not trace the model at \S+test_user_module\.py:\d+ in "
                                          r"forward \(GuardOnDataDependentSymNode"):
        edge.export(Branch(), {"x": torch.zeros(2, 3)}, tmp_path / "m")
    assert capsys.readouterr().err == "" and not (tmp_path / "m").exists()


def test_export_failure_reads_the_cause_from_the_summary_or_the_chain() -> None:
    from edge.export.onnx_export import export_failure

    wrapped = RuntimeError("Failed to export the model with torch.export. \x1b[96mThis is step 1/3\x1b[0m of exporting."
                           "\nNext steps:\n- ...\n\n## Exception summary\n\n<class 'torch._dynamo.exc.UserError'>: "
                           "L['mask'].size()[0] = 8 is not equal to L['x'].size()[0] = 2\n\nmore")
    assert export_failure(wrapped) == ("torch.export could not trace the model (UserError: L['mask'].size()[0] = 8 is "
                                       "not equal to L['x'].size()[0] = 2)")
    try:
        try:
            raise ValueError("the real cause\nwith details")
        except ValueError as inner:
            raise RuntimeError("Failed to convert. \x1b[96mThis is step 3/3\x1b[0m") from inner
    except RuntimeError as outer:
        assert export_failure(outer) == "an operator has no ONNX translation (the real cause)"
    assert export_failure(KeyError("plain")) == "'plain'"


def test_the_torch_backend_on_a_plain_module_bundle_says_why(tmp_path: Path) -> None:
    """It said "no fp32 artifacts ... (precisions in the bundle: fp32)", contradicting itself."""
    from edge.errors import BundleError
    from edge.program import load_program

    b = edge.export(Sub(), {"a": torch.zeros(1, 4), "b": torch.ones(1, 4)}, tmp_path / "m")
    with pytest.raises(BundleError, match="the torch backend runs a family's checkpoint, and this bundle has none"):
        load_program(b, "torch")


class Positives(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.nonzero(x > 0), 2 * x


@pytest.mark.parametrize("dynamic", [False, True])
def test_an_output_whose_length_the_values_decide_is_recorded_open(tmp_path: Path, capfd: pytest.CaptureFixture,
                                                                    dynamic: bool) -> None:
    """nonzero's row count is the input's business: the manifest and the graph name that dim (they fixed it
    at the example's count, and every other input's result then disagreed with them; with a dynamic batch
    they called it "batch")."""
    import onnx

    x = np.array([[1, -1, 2, -2, 3, -3, 4, -4]], np.float32)  # 4 positives in the example
    b = edge.export(Positives(), {"x": x}, tmp_path / "b", dynamic_batch=dynamic)
    assert b.manifest["io"]["outputs"][0]["shape"] == ["output0_dim0", 2]
    # a length the graph fixes stays a number, the batch its name
    assert b.manifest["io"]["outputs"][1]["shape"] == (["batch", 8] if dynamic else [1, 8])
    assert b.manifest["graphs"]["full"] == b.manifest["io"]
    g = onnx.load(str(tmp_path / "b" / "model.onnx"))
    assert [d.dim_param or d.dim_value for d in g.graph.output[0].type.tensor_type.shape.dim] == ["output0_dim0", 2]
    capfd.readouterr()
    out = edge.load(tmp_path / "b").infer({"x": np.ones((1, 8), np.float32)})
    assert out["output0"].shape == (8, 2)
    assert "does not match" not in capfd.readouterr().err  # ONNX Runtime's per-call shape warning


def test_a_full_disk_while_saving_the_graph_names_the_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a review: a full disk under --out said "torch.onnx.export failed for LaneNet: [Errno 28] No space
    left on device", blaming the model; it is the output's write now, and nothing is left behind."""
    import errno

    def full(self: object, *a: object, **k: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch.onnx.ONNXProgram, "save", full)
    with pytest.raises(ExportError, match=r"cannot write the ONNX graph model\.onnx \(No space left on device\)$"):
        edge.export(Sub(), {"a": _ones(1.0), "b": _ones(2.0)}, tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


def test_an_out_inside_another_bundle_is_refused(tmp_path: Path) -> None:
    """Found by a review: `edge-export --out BUNDLE/sub` wrote a whole bundle inside another, whose next re-export
    then refused its own folder ("it also holds sub/, which a re-export would delete")."""
    from edge.errors import BundleError

    outer = tmp_path / "outer"
    edge.export(Sub(), {"a": _ones(1.0), "b": _ones(2.0)}, outer)
    listed = sorted(p.name for p in outer.iterdir())
    with pytest.raises(BundleError, match=rf"^{outer / 'sub'}: inside bundle {outer}, whose files are listed"):
        edge.export(Sub(), {"a": _ones(1.0), "b": _ones(2.0)}, outer / "sub")
    assert sorted(p.name for p in outer.iterdir()) == listed
    (tmp_path / "deep").symlink_to(outer / "sub")  # through a link (to nowhere yet): where the writer would go
    with pytest.raises(BundleError, match=rf"^{tmp_path / 'deep'}: inside bundle {outer}"):
        edge.export(Sub(), {"a": _ones(1.0), "b": _ones(2.0)}, tmp_path / "deep")
    assert sorted(p.name for p in outer.iterdir()) == listed
    edge.export(Sub(), {"a": _ones(1.0), "b": _ones(2.0)}, outer)  # and the outer one still re-exports


def test_meta_and_sparse_example_inputs_are_one_line(tmp_path: Path) -> None:
    """Found by a review: a meta-device example was torch's NotImplementedError traceback, and a sparse one was told
    its float32 dtype has no numpy form."""
    with pytest.raises(ExportError, match=r"^example input is a meta tensor"):
        edge.export(Sub(), {"a": torch.ones(1, 4, device="meta"), "b": _ones(2.0)}, tmp_path / "m")
    with pytest.raises(ExportError, match=r"^example input has layout sparse_coo: give a dense tensor"):
        edge.export(Sub(), {"a": torch.ones(1, 4).to_sparse(), "b": _ones(2.0)}, tmp_path / "s")
    assert list(tmp_path.iterdir()) == []


def test_shape_inference_for_index_ranges_leaves_the_weights_out() -> None:
    """The review of the fix: ONNX shape inference was given the whole model, so a 1 GB embedding cost +10 s and
    +2 GB of peak memory per export for dims alone. It gets the large initializers as typed inputs; the small ones
    (a Reshape's shape) keep their values, so the dims it finds are the same."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edge.onnx_file import SMALL_INITIALIZER, _without_weights, value_dims

    table = numpy_helper.from_array(np.zeros((SMALL_INITIALIZER + 1, 4), np.float32), "table")
    shape = numpy_helper.from_array(np.array([2, 6], np.int64), "shape")
    nodes = [helper.make_node("Reshape", ["ids", "shape"], ["ids2"]),
             helper.make_node("Gather", ["table", "ids2"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [3, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[table, shape])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    light = _without_weights(model)
    assert [t.name for t in light.graph.initializer] == ["shape"]
    assert {vi.name for vi in light.graph.input} == {"ids", "table"}
    assert len(light.SerializeToString()) < 1000 < len(model.SerializeToString())
    found = value_dims(model)
    assert found["ids2"] == [2, 6] and found["table"] == [SMALL_INITIALIZER + 1, 4]
    whole = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
             for vi in onnx.shape_inference.infer_shapes(model).graph.value_info}
    assert whole["ids2"] == found["ids2"]  # the same dims as from the whole model


class KeyPadding(torch.nn.Module):
    """PyTorch's own SDPA with a key-padding mask, exported through torch.onnx's lowering of it."""

    def forward(self, q: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=mask)


def test_bool_inputs_are_drawn_afresh_for_the_parity_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A review: the random parity check copied bool inputs from the example, so a graph that ignored or mis-broadcast
    its mask passed. They are drawn afresh, each row with a key allowed (PyTorch's SDPA gives zeros for a query with
    none, its ONNX lowering the mean of the values: a difference by design, which would fail every such export)."""
    from edge.export import api

    rng = np.random.default_rng(0)
    drawn = [api.random_bools(np.ones((2, 1, 3, 2), np.bool_), rng) for _ in range(200)]
    # both values in every row: True allows a key for SDPA and hides it for nn.MultiheadAttention's padding mask
    assert all(d.dtype == np.bool_ and d.shape == (2, 1, 3, 2) and d.any(axis=-1).all() and not d.all(axis=-1).any()
               for d in drawn)
    assert len({d.tobytes() for d in drawn}) > 1
    for example in (np.array(True), np.zeros((3, 1), np.bool_), np.zeros((2, 0), np.bool_)):  # kept as given
        np.testing.assert_array_equal(api.random_bools(example, rng), example)
    seen: list[tuple[int, ...]] = []
    real = api.random_bools
    monkeypatch.setattr(api, "random_bools", lambda a, rng: seen.append(a.shape) or real(a, rng))
    q = np.random.default_rng(1).standard_normal((2, 2, 5, 8)).astype(np.float32)
    mask = np.ones((2, 1, 1, 5), np.bool_)  # the example allows every key: only the check's masks hide some
    edge.export(KeyPadding(), {"q": q, "mask": mask}, tmp_path / "b")
    assert seen == [(2, 1, 1, 5)]
    feeds = {"q": q, "mask": real(mask, np.random.default_rng(2))}
    with torch.no_grad():
        want = KeyPadding()(*(torch.from_numpy(feeds[n]) for n in ("q", "mask"))).numpy()
    got = edge.load(tmp_path / "b", backend="onnxruntime").infer(feeds)["output0"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


class Padded(torch.nn.Module):
    """``nn.MultiheadAttention`` with a key-padding mask, whose True hides a key (SDPA's allows it)."""

    def __init__(self) -> None:
        super().__init__()
        self.mha = torch.nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        return self.mha(x, x, x, key_padding_mask=pad, need_weights=False)[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_padding_mask_that_hides_with_true_exports(tmp_path: Path, seed: int) -> None:
    """A review: the random masks kept a True in every row, which for a padding mask can hide every key (NaN in the
    graph, finite in PyTorch): the export failed blaming the conversion. An empty mask axis was an IndexError."""
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((4, 3, 16)).astype(np.float32)
    pad = np.zeros((4, 3), np.bool_)
    pad[:, -1] = True
    edge.export(Padded().eval(), {"x": x, "pad": pad}, tmp_path / "b", seed=seed)

    class Empty(torch.nn.Module):
        def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
            return x * 2 + m.sum()

    edge.export(Empty(), {"x": np.ones((2, 3), np.float32), "m": np.zeros((2, 0), np.bool_)}, tmp_path / "e")


@pytest.mark.parametrize("batch", [2, 4])
def test_dynamic_batch_check_gives_every_input_three_rows(tmp_path: Path, batch: int) -> None:
    """A review: the batch-3 check gave a float input 3 rows and a bool or integer input the example's B + 1, so an
    example batch of 4 failed ("dim 'batch' is 5 but another input has 3")."""

    class Where(torch.nn.Module):
        def forward(self, x: torch.Tensor, mask: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            return torch.where(mask, x, torch.zeros_like(x)).sum(-1) + k.float()

    x = np.random.default_rng(0).standard_normal((batch, 5)).astype(np.float32)
    feeds = {"x": x, "mask": np.ones((batch, 5), np.bool_), "k": np.arange(batch, dtype=np.int64)}
    edge.export(Where(), feeds, tmp_path / "b", dynamic_batch=True)
