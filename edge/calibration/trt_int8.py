"""TensorRT's INT8 graphs: the symmetric QDQ graphs with their float layers in fp16, gated per program.

TensorRT builds strongly typed networks here (10.x with the flag, 11.x always): precision is the ONNX
tensor types, so in the symmetric QDQ graphs (:func:`edge.calibration.precision._int8`) every layer left
unquantized ran in fp32 on the GPU and each DequantizeLinear handed fp32 on (``trtexec --int8 --fp16``'s
behaviour needs the weakly typed builder flags 11.x removed). For each graph of the export this writes
``<stem>.int8-fp16.onnx`` (:mod:`edge.calibration.fp16`: fp16 float tensors and Q/DQ scales,
reductions and normalisations kept fp32 as in the fp16 precision, and the nodes fp16 cannot carry on the
calibration feeds; fp32 I/O), what NVIDIA's ModelOpt writes with an fp16 high-precision type. Each
program made of them is scored against the same budget as the other INT8 forms on ONNX Runtime, run as
the form's emulation (fp32 arithmetic, fp16 storage between layers, as TensorRT runs it; ONNX Runtime's
own fp16 on a CPU skips most of that rounding), and the form is kept only when every program passes
(programs share graphs), as ``onnx-int8-fp16-<graph>`` with ``preferred_by: ["tensorrt"]``; otherwise,
or where the form cannot be made or run, TensorRT builds the fp32-float QDQ graphs as before and the
export warns. Its speed on ONNX Runtime's CPU kernels says nothing about a GPU, so none is reported.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from edge.errors import EdgeError, ExportError, first_line

FORM = "fp16"  # the artifact name's variant and the gate record's format suffix
WHAT = "tensorrt int8 (fp16 float layers)"
#: ``on`` (default) or ``off``: skip this form (an export that never goes to TensorRT saves its 5-25 s; the
#: test suite sets it, and the tests of this form turn it on)
ENV = "EDGE_TRT_INT8_FORM"


def enabled() -> bool:
    """Whether ``EDGE_TRT_INT8_FORM`` asks for the form; an ExportError in one line for another value."""
    value = os.environ.get(ENV, "on") or "on"
    if value not in ("on", "off"):
        raise ExportError(f"{ENV}={value!r}: choose on or off")
    return value == "on"


def add_trt_int8(w: Any, report: dict[str, Any], job: Any) -> None:
    """Derive, score and keep (or not) the TensorRT INT8 form of every graph; see the module docstring."""
    from edge.calibration.fp16 import FP16_RANGE_FEEDS, fp16_form
    from edge.calibration.gate import within_budget
    from edge.calibration.precision import PARITY_SAMPLES, _all_or_none, _artifact, _evenly, _fp32_files, _run
    from edge.export.api import artifact_name
    from edge.parity import worst_rel

    if not enabled():
        job.say(f"{WHAT}: skipped ({ENV}=off); TensorRT builds the fp32-float int8 graphs")
        return
    card = job.card
    files: dict[str, str] = {}
    emus: dict[str, str] = {}  # graph -> its fp16 emulation (scored in its place; not part of the bundle)
    infos: dict[str, dict[str, Any]] = {}
    rel: dict[str, float] = {}  # graph -> worst output error vs its fp32 graph on evaluation feeds
    unmade: dict[str, str] = {}  # graph -> why it has no such form
    results = []
    for spec in (card.program(p) for p in job.scored()):
        pname, src = spec.name, _fp32_files(w, spec.graphs)
        fp32 = job.fp32_metric(pname, src)
        ev, cal = job.record(pname, src, "evaluation"), job.record(pname, src, "calibration")
        for g in spec.graphs:
            if g in files or g in unmade:
                continue
            sym = _artifact(w, g, "int8")
            dst = w.path_for(f"{job.job(g).stem}.int8-{FORM}.onnx")
            emu = w.path_for(f".int8-src/{job.job(g).stem}.int8-{FORM}.emulation.onnx")  # dropped after export
            emu.parent.mkdir(exist_ok=True)
            io = job.job(g).io
            try:
                infos[g] = fp16_form(w.path_for(sym["file"]), dst, _evenly(cal[g], FP16_RANGE_FEEDS),
                                         emulation=emu)
                rel[g] = max([0.0, *(worst_rel(_run(src[g], io, f), _run(str(emu), io, f))
                                     for f in ev[g][:PARITY_SAMPLES])])
                if not math.isfinite(rel[g]):
                    raise ExportError(f"{Path(dst).name}: outputs not finite on the evaluation feeds")
            except Exception as e:  # not convertible, or ONNX Runtime cannot load or run the result
                unmade[g] = str(e) if isinstance(e, EdgeError) else f"onnxruntime cannot run it ({first_line(e)})"
                Path(dst).unlink(missing_ok=True)
                continue
            files[g], emus[g] = str(dst), str(emu)
        r = {"program": pname, "fp32": fp32, "max_drop": job.budget(fp32)}
        missing = [g for g in spec.graphs if g in unmade]
        if missing:
            results.append({**r, "metric": math.nan, "drop": math.nan, "passed": False, "why": unmade[missing[0]]})
            continue
        job.say(f"{pname}: {WHAT}, scored on onnxruntime")
        try:
            metric = job.metric(pname, {g: emus[g] for g in spec.graphs})
        except Exception as e:  # ONNX Runtime loads the graphs but fails running one: not kept, not fatal
            why = str(e) if isinstance(e, EdgeError) else f"onnxruntime cannot run it ({first_line(e)})"
            results.append({**r, "metric": math.nan, "drop": math.nan, "passed": False, "why": why})
            continue
        drop = card.metric.drop(fp32, metric)
        results.append({**r, "metric": metric, "drop": drop, "passed": within_budget(drop, job.budget(fp32))})
    instead = "TensorRT builds the fp32-float int8 graphs"
    for r in results:
        if "why" in r:
            job.say(f"warning: {r['program']} {WHAT}: {r['why']}; not kept ({instead})")
    failed = _all_or_none(job, [r for r in results if "why" not in r], list(files.values()), WHAT, instead)
    failed += [r["program"] for r in results if "why" in r]
    for r in results:
        # keyed by the form, not the precision: TensorRT's int8 stays buildable (from the fp32-float graphs)
        # when this form is not kept, which a "kept: false" int8 record would deny (load_program)
        rec = w.manifest["programs"][r["program"]].setdefault("gates", {}).setdefault("tensorrt", {})
        rec[f"int8-{FORM}"] = {**{k: r[k] for k in ("metric", "fp32", "drop", "max_drop")}, "format": f"qdq-{FORM}",
                       "scored_on": "onnxruntime", "passed": r["passed"], "kept": not failed,
                       **({"why": r["why"]} if "why" in r else {})}
    if failed:
        for f in files.values():
            Path(f).unlink(missing_ok=True)
        return
    for g, path in files.items():
        fname = Path(path).name
        w.register(fname, "onnx")
        sym = _artifact(w, g, "int8")
        w.add_artifact({"name": artifact_name("onnx", "int8", g, FORM), "format": "onnx", "file": fname, "graph": g,
                        "precision": "int8", "preferred_by": ["tensorrt"], "attention": sym["attention"],
                        **({"refused_by": sym["refused_by"]} if sym.get("refused_by") else {}),
                        "derived_from": sym["file"], "quantization": infos[g],
                        "parity": {"reference": "fp32 ONNX Runtime", "max_rel": rel[g]}})
    rows = report.setdefault("precisions", [])
    for r in results:
        names = [Path(files[g]).name for g in card.program(r["program"]).graphs]
        rows.append({"program": r["program"], "precision": f"int8-{FORM}", "backend": "tensorrt", "files": names,
                     "metric": r["metric"], "drop": r["drop"], "step_ms": None,
                     "drop_ci95": job.drop_interval(r["program"], r["metric"]),  # scored on ONNX Runtime (emulated)
                     "parity_rel": max(rel[g] for g in card.program(r["program"]).graphs),
                     "scored_on": "onnxruntime",
                     "bytes": sum(Path(files[g]).stat().st_size for g in card.program(r["program"]).graphs)})
