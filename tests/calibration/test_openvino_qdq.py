"""OpenVINO's fallback INT8 (the QDQ graphs) is gated on OpenVINO: where it misses, OpenVINO gets no INT8.

A user's model scored 0.0161 with its QDQ program on ONNX Runtime (fp32 0.0160) and 0.243 on OpenVINO,
and ``edge run --backend openvino --precision int8`` ran that as gated. The export is driven here on a
writer holding two programs' artifacts, with the OpenVINO scores given, so both outcomes are checked in
milliseconds (the real export path runs in tests/runtimes/test_openvino_ir.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edge.bundle import BundleWriter
from edge.calibration import openvino_qdq
from edge.errors import BundleError


def _writer(tmp: Path) -> BundleWriter:
    io = {"inputs": [{"name": "x", "dtype": "float32", "shape": [1, 4]}],
          "outputs": [{"name": "y", "dtype": "float32", "shape": [1, 4]}]}
    w = BundleWriter(tmp / "b", {"model": {"name": "m", "family": "custom", "version": "1"}, "io": io,
                                 "graphs": {"enc": io, "head": io},
                                 "programs": {"stream": {"graphs": ["enc", "head"]}, "enc_only": {"graphs": ["enc"]}}})
    for g in ("enc", "head"):
        for prec, suffix in (("fp32", ""), ("int8", ".int8")):
            w.write_bytes(f"{g}{suffix}.onnx", b"onnx", "onnx")
            w.add_artifact({"name": f"onnx-{prec}-{g}", "format": "onnx", "file": f"{g}{suffix}.onnx", "graph": g,
                            "precision": prec})
            w.write_bytes(f"{g}{suffix}.xml", b"xml", "openvino_ir")
            w.write_bytes(f"{g}{suffix}.bin", b"bin", "openvino_ir")
            w.add_artifact({"name": f"openvino-{prec}-{g}", "format": "openvino_ir", "file": f"{g}{suffix}.xml",
                            "extra_files": [f"{g}{suffix}.bin"], "graph": g, "precision": prec})
    return w


def _job(fp32: float = 10.0) -> Any:
    programs = {"stream": SimpleNamespace(graphs=("enc", "head")), "enc_only": SimpleNamespace(graphs=("enc",))}
    card = SimpleNamespace(program=programs.__getitem__, metric=SimpleNamespace(name="score"))
    said: list[str] = []
    return SimpleNamespace(card=card, programs=["stream", "enc_only"], say=said.append, said=said,
                           fp32_metric=lambda pname, src: fp32, scored=lambda: ["stream", "enc_only"])


def _scores(monkeypatch: pytest.MonkeyPatch, drops: dict[str, float]) -> list[dict[str, Any]]:
    """OpenVINO's drop per program (budget 1.0), as the gate would measure it."""
    calls: list[dict[str, Any]] = []

    def gate(job: Any, pname: str, files: dict[str, str], fp32: float, hints: Any = None) -> dict[str, Any]:
        calls.append({"program": pname, "files": files, "hints": hints})
        d = drops[pname]
        return {"program": pname, "files": files, "metric": fp32 - d, "fp32": fp32, "drop": d, "max_drop": 1.0,
                "passed": d <= 1.0, "inference_precision": "f32"}

    monkeypatch.setattr(openvino_qdq, "_nncf_gate", gate)
    monkeypatch.setattr(openvino_qdq, "_row", lambda w, job, pname, prec, files, metric, drop, rel, backend, **kw:
                        {"program": pname, "precision": prec, "backend": backend, "metric": metric})
    return calls


def test_a_program_missing_the_budget_on_openvino_takes_its_graphs_int8_from_openvino(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = _writer(tmp_path)
    calls = _scores(monkeypatch, {"stream": 5.0, "enc_only": 0.2})
    report: dict[str, Any] = {"openvino": [{"artifact": "openvino-int8-head"}, {"artifact": "openvino-fp32-head"}]}
    job = _job()
    try:
        openvino_qdq.gate_openvino_qdq(w, report, job)
        # each program scored on OpenVINO with the QDQ IRs, f32 float layers (how it loads them)
        assert [(c["program"], sorted(Path(f).name for f in c["files"].values()), c["hints"]) for c in calls] == [
            ("stream", ["enc.int8.xml", "head.int8.xml"], ["f32"]), ("enc_only", ["enc.int8.xml"], ["f32"])]
        # stream missed: both its graphs lose OpenVINO int8 (enc_only passed, but shares enc: not kept either)
        names = {a["name"] for a in w.manifest["artifacts"]}
        assert "openvino-int8-enc" not in names and "openvino-int8-head" not in names
        assert not [f for f in w.manifest["files"] if f.endswith(".int8.xml") or f.endswith(".int8.bin")]
        assert not list(w.tmp.glob("*.int8.xml")) and not list(w.tmp.glob("*.int8.bin"))
        assert report["openvino"] == [{"artifact": "openvino-fp32-head"}]
        onnx_int8 = [a for a in w.manifest["artifacts"] if a["format"] == "onnx" and a["precision"] == "int8"]
        assert [a["refused_by"] for a in onnx_int8] == [["openvino"], ["openvino"]]
        gates = {p: w.manifest["programs"][p]["gates"]["openvino"]["int8"] for p in ("stream", "enc_only")}
        assert gates["stream"]["passed"] is False and gates["stream"]["kept"] is False
        assert gates["enc_only"]["passed"] is True and gates["enc_only"]["kept"] is False and "why" in gates["enc_only"]
        assert [r.get("refused") for r in report["precisions"]] == [True, True]
        assert any("OpenVINO gets no int8" in m for m in job.said)
        # what a run asks of the bundle: OpenVINO finds no int8 ONNX, ONNX Runtime still does
        from edge.bundle import Bundle

        view = Bundle(w.tmp, w.manifest)
        with pytest.raises(BundleError):
            view.artifact(fmt="onnx", graph="enc", precision="int8", prefer="openvino")
        assert view.artifact(fmt="onnx", graph="enc", precision="int8", prefer="onnxruntime")["name"] == "onnx-int8-enc"
    finally:
        w.abort()


def test_passing_on_openvino_keeps_the_qdq_irs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = _writer(tmp_path)
    _scores(monkeypatch, {"stream": 0.5, "enc_only": 0.2})
    report: dict[str, Any] = {}
    w.manifest["programs"]["stream"]["gates"] = {"openvino": {"int8": {"format": "nncf", "kept": False}}}
    try:
        openvino_qdq.gate_openvino_qdq(w, report, _job())
        assert {"openvino-int8-enc", "openvino-int8-head"} <= {a["name"] for a in w.manifest["artifacts"]}
        assert not [a for a in w.manifest["artifacts"] if a.get("refused_by")]
        gate = w.manifest["programs"]["stream"]["gates"]["openvino"]["int8"]
        assert gate["format"] == "qdq" and gate["passed"] and gate["kept"] and gate["nncf"]["format"] == "nncf"
        assert [r["precision"] for r in report["precisions"]] == ["int8-qdq", "int8-qdq"]
    finally:
        w.abort()


def test_programs_openvino_runs_from_nncf_irs_are_not_scored_again(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    w = _writer(tmp_path)
    calls = _scores(monkeypatch, {"stream": 9.0, "enc_only": 9.0})
    for g in ("enc", "head"):
        w.write_bytes(f"{g}.nncf-int8.xml", b"xml", "openvino_ir")
        w.add_artifact({"name": f"openvino-int8-{g}-nncf", "format": "openvino_ir", "file": f"{g}.nncf-int8.xml",
                        "graph": g, "precision": "int8", "preferred_by": ["openvino"]})
    try:
        openvino_qdq.gate_openvino_qdq(w, {}, _job())
        assert calls == [] and not [a for a in w.manifest["artifacts"] if a.get("refused_by")]
    finally:
        w.abort()


def test_the_bundle_offers_openvino_no_int8_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.export.api import record_programs
    from edge.program import load_program

    w = _writer(tmp_path)
    _scores(monkeypatch, {"stream": 5.0, "enc_only": 0.2})
    openvino_qdq.gate_openvino_qdq(w, {}, _job())
    record_programs(w)
    table = w.manifest["programs"]["stream"]["precisions"]
    assert "openvino" not in table["int8"] and set(table["int8"]) >= {"onnxruntime"}
    assert "openvino" in table["fp32"]
    bundle = w.commit()
    import edge.program

    # a family of two programs (the plain-module card knows only "model")
    monkeypatch.setattr(edge.program, "bundle_programs", lambda b, card: [
        SimpleNamespace(name=p, graphs=tuple(b.manifest["programs"][p]["graphs"])) for p in ("stream", "enc_only")])
    with pytest.raises(BundleError, match=r"has no int8 on 'openvino': it missed the accuracy budget there at "
                                          r"export \(drop 5 > 1;"):
        load_program(bundle, "openvino", precision="int8", program="stream")
    # a program that passed beside one that missed, sharing its graphs: it said "it missed ... (drop 0.2 > 1" (a review)
    with pytest.raises(BundleError, match=r"has no int8 on 'openvino': it passed its budget \(drop 0.2 <= 1\) but was "
                                          r"not kept: a program sharing its graphs missed the budget"):
        load_program(bundle, "openvino", precision="int8", program="enc_only")
    # a program whose gates are another's: that program's outcome, not "it missed"
    m = json.loads((bundle.path / "manifest.json").read_text())
    m["programs"]["enc_only"]["gates"]["openvino"]["int8"] = {"inherited_from": "stream", "passed": False,
                                                              "kept": False}
    (bundle.path / "manifest.json").write_text(json.dumps(m))
    said = r"its graphs' program 'stream' missed the accuracy budget there at export \(drop 5 > 1; the manifest's"
    with pytest.raises(BundleError, match=rf"has no int8 on 'openvino': {said} programs\.stream"):
        load_program(bundle.path, "openvino", precision="int8", program="enc_only")
    m["programs"]["enc_only"]["gates"]["openvino"]["int8"]["inherited_from"] = ["stream"]  # hand-edited: not a name
    (bundle.path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=r"has no int8 on 'openvino': its graphs' program '\['stream'\]' missed"):
        load_program(bundle.path, "openvino", precision="int8", program="enc_only")
    m["programs"]["stream"]["gates"] = []  # hand-edited: not a mapping (an AttributeError)
    m["programs"]["enc_only"]["gates"]["openvino"]["int8"]["inherited_from"] = "stream"
    (bundle.path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=r"has no int8 on 'openvino': its graphs' program 'stream' missed"):
        load_program(bundle.path, "openvino", precision="int8", program="enc_only")
    m["programs"]["enc_only"]["gates"] = ["x"]
    (bundle.path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=r"program 'enc_only' has no int8 artifacts"):
        load_program(bundle.path, "openvino", precision="int8", program="enc_only")
