"""``edge export`` / ``edge-export``: a model family or checkpoint -> validated bundle, with a summary."""

from __future__ import annotations

import json
from pathlib import Path

from edge.errors import ExportError


def run_export(model: str, out: Path, to: str, config: str | None, checkpoint: Path | None, attention: str,
               dynamic_batch: bool, streaming: bool, opset: int, rtol: float, json_out: bool) -> None:
    targets = [t.strip() for t in to.split(",") if t.strip()]
    unknown = [t for t in targets if t != "onnx"]
    if unknown or not targets:
        raise ExportError(f"--to {to!r}: supported targets so far: onnx")
    from rich.console import Console
    from rich.table import Table

    from edge.export.api import export_card

    console = Console(stderr=json_out)
    with console.status(f"exporting {model} to ONNX and checking parity against PyTorch..."):
        bundle, report = export_card(model, out, config=config, checkpoint=checkpoint, attention=attention,
                                     dynamic_batch=dynamic_batch, streaming=streaming, opset=opset, rtol=rtol)
    if json_out:
        print(json.dumps({"bundle": str(bundle.path), **report}))
        return
    table = Table(title=f"{bundle.path} ({bundle.model_name}, attention={report['attention']})")
    for col in ("graph", "file", "size", "parity max abs", "parity max rel", "export s"):
        table.add_column(col, justify="right" if col not in ("graph", "file") else "left")
    for g, r in report["graphs"].items():
        table.add_row(g, r["file"], f"{r['bytes'] / 1e6:.2f} MB", f"{r['max_abs']:.2e}", f"{r['max_rel']:.2e}",
                      f"{r['export_s']:.1f}")
    console.print(table)
    if report.get("weights") is None:
        console.print("[yellow]warning:[/] no checkpoint for this config: the bundle has RANDOM weights "
                      "(train one with `edge train` and pass --checkpoint)")
    else:
        console.print(f"weights: {report['weights']}")
    console.print("next:\n"
                  f"  edge run {bundle.path} --source synthetic:90 --out {bundle.path}_run\n"
                  f"  edge run {bundle.path} --source VIDEO.mp4")
