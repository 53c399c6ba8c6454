"""A real-time video through `edge run --realtime --policy latest`: frames dropped on a quiet machine and with
one core kept busy by another process (which this script starts and stops itself), per configuration.

The video: 960x540 at 25 fps, 221 frames, made from the real TuSimple frames in ../shared/data/real (cycled;
the family's synthetic roads when that folder is absent), written once to a temporary mp4. Each
configuration runs the `edge run` command a user would type (a subprocess), quiet, then while a
busy-loop process (bounded: it exits after the run's length + 30 s, and is killed when the run ends)
keeps one of the two cores at 100 %; each case ``--repeats`` times (medians, and every run's drops).

    python benchmarks/realtime_video.py [--bundle DIR] [--repeats 3] [--only onnxruntime/fp32/numpy,...]
        [--threads 2,1] [--out benchmarks/results/realtime_video.json]

Default bundle: the shipped lane model exported with int8 and OpenVINO (about a minute).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from real_data import REAL_DATA  # $EDGE_REAL_DATA or ../shared/data/real (a sibling script)

from edge import jsonout

REAL = REAL_DATA / "lane"
FPS, FRAMES, SIZE = 25.0, 221, (960, 540)
#: (backend, precision, preprocess): the reference beside the fastest forms; OpenVINO fp32 is `edge run`'s
#: default on a CPU without int8 dot products (INT8 is no faster there)
CONFIGS = [("onnxruntime", "fp32", "numpy"), ("onnxruntime", "int8", "numpy"), ("openvino", "int8", "engine"),
           ("openvino", "fp32", "engine")]
BUSY = "import sys, time\nend = time.time() + float(sys.argv[1])\nwhile time.time() < end:\n    pass\n"


def _frames() -> tuple[list[np.ndarray], str]:
    import cv2

    files = sorted(REAL.glob("tusimple_lanenet/**/*.jpg")) + sorted(REAL.glob("tusimple_lstr_train/**/*.jpg"))
    if files:
        return [cv2.resize(cv2.imread(str(f)), SIZE, interpolation=cv2.INTER_AREA) for f in files], \
            f"{len(files)} real TuSimple frames, cycled"
    from edge.models.lane.samples import synthetic

    return [t["camera"][0] for t in synthetic(30, SIZE[::-1])], "the lane family's synthetic roads"


def _video(path: Path) -> str:
    import cv2

    frames, what = _frames()
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    for i in range(FRAMES):
        vw.write(frames[i % len(frames)])
    vw.release()
    return what


def _run(bundle: Path, video: Path, cfg: tuple[str, str, str, int], work: Path, busy: bool) -> dict[str, Any]:
    backend, precision, preprocess, threads = cfg
    load = None
    if busy:
        load = subprocess.Popen([sys.executable, "-c", BUSY, str(FRAMES / FPS + 30)])
        time.sleep(0.5)
    try:
        r = subprocess.run([sys.executable, "-m", "edge.cli.main", "run", str(bundle), "--source", str(video),
                            "--realtime", "--policy", "latest", "--backend", backend, "--precision", precision,
                            "--preprocess", preprocess, "--threads", str(threads), "--json", "--jsonl",
                            str(work / "r.jsonl")], capture_output=True, text=True, timeout=300)
    finally:
        if load is not None:
            load.kill()
            load.wait()
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1:]}
    s = json.loads(r.stdout)
    dropped = int(s["counters"].get("dropped_camera", 0))
    return {"frames_done": s["frames"], "dropped": dropped, "dropped_pct": 100.0 * dropped / FRAMES,
            "e2e_p50_ms": s["end_to_end"]["p50_ms"], "e2e_p99_ms": s["end_to_end"]["p99_ms"],
            "infer_p50_ms": s["stages"]["infer"]["p50_ms"], "preprocess_p50_ms": s["stages"]["preprocess"]["p50_ms"],
            "cpu_ms_per_frame": s["cpu"]["ms_per_frame"], "cores": s["cpu"]["cores"],
            **({"engine_prepare_ms": s["engine_prepare_ms"]} if "engine_prepare_ms" in s else {})}


def _repeat(bundles: list[Path], video: Path, cfg: tuple[str, str, str, int], work: Path, busy: bool, n: int
            ) -> list[dict[str, Any]]:
    """``n`` runs of one case per bundle, the bundles alternating run by run (so a machine that drifts hits
    them alike): per bundle, the median of each figure and every run's drops (a busy core makes them vary
    from run to run: one run is not a measurement)."""
    runs: list[list[dict[str, Any]]] = [[] for _ in bundles]
    for r in range(n):
        for i in (range(len(bundles)) if r % 2 == 0 else reversed(range(len(bundles)))):
            runs[i].append(_run(bundles[i], video, cfg, work, busy))
    return [_summary(one) for one in runs]


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    bad = [r for r in runs if "error" in r]
    if bad:
        return bad[0]
    keys = sorted({k for r in runs for k in r})
    out: dict[str, Any] = {}
    for k in keys:  # a figure some runs lack (or have as None: no frame done) is the median of the others
        vals = [r[k] for r in runs if r.get(k) is not None]
        out[k] = float(np.median(vals)) if vals else None
    out["dropped"] = int(statistics.median_low([r["dropped"] for r in runs]))  # a run's count, even n too
    out["dropped_pct"] = 100.0 * out["dropped"] / FRAMES
    out["dropped_runs"] = [r["dropped"] for r in runs]
    return out


def _line(res: dict[str, Any]) -> str:
    if "error" in res:
        return f"error {res['error']}"
    return (f"dropped {res['dropped']}/{FRAMES} ({res['dropped_pct']:.1f} %; each run {res.get('dropped_runs')}), "
            f"e2e p99 {res['e2e_p99_ms']:.1f} ms, infer p50 {res['infer_p50_ms']:.1f} ms, CPU "
            f"{res['cpu_ms_per_frame']:.1f} ms/frame")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=3, help="runs per case (medians are reported)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "realtime_video.json")
    ap.add_argument("--only", default=None, help="comma-separated BACKEND/PRECISION/PREPROCESS (default: "
                    + ", ".join("/".join(c) for c in CONFIGS) + ")")
    ap.add_argument("--compare", type=Path, default=None,
                    help="a second bundle run in the same cases, alternating run by run with the first")
    ap.add_argument("--threads", default="2", help="comma-separated runtime thread counts, each a row (default 2)")
    args = ap.parse_args()
    configs = [tuple(c.split("/")) for c in args.only.split(",")] if args.only else CONFIGS
    if any(len(c) != 3 for c in configs):
        ap.error(f"--only {args.only!r}: expected BACKEND/PRECISION/PREPROCESS, comma-separated")
    threads = [int(t) for t in args.threads.split(",")]

    import edge
    from edge.bench.machine import machine
    from edge.files import atomic_write_text

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle = args.bundle
        if bundle is None:
            bundle = work / "lane"
            edge.export_card("lane", bundle, programs=["stream"], targets=("onnx", "openvino"),
                             precisions=["fp32", "int8"])
        video = work / "real_960x540_25fps.mp4"
        made_from = _video(video)
        rows = []
        bundles = [bundle, *([args.compare] if args.compare else [])]
        for cfg in [(*c, t) for c in configs for t in threads]:
            row: dict[str, Any] = {"backend": cfg[0], "precision": cfg[1], "preprocess": cfg[2], "threads": cfg[3]}
            for case, busy in (("quiet", False), ("one_core_busy", True)):
                res, *other = _repeat(bundles, video, cfg, work, busy, args.repeats)
                row[case] = res
                if other:
                    row.setdefault("compare", {})[case] = other[0]
                for tag, r in (("", res), *((" (--compare)", o) for o in other)):
                    print(f"{cfg[0]:<12} {cfg[1]:<5} {cfg[2]:<7} {cfg[3]} thr {case:<14} {_line(r)}{tag}", flush=True)
            rows.append(row)
        report = {"what": f"edge run --source VIDEO --realtime --policy latest, {SIZE[0]}x{SIZE[1]} at {FPS:g} fps, "
                          f"{FRAMES} frames ({made_from}); 'one_core_busy': a busy-loop process beside the run",
                  "targets": "quiet: 0 dropped; one core busy: <= 10 % dropped",
                  "bundle": str(args.bundle or "the shipped lane model, exported here"),
                  **({"compare": str(args.compare)} if args.compare else {}), "machine": machine(), "rows": rows}
        atomic_write_text(args.out, jsonout.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
