"""An INT8 OpenVINO IR of the lane whole-clip graph given its frames channels-last (not adopted; README, issue
#16's note): does an NHWC input save the NCHW -> NHWC reorder in front of the first int8 convolution?

Why it was tried: OpenVINO's per-layer counters (``benchmarks/openvino_profile.py``) put 0.19 ms of the INT8 clip's
~3.9 ms in reordering the float input for the first int8 convolution, which computes channels-last. The same IR is
compiled twice (2 threads, latency hint, the given float-precision hint): as it is, and with OpenVINO's
PrePostProcessor declaring the tensor NDHWC over the model's NDCHW (a transpose OpenVINO may fold into that reorder).
Each is fed the same frames in its own layout, timed in interleaved rounds (``edge.bench.interleave``). Prints
the medians, their ratio and the largest output difference.

    python benchmarks/experiments/lane_nhwc_input.py BUNDLE/model.nncf-int8.xml [--rounds 300] [--hint bf16]
        [--out FILE.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edge import jsonout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ir", type=Path, help="a whole-clip INT8 IR with one 5-D input (batch, time, channels, H, W)")
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--hint", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    from edge.bench.interleave import interleaved_ms
    from edge.bench.machine import machine

    core = ov.Core()
    plain = core.read_model(str(args.ir))
    shape = list(plain.inputs[0].get_partial_shape().to_shape())
    if len(shape) != 5:
        raise SystemExit(f"{args.ir}: input of shape {shape}, expected (batch, time, channels, H, W)")
    ppp = PrePostProcessor(core.read_model(str(args.ir)))
    ppp.input().tensor().set_layout(ov.Layout("NDHWC"))
    ppp.input().model().set_layout(ov.Layout("NDCHW"))
    nhwc = ppp.build()
    cfg = {"INFERENCE_PRECISION_HINT": args.hint, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 2}
    reqs = {"NCHW": core.compile_model(plain, "CPU", cfg).create_infer_request(),
            "NHWC": core.compile_model(nhwc, "CPU", cfg).create_infer_request()}
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    feeds = {"NCHW": x, "NHWC": np.ascontiguousarray(x.transpose(0, 1, 3, 4, 2))}
    outs = {k: next(iter(r.infer({0: feeds[k]}).values())).copy() for k, r in reqs.items()}
    for k, r in reqs.items():
        for _ in range(20):
            r.infer({0: feeds[k]})
    ms = interleaved_ms([lambda k=k, r=r: r.infer({0: feeds[k]}) for k, r in reqs.items()], args.rounds)
    med = {k: round(float(np.median(v)), 3) for k, v in zip(reqs, ms, strict=True)}
    row = {"median_ms": med, "speedup_of_nhwc": round(med["NCHW"] / med["NHWC"], 3),
           "max_output_diff": float(np.abs(outs["NCHW"] - outs["NHWC"]).max())}
    print(row)
    if args.out is not None:
        doc = {"what": __doc__.splitlines()[0], "ir": str(args.ir), "hint": args.hint, "rounds": args.rounds,
               "machine": machine(), "row": row}
        args.out.write_text(jsonout.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
