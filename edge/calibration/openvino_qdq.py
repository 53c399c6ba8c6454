"""OpenVINO's INT8 where the export kept no NNCF IR: the QDQ graphs, gated on OpenVINO itself.

The symmetric QDQ graphs pass the accuracy gate on ONNX Runtime (:func:`edge.calibration.precision._int8`),
and OpenVINO runs them (read from ONNX, or the IRs ``--to openvino`` converts) wherever NNCF was not
installed or its IRs missed the budget. But OpenVINO fuses and rounds quantized operations its own way:
a user's two-graph model whose QDQ program scored 0.0161 on ONNX Runtime (fp32 0.0160) scored 0.243 on
OpenVINO, and ``edge run --backend openvino --precision int8`` ran it as gated. So every program that
OpenVINO would run from the QDQ graphs is scored on OpenVINO with the budget the other forms meet; when
one misses it, OpenVINO gets no INT8 for those graphs: their QDQ IRs leave the bundle and their QDQ ONNX
is marked ``refused_by: ["openvino"]`` (ONNX Runtime and TensorRT keep it), so the ``programs`` table
offers OpenVINO no INT8 there and ``edge run`` never picks it.
"""

from __future__ import annotations

from typing import Any

from edge.calibration.precision import PrecisionJob, _fp32_files, _gate_record, _nncf_gate, _row


def gate_openvino_qdq(w: Any, report: dict[str, Any], job: PrecisionJob) -> None:
    """Score each program OpenVINO would run from QDQ graphs on OpenVINO (f32 float layers, how it loads
    them); refuse OpenVINO those graphs' INT8 where a program misses the budget (see the module doc)."""
    card = job.card
    int8_irs = [a for a in w.manifest["artifacts"] if a["format"] == "openvino_ir" and a.get("precision") == "int8"]
    # NNCF's IRs are preferred_by openvino; the others are the IRs OpenVINO read from the QDQ int8 ONNX
    nncf = {a["graph"] for a in int8_irs if "openvino" in a.get("preferred_by", ())}
    irs = {a["graph"]: a for a in int8_irs if "openvino" not in a.get("preferred_by", ())}
    results = []
    for pname in job.scored():
        spec = card.program(pname)
        if all(g in nncf for g in spec.graphs) or not all(g in irs for g in spec.graphs):
            continue  # OpenVINO runs gated NNCF IRs here, or the program has no QDQ int8 at all
        files = {g: str(w.path_for(irs[g]["file"])) for g in spec.graphs}
        fp32 = job.fp32_metric(pname, _fp32_files(w, spec.graphs))
        job.say(f"{pname}: gating the QDQ int8 graphs on OpenVINO (what it runs without NNCF IRs)")
        results.append(_nncf_gate(job, pname, files, fp32, hints=["f32"]))
    if not results:
        return
    refused = {g for r in results if not r["passed"] for g in card.program(r["program"]).graphs}
    removed = {irs[g]["name"] for g in refused}
    if removed:  # the IR table lists the bundle's IRs: not those it no longer holds
        report["openvino"] = [row for row in report.get("openvino", []) if row["artifact"] not in removed]
    for g in sorted(refused):
        w.remove_artifact(irs[g]["name"])
        for a in w.manifest["artifacts"]:
            if a["format"] == "onnx" and a.get("graph") == g and a.get("precision") == "int8":
                a["refused_by"] = sorted({*a.get("refused_by", ()), "openvino"})
    rows = report.setdefault("precisions", [])
    for r in results:
        kept = not (refused & set(card.program(r["program"]).graphs))
        if not r["passed"]:
            job.say(f"warning: {r['program']} QDQ int8 on OpenVINO: {card.metric.name} {r['metric']:.3g} vs fp32 "
                    f"{r['fp32']:.3g}, drop {r['drop']:.3g} > --max-drop {r['max_drop']:.3g}; OpenVINO gets no int8 "
                    "for its graphs (ONNX Runtime and TensorRT keep the QDQ graphs, gated on ONNX Runtime)")
        gates = w.manifest["programs"][r["program"]].get("gates", {}).get("openvino", {})
        earlier = gates.get("int8")  # the NNCF gate's record when its IRs were not kept
        _gate_record(w, r["program"], "openvino", "int8", {
            **{k: r[k] for k in ("metric", "fp32", "drop", "max_drop", "inference_precision")},
            "format": "qdq", "passed": r["passed"], "kept": kept,
            **({"why": "a program sharing its graphs missed the budget"} if r["passed"] and not kept else {}),
            **({"nncf": earlier} if earlier else {})})
        if kept:
            rows.append(_row(w, job, r["program"], "int8-qdq", r["files"], r["metric"], r["drop"], float("nan"),
                             "openvino", inference_precision="f32"))
        else:
            rows.append({"program": r["program"], "precision": "int8-qdq", "backend": "openvino", "files": [],
                         "metric": r["metric"], "drop": r["drop"], "refused": True})
