"""NNCF's INT8 form for OpenVINO leaves in float the op types whose int8 kernels are slower here
(edge.calibration.ov_pays): the ladder of rungs, the choice from timings (injected, so no test depends on this
CPU), NNCF honouring the types, the real timer, and an export that records and honours the choice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.calibration import ov_pays
from edge.errors import ExportError
from edge.spec import IOSpec, TensorSpec

SDPA = "ScaledDotProductAttention"


def test_rungs_leave_attention_then_matmuls_then_all_but_convolutions_in_float() -> None:
    every = ["Add", "Convolution", "MVN", "MatMul", SDPA]
    assert ov_pays.float_type_rungs(every) == [[], [SDPA], ["MatMul", SDPA], ["Add", "MVN", "MatMul", SDPA]]
    assert ov_pays.float_type_rungs(["Convolution", "Add", "GroupConvolution"]) == [[], ["Add"]]  # a CNN
    assert ov_pays.float_type_rungs(["MatMul", "Convolution"]) == [[], ["MatMul"]]
    # a rung that would leave every type in float is the fp32 graph (timed as the reference), not a rung
    assert ov_pays.float_type_rungs(["MatMul"]) == [[]]
    assert ov_pays.float_type_rungs(["Convolution"]) == [[]]
    assert ov_pays.float_type_rungs([]) == [[]]


def _by_name(ms: list[float]) -> Any:
    """A timer answering by file: ``ms[0]`` for the fp32 graph, ``ms[i + 1]`` for rung ``ops<i>.xml`` (so the
    confirming second timing of the chosen rung gets that rung's time)."""
    def timer(paths: list[str], io: Any, feeds: Any) -> list[float]:
        return [ms[int(Path(p).stem[3:]) + 1] if Path(p).name.startswith("ops") else ms[0] for p in paths]

    return timer


def _choose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ms: list[float],
            present: dict[str, int] | None = None) -> tuple[list[str], dict[str, Any], list[list[str]]]:
    present = {"Add": 3, "Convolution": 4, "MatMul": 2, SDPA: 1} if present is None else present
    written: list[list[str]] = []
    monkeypatch.setattr(ov_pays, "quantized_types", lambda xml: present)

    def write(types: Any, dst: Path) -> None:
        written.append(list(types))
        dst.write_bytes(b"<stand-in/>")
        dst.with_suffix(".bin").write_bytes(b"")

    types, rec = ov_pays.choose_float_types(write, tmp_path / "fp32.xml", None, {}, tmp_path, time_ms=_by_name(ms))
    return types, rec, written


def test_the_fastest_rung_is_chosen_confirmed_against_fp32_and_recorded(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ov_pays.ENV, "timed")
    # fp32 5 ms; every op int8 8; attention float 6; + MatMuls float 3 (confirmed: 3 < 0.97 * 5); all but Conv 4
    types, rec, written = _choose(tmp_path, monkeypatch, [5.0, 8.0, 6.0, 3.0, 4.0])
    assert written == [[], [SDPA], ["MatMul", SDPA], ["Add", "MatMul", SDPA]]
    assert types == ["MatMul", SDPA] and rec["chosen"] == 2 and rec["mode"] == "timed"
    assert rec["fp32_ms"] == 5.0 and [r["ms"] for r in rec["rungs"]] == [8.0, 6.0, 3.0, 4.0]
    assert rec["confirm"] == {"fp32_ms": 5.0, "ms": 3.0, "kept": True} and rec["float_graph"] is False
    assert rec["quantized_types"] == {"Add": 3, "Convolution": 4, "MatMul": 2, SDPA: 1}
    assert not list(tmp_path.glob("ops*"))  # the rungs' IRs are not left behind
    types, rec, _ = _choose(tmp_path, monkeypatch, [5.0, 2.0, 6.0, 3.0, 4.0])  # every op int8 fastest
    assert types == [] and rec["chosen"] == 0 and not rec["float_graph"]


def test_every_type_stays_float_where_no_rung_is_confirmed_faster_than_fp32(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ov_pays.ENV, "timed")
    # the fastest rung (all but Conv float, 4.9 ms) is not 3 % faster than fp32's 5: the graph runs in float
    types, rec, _ = _choose(tmp_path, monkeypatch, [5.0, 8.0, 6.0, 5.5, 4.9])
    assert types == ["Add", "Convolution", "MatMul", SDPA] and rec["float_graph"] is True
    assert rec["chosen"] == 3 and rec["confirm"]["kept"] is False
    # a rung OpenVINO could not run is recorded as such and never chosen
    types, rec, _ = _choose(tmp_path, monkeypatch, [5.0, float("inf"), 2.0, 6.0, 7.0])
    assert rec["rungs"][0]["ms"] is None and types == [SDPA]


def test_a_graph_left_in_float_has_no_quantized_op_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a review: with every type rung 0 quantized left in float, NNCF put a quantizer on another op (a
    Gather's output into a Multiply): the graph said to run in float had one int8 op, and neither the export's
    warning nor edge run's note (both on 0 quantized ops) said anything. The types grow until none is quantized."""
    monkeypatch.setenv(ov_pays.ENV, "timed")
    present = {"Add": 1, "Convolution": 2, "Gather": 2, "MatMul": 4}
    floated: list[list[str]] = []

    def write(types: Any, dst: Path) -> None:
        floated.append(list(types))
        dst.write_bytes(b"<stand-in/>")
        dst.with_suffix(".bin").write_bytes(b"")

    def quantized(xml: Any) -> dict[str, int]:  # what NNCF quantizes with the last written types in float
        left = set(present) - set(floated[-1]) if floated[-1] else set(present)
        if not left and "Multiply" not in floated[-1]:
            return {"Multiply": 1}  # moved onto the op after the Gather
        return {t: present[t] for t in sorted(left)}

    monkeypatch.setattr(ov_pays, "quantized_types", quantized)
    types, rec = ov_pays.choose_float_types(write, tmp_path / "fp32.xml", None, {}, tmp_path,
                                            time_ms=_by_name([5.0, 8.0, 6.0, 5.5, 4.9]))
    assert rec["float_graph"] is True and types == ["Add", "Convolution", "Gather", "MatMul", "Multiply"]
    assert floated[-1] == types and not list(tmp_path.glob("float*"))  # checked, and its probe removed


def test_a_rung_nncf_cannot_write_is_refused_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ov_pays.ENV, "timed")
    monkeypatch.setattr(ov_pays, "quantized_types", lambda xml: {"Add": 1, "Convolution": 2, "MatMul": 1, SDPA: 1})
    timed: list[list[str]] = []

    def write(types: Any, dst: Path) -> None:
        if types == ["MatMul", SDPA]:
            raise RuntimeError("nncf: cannot build the ignored scope\nsecond line")
        dst.write_bytes(b"<stand-in/>")

    def timer(paths: list[str], io: Any, feeds: Any) -> list[float]:
        timed.append([Path(p).name for p in paths])
        return [{"fp32.xml": 5.0, "ops0.xml": 8.0, "ops1.xml": 4.0, "ops3.xml": 6.0}[Path(p).name] for p in paths]

    types, rec = ov_pays.choose_float_types(write, tmp_path / "fp32.xml", None, {}, tmp_path, time_ms=timer)
    assert timed[0] == ["fp32.xml", "ops0.xml", "ops1.xml", "ops3.xml"]  # the refused rung is not timed
    assert rec["rungs"][2] == {"float_types": ["MatMul", SDPA], "ms": None,
                               "refused": "nncf: cannot build the ignored scope"}
    assert types == [SDPA] and rec["chosen"] == 1 and not list(tmp_path.glob("ops*"))


def test_nothing_quantized_is_nothing_to_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ov_pays.ENV, "timed")
    types, rec, written = _choose(tmp_path, monkeypatch, [], present={})
    assert types == [] and written == [[]] and rec == {"mode": "timed", "quantized_types": {}}
    assert not list(tmp_path.glob("ops*"))


def test_all_is_untimed_and_a_bad_value_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ov_pays.ENV, "all")
    types, rec, written = _choose(tmp_path, monkeypatch, [])
    assert types == [] and written == [] and rec == {"mode": "all"}
    monkeypatch.setenv(ov_pays.ENV, "fastest")
    with pytest.raises(ExportError, match=r"^EDGE_OV_INT8_OPS='fastest': choose one of timed, all$"):
        _choose(tmp_path, monkeypatch, [])


def _conv_matmul(path: Path) -> IOSpec:
    """x [1, 3, 8, 8] -> Conv (3->4, 3x3) -> Relu -> Reshape [1, 256] -> MatMul (256x16) -> y."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([1, 256], np.int64), "shape"),
             numpy_helper.from_array(rng.standard_normal((256, 16)).astype(np.float32), "m")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Reshape", ["r", "shape"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "m"], ["y"], name="fc")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return IOSpec(inputs=[TensorSpec("x", "float32", (1, 3, 8, 8))], outputs=[TensorSpec("y", "float32", (1, 16))])


def test_nncf_leaves_the_float_types_unquantized_and_the_real_timer_times_each_ir(tmp_path: Path) -> None:
    pytest.importorskip("nncf")
    from edge.calibration.datasets import FeedSet
    from edge.calibration.nncf_int8 import nncf_quantize_ir

    io = _conv_matmul(tmp_path / "m.onnx")
    rng = np.random.default_rng(1)
    fs = FeedSet([{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(3)], "random",
                 "calibration", ["0", "1", "2"])
    whole, part = tmp_path / "whole.xml", tmp_path / "part.xml"
    nncf_quantize_ir(str(tmp_path / "m.onnx"), str(whole), fs, io, transformer=False)
    info = nncf_quantize_ir(str(tmp_path / "m.onnx"), str(part), fs, io, transformer=False, float_types=["MatMul"])
    assert info["float_types"] == ["MatMul"]
    assert ov_pays.quantized_types(whole) == {"Convolution": 1, "MatMul": 1}
    assert ov_pays.quantized_types(part) == {"Convolution": 1}
    ms = ov_pays.time_irs_ms([str(whole), str(part), str(tmp_path / "missing.xml")], io, fs.feeds[0])
    assert all(t > 0 and np.isfinite(t) for t in ms[:2]) and ms[2] == float("inf")


def test_edge_run_names_an_nncf_graph_left_all_float_as_fp32_in_its_int8_program() -> None:
    from types import SimpleNamespace

    from edge.program import float_int8_graphs

    table = {"openvino": {"enc": "ov-enc", "head": "ov-head"}, "onnxruntime": {"enc": "ort-enc"}}
    b = SimpleNamespace(manifest={"programs": {"main": {"precisions": {"int8": table}}}}, artifacts=[
        {"name": "ov-enc", "quantization": {"format": "nncf", "quantized_ops": 0, "speed": {"float_graph": True}}},
        {"name": "ov-head", "quantization": {"format": "nncf", "quantized_ops": 12}},
        {"name": "ort-enc", "quantization": {"dequantize_nodes": 3}}])
    assert float_int8_graphs(b, "main", "openvino") == ["enc"]
    assert float_int8_graphs(b, "main", "onnxruntime") == []


def test_the_export_warning_says_why_an_nncf_graph_quantizes_nothing() -> None:
    from edge.calibration.precision import _nncf_float_why

    speed = {"float_graph": True, "confirm": {"fp32_ms": 12.6, "ms": 12.5, "kept": False},
             "rungs": [{"float_types": [], "ms": 28.0}]}
    assert _nncf_float_why({"speed": speed, "ignored": []}) == (
        "because its fastest int8 form was not 3% faster than fp32 on this CPU when timed again (fp32 12.6 ms, "
        "int8 12.5 ms; every op int8 28 ms)")
    assert _nncf_float_why({"speed": {"mode": "all"}, "ignored": ["a", "b"]}) == "to meet the budget"
    assert _nncf_float_why({"speed": {"mode": "timed", "quantized_types": {}}, "ignored": []}) == (
        "because NNCF found nothing to quantize in it")
