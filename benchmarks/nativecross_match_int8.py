"""Why NativeCross's `refine_match` loses its accuracy in the symmetric INT8 form: which graph, which nodes,
and whether it is ONNX Runtime's integer kernels or the quantization itself.

Scores `refine_match` (L2 rate, the gate's metric) on held-out synthetic rigs (the evaluation seed stream, 10 deg /
25 cm) with the bundle's fp32 graphs and, one change at a time:

- the bundle's symmetric INT8 graphs: all of them, the `match` graph alone, `encode` + `step` alone; each run by
  ONNX Runtime as usual (integer kernels) and with its graph optimisations off (``optimization="disable"``:
  every QuantizeLinear/DequantizeLinear pair runs as float arithmetic, so only the quantization's rounding
  acts, not a kernel's);
- the `match` graph quantized again here (symmetric, calibrated on the fp32 program's own crops of 32
  calibration rigs, as the export records them) with its stems (the first convolution of the image and of the
  depth channel), its head (the two Gemm) or both left float, with percentile / entropy calibration, and with
  only the layers' inputs rounded (the outputs of its Conv/Gemm left float, TensorRT's recommended placement);
- for a quantization-aware checkpoint (`edge train --qat matcher`): the `match` graph quantized with the scales
  training reached (inputs only, as the export writes it; and with the outputs rounded too, to show what that
  costs);
- the bundle's other INT8 forms where it has them (ONNX Runtime's U8S8, TensorRT's int8-fp16 emulation).

    python benchmarks/nativecross_match_int8.py BUNDLE [--rigs 100]
        [--out benchmarks/results/nativecross_match_int8.json]

The bundle: `edge-export nativecross --checkpoint CKPT --to onnx --precision fp32,int8 --max-drop 100` (a budget
that lets every INT8 form be written whatever it scores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from edge import jsonout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--rigs", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "nativecross_match_int8.json")
    args = ap.parse_args()

    import onnx

    import edge
    from edge.bench.machine import machine
    from edge.calibration.datasets import FeedSet
    from edge.calibration.gate import candidate_nodes
    from edge.calibration.quantize import quantize_int8
    from edge.export.api import artifact_name
    from edge.files import atomic_write_text
    from edge.program import Program, evaluate
    from edge.runtimes import open_file

    b = edge.Bundle.load(args.bundle)
    card = edge.get_card(b.family)
    cfg = b.manifest["model"]["config"]
    spec = card.program("refine_match")
    arts = b.manifest["artifacts"]

    def form(graph: str, variant: str | None) -> str | None:
        """The graph's INT8 ONNX file of a form (None: the portable symmetric one), if the bundle has it."""
        name = artifact_name("onnx", "int8", graph, variant or "")
        return next((str(args.bundle / a["file"]) for a in arts if a["name"] == name), None)

    def lowered(graph: str) -> str:
        """The fp32 graph ONNX Runtime runs (its lowering of our attention op, where there is one)."""
        a = b.artifact(fmt="onnx", graph=graph, precision="fp32")
        return str(args.bundle / a.get("lowered", {}).get("onnxruntime", a["file"]))

    fp32 = {g: lowered(g) for g in spec.graphs}
    sym = {g: form(g, None) for g in spec.graphs}
    samples = card.data.samples(cfg, "evaluation", args.rigs, 0)

    def score(files: dict[str, str], optimization: str = "all") -> float:
        rts = {g: open_file("onnxruntime", f, b.graph_io(g), optimization=optimization) for g, f in files.items()}
        with Program(spec, rts, cfg) as prog:
            return float(evaluate(prog, card, samples)["value"])

    rows: dict[str, Any] = {}
    t0 = time.time()

    def row(name: str, files: dict[str, str], optimization: str = "all") -> None:
        rows[name] = score(files, optimization)
        print(f"{name}: L2 {rows[name]:.1f} %", flush=True)

    row("fp32", fp32)
    if all(sym.values()):
        for opt, label in (("all", "integer kernels"), ("disable", "Q/DQ as float arithmetic")):
            row(f"symmetric int8, every graph ({label})", sym, opt)
            row(f"symmetric int8, match only ({label})", {**fp32, "match": sym["match"]}, opt)
            row(f"symmetric int8, encode + step only ({label})", {**sym, "match": fp32["match"]}, opt)
    for variant, label in (("u8s8", "onnxruntime u8s8"), ("fp16", "tensorrt int8-fp16 emulation")):
        files = {g: form(g, variant) for g in spec.graphs}
        if all(files.values()):
            row(f"{label}, every graph", files)  # type: ignore[arg-type]

    # the match graph quantized again, one choice at a time, calibrated on the fp32 program's own crops
    crops: list[dict[str, Any]] = []
    rts = {g: open_file("onnxruntime", f, b.graph_io(g)) for g, f in fp32.items()}
    with Program(spec, rts, cfg) as prog:
        for s in card.data.samples(cfg, "calibration", 32, 0):
            prog.record(True)
            prog.reset()
            for frame in s:
                prog.step(card.preprocess(frame, cfg))
            crops += prog.record(False)["match"]
    calib = FeedSet(crops, "fp32 program's crops of 32 calibration rigs", "calibration",
                    [str(i) for i in range(len(crops))])
    model = onnx.load(fp32["match"], load_external_data=False)
    op = {n.name: n.op_type for n in model.graph.node}
    nodes = candidate_nodes(fp32["match"])
    stems = [n for n in nodes if op.get(n) == "Conv"][:2]
    head = [n for n in nodes if op.get(n) in ("Gemm", "MatMul")]
    variants = {"all nodes, minmax": ("minmax", []), "stems float": ("minmax", stems),
                "head float": ("minmax", head),
                "stems + head float (the body's 3 convs int8)": ("minmax", stems + head),
                "all nodes, percentile 99.999": ("percentile", []), "all nodes, entropy": ("entropy", [])}
    weights = b.manifest["model"].get("weights", {})
    trained = weights.get("trained") if isinstance(weights.get("trained"), dict) else {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, (method, exclude)) in enumerate(variants.items()):
            dst = str(Path(tmp) / f"match{i}.onnx")
            quantize_int8(fp32["match"], dst, calib, method=method, exclude=exclude)
            row(f"match requantized: {label}", {**fp32, "match": dst})
        dst = str(Path(tmp) / "inputs.onnx")
        quantize_int8(fp32["match"], dst, calib, quantize_outputs=False)
        row("match requantized: inputs only (outputs float), minmax", {**fp32, "match": dst})
        if trained.get("qat_scales"):
            from edge.calibration.qat_scales import check_scales, tensor_scales
            from edge.models.checkpoint import load_model

            model, _, _ = load_model(weights["checkpoint"])
            scales = check_scales(trained["qat_scales"], model, weights["checkpoint"])
            found, missed = tensor_scales(fp32["match"], card.graphs["match"].module(model), b.graph_io("match"),
                                          crops[:3], model, scales)
            print(f"trained scales on {len(found)} tensors; unmatched layers: {missed}")
            for outputs in (False, True):
                dst = str(Path(tmp) / f"trained{outputs}.onnx")
                quantize_int8(fp32["match"], dst, calib, tensor_scales=found, quantize_outputs=outputs)
                row(f"match requantized: trained scales, {'outputs rounded too' if outputs else 'inputs only'}",
                    {**fp32, "match": dst})
    doc = {"bundle": str(args.bundle), "checkpoint": weights.get("checkpoint"),
           "rigs": args.rigs, "range": "10 deg / 25 cm, evaluation seed stream", "metric": "L2 rate (%)",
           "one_rig": 100.0 / args.rigs, "stems": stems, "head": head, "rows": rows,
           "seconds": round(time.time() - t0, 1), "machine": machine()}
    atomic_write_text(args.out, jsonout.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
