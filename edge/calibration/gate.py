"""Accuracy gate with sensitivity-guided fallback for INT8, over every graph of a program at once.

A family's program may call several graphs (e.g. an encoder per frame and a temporal head on a ring
buffer), and what must keep its accuracy is the program, not each graph alone. So:

1. Quantize every candidate node (Conv/MatMul/Gemm) of every graph; score the task metric of the whole
   program (``score({graph: path})``, which runs the family's runner over held-out samples).
2. If the drop against fp32 exceeds ``max_drop``: rank all quantized nodes of all graphs by
   sensitivity, measured as their graph's output error (max |int8 - fp32| / max |fp32| over that
   graph's evaluation feeds) when *only that node* is quantized, then retry keeping the worst 1, 2,
   4, ... nodes in fp32 until the budget holds.
3. Every try (excluded nodes per graph, metric, drop, output error per graph) is returned for the
   manifest; if no try meets the budget the caller fails with that table and writes no INT8 artifact.

The gate needs only ``score`` and the metric's sense (``drop(reference, value)``, positive = worse).
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
from edge.calibration.quantize import DEFAULT_OPS, quantize_int8
from edge.spec import IOSpec


@dataclass
class GateGraph:
    """One graph of the program: fp32 source, where its INT8 copy goes, its calibration set and the
    feeds its output error is measured on (what the fp32 program gave it on evaluation samples)."""

    src: str | Path
    dst: str | Path
    io: IOSpec
    calib: FeedSet
    feeds: list[dict[str, np.ndarray]]


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
    """Names of the nodes the quantizer would touch (named so they can be excluded)."""
    import onnx

    return [n.name for n in onnx.load(str(onnx_path), load_external_data=False).graph.node
            if n.op_type in op_types and n.name]


def output_error(ref_path: str | Path, q_path: str | Path, io: IOSpec, feeds: Sequence[dict[str, np.ndarray]]) -> float:
    """Worst relative output error of ``q_path`` against ``ref_path`` over ``feeds`` (ONNX Runtime)."""
    from edge.parity import worst_rel
    from edge.runtimes import open_file

    ref, q = open_file("onnxruntime", ref_path, io), open_file("onnxruntime", q_path, io)
    try:
        return max([0.0, *(worst_rel(ref.infer(f), q.infer(f)) for f in feeds)])
    finally:
        ref.close()
        q.close()


def quantize_with_gate(graphs: Mapping[str, GateGraph], score: Callable[[dict[str, str]], float], *,
                       fp32_metric: float, max_drop: float = 1.0, method: str = "minmax", max_tries: int = 5,
                       drop: Callable[[float, float], float] = lambda ref, v: ref - v,
                       progress: Callable[[str], None] | None = None, op_types: Sequence[str] = DEFAULT_OPS,
                       activations: str = "s8s8") -> GateResult:
    """Quantize every graph to its ``dst`` so the program stays within ``max_drop`` of ``fp32_metric``.

    ``op_types`` / ``activations``: what is quantized and in which form (:func:`quantize_int8`)."""
    say = progress or (lambda _msg: None)
    res = GateResult(False, fp32_metric)
    with tempfile.TemporaryDirectory(prefix="edge-gate-") as tmp:
        work = Path(tmp)

        def quantize_all(exclude: Mapping[str, list[str]], tag: str) -> dict[str, str]:
            files = {}
            for g, gg in graphs.items():
                out = work / f"{tag}.{g}.onnx"
                quantize_int8(gg.src, out, gg.calib, method=method, exclude=exclude.get(g, []), op_types=op_types,
                              activations=activations)
                files[g] = str(out)
            return files

        def attempt(exclude: dict[str, list[str]], tag: str) -> tuple[dict[str, str], dict[str, Any]]:
            files = quantize_all(exclude, tag)
            metric = float(score(files))
            row = {"excluded": {g: list(v) for g, v in exclude.items() if v}, "metric": metric,
                   "drop": drop(fp32_metric, metric), "method": method,
                   "output_rel_error": {g: output_error(gg.src, files[g], gg.io, gg.feeds) for g, gg in graphs.items()}}
            row["passed"] = row["drop"] <= max_drop
            res.tries.append(row)
            n = sum(len(v) for v in exclude.values())
            say(f"int8 try {len(res.tries)}: {n} node(s) in fp32 -> metric {metric:.2f} (drop {row['drop']:.2f})")
            return files, row

        files, row = attempt({}, "all")
        if not row["passed"]:
            nodes = [(g, n) for g, gg in graphs.items() for n in candidate_nodes(gg.src, op_types)]
            say(f"drop above {max_drop}: ranking {len(nodes)} nodes by sensitivity")
            sens = []
            for i, (g, name) in enumerate(nodes):
                gg = graphs[g]
                out = work / f"only{i}.onnx"
                others = [n for h, n in nodes if h == g and n != name]
                quantize_int8(gg.src, out, gg.calib, method=method, exclude=others, op_types=op_types,
                              activations=activations)
                sens.append({"graph": g, "node": name, "output_rel_error": output_error(gg.src, out, gg.io, gg.feeds)})
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
                Path(gg.dst).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(files[g], gg.dst)
    return res
