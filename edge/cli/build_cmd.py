"""``edge build``: build (or reuse) the TensorRT engine for a bundle on this device."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge.errors import BackendUnavailable, DataError


def run_build(bundle: Path, *, backend: str, precision: str, graph: str, dims: list[str], workspace_mb: int,
              timing_cache: Path | None, cuda: str | None, force: bool, json_out: bool) -> dict[str, Any]:
    from edge.bundle import Bundle
    from edge.runtimes.trt_engine import onnx_for, parse_dim_ranges, profile_shapes

    if backend != "tensorrt":
        raise BackendUnavailable(f"--backend {backend}: only tensorrt builds engines (onnxruntime and openvino "
                                 "run the bundle's ONNX/IR as they are)")
    b = Bundle.load(bundle)
    # everything that can be checked without TensorRT first, so the message is about the bundle
    onnx_for(b, graph, precision)
    ranges = parse_dim_ranges(dims)
    if timing_cache is not None and not timing_cache.parent.is_dir():
        raise DataError(f"--timing-cache {timing_cache}: folder {timing_cache.parent} does not exist")
    profile_shapes(b.graph_io(graph), ranges, b.manifest.get("dynamic_dims"))
    from rich.console import Console

    from edge.runtimes.tensorrt import build_engine

    console = Console(stderr=True)
    with console.status(f"building the {precision} TensorRT engine for graph '{graph}'...") as status:
        rec, reused = build_engine(b, graph=graph, precision=precision, dims=ranges, workspace_mb=workspace_mb,
                                   timing_cache=timing_cache, cuda_impl=cuda, force=force,
                                   progress=lambda msg: status.update(f"TensorRT: {msg}"))
    out = {"bundle": str(b.path), "engine": rec.engine_file, "reused": reused, "record": vars(rec)}
    if json_out:
        print(json.dumps(out))
    else:
        what = "reused" if reused else f"built in {rec.build_s:.1f} s"
        console.print(f"{rec.engine_file}: {what} (TensorRT {rec.tensorrt}, {rec.gpu} sm {rec.compute_capability}, "
                      f"{precision}, from {rec.onnx_file})", highlight=False)
    return out
