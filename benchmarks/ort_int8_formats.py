"""Which INT8 form pays on ONNX Runtime on this CPU: the same graphs quantized S8S8 symmetric (edge's QDQ
default, the form TensorRT requires: zero points 0) and U8S8 (uint8 asymmetric activations, int8 symmetric
weights: the form ORT's x86 kernels run fastest, VPMADDUBSW / VNNI), each graph of a family's streaming
program calibrated on what the fp32 program fed it, timed interleaved in one process against fp32.

    python benchmarks/ort_int8_formats.py [BUNDLE] [--program stream] [--calib 8] [--rounds 60]

BUNDLE: an fp32 bundle exported with --attention decomposed (default: the shipped lane model exported so to a
temporary folder, opset 20); a bundle with plugin or onnx attention is refused (see ``_check_attention``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge import jsonout

ALL_OPS, CONV = ("Conv", "MatMul", "Gemm"), ("Conv",)
#: form -> (activation type, extra options, op types quantized)
FORMS = {"s8s8_symmetric": ("QInt8", {"ActivationSymmetric": True, "WeightSymmetric": True}, ALL_OPS),
         "u8s8_asymmetric": ("QUInt8", {"WeightSymmetric": True}, ALL_OPS),
         "u8s8_conv_only": ("QUInt8", {"WeightSymmetric": True}, CONV),
         "s8s8_conv_only": ("QInt8", {"ActivationSymmetric": True, "WeightSymmetric": True}, CONV)}


def _program(card: Any, cfg: dict[str, Any], program: str, files: dict[str, str]) -> Any:
    """The family's program over these ONNX files on ONNX Runtime."""
    from edge.program import Program
    from edge.runtimes import open_file

    spec = card.program(program)
    return Program(spec, {g: open_file("onnxruntime", files[g], card.graphs[g].io(cfg)) for g in spec.graphs}, cfg)


def _record(card: Any, cfg: dict[str, Any], program: str, files: dict[str, str],
            samples: list) -> dict[str, list[dict[str, np.ndarray]]]:
    """What each graph of the fp32 program receives over ``samples`` (the program's own recorder)."""
    with _program(card, cfg, program, files) as prog:
        return prog.graph_feeds(card, samples)


def _file(bundle: Any, card: Any, g: str) -> Path:
    stem = card.graphs[g].stem
    lowered = bundle.path / f"{stem}.ort.onnx"
    return lowered if lowered.is_file() else bundle.path / f"{stem}.onnx"


def _check_attention(bundle: Any) -> None:
    """ONNX Runtime's quantizer writes an invalid U8 QuantizeLinear (output_dtype INT8 beside a UINT8 zero point)
    into the opset-23 graphs ORT runs a plugin-attention bundle from: such a bundle is refused in one line."""
    mode = bundle.manifest.get("attention", {}).get("mode")
    if mode not in (None, "decomposed", "none"):
        raise SystemExit(f"{bundle.path}: exported with attention '{mode}'; this benchmark quantizes with ONNX "
                         "Runtime's own quantizer, which breaks the opset-23 graphs ORT runs such a bundle from: "
                         "export it with --attention decomposed (or give no bundle)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", nargs="?", default=None)
    ap.add_argument("--program", default="stream")
    ap.add_argument("--calib", type=int, default=8, help="calibration samples (sequences)")
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval", type=int, default=40, help="held-out samples scored with the family's metric")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ort_int8_formats.json")
    args = ap.parse_args()

    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    import edge
    from edge.bench.machine import int8_gemm_peak_gops, machine
    from edge.files import atomic_write_text

    with tempfile.TemporaryDirectory() as tmp:
        path = args.bundle
        if path is None:
            path = Path(tmp) / "lane"
            # decomposed attention (opset 20): ORT's quantizer writes an invalid U8 QuantizeLinear
            # (output_dtype INT8 beside a UINT8 zero point) into the opset-23 lowered graphs
            edge.export_card("lane", path, attention="decomposed")
        b = edge.Bundle.load(path)
        _check_attention(b)
        card = edge.get_card(b.family)
        cfg = b.manifest["model"]["config"]
        spec = card.program(args.program)
        fp32 = {g: str(_file(b, card, g)) for g in spec.graphs}
        rec = _record(card, cfg, args.program, fp32, card.data.samples(cfg, "calibration", args.calib, 0))

        class Reader(CalibrationDataReader):
            def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
                self.feeds, self.i = feeds, 0

            def get_next(self) -> dict[str, np.ndarray] | None:
                self.i += 1
                return self.feeds[self.i - 1] if self.i <= len(self.feeds) else None

        files: dict[str, dict[str, str]] = {"fp32": fp32}
        for form, (act, extra, ops) in FORMS.items():
            files[form] = {}
            for g in spec.graphs:
                dst = str(Path(tmp) / f"{g}.{form}.onnx")
                quantize_static(files["fp32"][g], dst, Reader(rec[g]), quant_format=QuantFormat.QDQ,
                                per_channel=True, op_types_to_quantize=list(ops),
                                activation_type=getattr(QuantType, act), weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.MinMax, extra_options=extra)
                files[form][g] = dst
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = {k: {g: ort.InferenceSession(f, so, providers=["CPUExecutionProvider"]) for g, f in v.items()}
                for k, v in files.items()}
        probe = {g: rec[g][len(rec[g]) // 2] for g in spec.graphs}
        times: dict[str, dict[str, list[float]]] = {k: {g: [] for g in spec.graphs} for k in sess}
        order = list(sess)
        for r in range(args.rounds + 3):
            for k in order if r % 2 == 0 else order[::-1]:
                for g, s in sess[k].items():
                    t0 = time.perf_counter()
                    s.run(None, probe[g])
                    if r >= 3:
                        times[k][g].append((time.perf_counter() - t0) * 1e3)
        rows = []
        ref = {g: sess["fp32"][g].run(None, probe[g]) for g in spec.graphs}
        for k in sess:
            per = {g: float(np.median(times[k][g])) for g in spec.graphs}
            err = max(float(np.abs(o - r).max() / max(np.abs(r).max(), 1e-12))
                      for g in spec.graphs for o, r in zip(sess[k][g].run(None, probe[g]), ref[g], strict=True))
            rows.append({"form": k, "graph_ms": per, "step_ms": sum(per.values()), "max_rel_err_vs_fp32": err})
        from edge.program import evaluate

        held_out = card.data.samples(cfg, "evaluation", args.eval, 0)
        for r in rows:
            with _program(card, cfg, args.program, files[r["form"]]) as prog:
                r["metric"] = float(evaluate(prog, card, held_out)["value"])
        base = rows[0]["step_ms"]
        for r in rows:
            r["speedup_vs_fp32"] = base / r["step_ms"]
            per = ", ".join(f"{g} {v:.2f}" for g, v in r["graph_ms"].items())
            print(f"{r['form']:<16} step {r['step_ms']:6.2f} ms ({per})  x{r['speedup_vs_fp32']:.2f} vs fp32  "
                  f"max rel err {r['max_rel_err_vs_fp32']:.3f}  {card.metric.name} {r['metric']:.2f}")
        report = {"what": f"{b.family} '{args.program}' graphs, ONNX Runtime {ort.__version__}, "
                          f"{args.threads} threads, median of {args.rounds} interleaved calls each on a recorded "
                          "mid-sequence feed; QDQ, per-channel weights, MinMax on "
                          f"{args.calib} calibration sequences; metric on {args.eval} held-out samples",
                  "machine": {**machine(), "int8_gemm_peak_gops": int8_gemm_peak_gops()}, "rows": rows}
        atomic_write_text(args.out, jsonout.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
