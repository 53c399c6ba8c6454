"""Overlay drawing and a video writer that works with OpenCV 4.x (Jetson) and 5.x (pip).

pip's OpenCV has no H.264 encoder, so the writer uses mp4v in an .mp4 container and falls back to
MJPG/.avi if that cannot open. The file is written under a temporary name and renamed on close, so
an interrupted run never leaves a truncated video that looks complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import DataError

COLORS = [(255, 80, 80), (80, 255, 80), (80, 80, 255), (0, 220, 255), (255, 0, 255), (255, 255, 0)]


def draw_lanes(img: np.ndarray, points: list[np.ndarray], slots: list[int], text: str = "") -> np.ndarray:
    """A copy of ``img`` with each lane drawn in its slot's colour, plus an optional caption."""
    import cv2

    out = img.copy()
    scale = max(1, img.shape[1] // 640)
    for pts, s in zip(points, slots):
        p = np.round(pts).astype(np.int32)
        cv2.polylines(out, [p.reshape(-1, 1, 2)], False, COLORS[s % len(COLORS)], 2 * scale, cv2.LINE_AA)
        for x, y in p:
            cv2.circle(out, (int(x), int(y)), 2 * scale, COLORS[s % len(COLORS)], -1, cv2.LINE_AA)
    if text:
        cv2.putText(out, text, (10, 30 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, (255, 255, 255), 2 * scale)
    return out


class VideoWriter:
    """Atomic video writer: ``with VideoWriter(path, fps) as w: w.write(frame)``."""

    def __init__(self, path: str | os.PathLike[str], fps: float) -> None:
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self._w: Any = None
        self._tmp: Path | None = None

    def _open(self, shape: tuple[int, ...]) -> None:
        import cv2

        h, w = shape[:2]
        for fourcc, suffix in (("mp4v", self.path.suffix or ".mp4"), ("MJPG", ".avi")):
            tmp = self.path.with_name(f".{self.path.stem}.partial{suffix}")
            wr = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), self.fps, (w, h))
            if wr.isOpened():
                self._w, self._tmp = wr, tmp
                if suffix != (self.path.suffix or ".mp4"):
                    self.path = self.path.with_suffix(suffix)
                return
            wr.release()
        raise DataError(f"{self.path}: OpenCV cannot open a video writer (tried mp4v and MJPG)")

    def write(self, frame: np.ndarray) -> None:
        if self._w is None:
            self._open(frame.shape)
        self._w.write(frame)

    def close(self, commit: bool = True) -> None:
        if self._w is not None:
            self._w.release()
            assert self._tmp is not None
            if commit:
                os.replace(self._tmp, self.path)
            elif self._tmp.exists():
                self._tmp.unlink()
            self._w = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.close(commit=exc_type is None)
