"""ONNX Runtime lowering of EdgeAttention: the 3-D ``Attention`` form (head Transposes folded away) vs the
4-D form (the Transposes kept), per plugin graph of the given bundles, interleaved in one run.

Both lowerings of each graph open as ONNX Runtime sessions (2 threads, spinning off, as `edge run` opens
them); rounds alternate between them after a warm-up, on the same random feeds, and the outputs are
compared. Bundles must be exported in `plugin` mode (the default `auto` on ONNX Runtime >= 1.23).

    python benchmarks/ort_lowering.py BUNDLE [BUNDLE ...] [--rounds 8] [--out benchmarks/results/ort_lowering.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge import jsonout


def _session(model: Any, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _feeds(sess: Any) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    kinds = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_}
    out = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        dt = kinds.get(i.type, np.float32)
        out[i.name] = (rng.standard_normal(shape) if dt == np.float32 else np.ones(shape)).astype(dt)
    return out


def compare(path: Path, rounds: int, per_round: int, threads: int) -> dict[str, Any]:
    """Median ms per call of both lowerings of one plugin graph, their transposes and max output difference."""
    import onnx

    from edge.runtimes.plugins.ort_lowering import lower_edge_attention

    src = onnx.load(str(path))
    forms = {"4d": lower_edge_attention(src, fold_head_transposes=False), "3d": lower_edge_attention(src)}
    sess = {k: _session(m, threads) for k, m in forms.items()}
    feeds = _feeds(sess["4d"])
    outs = {k: s.run(None, feeds) for k, s in sess.items()}
    diff = max(float(np.abs(a - b).max()) for a, b in zip(outs["4d"], outs["3d"], strict=True))
    times: dict[str, list[float]] = {k: [] for k in sess}
    for _ in range(rounds):
        for k, s in sess.items():
            s.run(None, feeds)
            t = time.perf_counter()
            for _ in range(per_round):
                s.run(None, feeds)
            times[k].append((time.perf_counter() - t) / per_round * 1e3)
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"graph": str(path), "transposes": {k: sum(n.op_type == "Transpose" for n in m.graph.node)
                                               for k, m in forms.items()},
            "attentions": sum(n.op_type == "Attention" for n in forms["3d"].graph.node),
            "ms_4d": round(med["4d"], 3), "ms_3d": round(med["3d"], 3),
            "speedup": round(med["4d"] / med["3d"], 3), "max_abs_diff": diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", type=Path, nargs="+")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--per-round", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ort_lowering.json")
    args = ap.parse_args()

    import onnx

    import edge
    from edge.bench.machine import machine
    from edge.files import atomic_write_text

    rows = []
    for root in args.bundles:
        b = edge.Bundle.load(root)
        for name, meta in b.manifest["files"].items():
            if meta.get("role") != "onnx" or "." in Path(name).stem:
                continue  # the fp32 plugin graphs only (not fp16 / int8 copies)
            if not any(n.op_type == "EdgeAttention" for n in onnx.load(str(root / name)).graph.node):
                continue
            row = {"bundle": b.family, **compare(root / name, args.rounds, args.per_round, args.threads)}
            t = row["transposes"]
            print(f"{b.family:>12} {name:<16} {row['attentions']} attention(s), transposes {t['4d']} -> {t['3d']}: "
                  f"{row['ms_4d']:.2f} -> {row['ms_3d']:.2f} ms ({row['speedup']:.3f}x), "
                  f"max |diff| {row['max_abs_diff']:.1e}", flush=True)
            rows.append(row)
    atomic_write_text(args.out, jsonout.dumps({"machine": machine(), "threads": args.threads, "rows": rows}, indent=1)
                      + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
