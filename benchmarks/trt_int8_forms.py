"""What TensorRT's INT8 graphs hold, per bundle: how many float layers the symmetric QDQ graph runs in fp32
under TensorRT's strong typing and how many its fp16 form (``*.int8-fp16.onnx``) runs in fp16, how many
nodes the form kept fp32 (range and deviation checks), and the program gate of that form (scored on its
fp16-storage emulation in ONNX Runtime); and the same for the fp16 precision (``*.fp16.onnx``, what TensorRT
builds for ``--precision fp16``): its census, the nodes kept fp32, its parity and its program gate.

No GPU here: this measures the graphs and the accuracy TensorRT's engine would be built from, not its
speed. Each BUNDLE must have been exported with ``--precision int8`` or ``fp16`` (or both).

    python benchmarks/trt_int8_forms.py BUNDLE [BUNDLE ...] [--out benchmarks/results/trt_int8_forms.json]
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path
from typing import Any

from edge import jsonout

#: ops that carry no arithmetic (layout, shape, the Q/DQ pairs themselves) are not counted as layers
NOT_LAYERS = {"QuantizeLinear", "DequantizeLinear", "Cast", "Reshape", "Transpose", "Shape", "Gather", "Slice",
              "Concat", "Unsqueeze", "Squeeze", "Constant", "Identity", "Flatten", "Split", "Expand"}


def census(path: Path) -> dict[str, Any]:
    """Arithmetic nodes by the element type of their first output (after ONNX shape inference)."""
    import onnx
    from onnx import TensorProto

    m = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    ty = {v.name: v.type.tensor_type.elem_type for v in [*m.graph.value_info, *m.graph.input, *m.graph.output]}
    by: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for n in m.graph.node:
        if n.op_type in NOT_LAYERS or not n.output:
            continue
        by[TensorProto.DataType.Name(ty.get(n.output[0], 0)).lower()][n.op_type] += 1
    return {k: dict(sorted(v.items())) for k, v in sorted(by.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "trt_int8_forms.json")
    args = ap.parse_args()

    from edge.bench.machine import machine
    from edge.bundle import Bundle
    from edge.files import atomic_write_text
    from edge.runtimes.trt_engine import onnx_for

    rows = []
    for path in args.bundles:
        b = Bundle.load(path)
        graphs = {}
        for g in b.graphs:
            graphs[g] = {}
            sym = next((a for a in b.artifacts if a["name"] == f"onnx-int8-{g}"), None)
            if sym is not None:
                chosen = onnx_for(b, g, "int8")
                q = chosen.get("quantization", {})
                graphs[g].update({
                    "tensorrt_builds": chosen["file"], "symmetric": census(b.file(sym["file"])),
                    "fp16_form": census(b.file(chosen["file"])) if chosen["file"] != sym["file"] else None,
                    "kept_fp32_nodes": len(q.get("kept_fp32_nodes", [])), "fp16_range": q.get("fp16_range"),
                    "parity_vs_fp32": chosen.get("parity")})
            half = next((a for a in b.artifacts if a["name"] == f"onnx-fp16-{g}"), None)
            if half is not None:
                q = half.get("quantization", {})
                graphs[g]["fp16_precision"] = {"file": half["file"], "census": census(b.file(half["file"])),
                                               "kept_fp32_nodes": len(q.get("kept_fp32_nodes", [])),
                                               "fp16_range": q.get("fp16_range"), "parity_vs_torch": half.get("parity")}
        gates = {p: rec.get("gates", {}).get("tensorrt", {}).get("int8-fp16")
                 for p, rec in b.manifest.get("programs", {}).items()}
        fp16 = {p: rec.get("gates", {}).get("onnxruntime", {}).get("fp16")
                for p, rec in b.manifest.get("programs", {}).items()}
        fp32 = {p: (rec.get("gates", {}).get("onnxruntime", {}).get("fp32") or {}).get("metric")
                for p, rec in b.manifest.get("programs", {}).items()}
        sym_int8 = {p: ((rec.get("gates", {}).get("onnxruntime", {}).get("int8") or {}).get("symmetric_qdq")
                        or rec.get("gates", {}).get("onnxruntime", {}).get("int8") or {}).get("metric")
                    for p, rec in b.manifest.get("programs", {}).items()}
        rows.append({"bundle": str(path), "model": b.model_name, "metric": (b.manifest.get("task") or {}).get("metric"),
                     "fp32": fp32, "int8_symmetric": sym_int8, "int8_fp16_gate": gates, "fp16_gate": fp16,
                     "graphs": graphs})
        print(jsonout.dumps(rows[-1], indent=1)[:3000])
    # accuracy and graph counts, not timings; the parity figures are this machine's ONNX Runtime kernels'
    atomic_write_text(args.out, jsonout.dumps({"machine": machine(), "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
