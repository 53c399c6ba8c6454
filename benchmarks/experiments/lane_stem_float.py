"""NNCF INT8 of the lane whole-clip graph with its 3-channel stem convolution left in float (not adopted; README,
issue #16's note): does skipping the input's quantization and its NCHW -> NHWC reorder pay for a float stem?

Why it was tried: OpenVINO's per-layer counters (``benchmarks/openvino_profile.py``) put 0.13 ms of the INT8 clip in
quantizing the float input and 0.19 ms in reordering it for the first int8 convolution, of ~3.9 ms in layers. Both
IRs are quantized the same way (NNCF, performance preset, transformer model type, the short MatMuls in float) from
the same random calibration inputs (the scales do not change the speed), compiled alike (2 threads, latency hint)
and timed in interleaved rounds of 5 calls, per float-precision hint. Prints the medians, their ratio, and the
largest output difference (a check that the ignored scope took effect).

    python benchmarks/experiments/lane_stem_float.py BUNDLE [--stem node_Conv_687/WithoutBiases] [--rounds 60]
        [--out FILE.json]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from edge import jsonout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--stem", default="node_Conv_687/WithoutBiases", help="the OpenVINO name of the stem convolution")
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import nncf
    import openvino as ov

    from edge.bench.machine import machine
    from edge.calibration.nncf_int8 import short_matmuls
    from edge.runtimes.openvino import read_model

    nncf.set_log_level(logging.ERROR)
    src = str(args.bundle / "model.onnx")
    probe = read_model(src)
    convs = [o.get_friendly_name() for o in probe.get_ordered_ops() if o.get_type_name() == "Convolution"]
    if args.stem not in convs:
        raise SystemExit(f"{args.stem}: not a convolution of {src} (its first ones: {convs[:3]})")
    name = probe.inputs[0].any_name
    shape = list(probe.inputs[0].get_partial_shape().to_shape())
    rng = np.random.default_rng(0)
    data = [rng.random(shape, dtype=np.float32) * 2 - 1 for _ in range(8)]

    def quantized(ignored: list[str]) -> object:
        m = read_model(src)
        names = [*ignored, *short_matmuls(m)]
        return nncf.quantize(m, nncf.Dataset(data), preset=nncf.QuantizationPreset.PERFORMANCE, subset_size=8,
                             model_type=nncf.ModelType.TRANSFORMER,
                             ignored_scope=nncf.IgnoredScope(names=names, validate=True) if names else None)

    models = {"int8": quantized([]), "int8, stem float": quantized([args.stem])}
    core = ov.Core()
    rows = {}
    for hint in ("f32", "bf16"):
        reqs = {k: core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY",
                                                 "INFERENCE_NUM_THREADS": 2}).create_infer_request()
                for k, m in models.items()}
        x = data[0]
        for r in reqs.values():
            for _ in range(20):
                r.infer({name: x})
        ms: dict[str, list[float]] = {k: [] for k in reqs}
        for _ in range(args.rounds):
            for k, r in reqs.items():
                t = time.perf_counter()
                for _ in range(5):
                    r.infer({name: x})
                ms[k].append((time.perf_counter() - t) / 5 * 1e3)
        outs = {k: next(iter(r.infer({name: x}).values())) for k, r in reqs.items()}
        med = {k: round(float(np.median(v)), 3) for k, v in ms.items()}
        rows[hint] = {"median_ms": med, "speedup_of_stem_float": round(med["int8"] / med["int8, stem float"], 3),
                      "max_output_diff": float(np.abs(outs["int8"] - outs["int8, stem float"]).max())}
        print(hint, rows[hint])
    if args.out is not None:
        doc = {"what": __doc__.splitlines()[0], "bundle": str(args.bundle), "stem": args.stem, "rounds": args.rounds,
               "machine": machine(), "rows": rows}
        args.out.write_text(jsonout.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
