"""``edge export`` / ``edge-export``: a model family or checkpoint -> validated bundle, with a summary."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from edge import jsonout
from edge.cli import emit
from edge.errors import ExportError


def parity_cell(rel: Any) -> str:
    """The precisions table's parity column: a measured relative error (``inf`` where outputs were not finite),
    or a dash where none was measured (OpenVINO running the QDQ graphs' IRs), never "nan", which reads as a graph
    whose outputs are NaN."""
    return "-" if rel is None or (isinstance(rel, float) and math.isnan(rel)) else f"{rel:.2e}"


def parse_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a value is read as JSON (numbers, true/false, lists) or else taken as text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ExportError(f"--set {item!r}: use KEY=VALUE")
        if key.strip() in out:  # the later one silently won: say which value is meant
            raise ExportError(f"--set {key.strip()} is given twice; give each option once")
        try:
            out[key.strip()] = json.loads(raw)
        except ValueError:
            out[key.strip()] = raw
        except RecursionError:  # nested past the parser's depth: no option is that deep
            raise ExportError(f"--set {key.strip()}: the value is nested too deeply to be an option") from None
    return out


def run_export(model: str, out: Path, to: str, config: str | None, checkpoint: Path | None, attention: str,
               dynamic_batch: bool, programs: list[str] | None, opset: int | None, rtol: float, json_out: bool, *,
               precisions: list[str] | None = None, calib: str = "synthetic", calib_size: int = 32,
               calib_method: str = "minmax", eval_size: int | None = None, max_drop: float | str | None = None,
               triton_repo: Path | None = None, triton_backends: str | None = None,
               triton_device: str = "auto", options: dict[str, Any] | None = None,
               score_every: bool = False, eval_data: list[str] | None = None) -> None:
    from edge.export.api import check_targets
    from edge.names import name_list

    # one that names nothing is refused (as --programs, --backends do): `--triton-backends ,` served the default
    targets = name_list("--to", to) or []
    check_targets(targets, "--to")  # as typed, before the duplicates go
    targets = list(dict.fromkeys(targets))
    if triton_repo is None and (triton_backends is not None or triton_device != "auto"):  # silently unused before
        given = "--triton-backends" if triton_backends is not None else "--triton-device"
        raise ExportError(f"{given}: sets up the Triton repository that --triton-repo DIR writes; give --triton-repo")
    given_tb = name_list("--triton-backends", triton_backends)
    tb = given_tb or (["onnxruntime"] + (["openvino"] if "openvino" in targets else []))
    if triton_repo is not None:
        from edge.export.triton_repo import BACKENDS

        bad_tb = [b for b in tb if b not in BACKENDS]
        if bad_tb:
            raise ExportError(f"--triton-backends {','.join(bad_tb)}: choose from {', '.join(BACKENDS)}")
        if len(set(tb)) != len(tb):  # the writer refused it, after the whole export
            twice = next(b for b in tb if tb.count(b) > 1)
            raise ExportError(f"--triton-backends {triton_backends!r}: {twice} given twice; name each backend once")
        from edge.export.triton_repo import instance_kind

        for b in tb:  # before any work: a device a backend cannot use
            try:
                instance_kind(b, triton_device)
            except ExportError as e:
                raise ExportError(f"--triton-device {triton_device}: {e}") from None
        from edge.export.triton_repo import check_repo_out

        check_repo_out(Path(triton_repo).resolve(), Path(out).resolve())
        _check_triton_sources(tb, targets, Path(out), (precisions or ["fp32"])[-1])
    from edge.calibration.precision import PRECISIONS

    bad = [p for p in precisions or [] if p not in PRECISIONS]
    if bad:
        raise ExportError(f"--precision {','.join(bad)}: choose from {', '.join(PRECISIONS)}")
    from edge.export.api import check_args

    check_args(out, opset, attention, calib_method, rtol=rtol)
    int8 = "int8" in (precisions or [])
    if int8 or calib != "synthetic":  # a set given is checked even where unused: a typo was exported past silently
        from edge.calibration.datasets import check_source

        check_source(calib)
    from rich.markup import escape
    from rich.table import Table

    from edge.cli import console as make_console
    from edge.cli import interval_cell
    from edge.export.api import export_card

    console = make_console(stderr=json_out)
    if calib != "synthetic" and not int8:
        console.print(f"[yellow]warning:[/] --calib {escape(calib)} is read by --precision int8 only; this export "
                      "does not use it", highlight=False)
    gated = [p for p in precisions or [] if p != "fp32"]
    if eval_data and not gated:
        console.print("[yellow]warning:[/] --eval-data is what the gates of fp16 / int8 score on; this export has "
                      "none", highlight=False)
    # options of the INT8 calibration or of the reduced precisions' gate, given to an export that has none: said,
    # as --calib is (a budget a user believed enforced passed silently)
    unused = [flag for flag, given, needs in (
        ("--max-drop", max_drop is not None, gated), ("--eval-size", eval_size is not None, gated),
        ("--score-every-program", score_every, gated), ("--calib-size", calib_size != 32, int8),
        ("--calib-method", calib_method != "minmax", int8)) if given and not needs]
    if unused:
        console.print(f"[yellow]warning:[/] {', '.join(unused)}: read by the gates of --precision fp16 / int8 "
                      "(calibration: int8 only); this export does not use them", highlight=False)
    with console.status(f"exporting {model} to ONNX and checking parity against PyTorch...") as status:

        def progress(msg: str) -> None:
            # a status line is replaced by the next one; a warning (e.g. an int8 graph left all float) or a note
            # (how many inputs took a checkpoint's trained scales) stays, also in a log where no status shows
            if msg.startswith("warning:"):
                console.print(f"[yellow]warning:[/]{escape(msg[len('warning:'):])}", highlight=False)
            elif msg.startswith("note:"):
                console.print(msg, highlight=False, markup=False)
            status.update(msg)

        bundle, report = export_card(model, out, config=config, checkpoint=checkpoint, attention=attention,
                                     dynamic_batch=dynamic_batch, programs=programs, opset=opset, rtol=rtol,
                                     precisions=precisions, calib=calib, calib_size=calib_size,
                                     calib_method=calib_method, eval_size=eval_size, max_drop=max_drop,
                                     progress=progress, targets=tuple(targets), options=options,
                                     score_every=score_every, eval_data=eval_data)
    from edge.runtimes.registry import get_backend

    for target in targets:  # engines first: a Triton repository may want the engine just built
        if target != "onnx" and get_backend(target).build is not None:
            report[target] = _engines(bundle, target, precisions or ["fp32"], console)
            if report[target]["built"]:
                from edge.bundle import Bundle

                bundle = Bundle.load(bundle.path)
    if triton_repo is not None:
        report["triton_repo"], report["triton_precision"] = _triton(bundle, triton_repo, tb, triton_device,
                                                                   precisions or ["fp32"])
    if json_out:
        emit(jsonout.dumps({"bundle": str(bundle.path), **report}))
        return
    table = Table(title=escape(f"{bundle.path} ({bundle.model_name}, attention={report['attention']})"))
    for col in ("graph", "file", "size", "parity max abs", "parity max rel", "export s"):
        table.add_column(col, justify="right" if col not in ("graph", "file") else "left")
    for g, r in report["graphs"].items():
        table.add_row(g, r["file"], f"{r['bytes'] / 1e6:.2f} MB", f"{r['max_abs']:.2e}", f"{r['max_rel']:.2e}",
                      f"{r['export_s']:.1f}")
    console.print(table)
    if report.get("openvino"):
        ot = Table(title="OpenVINO IR (the weights of the ONNX each came from, not compressed to fp16)")
        for col in ("artifact", "file", "size", "parity rel"):
            ot.add_column(col, justify="left" if col in ("artifact", "file") else "right")
        for r in report["openvino"]:
            ot.add_row(r["artifact"], r["file"], f"{r['bytes'] / 1e6:.2f} MB", f"{r['max_rel']:.2e}")
        console.print(ot)
    if report.get("precisions"):
        metric = bundle.manifest.get("task", {}).get("metric") or {}
        on = "the --eval-data samples" if eval_data else "held-out samples"
        pt = Table(title=f"precisions per program ({metric.get('name', 'task metric')} on {on}, "
                         "step = what edge run pays per input, CPU)")
        for col in ("program", "precision", "backend", "metric", "drop", "drop 95 % CI", "step ms", "size",
                    "parity rel"):
            pt.add_column(col, justify="left" if col in ("program", "precision", "backend") else "right")
        for r in report["precisions"]:
            ci_cell = interval_cell(r.get("drop_ci95"), signed=True)
            if r.get("refused"):  # over the budget: not written, the backend runs the gated QDQ int8 instead
                pt.add_row(r["program"], r["precision"], r["backend"], f"{r['metric']:.2f}", f"{r['drop']:.2f}",
                           ci_cell, "-", "not kept", "over budget")
                continue
            # no CPU time for a form made for another device (TensorRT's, scored on ONNX Runtime)
            step = "-" if r["step_ms"] is None else f"{r['step_ms']:.2f}"
            pt.add_row(r["program"], r["precision"], r["backend"], f"{r['metric']:.2f}", f"{r['drop']:.2f}", ci_cell,
                       step, f"{r['bytes'] / 1e6:.2f} MB", parity_cell(r.get("parity_rel")))
        console.print(pt)
        if any(r.get("drop_ci95") for r in report["precisions"]):
            console.print("drop 95 % CI: over the evaluation samples, the same samples for both forms (a bootstrap, "
                          "or Newcombe's for a pass/fail rate; the gate judges the drop itself against --max-drop)",
                          highlight=False)
    for line in _calibration_lines(bundle.manifest):
        console.print(line, highlight=False, soft_wrap=True, markup=False)
    for child, parent in (report.get("inherited_gates") or {}).items():
        console.print(f"{child}: not scored; its gates are {parent}'s (the same graphs, gated there; "
                      "--score-every-program scores it too)", highlight=False, markup=False)
    if report.get("weights") is None:
        console.print("[yellow]warning:[/] no checkpoint for this config: the bundle has RANDOM weights "
                      "(train one with `edge train` and pass --checkpoint)")
    else:
        console.print(f"weights: {report['weights']}", markup=False)
    if triton_repo is not None:
        console.print(f"Triton model repository ({', '.join(tb)}; {report['triton_precision']}): "
                      f"{report['triton_repo']}\n"
                      f"  tritonserver --model-repository {report['triton_repo']}", highlight=False, markup=False)
    console.print("next:\n"
                  f"  edge run {bundle.path} --source synthetic:30 --out {bundle.path}_run   # the family's own data\n"
                  f"  edge bench {bundle.path}", markup=False)


def _calibration_lines(manifest: dict[str, Any]) -> list[str]:
    """What the INT8 artifacts were calibrated on, one line per calibration source (the manifest has it per
    artifact, with the samples drawn and the graph inputs they made; the tables say what was scored on, not what set
    the scales)."""
    samples: dict[str, set[int]] = {}
    for a in manifest.get("artifacts", []):
        q = a.get("quantization") or {}
        source = q.get("calibration")
        if not isinstance(source, str):
            continue
        got = samples.setdefault(source, set())
        if isinstance(q.get("calibration_samples"), int):
            got.add(q["calibration_samples"])
    return [f"int8 calibrated on {source}" + (f", {' / '.join(map(str, sorted(n)))} samples" if n else "")
            for source, n in samples.items()]


def _triton(bundle: Any, out: Path, backends: list[str], device: str, asked: list[str]) -> tuple[str, str]:
    """Write the Triton repository serving the last precision of ``--precision`` that each backend has for
    every graph (``fp32,int8`` serves INT8; the repository holds one precision); returns its path and that
    precision. Why: it was always the first artifact, fp32, whatever was asked, and said nothing."""
    from edge.export.triton_repo import write_triton_repo

    def write(precision: str) -> tuple[str, str]:
        return str(write_triton_repo(bundle, out, backends=backends, graphs=bundle.graphs, device=device,
                                     precision=precision)), precision

    for precision in reversed(asked[1:]):
        try:  # checked whole before a byte is written: a precision a backend lacks leaves nothing behind
            return write(precision)
        except ExportError:
            continue
    return write(asked[0])  # the first asked: its error is the command's


def _check_triton_sources(backends: list[str], targets: list[str], out: Path, precision: str = "fp32") -> None:
    """Refuse, before any work, a Triton backend this export will give nothing to serve: OpenVINO needs the
    IRs (``--to ...,openvino``), TensorRT an engine built here (``--to ...,tensorrt`` on a machine with
    TensorRT); found after the export, the bundle was left written and the command failed."""
    if "openvino" in backends and "openvino" not in targets:
        raise ExportError("--triton-backends openvino: the repository serves the OpenVINO IR, which this export "
                          "does not write; export with --to onnx,openvino")
    if "tensorrt" in backends:
        from edge.runtimes.registry import get_backend

        ok, why = get_backend("tensorrt").is_available()
        if "tensorrt" not in targets or not ok:
            reason = "not among --to" if "tensorrt" not in targets else f"TensorRT is not available here: {why}"
            raise ExportError(f"--triton-backends tensorrt: the repository serves an engine built by this export "
                              f"({reason}); engines are specific to the GPU and TensorRT version: export without "
                              f"tensorrt in --triton-backends, then on the target `edge build {out} --precision "
                              f"{precision} --triton-repo DIR` builds them and writes the repository")


def _engines(bundle: Any, backend: str, precisions: list[str], console: Any) -> dict[str, Any]:
    """Build the backend's engines now when this machine can; else say they are built on the target.

    Engines (e.g. TensorRT's) are specific to the GPU and the library version, so an export on a desktop
    without them writes the ONNX the target builds from and prints the command to run there.
    """
    from edge.runtimes.registry import get_backend

    be = get_backend(backend)
    ok, why = be.is_available()
    cmds = [f"edge build {bundle.path} --backend {backend} --precision {p}" for p in precisions]
    if not ok:
        console.print(f"{be.description} is not available here ({why}).\n{be.builds or 'Engines'} are built on the "
                      f"target from the ONNX in {bundle.path}: copy the bundle there and run\n  " + "\n  ".join(cmds),
                      highlight=False, markup=False)
        return {"built": [], "reason": why, "on_target": cmds}
    from pathlib import Path

    from edge.cli.build_cmd import run_build

    built: list[str] = []
    checks: dict[str, Any] = {}
    for p in precisions:  # edge build's own path: the same checks, the same one-line summaries
        out = run_build(Path(bundle.path), backend=backend, precision=p, graphs=[], dims=[], workspace_mb=2048,
                        timing_cache=None, cuda=None, force=False, json_out=False,
                        keep_hint=f"the bundle is kept without it; `edge build {bundle.path} --precision {p} "
                                  "--no-check` builds it unchecked")
        for e in out["engines"]:
            built.append(e["engine"])
            if "check" in e:
                checks[e["engine"]] = e["check"]
    return {"built": built, "checks": checks}
