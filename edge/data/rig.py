"""The sensor rig: camera intrinsics and the LiDAR-to-camera extrinsic, one matrix chain to pixels.

Fusion models and overlays need to know where a LiDAR point lands in the image; that is a 4x4 rigid
transform into the (rectified) camera frame followed by a 3x4 projection. :class:`Rig` keeps both,
loads them from KITTI files or a small JSON format for your own rig, and projects points with a mask
that says which ones are really visible. (It is called a rig, not a calibration, because in this
project "calibration" means the INT8 calibration sets of :mod:`edge.calibration`.)

Formats :meth:`Rig.load` accepts:

- KITTI object ``calib/*.txt`` (``P2``, ``R0_rect``, ``Tr_velo_to_cam`` lines): pixels =
  P2 * R0_rect(4x4) * Tr_velo_to_cam(4x4) * X; ``camera=`` picks P0..P3;
- a KITTI raw drive folder holding ``calib_cam_to_cam.txt`` (``P_rect_02``, ``R_rect_00``) and
  ``calib_velo_to_cam.txt`` (``R``, ``T``);
- JSON for other rigs, e.g. ``{"P": [[fx,0,cx,0],[0,fy,cy,0],[0,0,1,0]], "T_lidar_to_cam": 4x4,
  "image_size": [h, w]}``. ``P`` is 3x4 (or ``K``, 3x3, meaning P = [K | 0]); ``T_lidar_to_cam`` is
  4x4 or 3x4 (row-major, metres, the LiDAR frame into the camera frame with z forward, x right,
  y down) and must be rigid (orthonormal rotation, det +1); ``image_size`` is optional; ``D`` is
  optional: OpenCV distortion coefficients (k1, k2, p1, p2[, k3]) of the raw image, applied by
  :meth:`Rig.project`. Nested lists or flat lists of 12/16/9 numbers are both fine. ``edge calibrate``
  writes this format (plus a ``refined`` report, ignored when read).

A malformed file is a one-line :class:`~edge.errors.DataError` naming the file and the key.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import DataError, first_line

#: the largest image side (pixels) a rig may declare; a bigger number is a corrupt file, not a camera
MAX_IMAGE_SIDE = 1 << 20


def _pad4(m: np.ndarray) -> np.ndarray:
    """3x3 or 3x4 -> 4x4 homogeneous (KITTI stores R0_rect as 3x3 and Tr as 3x4)."""
    out = np.eye(4)
    out[: m.shape[0], : m.shape[1]] = m
    return out


def _read_kv(path: Path) -> dict[str, np.ndarray]:
    """KITTI ``key: v v v ...`` lines -> float arrays (lines without numbers, like calib_time, skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read calibration ({first_line(e)})") from None
    out: dict[str, np.ndarray] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, _, rest = line.partition(":")
        try:
            out[key.strip()] = np.array([float(v) for v in rest.split()], dtype=np.float64)
        except ValueError:
            continue
    return out


def _matrix(path: Path, values: Any, key: str, shapes: tuple[tuple[int, int], ...]) -> np.ndarray:
    if values is None:
        raise DataError(f"{path}: calibration has no '{key}'")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: '{key}' is not a matrix of numbers") from None
    except OverflowError:  # a JSON integer like 10**400 has no float64
        raise DataError(f"{path}: '{key}' has a number too large for a float") from None
    for shape in shapes:
        if arr.shape == shape or (arr.size == shape[0] * shape[1] and arr.ndim == 1):
            arr = arr.reshape(shape)
            if not np.isfinite(arr).all():
                raise DataError(f"{path}: '{key}' has non-finite values")
            return arr
    want = " or ".join(f"{r}x{c}" for r, c in shapes)
    raise DataError(f"{path}: '{key}' should be {want}, got shape {list(arr.shape)}")


def _image_size(path: Path, key: str, h: float, w: float) -> tuple[int, int]:
    """(h, w) as positive whole pixels up to MAX_IMAGE_SIDE, or a DataError naming the file and ``key``
    (a NaN, infinite, negative, fractional or absurd size would break every projection mask later)."""
    if not all(math.isfinite(v) and v == int(v) and 0 < v <= MAX_IMAGE_SIDE for v in (h, w)):
        raise DataError(f"{path}: '{key}' should be width and height in whole pixels (each 1..{MAX_IMAGE_SIDE}), "
                        f"got {w:g} {h:g}")
    return int(h), int(w)


def _projection(path: Path, P: np.ndarray, key: str = "P") -> np.ndarray:
    """A usable pinhole projection: positive focal lengths and a third row that gives depth."""
    if not (P[0, 0] > 0 and P[1, 1] > 0 and P[2, 2] > 0):
        raise DataError(f"{path}: '{key}' is not a camera projection (need fx > 0, fy > 0 and a third row "
                        f"[0 0 1 ...]; got fx {P[0, 0]:g}, fy {P[1, 1]:g}, P[2][2] {P[2, 2]:g})")
    return P


def _rigid(path: Path, T: np.ndarray) -> None:
    from edge.data.se3 import check_rigid

    check_rigid(T, f"{path}: T_lidar_to_cam")


@dataclass(frozen=True, eq=False)
class Rig:
    """``P`` (3x4) projects camera-frame points to pixels; ``T_lidar_to_cam`` (4x4) takes LiDAR points
    into that camera frame (for KITTI: R0_rect * Tr_velo_to_cam). ``image_size`` is (h, w) when known."""

    P: np.ndarray
    T_lidar_to_cam: np.ndarray
    image_size: tuple[int, int] | None = None
    source: str = ""
    distortion: tuple[float, ...] | None = None

    @property
    def matrix(self) -> np.ndarray:
        """The 3x4 chain LiDAR -> pixels (homogeneous)."""
        return self.P @ self.T_lidar_to_cam

    @classmethod
    def from_kitti(cls, path: str | Path, *, camera: int = 2) -> Rig:
        """KITTI object calib: P{camera} * R0_rect * Tr_velo_to_cam."""
        path = Path(path)
        kv = _read_kv(path)
        key = f"P{camera}"
        P = _projection(path, _matrix(path, kv.get(key), key, ((3, 4),)), key)
        R0 = _matrix(path, kv.get("R0_rect"), "R0_rect", ((3, 3),))
        Tr = _matrix(path, kv.get("Tr_velo_to_cam"), "Tr_velo_to_cam", ((3, 4),))
        T = _pad4(R0) @ _pad4(Tr)
        _rigid(path, T)
        return cls(P, T, None, str(path))

    @classmethod
    def from_kitti_raw(cls, folder: str | Path, *, camera: int = 2) -> Rig:
        """KITTI raw drive calibration: P_rect_0{camera} * R_rect_00 * [R|T] (velo to cam)."""
        folder = Path(folder)
        c2c, v2c = folder / "calib_cam_to_cam.txt", folder / "calib_velo_to_cam.txt"
        for f in (c2c, v2c):
            if not f.is_file():
                raise DataError(f"{f}: no such calibration file")
        kc, kv = _read_kv(c2c), _read_kv(v2c)
        key = f"P_rect_0{camera}"
        P = _projection(c2c, _matrix(c2c, kc.get(key), key, ((3, 4),)), key)
        R0 = _matrix(c2c, kc.get("R_rect_00"), "R_rect_00", ((3, 3),))
        R = _matrix(v2c, kv.get("R"), "R", ((3, 3),))
        T = _matrix(v2c, kv.get("T"), "T", ((3, 1),))
        Tr = _pad4(np.hstack([R, T]))
        s_key = f"S_rect_0{camera}"
        size = None
        if s_key in kc and kc[s_key].size == 2:
            w, h = (float(v) for v in kc[s_key])
            size = _image_size(c2c, s_key, h, w)
        _rigid(v2c, Tr)
        return cls(P, _pad4(R0) @ Tr, size, str(folder))

    @classmethod
    def from_json(cls, path: str | Path) -> Rig:
        """The JSON rig format described in the module docstring."""
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise DataError(f"{path}: calibration is not readable JSON ({first_line(e)})") from None
        except RecursionError:  # arrays nested thousands deep: refused, not a traceback
            raise DataError(f"{path}: calibration is not readable JSON (nested too deeply)") from None
        if not isinstance(d, dict):
            raise DataError(f"{path}: calibration JSON must be an object with 'P' and 'T_lidar_to_cam'")
        if "P" in d:
            P = _matrix(path, d["P"], "P", ((3, 4),))
        elif "K" in d:
            P = np.hstack([_matrix(path, d["K"], "K", ((3, 3),)), np.zeros((3, 1))])
        else:
            raise DataError(f"{path}: calibration has no 'P' (3x4) or 'K' (3x3)")
        T = _matrix(path, d.get("T_lidar_to_cam"), "T_lidar_to_cam", ((4, 4), (3, 4)))
        size = d.get("image_size")
        if size is not None:
            if not (isinstance(size, list) and len(size) == 2
                    and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_IMAGE_SIDE
                            for v in size)):
                raise DataError(f"{path}: 'image_size' should be [height, width] in pixels (each 1..{MAX_IMAGE_SIDE})")
            size = (size[0], size[1])
        dist = d.get("D")
        if dist is not None:
            if not (isinstance(dist, list) and len(dist) in (4, 5, 8)
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in dist)):
                raise DataError(f"{path}: 'D' should be 4, 5 or 8 OpenCV distortion coefficients (k1 k2 p1 p2 ...)")
            try:
                dist = tuple(float(v) for v in dist)
            except OverflowError:  # an integer like 10**400: no float holds it
                raise DataError(f"{path}: 'D' has a number too large for a float") from None
            if not all(math.isfinite(v) for v in dist):
                raise DataError(f"{path}: 'D' has non-finite values")
        T = _pad4(T) if T.shape == (3, 4) else T
        _rigid(path, T)
        _projection(path, P, "P" if "P" in d else "K")
        if dist is not None and np.abs(P[:, 3]).max() > 0:
            raise DataError(f"{path}: 'D' (distortion) goes with a plain camera matrix: give 'K', or a 'P' whose 4th "
                            "column is 0")
        return cls(P, T, size, str(path), dist)

    @classmethod
    def load(cls, path: str | Path) -> Rig:
        """KITTI object .txt, KITTI raw folder, or the JSON rig format (by suffix / content)."""
        path = Path(path)
        if path.is_dir():
            return cls.from_kitti_raw(path)
        if not path.is_file():
            raise DataError(f"{path}: no such calibration file")
        if path.suffix.lower() == ".json":
            return cls.from_json(path)
        try:
            head = path.read_bytes()[:64].lstrip()
        except OSError as e:
            raise DataError(f"{path}: cannot read calibration ({first_line(e)})") from None
        return cls.from_json(path) if head.startswith(b"{") else cls.from_kitti(path)

    def to_json(self) -> dict[str, Any]:
        """The JSON rig format (round-trips through :meth:`from_json`)."""
        d: dict[str, Any] = {"P": self.P.tolist(), "T_lidar_to_cam": self.T_lidar_to_cam.tolist()}
        if self.image_size is not None:
            d["image_size"] = list(self.image_size)
        if self.distortion is not None:
            d["D"] = list(self.distortion)
        return d

    def project(self, points_xyz: np.ndarray, image_size: tuple[int, int] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Pixels of LiDAR points: ``(uv [N, 2] float32, mask [N] bool)``.

        ``mask`` is True for points in front of the camera (z > 0 in the camera frame) and, when an
        image size (h, w) is given here or in the calibration, inside ``0 <= u < w, 0 <= v < h``.
        Points behind the camera still get a uv (meaningless); use the mask.
        """
        pts = np.asarray(points_xyz)
        if pts.dtype.names:  # a POINT_DTYPE array works too
            pts = np.stack([pts["x"], pts["y"], pts["z"]], axis=1)
        pts = pts.reshape(-1, pts.shape[-1])[:, :3].astype(np.float64, copy=False)
        cam = pts @ self.T_lidar_to_cam[:3, :3].T + self.T_lidar_to_cam[:3, 3]
        pix = cam @ self.P[:, :3].T + self.P[:, 3]
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = pix[:, :2] / pix[:, 2:3]
            if self.distortion is not None:
                uv = self._distort(cam)
        mask = (z > 0) & (pix[:, 2] > 0)
        size = image_size or self.image_size
        if size is not None:
            h, w = size
            mask &= (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        return uv.astype(np.float32), mask

    def _distort(self, cam: np.ndarray) -> np.ndarray:
        """Pixels of camera-frame points through the OpenCV model (radial k1 k2 k3 ..., tangential p1 p2)."""
        k = list(self.distortion or ()) + [0.0] * 8
        k1, k2, p1, p2, k3 = k[:5]
        x, y = cam[:, 0] / cam[:, 2], cam[:, 1] / cam[:, 2]
        r2 = x * x + y * y
        radial = (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3) / (1 + k[5] * r2 + k[6] * r2**2 + k[7] * r2**3)
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        K = self.P[:, :3]
        return np.stack([K[0, 0] * xd + K[0, 1] * yd + K[0, 2], K[1, 1] * yd + K[1, 2]], 1)
