"""What computing the lane head's fusion at low resolution saves (``UpConcatConv`` against the plain 3x3
ConvBNAct of ``cat([upsample(tokens), skip])`` it replaced), on the shipped default checkpoint.

Usage: ``python benchmarks/lane_fusion.py [--rounds 30] [--out FILE]``

Both forms of the temporal graph (the one ``edge run`` calls once per frame) are exported to ONNX here
from the same weights (attention ``decomposed``, which both runtimes read as is) and run on ONNX
Runtime (2 threads, spinning off, as ``edge run``) and OpenVINO fp32 (2 threads and 1 thread,
unpinned), alternating in rounds in this process (``interleaved_ms``), on the same feeds; their outputs
are compared. The result is each one's median latency and the ratio, and (with the encoder, unchanged,
timed beside them) what it makes of a stream step (one encoder + one temporal call).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edge import jsonout


def plain_head(head: Any) -> Any:
    """A copy of ``head`` whose fusion convolves the upsampled concatenation (the form before)."""
    import copy

    import torch
    from torch.nn import functional as F

    class Plain(torch.nn.Module):
        def __init__(self, fuse: Any) -> None:
            super().__init__()
            self.fuse = fuse

        def forward(self, low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
            up = F.interpolate(low, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            return torch.nn.Sequential.forward(self.fuse, torch.cat([up, skip], 1))

    old = copy.deepcopy(head)
    old.fuse = Plain(old.fuse)
    return old


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    import onnxruntime as ort

    from edge.bench.interleave import interleaved_ms
    from edge.bench.machine import machine
    from edge.export.api import _fix_batch
    from edge.export.onnx_export import export_onnx
    from edge.models import get_card
    from edge.models.checkpoint import load_model
    from edge.models.lane import card as lane
    from edge.ops.attention import export_mode
    from edge.runtimes.openvino import OpenVinoRuntime

    card = get_card("lane")
    model, cfg, _ = load_model(card.checkpoints["default"], expect_model="lane")
    model.eval()
    io = _fix_batch(lane.io_temporal(cfg), 1)  # batch 1, as the stream program feeds it
    feeds = lane.example_temporal(cfg, 1, 0)
    # the encoder (unchanged) beside them: a stream step is one encoder call + one temporal call
    graphs = {"low_res_taps": (model.head, io, feeds), "plain": (plain_head(model.head), io, feeds),
              "encoder": (model.encoder, _fix_batch(lane.io_encoder(cfg), 1), lane.example_encoder(cfg, 1, 0))}
    calls, outs, names = [], {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (module, gio, gfeeds) in graphs.items():
            path = Path(tmp) / f"{name}.onnx"
            with export_mode("decomposed"):  # plain MatMul/Softmax attention: both runtimes read it as is
                export_onnx(module, gfeeds, gio, path)
            so = ort.SessionOptions()
            so.intra_op_num_threads = 2
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            outs[f"{name} ort"] = sess.run(None, gfeeds)
            calls.append(lambda s=sess, f=gfeeds: s.run(None, f))
            names.append(f"{name} onnxruntime 2 threads")
            for threads in (2, 1):
                rt = OpenVinoRuntime(str(path), gio, threads=threads)
                outs[f"{name} ov{threads}"] = list(rt.infer(gfeeds).values())
                calls.append(lambda r=rt, f=gfeeds: r.infer(f))
                names.append(f"{name} openvino fp32 {threads} thread{'s' if threads > 1 else ''}")
        times = interleaved_ms(calls, a.rounds)
    ref = outs["plain ort"]
    diff = {k: max(float(np.abs(x - y).max() / (np.abs(y).max() + 1e-12)) for x, y in zip(v, ref, strict=True))
            for k, v in outs.items() if not k.startswith("encoder")}
    p50 = {n: statistics.median(t) for n, t in zip(names, times, strict=True)}
    rows = []
    for n in names:
        if n.startswith("low_res_taps"):
            rt_name = n[len("low_res_taps "):]
            old, new, enc = p50["plain " + rt_name], p50[n], p50["encoder " + rt_name]
            rows.append({"runtime": rt_name, "plain_ms_p50": round(old, 3), "low_res_taps_ms_p50": round(new, 3),
                         "speedup": round(old / new, 3), "encoder_ms_p50": round(enc, 3),
                         "stream_step_speedup": round((enc + old) / (enc + new), 3)})
            print(jsonout.dumps(rows[-1]), flush=True)
    out = {"what": "lane default temporal graph (shipped weights, batch 1): the head's fusion as nine "
                   "low-resolution taps upsampled and shifted vs the 3x3 conv of the upsampled concatenation; "
                   "same process, interleaved rounds",
           "rounds": a.rounds, "max_rel_diff_vs_plain_onnxruntime": diff, "machine": machine(), "rows": rows}
    if a.out:
        a.out.write_text(jsonout.dumps(out, indent=1) + "\n")
    else:
        print(jsonout.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
