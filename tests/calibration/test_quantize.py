"""QDQ INT8 (symmetric, per-channel) and FP16 (fp32 I/O) copies of a tiny lane graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import edge  # noqa: E402
from edge.calibration.datasets import FeedSet  # noqa: E402
from edge.calibration.fp16 import convert_fp16  # noqa: E402
from edge.calibration.quantize import quantize_int8  # noqa: E402
from edge.errors import ExportError  # noqa: E402
from edge.models.lane import card as lane  # noqa: E402
from edge.parity import compare  # noqa: E402
from edge.runtimes.onnxruntime import OrtRuntime  # noqa: E402


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, edge.IOSpec, dict]:
    out = tmp_path_factory.mktemp("q") / "lane"
    b, _ = edge.export_card("lane", out, config="tiny", attention="decomposed", programs=["clip"])
    return out / "model.onnx", b.io, b.manifest["model"]["config"]


def _feeds(cfg: dict, io: edge.IOSpec, role: str, n: int):  # type: ignore[no-untyped-def]
    from edge.models.lane.samples import samples

    sets = samples(cfg, role, n, 1)
    clips = [lane.preprocess_clip([f["camera"].data for f in s], cfg) for s in sets]
    ids = [s[-1]["camera"].meta["gt"]["raw_file"] for s in sets]
    return FeedSet([{"clip": c} for c in clips], "synthetic", role, ids)


def test_qdq_is_symmetric_per_channel_and_runs(graph, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src, io, cfg = graph
    calib = _feeds(cfg, io, "calibration", 6)
    seen = []
    info = quantize_int8(src, tmp_path / "int8.onnx", calib, progress=seen.append)
    assert seen[-1] == 6 and info["symmetric"] and info["per_channel"]
    m = onnx.load(str(tmp_path / "int8.onnx"))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    q_nodes = [n for n in m.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert q_nodes, "no QDQ nodes"
    for n in q_nodes:  # zero points all 0 (symmetric)
        if len(n.input) > 2:
            assert np.all(inits[n.input[2]] == 0), n.name
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    producers = {o: n for n in m.graph.node for o in n.output}
    per_channel = 0
    for c in convs:
        dq = producers.get(c.input[1])
        if dq is not None and dq.op_type == "DequantizeLinear" and inits[dq.input[1]].size > 1:
            w = inits.get(dq.input[0])
            assert w is not None and inits[dq.input[1]].size == w.shape[0]  # one scale per output channel
            per_channel += 1
    assert per_channel == len(convs)
    # TensorRT's placement: the inputs of the Convs rounded, their outputs left float
    quantized = {n.input[0] for n in m.graph.node if n.op_type == "QuantizeLinear"}
    assert not quantized & {c.output[0] for c in convs} and not info["outputs_quantized"]
    ev = _feeds(cfg, io, "evaluation", 2)
    ref = OrtRuntime(str(src), io)
    q = OrtRuntime(str(tmp_path / "int8.onnx"), io)
    for f in ev.feeds:
        errs = compare(ref.infer(f), q.infer(f))
        assert all(np.isfinite(e["rel"]) and e["rel"] < 0.5 for e in errs.values()), errs


def test_the_quantizers_hint_is_dropped_but_not_the_processs_other_logs(graph, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """The quantizer logs a pre-processing hint on the root logger every call. It was silenced by setting the root
    logger to ERROR for the call, which silenced every other thread's warnings too (a review): now only the
    quantizer's own records of this thread are dropped, and the root's level is left as it was."""
    import logging
    import threading

    src, io, cfg = graph
    root = logging.getLogger()
    level = root.level
    calib = _feeds(cfg, io, "calibration", 2)
    threads: list[threading.Thread] = []

    def app(n: int) -> None:  # another thread of the host application logs while the quantizer runs
        t = threading.Thread(target=lambda: logging.getLogger("app").warning("the host application's warning"))
        t.start()
        threads.append(t)

    with caplog.at_level(logging.WARNING):
        quantize_int8(src, tmp_path / "int8.onnx", calib, progress=app)
        for t in threads:
            t.join(5)
    assert threads and root.level == level and not root.filters
    assert not [r for r in caplog.records if "/onnxruntime/quantization/" in r.pathname.replace("\\", "/")]
    assert [r.getMessage() for r in caplog.records if r.name == "app"] == ["the host application's warning"] * len(
        threads)
    caplog.clear()  # the filter is what drops the hint: without it the quantizer's records are there
    with caplog.at_level(logging.WARNING), pytest.MonkeyPatch.context() as m:
        m.setattr(logging.Logger, "addFilter", lambda self, f: None)
        quantize_int8(src, tmp_path / "int8b.onnx", calib)
    assert [r for r in caplog.records if "/onnxruntime/quantization/" in r.pathname.replace("\\", "/")]


def test_calibration_and_evaluation_are_disjoint(graph) -> None:  # type: ignore[no-untyped-def]
    _, io, cfg = graph
    a = _feeds(cfg, io, "calibration", 3)
    b = _feeds(cfg, io, "evaluation", 3)
    assert not set(a.ids) & set(b.ids)
    for x in a.feeds:  # (evaluation clips are rendered at 1280x720 and resized by the preprocessing)
        assert all(np.abs(x["clip"] - y["clip"]).mean() > 0.05 for y in b.feeds)


def test_fp16_keeps_fp32_io_and_parity(graph, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src, io, cfg = graph
    convert_fp16(src, tmp_path / "fp16.onnx")
    m = onnx.load(str(tmp_path / "fp16.onnx"))
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for i in [*m.graph.input, *m.graph.output])
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in m.graph.initializer)
    ev = _feeds(cfg, io, "evaluation", 2)
    ref, half = OrtRuntime(str(src), io), OrtRuntime(str(tmp_path / "fp16.onnx"), io)
    for f in ev.feeds:
        errs = compare(ref.infer(f), half.infer(f))
        assert max(e["rel"] for e in errs.values()) < 1e-2, errs


def test_bad_method(graph, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src, io, cfg = graph
    with pytest.raises(ExportError, match="choose one of"):
        quantize_int8(src, tmp_path / "x.onnx", _feeds(cfg, io, "calibration", 1), method="kl")


@pytest.mark.parametrize("outputs", [False, True])
def test_symmetric_qdq_keeps_biases_float(tmp_path: Path, outputs: bool) -> None:
    """The symmetric form is TensorRT's, whose dequantize layer takes int8 only: ONNX Runtime's default
    int32 bias DequantizeLinear failed every engine build of a biased convolution. The biases stay float, in
    both placements. With the outputs rounded too, ONNX Runtime still fuses the convolution (QLinearConv) and
    computes what its own form with int32 biases computes; with the inputs only (the default), the graph runs
    within int8's error of the float model."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3)).eval()
    x = torch.randn(1, 4, 12, 12)
    torch.onnx.export(m, (x,), str(tmp_path / "f.onnx"), input_names=["x"], output_names=["y"], dynamo=False,
                      opset_version=17)
    rng = np.random.default_rng(0)
    calib = FeedSet([{"x": rng.standard_normal((1, 4, 12, 12)).astype(np.float32)} for _ in range(4)], "random",
                    "calibration", [str(i) for i in range(4)])
    quantize_int8(tmp_path / "f.onnx", tmp_path / "q.onnx", calib, quantize_outputs=outputs or None)
    g = onnx.load(str(tmp_path / "q.onnx")).graph
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in g.initializer}
    dq_inputs = [inits.get(n.input[0]) for n in g.node if n.op_type == "DequantizeLinear"]
    assert not [a for a in dq_inputs if a is not None and a.dtype == np.int32]
    biases = [inits[n.input[2]] for n in g.node if n.op_type == "Conv"]
    assert len(biases) == 2 and all(b.dtype == np.float32 for b in biases)
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from edge.calibration.quantize import _reader

    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    got = ort.InferenceSession(str(tmp_path / "q.onnx"), so, providers=["CPUExecutionProvider"]).run(
        None, {"x": x.numpy()})[0]
    if not outputs:
        with torch.no_grad():
            want = m(x).numpy()
        assert 0 < np.abs(got - want).max() < 5e-2 * np.abs(want).max()
        return
    assert "QLinearConv" in {n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node}
    # the same outputs as ONNX Runtime's own form with int32 biases (what the float ones replace)
    quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / "ort.onnx"), _reader(calib, None),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    per_channel=True, extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    ref = ort.InferenceSession(str(tmp_path / "ort.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"x": x.numpy()})[0]
    assert np.abs(got - ref).max() < 1e-3 * np.abs(ref).max()


def test_only_onnx_runtimes_own_form_rounds_the_outputs(graph, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """U8S8 (ONNX Runtime's form) rounds each Conv's output too, for its QLinearConv fusion; the symmetric form
    (TensorRT's) only the inputs unless asked, and asking puts a Q/DQ pair on every Conv output."""
    src, io, cfg = graph
    calib = _feeds(cfg, io, "calibration", 2)

    def rounded_outputs(path: Path) -> int:
        m = onnx.load(str(path))
        outs = {n.output[0] for n in m.graph.node if n.op_type == "Conv"}
        return len(outs & {n.input[0] for n in m.graph.node if n.op_type == "QuantizeLinear"})

    n_conv = sum(n.op_type == "Conv" for n in onnx.load(str(src)).graph.node)
    assert quantize_int8(src, tmp_path / "u.onnx", calib, activations="u8s8")["outputs_quantized"]
    assert rounded_outputs(tmp_path / "u.onnx") > 0
    assert not quantize_int8(src, tmp_path / "s.onnx", calib)["outputs_quantized"]
    assert rounded_outputs(tmp_path / "s.onnx") == 0
    quantize_int8(src, tmp_path / "so.onnx", calib, quantize_outputs=True)
    assert 0 < rounded_outputs(tmp_path / "so.onnx") <= n_conv


def test_a_batched_matmul_constant_takes_one_scale_and_the_graph_runs(tmp_path: Path) -> None:
    """A MatMul whose second input is a constant [1, heads, K, N] (attention against a fixed key set): ORT's
    quantizer would give it one scale per head (its MatMul channel axis is 1), and ONNX Runtime's fused
    MatMulIntegerToFloat then refused to run the inputs-only graph. It takes one scale; the graph runs within
    int8's error; a 2-D weight keeps its per-column scales."""
    from onnx import TensorProto, helper, numpy_helper

    from edge.calibration.quantize import batched_matmul_constants

    rng = np.random.default_rng(0)
    keys = rng.standard_normal((1, 2, 32, 16)).astype(np.float32)
    w = rng.standard_normal((16, 16)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "keys"], ["a"]), helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("MatMul", ["r", "w"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 16])],
                          [numpy_helper.from_array(keys, "keys"), numpy_helper.from_array(w, "w")])
    src = tmp_path / "b.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    assert batched_matmul_constants(onnx.load(str(src)).graph) == ["keys"]
    feeds = [{"x": rng.standard_normal((1, 2, 8, 32)).astype(np.float32)} for _ in range(4)]
    quantize_int8(src, tmp_path / "q.onnx", FeedSet(feeds, "random", "calibration", list("0123")))
    m = onnx.load(str(tmp_path / "q.onnx"))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    scale = {n.input[0]: inits[n.input[1]] for n in m.graph.node if n.op_type == "DequantizeLinear"
             and n.input[0] in inits}
    by_src = {k.replace("_quantized", ""): v for k, v in scale.items()}
    assert by_src["keys"].size == 1 and by_src["w"].size == 16
    import onnxruntime as ort

    got = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds[0])[0]
    want = np.maximum(feeds[0]["x"] @ keys, 0) @ w
    assert np.abs(got - want).max() < 5e-2 * np.abs(want).max()
