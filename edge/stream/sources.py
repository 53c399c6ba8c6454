"""Minimal frame sources for ``edge run``: a video file (OpenCV) or synthetic road clips.

Each yields ``(index, bgr_frame, gt)`` where ``gt`` is the TuSimple-format lanes when known
(synthetic) and None otherwise. The threaded, reconnecting sources of the full loop build on these.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import DataError


def parse_source(spec: str) -> tuple[str, Any]:
    """'synthetic', 'synthetic:N' or 'synthetic:N:HxW' -> ("synthetic", (n, (h, w))); else a file path."""
    if spec == "synthetic" or spec.startswith("synthetic:"):
        parts = spec.split(":")
        try:
            n = int(parts[1]) if len(parts) > 1 and parts[1] else 60
            hw = tuple(int(v) for v in parts[2].lower().split("x")) if len(parts) > 2 else (720, 1280)
        except ValueError:
            raise DataError(f"bad synthetic source '{spec}' (use synthetic[:FRAMES[:HxW]])") from None
        if n < 1 or len(hw) != 2 or min(hw) < 32:
            raise DataError(f"bad synthetic source '{spec}' (frames >= 1, size >= 32x32)")
        return "synthetic", (n, hw)
    p = Path(spec)
    if not p.exists():
        raise DataError(f"{spec}: no such video file (or use --source synthetic)")
    if not p.is_file():
        raise DataError(f"{spec}: not a file")
    return "video", p


def synthetic_frames(n: int, hw: tuple[int, int], seed: int = 7,
                     slots: int = 6) -> Iterator[tuple[int, np.ndarray, Any]]:
    """One continuous synthetic drive of ``n`` frames with exact lane labels (TuSimple rows)."""
    from edge.data.synthetic_lane import TUSIMPLE_H_SAMPLES, generate_clip

    rng = np.random.default_rng(seed)
    rows = np.round(TUSIMPLE_H_SAMPLES * hw[0] / 720.0).astype(np.int64)
    done = 0
    while done < n:
        k = min(30, n - done)  # a new scene every 30 frames keeps variety in long runs
        clip = generate_clip(rng, height=hw[0], width=hw[1], frames=k, h_samples=rows, num_slots=slots)
        for t in range(k):
            gt = [[float(x) for x in lane] for lane in clip.lanes[t] if (lane >= 0).sum() >= 2]
            yield done + t, clip.frames[t], {"lanes": gt, "h_samples": [int(r) for r in rows]}
        done += k


def video_frames(path: Path) -> tuple[Iterator[tuple[int, np.ndarray, Any]], float]:
    """Open a video (checking it has a readable first frame now); returns the frame iterator and fps."""
    import os

    # FFmpeg prints its own diagnostics for broken files; our DataError is the one line the user sees.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: OpenCV cannot open this video (corrupt or unsupported codec)")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    ok, first = cap.read()
    if not ok or first is None:
        cap.release()
        raise DataError(f"{path}: video has no readable frames")

    def it() -> Iterator[tuple[int, np.ndarray, Any]]:
        try:
            i, frame = 0, first
            while frame is not None:
                yield i, frame, None
                ok, frame = cap.read()
                frame = frame if ok else None
                i += 1
        finally:
            cap.release()

    return it(), fps
