#!/usr/bin/env bash
# GPU check for a machine with an NVIDIA GPU (and, for the TensorRT part, TensorRT + cuda-python or pycuda).
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]      (default: gpu_check_out; JSON -> benchmarks/results/gpu_check.json)
#
# 1. exports the default lane model with fp32, fp16 and QDQ int8 ONNX (attention auto: decomposed on TensorRT < 10.14)
# 2. TensorRT (when importable): `edge build` fp16 and int8 engines; parity of fp16 vs ONNX Runtime fp32
#    (max rel < 1e-2) and int8 on the task metric (TuSimple accuracy drop <= 1 point vs ONNX Runtime fp32)
# 3. latency (median / p99 over 200 runs, batch 1, whole clip): TensorRT fp16 / int8 vs PyTorch CUDA eager, and
#    the streaming program (encoder + temporal head on the ring buffer) per step on TensorRT fp16 / int8
# 4. the parts that need no TensorRT run on any CUDA machine: PyTorch CUDA eager latency, and the Triton
#    attention kernel vs torch SDPA (fp32 / fp16) on the GPU
# Exits non-zero when a check fails; prints what was skipped and why.
set -euo pipefail
OUT=${1:-gpu_check_out}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo "nvidia-smi not available"

if [ ! -f "$OUT/lane/manifest.json" ]; then
  edge-export lane --to onnx,tensorrt --precision fp32,fp16,int8 --calib synthetic --out "$OUT/lane"
fi
if $PY -c "import tensorrt" 2>/dev/null; then
  edge build "$OUT/lane" --backend tensorrt --precision fp16 --timing-cache "$OUT/timing.cache"  # every graph
  edge build "$OUT/lane" --backend tensorrt --precision int8 --timing-cache "$OUT/timing.cache"
else
  echo "SKIP TensorRT: $($PY -c 'import tensorrt' 2>&1 | tail -1)"
fi

"$PY" - "$OUT/lane" "${GPU_CHECK_JSON:-$HERE/results/gpu_check.json}" <<'PYEOF'
import sys, time
import numpy as np
import edge
from edge.program import evaluate, load_program

bundle, out_json = sys.argv[1], sys.argv[2]
b = edge.Bundle.load(bundle)
card = edge.get_card(b.family)
cfg = b.manifest["model"]["config"]
res = {"bundle": bundle, "checks": {}, "skipped": {}}
full = card.graphs["full"]
feeds = [full.example_inputs(cfg, 1, s) for s in range(8)]
ort = edge.load(b, backend="onnxruntime", graph="full")
ref = [ort.infer(f) for f in feeds]
samples = card.data.samples(cfg, "evaluation", 100, 0)
with load_program(b, "onnxruntime") as prog:
    ort_acc = evaluate(prog, card, samples)["value"]
res["ort_fp32_tusimple"] = ort_acc

def timeit(fn, n=200, warm=20):
    for _ in range(warm):
        fn()
    t = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); t.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": float(np.median(t)), "p99_ms": float(np.percentile(t, 99))}

failed = []
ok_trt, why = edge.runtimes.get_backend("tensorrt").is_available()
if ok_trt:
    for prec in ("fp16", "int8"):
        rt = edge.load(b, backend="tensorrt", graph="full", precision=prec)
        outs = [rt.infer(f) for f in feeds]
        rel = max(float(np.abs(o[k] - r[k]).max() / (np.abs(r[k]).max() + 1e-12)) for o, r in zip(outs, ref) for k in r)
        with load_program(b, "tensorrt", precision=prec) as prog:  # the streaming program, as edge run runs it
            acc = evaluate(prog, card, samples)["value"]
            step = card.preprocess(samples[0][-1], cfg)
            stream_latency = timeit(lambda: prog.step(step))
        entry = {"max_rel_vs_ort": rel, "tusimple": acc, "drop": ort_acc - acc,
                 "latency": timeit(lambda: rt.infer(feeds[0])), "stream_step_latency": stream_latency}
        entry["pass"] = (rel < 1e-2) if prec == "fp16" else (ort_acc - acc <= 1.0)
        res["checks"][f"tensorrt_{prec}"] = entry
        if not entry["pass"]:
            failed.append(prec)
        rt.close()
else:
    res["skipped"]["tensorrt"] = why

try:
    import torch
    if not torch.cuda.is_available():
        raise RuntimeError("torch.cuda.is_available() is False")
    from edge.models.checkpoint import load_model
    from edge.models import get_card
    module, _, _ = load_model(get_card("lane").default_checkpoint, expect_model="lane")
    module = module.cuda().eval()
    x = torch.from_numpy(feeds[0]["clip"]).cuda()
    def eager():
        with torch.no_grad():
            module(x)
        torch.cuda.synchronize()
    res["torch_cuda_eager"] = timeit(eager)
    res["torch_cuda_eager"]["device"] = torch.cuda.get_device_name(0)
    with torch.no_grad():
        y = [t.float().cpu().numpy() for t in module(x)]
    r0 = ref[0]
    res["torch_cuda_vs_ort_max_rel"] = max(float(np.abs(a - r0[k]).max() / np.abs(r0[k]).max()) for a, k in zip(y, r0))
    for name, c in res["checks"].items():
        c["speedup_vs_torch_cuda"] = res["torch_cuda_eager"]["median_ms"] / c["latency"]["median_ms"]
    # Triton attention kernel on the GPU vs torch SDPA
    from edge.runtimes.plugins.triton_attention import triton_attention
    kern = {}
    for dt, tol in ((torch.float32, 1e-4), (torch.float16, 2e-2)):
        q, k, v = (torch.randn(2, 4, 333, 64, device="cuda", dtype=dt) for _ in range(3))
        want = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float())
        got = triton_attention(q, k, v).float()
        rel = float((got - want).abs().max() / want.abs().max())
        t_tr = timeit(lambda: (triton_attention(q, k, v), torch.cuda.synchronize()))
        t_sd = timeit(lambda: (torch.nn.functional.scaled_dot_product_attention(q, k, v), torch.cuda.synchronize()))
        kern[str(dt)] = {"max_rel": rel, "pass": rel < tol, "triton": t_tr, "sdpa": t_sd}
        if rel >= tol:
            failed.append(f"triton {dt}")
    res["triton_attention"] = kern
except Exception as e:  # no CUDA torch / no GPU: say so
    res["skipped"]["torch_cuda"] = f"{type(e).__name__}: {e}"

from edge import jsonout
from edge.files import atomic_write_text
atomic_write_text(out_json, jsonout.dumps(res, indent=2) + "\n")
print(jsonout.dumps(res, indent=2))
print("skipped:", res["skipped"] or "nothing")
sys.exit(1 if failed else 0)
PYEOF
