"""``edge build``: build (or reuse) a backend's engines for a bundle on this device (TensorRT)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge.errors import BackendUnavailable, DataError


def run_build(bundle: Path, *, backend: str, precision: str, graphs: list[str], dims: list[str], workspace_mb: int,
              timing_cache: Path | None, cuda: str | None, force: bool, json_out: bool) -> dict[str, Any]:
    from edge.bundle import Bundle
    from edge.runtimes.registry import get_backend
    from edge.runtimes.trt_engine import onnx_for, parse_dim_ranges, profile_shapes

    be = get_backend(backend)
    if be.build is None:
        raise BackendUnavailable(f"--backend {backend}: it builds nothing (it runs the bundle's ONNX/IR as they "
                                 "are); engines are built by backends such as tensorrt")
    b = Bundle.load(bundle)
    graphs = list(graphs) or b.graphs
    unknown = [g for g in graphs if g not in b.graphs]
    if unknown:
        raise DataError(f"--graph {unknown[0]}: {b.path} has graphs {', '.join(b.graphs)}")
    # everything that can be checked without the backend's library first, so the message is about the bundle
    ranges = parse_dim_ranges(dims)
    profiles = {}
    for g in graphs:
        onnx_for(b, g, precision)
        profiles[g] = profile_shapes(b.graph_io(g), ranges, b.manifest.get("dynamic_dims"))
    if timing_cache is not None and not timing_cache.parent.is_dir():
        raise DataError(f"--timing-cache {timing_cache}: folder {timing_cache.parent} does not exist")
    ok, why = be.is_available()
    if not ok:
        if backend == "tensorrt":  # what would be built, for a machine that has trtexec
            from edge.runtimes.trt_engine import trtexec_command

            for g in graphs:
                print(trtexec_command(b, g, precision, profiles[g], workspace_mb))
        raise BackendUnavailable(f"backend '{backend}' is not available here: {why}")
    from rich.console import Console

    console = Console(stderr=True)
    results = []
    for g in graphs:
        with console.status(f"building the {precision} {backend} engine for graph '{g}'...") as status:
            rec, reused = be.build(b, graph=g, precision=precision, dims=ranges, workspace_mb=workspace_mb,
                                   timing_cache=timing_cache, cuda_impl=cuda, force=force,
                                   progress=lambda msg: status.update(f"{backend}: {msg}"))
        b = Bundle.load(b.path)
        results.append({"graph": g, "engine": rec.engine_file, "reused": reused, "record": vars(rec)})
        if not json_out:
            what = "reused" if reused else f"built in {rec.build_s:.1f} s"
            console.print(f"{rec.engine_file}: {what} ({backend} {rec.tensorrt}, {rec.gpu} sm "
                          f"{rec.compute_capability}, {precision}, from {rec.onnx_file})", highlight=False)
    out = {"bundle": str(b.path), "engines": results}
    if json_out:
        print(json.dumps(out))
    return out
