"""Where the symmetric INT8 form (TensorRT's) should round: every Conv/MatMul/Gemm input *and* output, as ONNX
Runtime's quantizer places Q/DQ by default, or the inputs only, as TensorRT's placement guide recommends ("by
default, do not quantize the outputs of weighted operations") and quantization-aware training rounds.

For one bundle's program (any family with a card and data): each graph is quantized both ways from the same
calibration feeds (the fp32 program's own feeds on ``--calib`` calibration samples, as the export records
them), then

- the card's metric on ``--samples`` held-out samples, ONNX Runtime running each form with its integer kernels
  and with its graph optimisations off (every Q/DQ pair as float arithmetic: what the rounding alone does, the
  closest this CPU gets to what TensorRT computes);
- the program step's median time on ONNX Runtime and on OpenVINO reading the same QDQ file, interleaved rounds
  in this one process, beside fp32 (a ratio on this CPU, not TensorRT's speed: no GPU here).

    python benchmarks/int8_placement.py BUNDLE [--program NAME] [--samples 100] [--calib 32] [--rounds 20]
        [--out benchmarks/results/<family>_int8_placement.json]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from edge import jsonout

#: recorded calibration feeds kept per graph (evenly thinned past this)
MAX_FEEDS = 256


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--program", default=None, help="program (default: the bundle's first)")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import numpy as np

    import edge
    from edge.bench.machine import machine
    from edge.calibration.datasets import FeedSet
    from edge.calibration.quantize import quantize_int8
    from edge.files import atomic_write_text
    from edge.program import Program, bundle_programs, card_for_bundle, evaluate
    from edge.runtimes import open_file

    t0 = time.time()
    b = edge.Bundle.load(args.bundle)
    card = card_for_bundle(b)
    cfg = b.manifest["model"]["config"]
    pname = args.program or bundle_programs(b, card)[0].name
    spec = card.program(pname)

    def lowered(graph: str) -> str:
        """The fp32 graph ONNX Runtime runs (its lowering of our attention op, where there is one)."""
        a = b.artifact(fmt="onnx", graph=graph, precision="fp32")
        return str(args.bundle / a.get("lowered", {}).get("onnxruntime", a["file"]))

    fp32 = {g: lowered(g) for g in spec.graphs}
    rec: dict[str, list[dict[str, Any]]] = {g: [] for g in spec.graphs}
    rts = {g: open_file("onnxruntime", f, b.graph_io(g)) for g, f in fp32.items()}
    with Program(spec, rts, cfg) as prog:
        for s in card.data.samples(cfg, "calibration", args.calib, 0):
            prog.record(True)
            prog.reset()
            for frame in s:
                prog.step(card.preprocess(frame, cfg))
            for g, feeds in prog.record(False).items():
                rec[g] += feeds
    cal = {}
    for g, feeds in rec.items():
        keep = np.linspace(0, len(feeds) - 1, min(len(feeds), MAX_FEEDS)).round().astype(int)
        cal[g] = FeedSet([feeds[i] for i in keep], f"fp32 program's feeds on {args.calib} calibration samples",
                         "calibration", [str(i) for i in keep])
    samples = card.data.samples(cfg, "evaluation", args.samples, 0)
    probe = samples[0]

    def program(files: dict[str, str], backend: str, **opts: Any) -> Program:
        return Program(spec, {g: open_file(backend, f, b.graph_io(g), **opts) for g, f in files.items()}, cfg)

    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        forms = {"fp32": fp32}
        for label, outputs in (("inputs and outputs (ORT default)", True), ("inputs only (TensorRT guide)", False)):
            files = {}
            for g in spec.graphs:
                dst = str(Path(tmp) / f"{g}.{'io' if outputs else 'in'}.onnx")
                info = quantize_int8(fp32[g], dst, cal[g], quantize_outputs=outputs)
                files[g] = dst
                rows.setdefault(label, {}).setdefault("graphs", {})[g] = {
                    "quantize_linear": _count(dst, "QuantizeLinear"), "outputs_quantized": info["outputs_quantized"]}
            forms[label] = files
        for label, files in forms.items():
            r = rows.setdefault(label, {})
            for opt in ("all", "disable"):
                if label == "fp32" and opt == "disable":
                    continue
                with program(files, "onnxruntime", optimization=opt) as prog:
                    m = evaluate(prog, card, samples)
                r["metric" if opt == "all" else "metric_qdq_as_float"] = float(m["value"])
            print(label, {k: v for k, v in r.items() if k != "graphs"}, flush=True)
        # timing: every form on both runtimes, interleaved rounds, one held-out sample's frames per round
        progs = {}
        for label, files in forms.items():
            for backend in ("onnxruntime", "openvino"):
                try:
                    progs[(label, backend)] = program(files, backend)
                except Exception as e:  # a runtime this machine lacks: said, not fatal
                    rows[label][f"{backend}_skipped"] = str(e).splitlines()[0][:200]
        frames = [card.preprocess(f, cfg) for f in probe]
        times: dict[tuple[str, str], list[float]] = {k: [] for k in progs}
        for rnd in range(args.rounds + 2):
            for k, prog in progs.items():
                prog.reset()
                t = time.perf_counter()
                for f in frames:
                    prog.step(f)
                if rnd >= 2:  # two warm-up rounds
                    times[k].append((time.perf_counter() - t) * 1e3 / len(frames))
        for (label, backend), v in times.items():
            rows[label][f"{backend}_step_ms"] = round(float(np.median(v)), 3)
        for (label, backend), prog in progs.items():
            ref = rows["fp32"].get(f"{backend}_step_ms")
            if label != "fp32" and ref:  # no ratio where fp32 could not open on that runtime
                rows[label][f"{backend}_vs_fp32"] = round(ref / rows[label][f"{backend}_step_ms"], 3)
            prog.close()
    for label, r in rows.items():
        print(label, {k: v for k, v in r.items() if k != "graphs"})
    name = card.metric.name if card.metric else "metric"
    doc = {"bundle": str(args.bundle), "family": b.family, "program": pname, "samples": args.samples,
           "calibration_samples": args.calib, "metric": name, "rounds": args.rounds, "rows": rows,
           "seconds": round(time.time() - t0, 1), "machine": machine()}
    out = args.out or Path(__file__).parent / "results" / f"{b.family}_int8_placement.json"
    atomic_write_text(out, jsonout.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")


def _count(path: str, op: str) -> int:
    import onnx

    return sum(n.op_type == op for n in onnx.load(path, load_external_data=False).graph.node)


if __name__ == "__main__":
    main()
