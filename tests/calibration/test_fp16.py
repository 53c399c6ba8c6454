"""TensorRT's INT8 graph form: a symmetric QDQ graph with fp16 float layers (convert_fp16), and the
topological sort it relies on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto as T  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

from edge.calibration.fp16 import convert_fp16, topological_sort  # noqa: E402
from edge.errors import ExportError  # noqa: E402


def _qdq_model(opset: int) -> Any:
    """x -> Q/DQ -> Conv (int8 per-channel weights through DQ, float bias) -> Relu -> Softmax -> y."""
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    inits = [numpy_helper.from_array(np.float32(0.02), "xs"), numpy_helper.from_array(np.int8(0), "xz"),
             numpy_helper.from_array(w, "wq"), numpy_helper.from_array(np.full(4, 0.01, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(4, np.int8), "wz"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq"),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="wdq", axis=0),
             helper.make_node("Conv", ["xd", "wd", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Softmax", ["r"], ["y"], name="softmax", axis=1)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", T.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", T.FLOAT, [1, 4, 8, 8])], inits)
    ops = [helper.make_opsetid("", opset)]  # the IR version opset needs: ONNX Runtime 1.23 (Python 3.10) reads <= 11
    return helper.make_model(g, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops))


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("opset", [18, 20])
def test_float_layers_become_fp16_and_the_result_matches(tmp_path: Path, opset: int) -> None:
    """Scales, Conv, bias and Relu in fp16, Softmax and the I/O fp32; an opset-18 graph (no fp16 Q/DQ scales)
    is converted to 19 first; outputs within fp16 rounding of the fp32 QDQ graph."""
    src, dst = tmp_path / "g.int8.onnx", tmp_path / "g.int8-fp16.onnx"
    onnx.save(_qdq_model(opset), src)
    info = convert_fp16(src, dst)
    assert info["float"] == "fp16" and info["dequantize_nodes"] == 2
    m = onnx.load(str(dst))
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 19
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    ty = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.output]}
    ty.update({t.name: t.data_type for t in m.graph.initializer})
    node = {n.name: n for n in m.graph.node}
    assert ty[node["dq"].output[0]] == T.FLOAT16 and ty[node["wdq"].output[0]] == T.FLOAT16
    assert {ty[node[n].input[1]] for n in ("q", "dq", "wdq")} == {T.FLOAT16}
    assert ty[node["conv"].output[0]] == T.FLOAT16 and ty[node["conv"].input[2]] == T.FLOAT16
    assert ty[node["softmax"].output[0]] == T.FLOAT and m.graph.input[0].type.tensor_type.elem_type == T.FLOAT
    assert m.graph.output[0].type.tensor_type.elem_type == T.FLOAT
    onnx.checker.check_model(m, full_check=True)
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    ref, got = _run(src, x), _run(dst, x)
    # softmax moves by at most 1/4 of its input's change; the conv outputs (|c| <= 27 * 2.54 * 1.27 = 87, ~5
    # typical) pass three fp16 roundings (2^-11 each) and the fp16 scales move a few inputs by one step:
    # ~6e-3 measured, 0.05 leaves room for any CPU's kernels
    assert got.dtype == np.float32 and np.abs(got - ref).max() < 0.05


def test_a_custom_domain_node_stays_fp32_and_a_bad_graph_is_one_line(tmp_path: Path) -> None:
    """A plugin's node keeps fp32 with casts on both sides when its output type is known; when it is not
    (ONNX cannot infer a custom op's types) no form is made, in one line, rather than a graph whose types
    disagree; a broken graph is one line too, and nothing is written."""
    m = _qdq_model(20)
    m.graph.node[3].output[0] = "c0"  # conv -> MyOp (custom) -> c -> relu (fp16) -> softmax
    m.graph.node.insert(4, helper.make_node("MyOp", ["c0"], ["c"], name="plug", domain="my.plugins"))
    m.opset_import.append(helper.make_opsetid("my.plugins", 1))
    src, dst = tmp_path / "g.onnx", tmp_path / "out.onnx"
    onnx.save(m, src)
    with pytest.raises(ExportError, match=r"^g\.onnx: node 'plug' \(my\.plugins::MyOp\) has outputs of unknown type"):
        convert_fp16(src, dst)
    assert not dst.exists()
    m.graph.value_info.append(helper.make_tensor_value_info("c", T.FLOAT, [1, 4, 8, 8]))
    onnx.save(m, src)
    info = convert_fp16(src, dst)
    assert info["kept_fp32_custom_nodes"] == ["plug"]
    out = onnx.load(str(dst))
    cast_to = {o: n.attribute[0].i for n in out.graph.node if n.op_type == "Cast" for o in n.output}
    node = {n.name: n for n in out.graph.node}
    assert cast_to.get(node["plug"].input[0]) == T.FLOAT  # fed fp32 from the fp16 Conv
    assert cast_to.get(node["relu"].input[0]) == T.FLOAT16  # and back to fp16 for the Relu
    broken = _qdq_model(20)
    broken.graph.node[3].input[0] = "nothing"  # read a tensor nobody produces
    onnx.save(broken, src)
    with pytest.raises(ExportError, match=r"^g\.onnx: FP16 conversion failed \(.*nothing"):
        convert_fp16(src, tmp_path / "never.onnx")
    assert not (tmp_path / "never.onnx").exists()


def test_large_activations_keep_their_nodes_fp32(tmp_path: Path) -> None:
    """A node reading or writing an activation beyond fp16's useful range on the feeds (here the Conv's
    input scaled by 1000, its output scaled back by 1e-4) is found and kept fp32, its neighbours (Relu,
    Softmax) stay fp16; on feeds within range nothing is."""
    from edge.calibration.fp16 import large_value_nodes

    m = _qdq_model(20)
    m.graph.node[0].input[0] = "xb"  # x -> Mul(1000) -> xb -> Q ...
    m.graph.node.insert(0, helper.make_node("Mul", ["x", "k"], ["xb"], name="scale_up"))
    m.graph.initializer.append(numpy_helper.from_array(np.float32(1000.0), "k"))
    m.graph.node[1].input[1] = m.graph.node[2].input[1] = "xsb"  # a scale that fits the larger range
    m.graph.initializer.append(numpy_helper.from_array(np.float32(20.0), "xsb"))
    conv = next(n for n in m.graph.node if n.name == "conv")
    conv.output[0] = "c_big"  # conv -> Mul(1e-4) -> c -> relu: the relu and softmax stay within range
    m.graph.node.insert(list(m.graph.node).index(conv) + 1,
                        helper.make_node("Mul", ["c_big", "k_down"], ["c"], name="scale_down"))
    m.graph.initializer.append(numpy_helper.from_array(np.float32(1e-4), "k_down"))
    src = tmp_path / "g.onnx"
    onnx.save(m, src)
    rng = np.random.default_rng(2)
    small = [{"x": (rng.standard_normal((1, 3, 8, 8)) * 1e-4).astype(np.float32)}]
    big = [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)}]
    assert large_value_nodes(src, small) == []
    keep = large_value_nodes(src, big)
    assert keep == ["scale_up", "q", "dq", "conv", "scale_down"]  # |x * 1000| ~ 3000 in or out of these
    info = convert_fp16(src, tmp_path / "out.onnx", keep_nodes=keep)
    assert info["kept_fp32_nodes"] == keep
    out = onnx.load(str(tmp_path / "out.onnx"))
    cast_to = {o: n.attribute[0].i for n in out.graph.node if n.op_type == "Cast" for o in n.output}
    relu = next(n for n in out.graph.node if n.name == "relu")
    assert cast_to.get(relu.input[0]) == T.FLOAT16  # the Relu runs fp16, fed from the fp32 Mul
    x = big[0]["x"]
    ref, got = _run(src, x), _run(tmp_path / "out.onnx", x)
    assert np.isfinite(got).all() and np.abs(got - ref).max() < 0.05


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.lists(st.integers(0, 11), max_size=3), min_size=n, max_size=n), st.randoms())))
def test_topological_sort_orders_any_dag_stably(case: tuple[int, list[list[int]], Any]) -> None:
    """Random DAGs (node i reads outputs of earlier nodes only, or the graph input), shuffled: the sort puts
    every producer before its readers, keeps every node, and leaves an already sorted graph as it was."""
    n, reads, rnd = case
    earlier = [sorted({r % i for r in rd}) if i else [] for i, rd in enumerate(reads)]
    nodes = [helper.make_node("Sum", ["x", *(f"t{j}" for j in e)], [f"t{i}"], name=f"n{i}")
             for i, e in enumerate(earlier)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", T.FLOAT, [1])],
                          [helper.make_tensor_value_info(f"t{n - 1}", T.FLOAT, [1])])
    topological_sort(g)
    assert [x.name for x in g.node] == [f"n{i}" for i in range(n)]
    shuffled = list(g.node)
    rnd.shuffle(shuffled)
    del g.node[:]
    g.node.extend(shuffled)
    topological_sort(g)
    seen = {"x"}
    for node in g.node:
        assert set(node.input) <= seen
        seen.update(node.output)
    assert sorted(x.name for x in g.node) == sorted(f"n{i}" for i in range(n))


def test_topological_sort_names_a_cycle_and_a_missing_input() -> None:
    a = helper.make_node("Relu", ["b_out"], ["a_out"], name="a")
    b = helper.make_node("Relu", ["a_out"], ["b_out"], name="b")
    g = helper.make_graph([a, b], "g", [helper.make_tensor_value_info("x", T.FLOAT, [1])], [])
    with pytest.raises(ValueError, match="cycle through node 'a'"):
        topological_sort(g)
    g = helper.make_graph([helper.make_node("Relu", ["ghost"], ["y"], name="r")], "g", [], [])
    with pytest.raises(ValueError, match="node 'r' reads 'ghost'"):
        topological_sort(g)


def test_where_fp16_departs_from_fp32_the_nodes_stay_fp32(tmp_path: Path) -> None:
    """``(x + 384) - 384`` loses x in fp16 storage (spacing 0.25 there, x in [0.01, 0.1]: rounded to 0 or
    0.25) while every value stays under the range limit. Scored as it would run (the emulation: fp32
    arithmetic, fp16 storage), the plain form is off; ``fp16_form`` keeps the Sub fp32 where the two
    first part, then the Add that handed it the rounded sum, and ends exact on a feed it was not fitted
    on; the Relu beside them, which fp16 carries, stays fp16. ONNX Runtime's own fp16 run of the plain form
    is exact here, which is why the form is judged on the emulation."""
    from edge.calibration.fp16 import emulate_fp16, fp16_form

    nodes = [helper.make_node("Add", ["x", "c"], ["a"], name="add"),
             helper.make_node("Sub", ["a", "c"], ["t"], name="sub"),
             helper.make_node("Relu", ["x"], ["r"], name="relu")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", T.FLOAT, [64])],
                          [helper.make_tensor_value_info("t", T.FLOAT, [64]),
                           helper.make_tensor_value_info("r", T.FLOAT, [64])],
                          [numpy_helper.from_array(np.float32(384.0), "c")])
    src, dst = tmp_path / "g.onnx", tmp_path / "out.onnx"
    ops = [helper.make_opsetid("", 20)]
    onnx.save(helper.make_model(g, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops)), src)
    rng = np.random.default_rng(4)
    feeds = [{"x": rng.uniform(0.01, 0.1, 64).astype(np.float32)} for _ in range(3)]
    so = ort.SessionOptions()
    so.log_severity_level = 3

    def run(p: Path, f: dict[str, np.ndarray]) -> list[np.ndarray]:
        return ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"]).run(None, f)

    x = {"x": rng.uniform(0.01, 0.1, 64).astype(np.float32)}
    ref = run(src, x)
    plain, plain_emu = tmp_path / "plain.onnx", tmp_path / "plain.emu.onnx"
    convert_fp16(src, plain)
    onnx.save(emulate_fp16(onnx.load(str(plain))), plain_emu)
    assert np.abs(run(plain_emu, x)[0] - ref[0]).max() > 0.5 * np.abs(ref[0]).max()  # rounded to quarters
    info = fp16_form(src, dst, feeds)
    kept = info["kept_fp32_nodes"]
    assert set(kept) == {"add", "sub"} and info["fp16_range"]["rounds"] == 3
    emu = Path(f"{dst}.emulation.onnx")
    for p in (dst, emu):
        got = run(p, x)
        assert np.abs(got[0] - ref[0]).max() == 0.0  # fp32 all the way: exact
        assert np.abs(got[1] - ref[1]).max() <= 2.0 ** -11 * np.abs(ref[1]).max()  # the fp16 Relu: one rounding
    assert any(n.name == "relu__round_0" for n in onnx.load(str(emu)).graph.node)  # its output rounded to fp16
