"""``edge run``: a bundle over a video file or a synthetic drive -> overlay video + lanes JSONL.

Minimal form of the stream loop: one thread, every frame processed (no drops). The result files
are written under temporary names and renamed when the run completes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import DataError, ModelError


def run_run(bundle_path: Path, source: str, out: Path, backend: str, max_frames: int, threads: int,
            json_out: bool) -> dict[str, Any]:
    from rich.console import Console

    from edge.bundle import Bundle, atomic_path
    from edge.data.tusimple import TuSimpleSample, evaluate
    from edge.models import get_card
    from edge.stream.clip_runner import ClipRunner
    from edge.stream.overlay import VideoWriter, draw_lanes
    from edge.stream.sources import parse_source, synthetic_frames, video_frames

    console = Console(stderr=True)
    bundle = Bundle.load(bundle_path)
    card = get_card(bundle.model_name)
    if "decode" not in card.extras:
        raise ModelError(f"{bundle_path}: model '{card.name}' has no decoder for edge run yet")
    cfg = bundle.manifest["model"]["config"]
    kind, arg = parse_source(source)
    if kind == "synthetic":
        n, hw = arg
        frames = synthetic_frames(n if not max_frames else min(n, max_frames), hw, slots=cfg["slots"])
        fps_in = 30.0
    else:
        frames, fps_in = video_frames(arg)
    runner = ClipRunner(bundle, backend, threads=threads)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        runner.close()
        raise DataError(f"{out}: cannot create output folder ({e.strerror})") from None
    preprocess, decode = card.extras["preprocess"], card.extras["decode"]
    lat: list[float] = []
    preds, gts = [], []
    count = 0
    t_start = time.perf_counter()
    try:
        with atomic_path(out / "lanes.jsonl") as jtmp, jtmp.open("w") as jf, \
                VideoWriter(out / "overlay.mp4", fps_in) as vw:
            for i, img, gt in frames:
                if max_frames and i >= max_frames:
                    break
                t0 = time.perf_counter()
                res = runner.push(preprocess(img, cfg))
                dt = time.perf_counter() - t0
                lat.append(dt)
                hs = np.asarray(gt["h_samples"]) if gt else None
                d = decode(res["loc"][0], res["exist"][0], cfg, img.shape[:2], hs)
                rec = {"frame": i, "infer_ms": round(dt * 1e3, 3), "slots": d["slots"],
                       "lanes": [np.round(p, 1).tolist() for p in d["points"]]}
                if gt:
                    rec["tusimple"] = {"lanes": d["lanes"], "h_samples": d["h_samples"]}
                    preds.append(TuSimpleSample(f"frame/{i}", d["lanes"], d["h_samples"], dt * 1e3))
                    gts.append(TuSimpleSample(f"frame/{i}", gt["lanes"], gt["h_samples"]))
                jf.write(json.dumps(rec) + "\n")
                vw.write(draw_lanes(img, d["points"], d["slots"], f"{backend} {dt * 1e3:.1f} ms"))
                count += 1
    finally:
        runner.close()
    if count == 0:
        raise DataError(f"{source}: no frames were processed")
    wall = time.perf_counter() - t_start
    lat_ms = np.asarray(lat) * 1e3
    summary: dict[str, Any] = {
        "bundle": str(bundle_path), "backend": backend, "source": source, "frames": count,
        "streaming": runner.streaming, "infer_ms_median": float(np.median(lat_ms)),
        "infer_ms_p90": float(np.percentile(lat_ms, 90)), "infer_fps": float(1e3 / np.median(lat_ms)),
        "wall_fps": count / wall, "overlay": str(vw.path), "jsonl": str(out / "lanes.jsonl"),
    }
    if gts:
        summary["tusimple"] = evaluate(preds, gts)
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    if json_out:
        print(json.dumps(summary))
    else:
        acc = f", TuSimple accuracy {100 * summary['tusimple']['accuracy']:.1f}%" if gts else ""
        console.print(f"{count} frames on {backend} ({'streaming' if runner.streaming else 'clip'}): "
                      f"infer median {summary['infer_ms_median']:.1f} ms, p90 {summary['infer_ms_p90']:.1f} ms"
                      f"{acc}\nwrote {summary['overlay']} and {summary['jsonl']}")
    return summary
