"""ONNX Runtime's INT8 form keeps in float the Convs whose int8 kernel is slower here (edge.calibration.ort_pays):
reduction depths, the candidate sets, the choice from timings (injected, so no test depends on this CPU), the
real timer, and an export that records and honours the choice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.calibration import ort_pays
from edge.errors import ExportError
from edge.spec import IOSpec, TensorSpec


def _convs(path: Path) -> None:
    """x [1, 3, 8, 8] -> Conv a (3->4, 3x3, K 27) -> Conv b (depthwise 4, 3x3, K 9) -> Conv c (4->8, 1x1, K 4);
    plus a Conv whose weight is an input (not a constant: not listed)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("wa", (4, 3, 3, 3)), ("wb", (4, 1, 3, 3)), ("wc", (8, 4, 1, 1)))]
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], name="a", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "wb"], ["b"], name="b", pads=[1, 1, 1, 1], group=4),
             helper.make_node("Conv", ["b", "wc"], ["c"], name="c"),
             helper.make_node("Conv", ["c", "wd"], ["y"], name="d")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
                                       helper.make_tensor_value_info("wd", TensorProto.FLOAT, [2, 8, 1, 1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])], inits)
    ops = [helper.make_opsetid("", 17)]  # the IR version opset 17 needs: ONNX Runtime 1.23 (Python 3.10) reads <= 11
    onnx.save(helper.make_model(g, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops)), path)


def test_reduction_depths_count_input_channels_per_group_times_the_kernel(tmp_path: Path) -> None:
    _convs(tmp_path / "m.onnx")
    assert ort_pays.conv_depths(tmp_path / "m.onnx") == {"a": 27, "b": 9, "c": 4}


def test_candidates_leave_the_shallowest_convs_in_float_one_depth_more_each() -> None:
    depths = {"a": 27, "b": 144, "c": 144, "d": 216, "e": 576, "f": 1152}
    assert ort_pays.float_candidates(depths) == [[], ["a"], ["a", "b", "c"], ["a", "b", "c", "d"], list(depths)]
    assert ort_pays.float_candidates({"a": 27, "b": 27}) == [[], ["a", "b"]]  # one depth: none or all
    assert ort_pays.float_candidates({"a": 9, "b": 27}, steps=1) == [[], ["a"], ["a", "b"]]
    assert ort_pays.float_candidates({}) == [[]]


def _choose(tmp_path: Path, ms: list[float]) -> tuple[list[str], dict[str, Any], list[list[str]]]:
    _convs(tmp_path / "m.onnx")
    written: list[list[str]] = []

    def write(exclude: Any, dst: Path) -> None:
        written.append(list(exclude))
        dst.write_bytes(b"stand-in")

    keep, rec = ort_pays.choose_float_convs(write, tmp_path / "m.onnx", None, {}, tmp_path, time_ms=_by_name(ms))
    return keep, rec, written


def _by_name(ms: list[float]) -> Any:
    """A timer answering by file: ``ms[0]`` for the fp32 graph, ``ms[i + 1]`` for candidate ``pays<i>.onnx`` (so
    the confirming second timing of the chosen candidate gets that candidate's time)."""
    def timer(paths: list[str], io: Any, feeds: Any) -> list[float]:
        names = [Path(p).name for p in paths]
        return [ms[int(n[4:-5]) + 1] if n.startswith("pays") else ms[0] for n in names]

    return timer


def test_the_fastest_candidate_is_chosen_and_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ort_pays.ENV, "timed")
    # fp32 5 ms; every Conv int8 4; b (K 9) and c (K 4) in float 2.5; a too 3; all float 6
    keep, rec, written = _choose(tmp_path, [5.0, 4.0, 3.5, 2.5, 3.0])
    assert written == [[], ["c"], ["b", "c"], ["a", "b", "c"]]
    assert keep == ["b", "c"] and rec["chosen"] == 2 and rec["fp32_ms"] == 5.0 and rec["mode"] == "timed"
    assert [c["ms"] for c in rec["candidates"]] == [4.0, 3.5, 2.5, 3.0]
    assert [(c["float_convs"], c["max_float_depth"]) for c in rec["candidates"]] == [(0, 0), (1, 4), (2, 9), (3, 27)]
    assert not list(tmp_path.glob("pays*.onnx"))  # the candidates are not left behind


def test_all_float_wins_where_no_int8_conv_pays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.calibration.precision import _slower_why

    monkeypatch.setenv(ort_pays.ENV, "timed")
    keep, rec, _ = _choose(tmp_path, [2.0, 4.0, 3.5, 3.0, 2.1])
    assert keep == ["a", "b", "c"]
    assert "no int8 Conv was faster on this CPU (fp32 2 ms, every Conv int8 4 ms)" in (_slower_why(rec) or "")
    keep, rec, _ = _choose(tmp_path, [2.0, 1.0, 3.5, 3.0, 2.1])
    assert keep == [] and _slower_why(rec) is None


def test_all_asks_for_every_conv_untimed_and_a_bad_value_is_one_line(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ort_pays.ENV, "all")
    keep, rec, written = _choose(tmp_path, [])
    assert keep == [] and written == [] and rec == {"candidates": [], "mode": "all"}
    assert ort_pays.symmetric_pays("s.onnx", "f.onnx", None, {}, time_ms=lambda *a: [9.0, 1.0]) == (
        True, {"mode": "all"})  # untimed: the symmetric graph, as before the timing
    monkeypatch.setenv(ort_pays.ENV, "fastest")
    with pytest.raises(ExportError, match=r"^EDGE_ORT_INT8_CONVS='fastest': choose one of timed, all$"):
        _choose(tmp_path, [])
    with pytest.raises(ExportError, match=r"^EDGE_ORT_INT8_CONVS='fastest'"):
        ort_pays.symmetric_pays("s.onnx", "f.onnx", None, {})


def test_the_real_timer_times_every_file(tmp_path: Path) -> None:
    _convs(tmp_path / "m.onnx")
    m = onnx.load(tmp_path / "m.onnx")
    m.graph.node[-1].input[1] = "wc2"  # d's weight a constant too, so the graph has one input
    m.graph.input.pop()
    m.graph.initializer.append(numpy_helper.from_array(np.ones((2, 8, 1, 1), np.float32), "wc2"))
    onnx.save(m, tmp_path / "n.onnx")
    io = IOSpec((TensorSpec("x", "float32", (1, 3, 8, 8)),), (TensorSpec("y", "float32", (1, 2, 8, 8)),))
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    ms = ort_pays.time_onnx([str(tmp_path / "n.onnx"), str(tmp_path / "bad.onnx"), str(tmp_path / "n.onnx")], io,
                            {"x": np.ones((1, 3, 8, 8), np.float32)}, rounds=3)
    # a candidate ONNX Runtime cannot open is never the fastest, and does not fail the export
    assert len(ms) == 3 and 0 < ms[0] < np.inf and ms[1] == np.inf and 0 < ms[2] < np.inf


def test_a_candidate_that_cannot_run_is_recorded_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.calibration.precision import _slower_why

    monkeypatch.setenv(ort_pays.ENV, "timed")
    keep, rec, _ = _choose(tmp_path, [2.0, float("inf"), 3.5, 3.0, 2.1])
    assert keep == ["a", "b", "c"] and rec["candidates"][0]["ms"] is None
    assert "(fp32 2 ms, every Conv int8 could not run)" in (_slower_why(rec) or "")


@pytest.fixture
def toy(toy_as: Any) -> Iterator[Any]:
    with toy_as("toypays") as mod:
        yield mod


@pytest.mark.parametrize("favour", [1, 2])
def test_the_export_quantizes_only_the_convs_that_pay(toy: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       favour: int) -> None:
    """The toy's embed graph has two Convs (K 27 and 9 x dim): candidates none / the first / both in float.
    With the timings favouring one, the U8S8 file quantizes exactly the others and records why."""
    pytest.importorskip("torch")
    import edge

    monkeypatch.setenv(ort_pays.ENV, "timed")
    ms = {1: [5.0, 4.0, 1.0, 3.0], 2: [1.0, 4.0, 3.0, 2.0]}[favour]
    monkeypatch.setattr(ort_pays, "time_onnx", _by_name(ms))
    said: list[str] = []
    b, _ = edge.export_card("toypays", tmp_path / "b", config="tiny", precisions=["fp32", "int8"], calib_size=3,
                            eval_size=4, max_drop=100.0, progress=said.append)
    art = b.artifact(name="onnx-int8-u8s8-embed")
    q = art["quantization"]
    assert q["speed"]["chosen"] == favour and q["speed"]["fp32_ms"] == ms[0]
    g = onnx.load(str(b.file(art["file"]))).graph
    dq = {o for n in g.node if n.op_type == "DequantizeLinear" for o in n.output}
    convs = [n for n in g.node if n.op_type == "Conv"]
    assert len(convs) == 2
    weight_quantized = [n.input[1] in dq for n in convs]
    if favour == 1:  # the RGB layer in float, the second quantized
        assert q["float_for_speed"] == [convs[0].name] and weight_quantized == [False, True]
        assert any("keeps 1 of 2 Conv(s) in float" in s for s in said)
    else:  # nothing paid: this graph stays float in ONNX Runtime's int8 program, and the export says so
        assert len(q["float_for_speed"]) == 2 and weight_quantized == [False, False] and q["dequantize_nodes"] == 0
        assert any("because no int8 Conv was faster on this CPU" in s for s in said)


def test_edge_export_prints_the_all_float_warning_where_the_status_line_would_hide_it(
        toy: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Export progress goes to a status line that the next message replaces; a warning must stay on screen."""
    pytest.importorskip("torch")
    from edge.cli.main import export_main

    monkeypatch.setenv(ort_pays.ENV, "timed")
    monkeypatch.setattr(ort_pays, "time_onnx", _by_name([1.0, 4.0, 3.0, 2.0]))
    with pytest.raises(SystemExit) as e:
        export_main(["toypays", "--config", "tiny", "--precision", "fp32,int8", "--calib-size", "3", "--eval-size",
                     "4", "--max-drop", "100", "--out", str(tmp_path / "b")])
    out = capsys.readouterr()
    assert e.value.code == 0, out.err[-2000:]
    text = " ".join((out.out + out.err).split())
    assert "warning: embed int8 (u8s8): every node left in float because no int8 Conv was faster on this CPU" in text


@pytest.mark.parametrize("symmetric_faster", [False, True])
def test_a_graph_without_convs_runs_fp32_in_the_int8_program_where_its_symmetric_int8_is_slower(
        toy: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, symmetric_faster: bool) -> None:
    """The toy's head graph has no Conv: ONNX Runtime's int8 program ran its symmetric INT8 graph even where that
    was slower than fp32 (a refinement step run 3 times per frame: the whole program slower than fp32). Timed
    (injected here): slower -> the U8S8 form carries the fp32 graph for it, with a warning; faster -> as before."""
    pytest.importorskip("torch")
    import edge

    monkeypatch.setenv(ort_pays.ENV, "timed")

    def ms(paths: list[str], io: Any, feeds: Any) -> list[float]:
        fast, slow = (1.0, 2.0) if symmetric_faster else (2.0, 1.0)
        if len(paths) == 2 and paths[0].endswith(".int8.onnx"):  # [symmetric int8, fp32] of the head
            return [fast, slow]
        if len(paths) == 2:  # confirming [fp32, int8]: the head's symmetric graph, or the embed's candidate
            return [slow, fast] if paths[1].endswith(".int8.onnx") else [2.0, 1.0]
        return [float(len(paths)), *(float(i) for i in range(len(paths) - 1))]  # every Conv quantized wins

    monkeypatch.setattr(ort_pays, "time_onnx", ms)
    said: list[str] = []
    b, _ = edge.export_card("toypays", tmp_path / "b", config="tiny", precisions=["fp32", "int8"], calib_size=3,
                            eval_size=4, max_drop=100.0, progress=said.append)
    ort = b.manifest["programs"]["main"]["precisions"]["int8"]["onnxruntime"]
    assert ort["embed"] == "onnx-int8-u8s8-embed"
    if symmetric_faster:
        assert ort["head"] == "onnx-int8-head" and not any(a["name"] == "onnx-int8-u8s8-head" for a in b.artifacts)
        return
    assert ort["head"] == "onnx-int8-u8s8-head"
    art = b.artifact(name="onnx-int8-u8s8-head")
    q = art["quantization"]
    assert q["speed"] == {"mode": "timed", "fp32_ms": 1.0, "symmetric_ms": 2.0, "float_graph": True}  # no confirm
    g = onnx.load(str(b.file(art["file"]))).graph
    assert not [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")] and q["dequantize_nodes"] == 0
    assert any("head int8 (u8s8): every node left in float because its symmetric int8 was slower" in s for s in said)
    from edge.program import float_int8_graphs
    from edge.stream.api import run

    assert float_int8_graphs(b, "main", "onnxruntime") == ["head"] and float_int8_graphs(b, "main", "openvino") == []
    # the program runs with it, and edge run says which part of its "int8" is fp32
    summary = run(b, "synthetic:3", backend="onnxruntime", precision="int8", handle_signals=False)
    assert summary["frames"] == 3
    assert any("graph(s) head run unquantized (float" in n for n in summary.get("notes", [])), summary


def test_an_int8_candidate_is_kept_only_if_fresh_rounds_confirm_it(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """One set of rounds on a shared VM scatters by 5-10 %: the fastest candidate with int8 Convs is timed again
    beside fp32 and kept only where it is CONFIRM_MARGIN faster there too; else every Conv stays in float, and the
    export's warning says it was the second timing."""
    from edge.calibration.precision import _slower_why

    monkeypatch.setenv(ort_pays.ENV, "timed")
    _convs(tmp_path / "m.onnx")
    calls: list[list[str]] = []

    def choose(first: list[float], again: list[float]) -> tuple[list[str], dict[str, Any]]:
        calls.clear()

        def timer(paths: list[str], io: Any, feeds: Any) -> list[float]:
            calls.append([Path(p).name for p in paths])
            return first if len(calls) == 1 else again

        return ort_pays.choose_float_convs(lambda exclude, dst: dst.write_bytes(b"x"), tmp_path / "m.onnx", None,
                                           {}, tmp_path, time_ms=timer)

    # first rounds: c in float 2.5 vs fp32 5; again 4.9 vs 5.0 (2 % only): all float, said why
    keep, rec = choose([5.0, 4.0, 3.5, 2.5, 3.0], [5.0, 4.9])
    assert calls == [["m.onnx", "pays0.onnx", "pays1.onnx", "pays2.onnx", "pays3.onnx"], ["m.onnx", "pays2.onnx"]]
    assert keep == ["a", "b", "c"] and rec["chosen"] == 3
    assert rec["confirm"] == {"fp32_ms": 5.0, "ms": 4.9, "kept": False}
    assert "not 3% faster than fp32 on this CPU when timed again (fp32 5 ms, int8 4.9 ms)" in (_slower_why(rec) or "")
    # confirmed (4.0 < 0.97 x 5): kept
    keep, rec = choose([5.0, 4.0, 3.5, 2.5, 3.0], [5.0, 4.0])
    assert keep == ["b", "c"] and rec["chosen"] == 2 and rec["confirm"]["kept"] and _slower_why(rec) is None
    # an int8 candidate slower than fp32 in the first rounds is not kept either; one that cannot run is not
    keep, rec = choose([2.0, 2.05, 3.5, 3.0, 2.1], [2.0, 2.1])
    assert keep == ["a", "b", "c"] and not rec["confirm"]["kept"]
    keep, rec = choose([2.0, 1.0, 3.5, 3.0, 2.1], [2.0, float("inf")])
    assert keep == ["a", "b", "c"] and rec["confirm"] == {"fp32_ms": 2.0, "ms": None, "kept": False}
    # all float fastest in the first rounds: nothing to confirm
    keep, rec = choose([2.0, 4.0, 3.5, 3.0, 1.9], [])
    assert keep == ["a", "b", "c"] and "confirm" not in rec and len(calls) == 1


def test_a_symmetric_graph_faster_once_is_confirmed_before_it_is_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A graph without Convs: its symmetric INT8 graph, faster than fp32 in one set of rounds, is timed again beside
    fp32 and taken only if CONFIRM_MARGIN faster there too; else the form carries the fp32 graph, saying why."""
    from edge.calibration.precision import _slower_why

    monkeypatch.setenv(ort_pays.ENV, "timed")
    for again, pays in (([5.0, 4.0], True), ([5.0, 4.95], False), ([5.0, float("inf")], False)):
        calls: list[list[str]] = []

        def timer(paths: list[str], io: Any, feeds: Any, again: list[float] = again,
                  calls: list[list[str]] = calls) -> list[float]:
            calls.append(paths)
            return [4.0, 5.0] if len(calls) == 1 else again

        ok, rec = ort_pays.symmetric_pays("s.onnx", "f.onnx", None, {}, time_ms=timer)
        assert calls == [["s.onnx", "f.onnx"], ["f.onnx", "s.onnx"]]
        assert ok is pays and rec["float_graph"] is (not pays) and rec["confirm"]["kept"] is pays
        assert (_slower_why(rec) is None) is pays
    assert "not 3% faster than fp32 on this CPU when timed again (fp32 5 ms, int8 could not run)" in _slower_why(rec)
