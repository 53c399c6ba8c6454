"""A KITTI object-style folder as a camera + LiDAR rig: ``image_2/*.png``, ``velodyne/*.bin``, ``calib/*.txt``.

Each index becomes two frames with the same ``t_capture_ns`` and ``seq`` (camera first, then lidar),
so the pipeline's timestamp matching pairs them exactly, and both carry ``meta["calib"]`` (a
:class:`~edge.stream.calib.Calibration`) and ``meta["index"]``: fusion models get the projection
with the data, not from a side channel. The folder is checked at ``open()`` (sub-folders, indices
present in all three, ``.bin`` sizes a multiple of 16 bytes = float32 x, y, z, reflectance); images
are read lazily with OpenCV. ``realtime`` paces the indices at ``fps`` like a live rig.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import DataError
from edge.stream.calib import Calibration
from edge.stream.frame import POINT_DTYPE, Frame, now_ns
from edge.stream.sources.base import Source

_SUBDIRS = ("image_2", "velodyne", "calib")


def read_bin(path: Path) -> np.ndarray:
    """KITTI ``.bin`` scan -> POINT_DTYPE (intensity = reflectance 0..1, ring 0, t 0)."""
    try:
        size = path.stat().st_size
    except OSError:
        raise DataError(f"{path}: no such LiDAR scan") from None
    if size % 16:
        raise DataError(f"{path}: {size} bytes is not a whole number of float32 (x, y, z, reflectance) points")
    raw = np.fromfile(path, dtype="<f4").reshape(-1, 4)
    pts = np.zeros(len(raw), POINT_DTYPE)
    pts["x"], pts["y"], pts["z"], pts["intensity"] = raw[:, 0], raw[:, 1], raw[:, 2], raw[:, 3]
    return pts


def read_image(path: Path) -> np.ndarray:
    """BGR uint8 image via OpenCV (imported here, so a LiDAR-only install never loads it)."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"{path}: unreadable image (missing, empty or not an image OpenCV can decode)")
    return img


class KittiSource(Source):
    """Camera + LiDAR frames from a KITTI object folder (e.g. ``.../object/training``).

    ``index`` limits it to one sample ("000114"); otherwise every index that has a scan, an image and
    a calibration, in sorted order. ``max_frames`` (0 = all) stops after that many samples (pairs).
    """

    sensors = ("camera", "lidar")

    def __init__(self, folder: str | Path, *, index: str | None = None, realtime: bool = False,
                 fps: float = 10.0, max_frames: int = 0) -> None:
        if fps <= 0:
            raise DataError(f"kitti:{folder}: fps must be > 0, got {fps}")
        self.folder = Path(folder)
        self.spec = f"kitti:{folder}"
        self.index = index
        self.realtime = realtime
        self.fps = fps
        self.max_frames = max_frames
        self.period_s = 1.0 / fps
        self.live = realtime
        self.reconnect = False
        self.indices: list[str] = []
        self._seq = 0
        self._calib: dict[str, Calibration] = {}

    def open(self) -> None:
        if not self.folder.is_dir():
            raise DataError(f"{self.folder}: no such KITTI folder")
        for sub in _SUBDIRS:
            if not (self.folder / sub).is_dir():
                raise DataError(f"{self.folder / sub}: missing KITTI sub-folder (need {', '.join(_SUBDIRS)})")
        if self.index is not None:
            indices = [self.index]
            for sub, ext in (("velodyne", ".bin"), ("image_2", ".png"), ("calib", ".txt")):
                f = self.folder / sub / f"{self.index}{ext}"
                if not f.is_file():
                    raise DataError(f"{f}: missing for KITTI index {self.index}")
        else:
            bins = {p.stem for p in (self.folder / "velodyne").glob("*.bin")}
            imgs = {p.stem for p in (self.folder / "image_2").glob("*.png")}
            cals = {p.stem for p in (self.folder / "calib").glob("*.txt")}
            indices = sorted(bins & imgs & cals)
            if not indices:
                raise DataError(f"{self.folder}: no KITTI index has velodyne/*.bin, image_2/*.png and calib/*.txt")
        for idx in indices:
            f = self.folder / "velodyne" / f"{idx}.bin"
            if f.stat().st_size % 16:
                raise DataError(f"{f}: {f.stat().st_size} bytes is not a whole number of float32 x, y, z, "
                                "reflectance points")
        self.indices = indices[:self.max_frames] if self.max_frames > 0 else indices

    def calibration(self, index: str) -> Calibration:
        cal = self._calib.get(index)
        if cal is None:
            cal = self._calib[index] = Calibration.from_kitti(self.folder / "calib" / f"{index}.txt")
        return cal

    def __iter__(self) -> Iterator[Frame]:
        if not self.indices:
            self.open()
        t_next = time.monotonic()
        for idx in self.indices:
            if self.realtime:
                delay = t_next - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                t_next = max(t_next + self.period_s, time.monotonic() - self.period_s)
            calib = self.calibration(idx)
            image = read_image(self.folder / "image_2" / f"{idx}.png")
            points = read_bin(self.folder / "velodyne" / f"{idx}.bin")
            h, w = image.shape[:2]
            if calib.image_size is None:
                calib = Calibration(calib.P, calib.T_lidar_to_cam, (h, w), calib.source)
            t = now_ns()
            meta: dict[str, Any] = {"calib": calib, "index": idx}
            yield Frame(image, t, self._seq, "camera", dict(meta))
            yield Frame(points, t, self._seq, "lidar", dict(meta))
            self._seq += 1


def kitti_source(spec: str, *, realtime: bool = False, max_frames: int = 0) -> KittiSource:
    """``kitti:FOLDER[,index=000114][,fps=10]`` -> :class:`KittiSource`."""
    body = spec[len("kitti:"):] if spec.startswith("kitti:") else spec
    parts = re.split(r",(?=\w+=)", body)
    folder, opts = parts[0], {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        opts[k.strip()] = v.strip()
    if not folder:
        raise DataError(f"{spec}: no folder; expected kitti:FOLDER[,index=000114][,fps=10]")
    unknown = set(opts) - {"index", "fps"}
    if unknown:
        raise DataError(f"{spec}: unknown option {sorted(unknown)[0]!r}; expected kitti:FOLDER[,index=000114][,fps=10]")
    try:
        fps = float(opts.get("fps", 10.0))
    except ValueError:
        raise DataError(f"{spec}: fps={opts['fps']} is not a number") from None
    src = KittiSource(folder, index=opts.get("index") or None, realtime=realtime, fps=fps, max_frames=max_frames)
    src.spec = spec
    return src
