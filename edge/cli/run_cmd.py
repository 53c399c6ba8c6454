"""``edge run``: options -> :func:`edge.stream.run`, then a short human summary (or JSON)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from edge.errors import DataError


def run_run(bundle: Path, *, source: str, lidar: str | None, calib: Path | None, save: Path | None,
            jsonl: Path | None, stats: Path | None, out: Path | None, policy: str, backend: str, realtime: bool,
            max_frames: int, threads: int, display: bool, dump_points: Path | None, udp: str | None,
            sync_ms: float, live: bool | None, json_out: bool) -> dict[str, Any]:
    from rich.console import Console

    from edge.stream.api import run

    if policy not in ("auto", "latest", "block"):
        raise DataError(f"--policy '{policy}': use latest, block or auto")
    if out is None and not any((save, jsonl, stats, display, dump_points, udp)):
        out = Path("edge_run")
    if out is not None:
        if out.exists() and not out.is_dir():
            raise DataError(f"{out}: --out must be a folder")
        save = save or out / "overlay.mp4"
        jsonl = jsonl or out / "lanes.jsonl"
        stats = stats or out / "summary.json"
    console = Console(stderr=True)
    summary = run(bundle, source, lidar=lidar, calib=calib, save=save, jsonl=jsonl, stats=stats, policy=policy,
                  backend=backend, realtime=realtime, max_frames=max_frames, threads=threads, display=display,
                  dump_points=dump_points, udp=udp, sync_ms=sync_ms,
                  live=sys.stderr.isatty() if live is None else live)
    if summary["frames"] == 0:
        raise DataError(f"{source}: no frames were processed")
    if json_out:
        print(json.dumps(summary))
        return summary
    e2e, inf = summary["end_to_end"], summary["stages"]["infer"]
    task = summary["task"]
    acc = f", TuSimple accuracy {100 * task['tusimple']['accuracy']:.1f}%" if "tusimple" in task else ""
    drops = sum(v for k, v in summary["counters"].items() if k.startswith("dropped"))
    console.print(f"{summary['frames']} frames on {backend} ({summary['policy']}, {summary['fps']:.1f} fps): "
                  f"end-to-end p50 {e2e['p50_ms']:.1f} / p99 {e2e['p99_ms']:.1f} ms, infer p50 "
                  f"{inf['p50_ms']:.1f} ms, {drops} dropped{acc}"
                  f"{' (interrupted)' if summary['interrupted'] else ''}", highlight=False)
    if summary["outputs"]:
        console.print("wrote " + ", ".join(summary["outputs"].values()), highlight=False)
    return summary
