"""Every way a bundle's programs can run here: (program, backend, form) and how to load each.

``edge bench`` times them and ``edge val`` scores them, so both list the same forms: a precision's artifacts as
``edge run`` picks them (ONNX Runtime's own int8 form, OpenVINO's NNCF IRs with the float-layer precision their
gate passed with) and the forms beside them (the symmetric QDQ graphs TensorRT builds, run by ONNX Runtime; the
NNCF IRs with f32 float layers; OpenVINO bf16 where the CPU has it natively), plus engines built on this device.
"""

from __future__ import annotations

from typing import Any

from edge.bundle import Bundle
from edge.errors import EdgeError


def program_plans(b: Bundle, specs: list[Any], backends: list[str], run_forms: set[tuple[str, str, str]] | None = None
                  ) -> list[tuple[Any, str, str, dict[str, Any]]]:
    """(program spec, backend, label, load options) for everything the bundle has for these backends.

    ``run_forms``, when given, receives ``(program, backend, label)`` of each form ``edge run --backend B --precision
    P`` runs (the first plan of each precision on ONNX Runtime and OpenVINO; the others are the forms beside it):
    the labels alone do not say it (ONNX Runtime's ``int8`` row is the symmetric QDQ graphs, its ``int8-u8s8`` row
    what ``edge run`` runs), so ``edge val`` and ``edge bench`` mark those rows."""
    from edge.export.api import artifact_name
    from edge.program import gate_record, program_precisions
    from edge.runtimes import get_backend
    from edge.runtimes.openvino import resolve_precision

    plans = []
    have = {a["name"]: a for a in b.artifacts}
    for spec in specs:
        table = b.manifest.get("programs", {}).get(spec.name, {}).get("precisions")
        if table is None:  # exported before the table was recorded: the rule the export records it by
            table = program_precisions(b, spec.graphs)
        if "torch" in backends:
            plans.append((spec, "torch", "fp32", {"precision": None}))
        for prec, per_backend in table.items():
            if "onnxruntime" in backends and "onnxruntime" in per_backend:
                first = len(plans)
                chosen = per_backend["onnxruntime"]
                if any("onnxruntime" in have.get(n, {}).get("preferred_by", ()) for n in chosen.values()):
                    # ONNX Runtime's own int8 form (U8S8), and the symmetric graphs beside it
                    plans.append((spec, "onnxruntime", f"{prec}-u8s8", {"artifacts": chosen}))
                    sym = {g: artifact_name("onnx", prec, g) for g in spec.graphs}
                    if all(n in have for n in sym.values()):
                        plans.append((spec, "onnxruntime", prec, {"artifacts": sym}))
                else:
                    plans.append((spec, "onnxruntime", prec, {"precision": prec}))
                if run_forms is not None:
                    run_forms.add((spec.name, "onnxruntime", plans[first][2]))
            if "openvino" in backends and "openvino" in per_backend:
                first = len(plans)
                chosen = per_backend["openvino"]
                nncf = any("nncf" in v for v in chosen.values())
                sel = {"artifacts": chosen} if chosen else {"precision": prec}
                hint = gated_hint(have, chosen) if nncf else "f32"
                # what edge run runs (the NNCF IRs with the float-layer precision their gate passed with)
                # and, where that is bf16, the same IRs with f32 float layers beside it
                plans.append((spec, "openvino", f"{prec}-nncf" + ("+bf16" if hint == "bf16" else "") if nncf
                              else prec, {**sel, "inference_precision": "auto" if hint == "bf16" else "f32"}))
                if hint == "bf16":
                    plans.append((spec, "openvino", f"{prec}-nncf", {**sel, "inference_precision": "f32"}))
                if prec == "fp32" and resolve_precision("auto") == "bf16":  # elsewhere OpenVINO would emulate it
                    plans.append((spec, "openvino", "bf16", {"precision": prec, "inference_precision": "bf16"}))
                if nncf:  # the IR read from the QDQ graph too, when the export made one
                    qdq = {g: artifact_name("openvino", prec, g) for g in spec.graphs}
                    if all(n in have for n in qdq.values()):
                        plans.append((spec, "openvino", prec, {"artifacts": qdq, "inference_precision": "f32"}))
                if run_forms is not None:
                    run_forms.add((spec.name, "openvino", plans[first][2]))
        for backend in ("onnxruntime", "openvino"):  # a precision whose gate refused it on a backend: listed, and
            # its load says why (edge run's line) into the skipped list; dropped without a word before (a review)
            for prec in ("fp16", "int8") if backend in backends else ():
                gate = gate_record(b, spec.name, backend, prec)
                if gate is not None and gate.get("kept") is False and backend not in (table.get(prec) or {}):
                    plans.append((spec, backend, prec, {"precision": prec}))
        for backend in backends:  # backends that build engines on the target (TensorRT): what was built
            if backend in ("torch", "onnxruntime", "openvino") or get_backend(backend).build is None:
                continue
            formats = get_backend(backend).formats
            for prec in ("fp32", "fp16", "int8"):
                if all(any(a["format"] in formats and a.get("graph") == g and a.get("precision") == prec
                           for a in b.artifacts) for g in spec.graphs):
                    plans.append((spec, backend, prec, {"precision": prec}))
    return plans


def gated_hint(have: dict[str, dict[str, Any]], chosen: dict[str, str]) -> str:
    """``bf16`` when every chosen OpenVINO artifact was gated with bf16 float layers and this CPU has
    them natively (what ``edge run`` then uses), else ``f32``."""
    from edge.runtimes.openvino import gated_precision, resolve_precision

    gated = {gated_precision(have.get(n, {})) for n in chosen.values()}
    return "bf16" if gated == {"bf16"} and resolve_precision("auto") == "bf16" else "f32"


def chosen_programs(b: Bundle, card: Any, programs: list[str] | None) -> list[Any]:
    """The bundle's program specs named by ``programs`` (None: all of them, in the card's order); an unknown name is
    one line listing the bundle's programs."""
    from edge.program import bundle_programs

    specs = bundle_programs(b, card)
    if programs:
        unknown = [p for p in programs if p not in {s.name for s in specs}]
        if unknown:
            raise EdgeError(f"{b.path}: no program {unknown[0]!r} (has {', '.join(s.name for s in specs)})")
        specs = [s for s in specs if s.name in programs]
    return specs


def unplanned(plans: list[tuple[Any, str, str, dict[str, Any]]], backends: list[str]) -> list[dict[str, str]]:
    """``{"config": backend, "reason": why}`` for each backend asked for that no plan runs on: said, not dropped
    (the package is missing here, or the bundle has nothing for it)."""
    from edge.runtimes import require

    out = []
    for backend in backends:
        if not any(p[1] == backend for p in plans):
            try:
                require(backend)
                why = "the bundle has no artifact for it (not among its export targets, or no engine built here)"
            except EdgeError as e:
                why = str(e)
            out.append({"config": backend, "reason": why})
    return out


#: what ``edge val`` and ``edge bench`` print after a config that ``edge run`` runs, and the note that says so
RUN_MARK = " *"
RUN_NOTE = "* what edge run runs for that backend and precision (the other rows are the forms beside it)"
