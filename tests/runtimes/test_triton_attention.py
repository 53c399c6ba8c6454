"""The Triton flash-attention kernel == the numpy reference, run by Triton's CPU interpreter.

The kernel runs in a subprocess with TRITON_INTERPRET=1 (it must be set before triton is imported).
fp32 tolerance 1e-4 relative, fp16 1e-2 (DESIGN.md section 7).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

SCRIPT = r"""
import json, torch, numpy as np
from edge.runtimes.plugins.triton_attention import triton_attention
from edge.ops import attention_numpy
torch.manual_seed(0)
rows = []
for (b, h, lq, lk, d, dv) in [(1, 1, 1, 1, 4, 4), (1, 1, 5, 7, 8, 8), (2, 3, 70, 33, 16, 8), (1, 2, 9, 130, 24, 40)]:
    q, k, v = torch.randn(b, h, lq, d), torch.randn(b, h, lk, d), torch.randn(b, h, lk, dv)
    bmask = torch.rand(b, 1, lq, lk) > 0.3
    bmask[..., 0] = True
    empty = bmask.clone()
    empty[0, :, 0] = False  # a query with no key allowed: zeros, as SDPA gives (the online softmax was NaN)
    for name, kw in [("plain", {}), ("bool_mask", {"mask": bmask}), ("float_mask", {"mask": torch.randn(1, h, lq, lk)}),
                     ("bool_empty_row", {"mask": empty}),
                     ("qk_norm_scale", {"qk_norm": True, "scale": 0.7})]:
        ref = attention_numpy(q.numpy(), k.numpy(), v.numpy(),
                              **{a: (x.numpy() if hasattr(x, "numpy") else x) for a, x in kw.items()})
        for dt in ("float32", "float16"):
            t = getattr(torch, dt)
            kw_t = {a: (x.to(t) if hasattr(x, "dtype") and x.dtype.is_floating_point else x) for a, x in kw.items()}
            out = triton_attention(q.to(t), k.to(t), v.to(t), **kw_t)
            err = float(np.abs(out.float().numpy() - ref).max() / max(float(np.abs(ref).max()), 1e-12))
            rows.append({"shape": [b, h, lq, lk, d, dv], "case": name, "dtype": dt, "rel": err,
                         "out_dtype": str(out.dtype)})
print(json.dumps(rows))
"""


def test_triton_kernel_matches_numpy_in_interpreter() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(rows) == 4 * 5 * 2
    for row in rows:
        tol = 1e-4 if row["dtype"] == "float32" else 1e-2
        assert row["rel"] < tol, row
        assert row["out_dtype"] == f"torch.{row['dtype']}"
