"""Accuracy gate with sensitivity-guided fallback for INT8, over every graph of a program at once.

A family's program may call several graphs (e.g. an encoder per frame and a temporal head on a ring
buffer), and what must keep its accuracy is the program, not each graph alone. So:

1. Quantize every candidate node of every graph; score the task metric of the whole program
   (``score({graph: path})``, which runs the family's runner over held-out samples).
2. If the drop against fp32 exceeds ``max_drop``: rank all quantized nodes of all graphs by
   sensitivity, measured as their graph's output error (max |int8 - fp32| / max |fp32| over that
   graph's evaluation feeds) when *only that node* is quantized, then retry keeping the worst 1, 2,
   4, ... nodes in float until the budget holds.
3. Every try (excluded nodes per graph, metric, drop, output error per graph) is returned for the
   manifest; if no try meets the budget the caller fails with that table and writes no INT8 artifact.

What quantizes is a :class:`Quantizer`: the QDQ ONNX one (:func:`qdq_quantizer`, every backend, the
default) or a backend's own (NNCF's OpenVINO IRs, :func:`edge.calibration.nncf_int8.nncf_quantizer`), so
one fallback serves every INT8 form. The gate needs only ``score`` and the metric's sense
(``drop(reference, value)``, positive = worse).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.calibration.datasets import FeedSet
from edge.calibration.quantize import DEFAULT_OPS, quantize_int8, short_dots
from edge.spec import IOSpec

#: how far over the budget a drop may be and still be "within" it: rounding, not accuracy
BUDGET_RTOL = 1e-9


def within_budget(drop: float, budget: float) -> bool:
    """Whether a metric drop meets the gate's budget, up to floating-point rounding. Why: a rate of samples
    passed moves in whole steps (the export sizes the held-out set so that two steps are the budget), and
    ``np.mean(...) * 100`` makes the same two-sample change 1.0 at one level and 1.0000000000000004 at
    another (3.5 % - 2.5 %), so an exact comparison passed or failed the same change by rounding."""
    return bool(drop <= budget + BUDGET_RTOL * max(1.0, abs(budget)))


@dataclass
class GateGraph:
    """One graph of the program: fp32 source, where its INT8 copy goes, its calibration set and the
    feeds its output error is measured on (what the fp32 program gave it on evaluation samples)."""

    src: str | Path
    dst: str | Path
    io: IOSpec
    calib: FeedSet
    feeds: list[dict[str, np.ndarray]]


@dataclass(frozen=True)
class Quantizer:
    """One INT8 form as the gate drives it.

    ``write(graph, gg, dst, exclude)`` writes ``gg.src`` quantized to ``dst`` with the ``exclude`` nodes left
    in float; ``nodes(graph, gg)`` names the nodes it would quantize (what can be excluded); ``error(gg, path)`` is
    the worst relative output error of an INT8 copy against ``gg.src`` over ``gg.feeds``; ``suffix`` is
    the file type written (an ``.xml`` IR has its ``.bin`` beside it, copied with it).
    """

    write: Callable[[str, GateGraph, Path, Sequence[str]], Any]
    nodes: Callable[[str, GateGraph], list[str]]
    error: Callable[[GateGraph, str], float]
    suffix: str = ".onnx"


@dataclass
class GateResult:
    passed: bool
    fp32_metric: float
    tries: list[dict[str, Any]] = field(default_factory=list)
    sensitivity: list[dict[str, Any]] = field(default_factory=list)
    chosen: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "fp32_metric": self.fp32_metric, "tries": self.tries,
                "sensitivity": self.sensitivity[:20], "chosen": self.chosen}


def candidate_nodes(onnx_path: str | Path, op_types: Sequence[str] = DEFAULT_OPS) -> list[str]:
    """Names of the nodes the quantizer would touch (named so they can be excluded): not the short dot
    products it always leaves in float."""
    import onnx

    from edge.onnx_file import name_nodes

    model = onnx.load(str(onnx_path), load_external_data=False)
    name_nodes(model)  # named as the quantizer names them
    short = set(short_dots(model))
    return [n.name for n in model.graph.node if n.op_type in op_types and n.name not in short]


def output_error(ref_path: str | Path, q_path: str | Path, io: IOSpec, feeds: Sequence[dict[str, np.ndarray]],
                 backend: str = "onnxruntime", **options: Any) -> float:
    """Worst relative output error of ``q_path`` against ``ref_path`` over ``feeds`` on ``backend``."""
    from edge.parity import worst_rel
    from edge.runtimes import open_file

    ref = open_file(backend, ref_path, io, **options)
    try:
        q = open_file(backend, q_path, io, **options)
    except BaseException:
        ref.close()
        raise
    try:
        errs = [worst_rel(ref.infer(f), q.infer(f)) for f in feeds]
        return max([0.0, *(float("inf") if np.isnan(e) else e for e in errs)])  # a NaN output is the worst
    finally:
        ref.close()
        q.close()


def qdq_quantizer(method: str = "minmax", op_types: Sequence[str] = DEFAULT_OPS,
                  activations: str = "s8s8", keep_float: Mapping[str, Sequence[str]] | None = None,
                  trained: Mapping[str, Mapping[str, float]] | None = None) -> Quantizer:
    """The QDQ ONNX form (:func:`~edge.calibration.quantize.quantize_int8`), errors measured on ONNX Runtime.

    ``keep_float``: per graph, nodes never quantized (chosen for speed before the gate, e.g. by
    :func:`edge.calibration.ort_pays.choose_float_convs`); the gate's fallback excludes more on top.
    ``trained``: per graph, activation tensors that take a quantization-aware checkpoint's trained scale
    (:mod:`edge.calibration.qat_scales`) instead of a calibrated one."""
    keep = {g: list(v) for g, v in (keep_float or {}).items()}
    scales = {g: dict(v) for g, v in (trained or {}).items()}

    def write(graph: str, gg: GateGraph, dst: Path, exclude: Sequence[str]) -> None:
        quantize_int8(gg.src, dst, gg.calib, method=method, exclude=[*keep.get(graph, []), *exclude],
                      op_types=op_types, activations=activations, tensor_scales=scales.get(graph))

    def nodes(graph: str, gg: GateGraph) -> list[str]:
        return [n for n in candidate_nodes(gg.src, op_types) if n not in keep.get(graph, [])]

    return Quantizer(write, nodes, lambda gg, path: output_error(gg.src, path, gg.io, gg.feeds))


def _copy(src: str | Path, dst: str | Path) -> None:
    """A written INT8 file to its place, with an IR's weights file."""
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    if Path(src).suffix == ".xml":
        shutil.copyfile(Path(src).with_suffix(".bin"), Path(dst).with_suffix(".bin"))


def quantize_with_gate(graphs: Mapping[str, GateGraph], score: Callable[[dict[str, str]], float], *,
                       fp32_metric: float, max_drop: float = 1.0, method: str = "minmax", max_tries: int = 5,
                       drop: Callable[[float, float], float] = lambda ref, v: ref - v,
                       progress: Callable[[str], None] | None = None, op_types: Sequence[str] = DEFAULT_OPS,
                       activations: str = "s8s8", quantizer: Quantizer | None = None,
                       start: tuple[Mapping[str, str], float] | None = None) -> GateResult:
    """Quantize every graph to its ``dst`` so the program stays within ``max_drop`` of ``fp32_metric``.

    ``quantizer``: the INT8 form (default: QDQ ONNX with ``method`` / ``op_types`` / ``activations``, see
    :func:`quantize_int8`). ``start``: every graph already quantized with nothing excluded and the metric
    its program scored (a caller that measured that itself): the first try, not made again."""
    say = progress or (lambda _msg: None)
    q = quantizer or qdq_quantizer(method, op_types, activations)
    res = GateResult(False, fp32_metric)
    with tempfile.TemporaryDirectory(prefix="edge-gate-") as tmp:
        work = Path(tmp)

        def quantize_all(exclude: Mapping[str, list[str]], tag: str) -> dict[str, str]:
            files = {}
            for g, gg in graphs.items():
                out = work / f"{tag}.{g}{q.suffix}"
                q.write(g, gg, out, exclude.get(g, []))
                files[g] = str(out)
            return files

        def attempt(exclude: dict[str, list[str]], tag: str,
                    made: tuple[Mapping[str, str], float] | None = None) -> tuple[dict[str, str], dict[str, Any]]:
            files = dict(made[0]) if made else quantize_all(exclude, tag)
            metric = float(made[1]) if made else float(score(files))
            row = {"excluded": {g: list(v) for g, v in exclude.items() if v}, "metric": metric,
                   "drop": drop(fp32_metric, metric), "method": method,
                   "output_rel_error": {g: q.error(gg, files[g]) for g, gg in graphs.items()}}
            row["passed"] = within_budget(row["drop"], max_drop)
            res.tries.append(row)
            n = sum(len(v) for v in exclude.values())
            say(f"int8 try {len(res.tries)}: {n} node(s) in float -> metric {metric:.4g} (drop {row['drop']:.3g})")
            return files, row

        files, row = attempt({}, "all", start)
        if not row["passed"]:
            nodes = [(g, n) for g, gg in graphs.items() for n in q.nodes(g, gg)]
            say(f"drop above {max_drop:.3g}: ranking {len(nodes)} nodes by sensitivity")
            sens = []
            for i, (g, name) in enumerate(nodes):
                gg = graphs[g]
                out = work / f"only{i}{q.suffix}"
                q.write(g, gg, out, [n for h, n in nodes if h == g and n != name])
                sens.append({"graph": g, "node": name, "output_rel_error": q.error(gg, str(out))})
                out.unlink()  # one graph's worth of weights per node otherwise, until the gate ends
                out.with_suffix(".bin").unlink(missing_ok=True)
            sens.sort(key=lambda r: -r["output_rel_error"])
            res.sensitivity = sens
            k = 1
            while not row["passed"] and len(res.tries) < max_tries and k <= len(nodes):
                exclude: dict[str, list[str]] = {}
                for r in sens[:k]:
                    exclude.setdefault(r["graph"], []).append(r["node"])
                files, row = attempt(exclude, f"excl{k}")
                k *= 2
        if row["passed"]:
            res.passed = True
            res.chosen = row
            for g, gg in graphs.items():
                if Path(files[g]) != Path(gg.dst):
                    _copy(files[g], gg.dst)
    return res
