"""KITTI object-layout folders: ``image_2/*.png``, ``velodyne/*.bin``, ``calib/*.txt`` (+ ``label_2``).

Readers shared by the stream loop's KITTI source and by any family that trains or validates on KITTI
frames: scans as :data:`~edge.data.frame.POINT_DTYPE`, images as BGR uint8, the rig from the calib
file (:meth:`edge.data.rig.Rig.from_kitti`), and :func:`list_indices`, which checks the folder (the
three sub-folders, indices present in all of them, ``.bin`` sizes a multiple of 16 bytes = float32 x,
y, z, reflectance) before anything is read. Every problem is a one-line DataError naming the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.data.frame import POINT_DTYPE
from edge.errors import DataError

SUBDIRS = ("image_2", "velodyne", "calib")


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

    try:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error:  # OpenCV 5 raises for an image over its pixel limit
        img = None
    if img is None:
        raise DataError(f"{path}: unreadable image (missing, empty, too large or not an image OpenCV can decode)")
    return img


def list_indices(folder: str | Path, index: str | None = None) -> list[str]:
    """The indices of ``folder`` that have a scan, an image and a calib file (sorted), or just ``index``."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: no such KITTI folder")
    for sub in SUBDIRS:
        if not (root / sub).is_dir():
            raise DataError(f"{root / sub}: missing KITTI sub-folder (need {', '.join(SUBDIRS)})")
    if index is not None:
        indices = [index]
        for sub, ext in (("velodyne", ".bin"), ("image_2", ".png"), ("calib", ".txt")):
            f = root / sub / f"{index}{ext}"
            if not f.is_file():
                raise DataError(f"{f}: missing for KITTI index {index}")
    else:
        bins = {p.stem for p in (root / "velodyne").glob("*.bin")}
        imgs = {p.stem for p in (root / "image_2").glob("*.png")}
        cals = {p.stem for p in (root / "calib").glob("*.txt")}
        indices = sorted(bins & imgs & cals)
        if not indices:
            raise DataError(f"{root}: no KITTI index has velodyne/*.bin, image_2/*.png and calib/*.txt")
    for idx in indices:
        f = root / "velodyne" / f"{idx}.bin"
        if f.stat().st_size % 16:
            raise DataError(f"{f}: {f.stat().st_size} bytes is not a whole number of float32 x, y, z, "
                            "reflectance points")
    return indices


@dataclass(frozen=True)
class KittiObject:
    """One line of a KITTI ``label_2`` file (camera-rectified frame, metres, radians)."""

    type: str
    truncated: float
    occluded: int
    alpha: float
    bbox: tuple[float, float, float, float]
    dimensions: tuple[float, float, float]  # height, width, length
    location: tuple[float, float, float]  # bottom centre x, y, z
    rotation_y: float


def read_labels(path: str | Path) -> list[KittiObject]:
    """The objects of a KITTI label file; one-line DataError for a malformed line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{p}: cannot read KITTI labels ({e})") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) not in (15, 16):
            raise DataError(f"{p}:{n}: a KITTI label line has 15 fields, this one {len(f)}")
        try:
            v = [float(x) for x in f[1:15]]
        except ValueError:
            raise DataError(f"{p}:{n}: non-numeric KITTI label field") from None
        # float() accepts nan / inf / 1e999; KITTI marks unknowns with -1 / -10 / -1000, never those
        bad = next((i for i, x in enumerate(v, 1) if not math.isfinite(x)), None)
        if bad is not None:
            raise DataError(f"{p}:{n}: KITTI label field {bad + 1} is '{f[bad][:20]}', not a finite number")
        if not v[1].is_integer():
            raise DataError(f"{p}:{n}: KITTI label field 3 (occluded) is '{f[2][:20]}', not a whole number")
        out.append(KittiObject(f[0], v[0], int(v[1]), v[2], (v[3], v[4], v[5], v[6]), (v[7], v[8], v[9]),
                               (v[10], v[11], v[12]), v[13]))
    return out
