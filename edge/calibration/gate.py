"""Accuracy gate with sensitivity-guided fallback for INT8.

1. Quantize every candidate node (Conv/MatMul/Gemm); score the task metric on the evaluation set.
2. If the drop against fp32 exceeds ``max_drop``: rank the quantized nodes by sensitivity, measured as
   the model-output error (max |int8 - fp32| / max |fp32| over the evaluation feeds) when *only that
   node* is quantized, then retry keeping the worst 1, 2, 4, ... nodes in fp32 until the budget holds.
3. Every try (excluded nodes, metric, drop, output error) is returned for the manifest; if no try meets
   the budget the caller fails with that table and writes no INT8 artifact.

The metric is whatever the model card defines (TuSimple accuracy in percent points for lanes); the
gate only needs ``score(onnx_path) -> float`` where higher is better.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.calibration.datasets import FeedSet
from edge.calibration.quantize import DEFAULT_OPS, quantize_int8
from edge.spec import IOSpec


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
    """Worst relative output error of ``q_path`` against ``ref_path`` over ``feeds``."""
    from edge.export.validate import compare
    from edge.runtimes.onnxruntime import OrtRuntime

    ref, q = OrtRuntime(str(ref_path), io), OrtRuntime(str(q_path), io)
    try:
        worst = 0.0
        for f in feeds:
            errs = compare(ref.infer(f), q.infer(f))
            worst = max([worst, *(e["rel"] for e in errs.values())])
        return worst
    finally:
        ref.close()
        q.close()


def quantize_with_gate(src: str | Path, dst: str | Path, io: IOSpec, calib: FeedSet, evaluation: FeedSet,
                       score: Callable[[str], float], *, fp32_metric: float, max_drop: float = 1.0,
                       method: str = "minmax", max_tries: int = 5, parity_feeds: int = 4,
                       progress: Callable[[str], None] | None = None) -> GateResult:
    """Quantize ``src`` to ``dst`` within ``max_drop`` metric points of ``fp32_metric`` if possible."""
    say = progress or (lambda _msg: None)
    res = GateResult(False, fp32_metric)
    feeds = evaluation.feeds[:parity_feeds]
    with tempfile.TemporaryDirectory(prefix="edge-gate-") as tmp:
        work = Path(tmp)

        def attempt(exclude: list[str], tag: str) -> tuple[Path, dict[str, Any]]:
            out = work / f"{tag}.onnx"
            info = quantize_int8(src, out, calib, method=method, exclude=exclude)
            metric = float(score(str(out)))
            row = {"excluded": list(exclude), "metric": metric, "drop": fp32_metric - metric,
                   "output_rel_error": output_error(src, out, io, feeds), **{"method": info["method"]}}
            row["passed"] = row["drop"] <= max_drop
            res.tries.append(row)
            say(f"int8 try {len(res.tries)}: {len(exclude)} node(s) in fp32 -> metric {metric:.2f} "
                f"(drop {row['drop']:.2f})")
            return out, row

        path, row = attempt([], "all")
        if not row["passed"]:
            nodes = candidate_nodes(src)
            say(f"drop above {max_drop}: ranking {len(nodes)} nodes by sensitivity")
            sens = []
            for i, name in enumerate(nodes):
                out = work / f"only{i}.onnx"
                quantize_int8(src, out, calib, method=method, exclude=[n for n in nodes if n != name])
                sens.append({"node": name, "output_rel_error": output_error(src, out, io, feeds)})
            sens.sort(key=lambda r: -r["output_rel_error"])
            res.sensitivity = sens
            k = 1
            while not row["passed"] and len(res.tries) < max_tries and k <= len(nodes):
                path, row = attempt([r["node"] for r in sens[:k]], f"excl{k}")
                k *= 2
        if row["passed"]:
            res.passed = True
            res.chosen = row
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dst)
    return res
