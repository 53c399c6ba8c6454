"""``edge doctor``: which backends and accelerators work here, and why not when they do not."""

from __future__ import annotations

import importlib
import json
import os
import platform
from importlib import metadata
from typing import Any

import typer

from edge.cli import emit
from edge.errors import first_line


def _pkg(name: str, dist: str | None = None) -> tuple[bool, str]:
    try:
        importlib.import_module(name)
    except ImportError as e:
        from edge.deps import absent, cuda_python_missing, missing

        if dist == "cuda-python":  # an old release has the cuda namespace but not cuda.bindings
            return False, cuda_python_missing(e)
        if absent(e, name.split(".")[0]):
            return False, missing(name)  # with the pip line that installs it, as the backends' rows say
        # there, but its own import fails (OpenCV without libGL, pycuda without a driver): not "not installed"
        return False, f"installed but does not import: {type(e).__name__}: {first_line(e, 100, empty='')}"
    except Exception as e:  # pycuda raises at import without a driver
        return False, f"import fails: {type(e).__name__}: {first_line(e, 100, empty='')}"
    try:
        return True, metadata.version(dist or name)
    except metadata.PackageNotFoundError:
        return True, "installed"


def _gpu() -> tuple[bool, str]:
    try:
        import torch

        if torch.cuda.is_available():
            return True, f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    except Exception:  # no torch, or a torch whose CUDA libraries do not load (an OSError): the device nodes say
        pass
    if os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvhost-ctrl"):
        return True, "NVIDIA device node present (torch CUDA not available)"
    return False, "no NVIDIA GPU visible (no CUDA device, no /dev/nvidia0)"


def collect() -> list[dict[str, Any]]:
    """Rows for the table: backends from the registry, then the extra components and the GPU."""
    from edge.runtimes.registry import get_backend, list_backends

    rows = []
    for name in list_backends():
        ok, why = get_backend(name).is_available()
        rows.append({"name": name, "kind": "backend", "ok": ok, "detail": why})
    for name, mod, dist in (("cuda-python", "cuda.bindings.runtime", "cuda-python"),
                            ("pycuda", "pycuda.driver", "pycuda"), ("opencv", "cv2", None)):
        ok, why = _pkg(mod, dist)
        if name == "opencv" and ok:
            import cv2

            why = cv2.__version__
        rows.append({"name": name, "kind": "package", "ok": ok, "detail": why})
    ok, why = _gpu()
    rows.append({"name": "gpu", "kind": "device", "ok": ok, "detail": why})
    return rows


def run_doctor(json_out: bool, require: list[str] | None = None) -> None:
    rows = collect()
    names = {r["name"] for r in rows}
    unknown = [n for n in require or [] if n not in names]
    if unknown:
        from edge.errors import EdgeError

        raise EdgeError(f"--require {', '.join(unknown)}: not a component (known: {', '.join(sorted(names))})")
    missing = [r["name"] for r in rows if r["name"] in (require or []) and not r["ok"]]
    if json_out:
        emit(json.dumps({"python": platform.python_version(), "machine": platform.machine(), "rows": rows,
                          "missing": missing}))
        if missing:
            raise typer.Exit(1)
        return
    from rich.table import Table

    from edge.cli import console as make_console

    table = Table(title=f"edge doctor (python {platform.python_version()}, {platform.machine()})")
    for col in ("component", "kind", "status", "version / reason"):
        table.add_column(col)
    from rich.markup import escape

    for r in rows:
        status = "[green]ok[/]" if r["ok"] else ("[red]unavailable[/]" if r["kind"] == "backend" else "[red]no[/]")
        table.add_row(r["name"], r["kind"], status, escape(r["detail"]))  # "edge-deploy[export]" is not markup
    make_console().print(table)
    if missing:  # the exit status 1 said why, in one line (the table alone left a reader to find the row)
        why = {r["name"]: r["detail"] for r in rows}
        make_console(stderr=True).print("--require: missing " + "; ".join(f"{n} ({escape(why[n])})" for n in missing),
                                        highlight=False, soft_wrap=True)
        raise typer.Exit(1)
