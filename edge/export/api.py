"""``edge.export``: any ``nn.Module`` or one of our model cards -> a validated bundle.

Flow: build the IOSpec -> export each graph to ONNX (dynamo exporter, attention lowered as asked)
-> onnxslim + onnx.checker -> parity against PyTorch on fresh inputs (fails above tolerance) ->
write everything, hashed, into a bundle that appears only when complete.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import Bundle, BundleWriter
from edge.errors import ExportError, ModelError
from edge.spec import IOSpec, TensorSpec

ATTENTION_MODES = ("auto", "plugin", "onnx", "decomposed")


@dataclass
class GraphJob:
    """One graph to export: its module, spec, example feeds and extra parity feed sets."""

    name: str
    module: Any
    io: IOSpec
    example: dict[str, np.ndarray]
    checks: list[tuple[str, dict[str, np.ndarray]]] = field(default_factory=list)


def tool_versions() -> dict[str, str]:
    """Versions of the tools that made a bundle (recorded in its manifest)."""
    out = {"python": platform.python_version()}
    for dist in ("edge-deploy", "torch", "onnx", "onnxruntime", "onnxscript", "onnxslim", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    raise ExportError(f"example inputs must be numpy arrays or torch tensors, got {type(x).__name__}")


def _write(out: str | os.PathLike[str], jobs: Sequence[GraphJob], manifest: dict[str, Any], *, attention: str,
           opset: int, rtol: float, torch_artifact: tuple[str, str, Any] | None,
           extra: Any = None, targets: tuple[str, ...] = ("onnx",)) -> tuple[Bundle, dict]:
    from edge.export.attention_modes import resolve_attention
    from edge.export.onnx_export import export_onnx
    from edge.export.validate import parity
    from edge.ops.attention import export_mode

    requested = attention
    # the runtimes the bundle is for decide `auto`: "onnx" means ONNX Runtime here
    runtimes = tuple(dict.fromkeys("onnxruntime" if t == "onnx" else t for t in targets))
    attention, reason = resolve_attention(attention, runtimes)
    if attention == "onnx":
        opset = max(opset, 23)  # the standard Attention op exists from opset 23
    if attention == "plugin":
        from edge.ops.onnx_schema import register_schemas

        register_schemas()
    report: dict[str, Any] = {"graphs": {}, "attention": attention}
    manifest = {**manifest, "attention": {"requested": requested, "mode": attention, "reason": reason}}
    manifest = {**manifest, "graphs": {j.name: j.io.to_dict() for j in jobs}, "io": jobs[0].io.to_dict()}
    manifest.setdefault("tools", tool_versions())
    manifest["created_unix"] = int(time.time())
    with BundleWriter(out, manifest) as w:
        for job in jobs:
            fname = "model.onnx" if job.name == "full" else f"{job.name}.onnx"
            t0 = time.time()
            with export_mode(attention):
                files = export_onnx(job.module, job.example, job.io, w.path_for(fname), opset=opset)
            export_s = time.time() - t0
            for f in files:
                w.register(f, "onnx" if f == fname else "onnx_external_data")
            run_file, lowered = fname, {}
            if attention == "plugin":  # ORT runs the cached lowering, not the portable node itself
                from edge.export.onnx_export import write_ort_lowering

                run_file = fname.replace(".onnx", ".ort.onnx")
                write_ort_lowering(w.path_for(fname), w.path_for(run_file))
                w.register(run_file, "onnx_lowered")
                lowered = {"onnxruntime": run_file}
            sets = [("export_example", job.example), *job.checks]
            par = parity(job.module, str(w.path_for(run_file)), job.io, sets)
            par["tolerance_rel"] = rtol
            par["passed"] = par["max_rel"] <= rtol
            if not par["passed"]:
                raise ExportError(f"{job.name}: ONNX Runtime differs from PyTorch: max rel error "
                                  f"{par['max_rel']:.2e} > tolerance {rtol:.0e} (max abs {par['max_abs']:.2e}); "
                                  "nothing was written")
            import onnx

            opsets = {o.domain or "ai.onnx": o.version for o in onnx.load(str(w.path_for(fname)),
                                                                         load_external_data=False).opset_import}
            w.add_artifact({"name": f"onnx-fp32{'' if job.name == 'full' else '-' + job.name}", "format": "onnx",
                            "file": fname, "extra_files": files[1:], "graph": job.name, "precision": "fp32",
                            "attention": attention, "opset": opsets, "lowered": lowered, "parity": par})
            report["graphs"][job.name] = {"file": fname, "bytes": sum(w.path_for(f).stat().st_size for f in files),
                                          "export_s": round(export_s, 2), "max_abs": par["max_abs"],
                                          "max_rel": par["max_rel"]}
        if extra is not None:  # more artifacts derived from the validated fp32 graphs (fp16, int8)
            extra(w, report)
        if torch_artifact is not None:
            fname, fmt, writer = torch_artifact
            writer(w.path_for(fname))
            w.register(fname, fmt)
            w.add_artifact({"name": "torch", "format": fmt, "file": fname, "graphs": [j.name for j in jobs],
                            "precision": "fp32"})
        bundle = w.commit()
    return bundle, report


def export(module: Any, example_inputs: Mapping[str, Any] | Sequence[Any], out: str | os.PathLike[str], *,
           input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
           dynamic_batch: bool = False, name: str = "custom", attention: str = "auto", opset: int = 20,
           rtol: float = 1e-4, seed: int = 0) -> Bundle:
    """Export any ``nn.Module`` to a validated bundle: ``edge.export(model, {"x": x}, "out/my_model")``.

    ``example_inputs`` is a dict name -> array/tensor (or a sequence, named ``input0..``). With
    ``dynamic_batch`` dim 0 of every input and output is named "batch" (the export uses batch >= 2
    internally so the dim is not specialized). Parity is checked on fresh random inputs of the same
    shapes; the bundle also carries the ``torch.export`` program so the torch backend needs no class.
    """
    import torch

    if isinstance(example_inputs, Mapping):
        names = list(input_names or example_inputs.keys())
        arrays = [_as_numpy(example_inputs[k]) for k in example_inputs]
    else:
        arrays = [_as_numpy(x) for x in example_inputs]
        names = list(input_names or [f"input{i}" for i in range(len(arrays))])
    if len(names) != len(arrays):
        raise ExportError(f"{len(names)} input names for {len(arrays)} example inputs")
    module = module.eval()
    if dynamic_batch:
        arrays = [np.concatenate([a, a]) if a.shape[0] == 1 else a for a in arrays]
    with torch.no_grad():
        outs = module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays))
    outs = list(outs) if isinstance(outs, list | tuple) else [outs]
    onames = list(output_names or [f"output{i}" for i in range(len(outs))])
    if len(onames) != len(outs):
        raise ExportError(f"{len(onames)} output names for {len(outs)} outputs")

    def shape(a: Any) -> tuple[int | str, ...]:
        s = [int(d) for d in a.shape]
        return ("batch", *s[1:]) if dynamic_batch else tuple(s)

    io = IOSpec(tuple(TensorSpec(n, str(a.dtype), shape(a)) for n, a in zip(names, arrays)),
                tuple(TensorSpec(n, str(o.detach().numpy().dtype), shape(o)) for n, o in zip(onames, outs)))
    rng = np.random.default_rng(seed + 1)
    fresh = {n: (rng.standard_normal(a.shape).astype(a.dtype) if a.dtype.kind == "f" else a.copy())
             for n, a in zip(names, arrays)}
    checks = [("random", fresh)]
    if dynamic_batch:
        checks.append(("random_batch3", {n: (rng.standard_normal((3, *a.shape[1:])).astype(a.dtype)
                                             if a.dtype.kind == "f" else np.concatenate([a, a[:1]]))
                                         for n, a in zip(names, arrays)}))
    job = GraphJob("full", module, io, dict(zip(names, arrays)), checks)

    def save_program(path: Path) -> None:
        from edge.export.onnx_export import _dynamic_shapes

        with torch.no_grad():
            ep = torch.export.export(module, tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays),
                                     dynamic_shapes=_dynamic_shapes(io))
        torch.export.save(ep, str(path))

    manifest = {"model": {"name": name, "family": "custom", "version": "1"}, "preprocess": {}}
    bundle, _ = _write(out, [job], manifest, attention=attention, opset=opset, rtol=rtol,
                       torch_artifact=("model.pt2", "torch_export", save_program))
    return bundle


def export_card(model: str, out: str | os.PathLike[str], *, config: str | None = None,
                checkpoint: str | os.PathLike[str] | None = None, attention: str = "auto",
                dynamic_batch: bool = False, streaming: bool = True, opset: int = 20, rtol: float = 1e-4,
                seed: int = 0, precisions: list[str] | None = None, calib: str = "synthetic",
                calib_size: int = 32, eval_size: int = 40, max_drop: float = 1.0, calib_method: str = "minmax",
                progress: Any = None, targets: tuple[str, ...] = ("onnx",)) -> tuple[Bundle, dict[str, Any]]:
    """Export one of our families (by name, or a checkpoint path) with its streaming graphs.

    ``precisions`` adds fp16 / gated int8 copies of the full graph (see :mod:`edge.export.precision`).
    """
    from edge.models import get_card
    from edge.models.checkpoint import load_model, read_checkpoint, save_checkpoint

    ckpt_path: Path | None = None
    if model.endswith((".pt", ".pth")) or Path(model).is_file():
        ckpt_path = Path(model)
        model = read_checkpoint(ckpt_path)["model"]
    card = get_card(model)
    if checkpoint is not None:
        ckpt_path = Path(checkpoint)
    if ckpt_path is None and config in (None, card.default_config) and card.default_checkpoint is not None:
        ckpt_path = card.default_checkpoint
    if ckpt_path is not None:
        module, cfg, meta = load_model(ckpt_path, expect_model=model)
        if config is not None and card.config(config) != cfg:
            raise ModelError(f"{ckpt_path}: checkpoint was trained with another config than '{config}'")
        weights = {"checkpoint": str(ckpt_path), "trained": meta}
    else:
        import torch

        cfg = card.config(config)
        torch.manual_seed(seed)
        module = card.build(cfg).eval()
        meta = {}
        weights = {"checkpoint": None, "trained": "random init (no checkpoint for this config)"}
    batch = 2 if dynamic_batch else 1
    jobs = []
    names = ["full", "encoder", "temporal"] if streaming else ["full"]
    for i, gname in enumerate(names):
        g = card.graphs[gname]
        io = g.io(cfg)
        if not dynamic_batch:
            io = IOSpec(tuple(TensorSpec(t.name, t.dtype, t.concrete(batch=1), t.description) for t in io.inputs),
                        tuple(TensorSpec(t.name, t.dtype, t.concrete(batch=1), t.description) for t in io.outputs))
        checks = [("random", g.example_inputs(cfg, batch, seed + 100 + i))]
        if dynamic_batch:  # a dynamic dim must work at sizes other than the export example's
            checks += [("random_batch1", g.example_inputs(cfg, 1, seed + 200 + i)),
                       ("random_batch3", g.example_inputs(cfg, 3, seed + 300 + i))]
        if "synthetic_feeds" in card.extras:
            checks.append(("synthetic", card.extras["synthetic_feeds"](cfg, gname, module, batch, seed)))
        jobs.append(GraphJob(gname, g.module(module), io, g.example_inputs(cfg, batch, seed + i), checks))
    manifest = {
        "model": {"name": card.name, "family": card.name, "version": "1", "config": cfg,
                  "weights": weights},
        "preprocess": card.extras.get("preprocess_params", lambda c: {})(cfg),
    }

    def write_ckpt(path: Path) -> None:
        save_checkpoint(path, card.name, cfg, module, meta)

    def extra(w: Any, report: dict[str, Any]) -> None:
        if precisions and set(precisions) - {"fp32"}:
            from edge.export.precision import add_precisions

            add_precisions(w, report, card, cfg, module, jobs[0].io, list(precisions), calib=calib,
                           calib_size=calib_size, eval_size=eval_size, max_drop=max_drop, method=calib_method,
                           seed=seed, say=progress or (lambda _m: None))
        if "openvino" in targets:
            from edge.export.openvino_ir import add_openvino
            from edge.runtimes import require

            require("openvino")
            add_openvino(w, report, jobs, rtol=rtol)
            if precisions and "int8" in precisions:
                from edge.export.precision import add_nncf_int8

                add_nncf_int8(w, report, card, cfg, jobs[0].io, calib=calib, calib_size=calib_size,
                              eval_size=eval_size, max_drop=max_drop, seed=seed, say=progress or (lambda _m: None))

    bundle, report = _write(out, jobs, manifest, attention=attention, opset=opset, rtol=rtol,
                            torch_artifact=("weights.pt", "checkpoint", write_ckpt), extra=extra, targets=targets)
    report["weights"] = str(ckpt_path) if ckpt_path is not None else None
    return bundle, report
