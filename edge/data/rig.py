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
import re
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


#: a calibration file is a few hundred bytes; a video or pcap given by mistake is refused before it is read
MAX_CALIB_BYTES = 1 << 20
#: a LiDAR-to-camera translation beyond this (m) is not a rig on one vehicle
MAX_TRANSLATION_M = 1000.0
#: focal lengths a camera matrix may have, in pixels (a fisheye's ~200 on a small sensor to a long lens's ~1e5),
#: any entry of it once scaled (principal point, a stereo baseline term fx * b within MAX_TRANSLATION_M), and a
#: distortion coefficient (OpenCV's rational model's stay within tens)
MIN_FOCAL_PX, MAX_FOCAL_PX = 1.0, 1e6
MAX_PROJECTION_ENTRY = MAX_FOCAL_PX * MAX_TRANSLATION_M
MAX_DISTORTION = 1e4
#: a plain decimal number as calibration and label files write them (Python's float() also takes "7_2_1.5",
#: "nan", "infinity")
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _text(path: Path) -> str:
    """A calibration file's text (UTF-8, a byte-order mark dropped), refused above MAX_CALIB_BYTES."""
    try:
        if path.exists() and not path.is_file():  # a FIFO would block the read forever (a KITTI folder's calib/)
            raise DataError(f"{path}: not a regular file (a calibration is a text file)")
        if path.stat().st_size > MAX_CALIB_BYTES:
            raise DataError(f"{path}: {path.stat().st_size} bytes is not a calibration file (they are a few hundred "
                            f"bytes; limit {MAX_CALIB_BYTES})")
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read calibration ({first_line(e)})") from None


def _read_kv(path: Path) -> dict[str, np.ndarray]:
    """KITTI ``key: v v v ...`` lines -> float arrays. A line whose values are not all plain numbers
    (calib_time's date) is kept as its first bad token, so a key asked for later says which value is wrong
    (a typo dropped the whole line and read as "no 'P2'"); Python's ``float`` alone would also take
    ``7_2_1.5`` as 721.5. A key given twice is refused (which one would be meant?)."""
    out: dict[str, Any] = {}
    for line in _text(path).splitlines():
        if ":" not in line:
            continue
        key, _, rest = line.partition(":")
        key = key.strip()
        if key in out:
            raise DataError(f"{path}: '{key}' is given twice")
        tokens = rest.split()
        bad = next((t for t in tokens if not NUMBER.fullmatch(t)), None)
        out[key] = np.array([float(v) for v in tokens], dtype=np.float64) if bad is None else bad
    return out


def _kv(path: Path, kv: dict[str, Any], key: str) -> Any:
    """``kv[key]`` as numbers (None when absent); a line with a value that is not a number is one line."""
    v = kv.get(key)
    if isinstance(v, str):
        raise DataError(f"{path}: '{key}' has a value that is not a number ({v[:40]!r})")
    return v


def _plain_numbers(values: Any, depth: int = 3) -> bool:
    """Lists of JSON numbers nested at most ``depth`` deep (a matrix is 2; np.asarray would also take "721.5" and
    true). Bounded: JSON parses nesting 900 deep, which a check by recursion then overflowed on."""
    if isinstance(values, list):
        return depth > 0 and all(_plain_numbers(v, depth - 1) for v in values)
    return isinstance(values, int | float | np.floating | np.integer) and not isinstance(values, bool)


def _matrix(path: Path, values: Any, key: str, shapes: tuple[tuple[int, int], ...]) -> np.ndarray:
    if values is None:
        raise DataError(f"{path}: calibration has no '{key}'")
    if not isinstance(values, np.ndarray) and not _plain_numbers(values):
        raise DataError(f"{path}: '{key}' is not a matrix of numbers (text, true/false or lists nested deeper than a "
                        "matrix in it)")
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
    """A usable pinhole projection: positive focal lengths, a second row without a skew into it and a third
    row [0 0 s ...] with s > 0, scaled to s = 1 (the same projection; the distortion model reads K as written,
    and a third row [0 0 2] projected twice as far from the centre with 'D' as without)."""
    tiny = 1e-9 * max(abs(P[0, 0]), 1.0)  # a zero that went through a float conversion
    if not (P[0, 0] > 0 and P[1, 1] > 0 and P[2, 2] > 0 and max(abs(P[1, 0]), abs(P[2, 0]), abs(P[2, 1])) <= tiny):
        raise DataError(f"{path}: '{key}' is not a camera projection (need fx > 0, fy > 0, row 2 [0 fy cy ...] and "
                        f"row 3 [0 0 1 ...]; got fx {P[0, 0]:g}, fy {P[1, 1]:g}, rows 2-3 "
                        f"[{', '.join(f'{v:.6g}' for v in P[1, :3])}] [{', '.join(f'{v:.6g}' for v in P[2, :3])}])")
        # (formatted, not np.round: rounding 1e306 to 4 decimals overflowed, a RuntimeWarning on stderr)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        scaled = P / P[2, 2]
    if not np.isfinite(scaled).all():
        raise DataError(f"{path}: '{key}' is out of range once its third row is scaled to [0 0 1] (P[2][2] "
                        f"{P[2, 2]:g})")
    fx, fy = scaled[0, 0], scaled[1, 1]
    if not (MIN_FOCAL_PX <= fx <= MAX_FOCAL_PX and MIN_FOCAL_PX <= fy <= MAX_FOCAL_PX):
        # fx 1e-300 projected every point onto the principal point; 1e308 overflowed the projection
        raise DataError(f"{path}: '{key}' has focal lengths fx {fx:.4g}, fy {fy:.4g} px; a camera's are "
                        f"{MIN_FOCAL_PX:g} to {MAX_FOCAL_PX:g} px")
    if np.abs(scaled).max() > MAX_PROJECTION_ENTRY:
        raise DataError(f"{path}: '{key}' has an entry {np.abs(scaled).max():.4g}; a camera's principal point and "
                        f"baseline term are within +-{MAX_PROJECTION_ENTRY:g}")
    return scaled


#: how far from the image centre (a share of its width / height) the principal point of a calibration that
#: states no image size may lie before the image it was paired with is taken for another size (a KITTI object
#: calib beside a half-size image put it at the right edge; real cameras keep it near the centre)
PRINCIPAL_OFF_CENTRE = 0.375


def principal_point_problem(P: np.ndarray, hw: tuple[int, int], sized: bool) -> str | None:
    """What is wrong with pairing the projection ``P`` (third row [0 0 1]) with an image of ``hw`` (h, w), or None:
    its principal point outside the image; or, when the calibration states no size of its own (``sized`` False,
    the size taken from the image), far from the centre, as for a calibration of another image size."""
    h, w = hw
    cx, cy = float(P[0, 2]), float(P[1, 2])
    if not (0.0 <= cx <= w and 0.0 <= cy <= h):
        return f"its principal point ({cx:.1f}, {cy:.1f}) lies outside the {w}x{h} image"
    if not sized and (abs(cx - w / 2) > PRINCIPAL_OFF_CENTRE * w or abs(cy - h / 2) > PRINCIPAL_OFF_CENTRE * h):
        return (f"its principal point ({cx:.1f}, {cy:.1f}) is far from the centre of the {w}x{h} image: is the "
                "calibration for another image size?")
    return None


def _rigid(path: Path, T: np.ndarray, key: str = "T_lidar_to_cam") -> np.ndarray:
    """``T`` checked rigid (rounding allowed), its last row made exactly 0 0 0 1 (the projection multiplies it
    by P's 4th column), its translation within MAX_TRANSLATION_M."""
    from edge.data.se3 import check_rigid

    check_rigid(T, f"{path}: {key}")
    if np.abs(T[:3, 3]).max() > MAX_TRANSLATION_M:
        raise DataError(f"{path}: {key} moves points by {np.abs(T[:3, 3]).max():.4g} m (more than "
                        f"{MAX_TRANSLATION_M:g} m is not a rig on one vehicle)")
    T = T.copy()
    T[3] = (0.0, 0.0, 0.0, 1.0)
    return T


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
        P = _projection(path, _matrix(path, _kv(path, kv, key), key, ((3, 4),)), key)
        R0 = _matrix(path, _kv(path, kv, "R0_rect"), "R0_rect", ((3, 3),))
        Tr = _matrix(path, _kv(path, kv, "Tr_velo_to_cam"), "Tr_velo_to_cam", ((3, 4),))
        _rigid(path, _pad4(R0), "R0_rect")
        _rigid(path, _pad4(Tr), "Tr_velo_to_cam")  # named as the file names it (it said T_lidar_to_cam)
        T = _rigid(path, _pad4(R0) @ _pad4(Tr))
        return cls(P, T, None, str(path))

    @classmethod
    def from_kitti_raw(cls, folder: str | Path, *, camera: int = 2) -> Rig:
        """KITTI raw drive calibration: P_rect_0{camera} * R_rect_00 * [R|T] (velo to cam)."""
        c2c, v2c = kitti_raw_files(folder)
        for f in (c2c, v2c):
            if not f.is_file():
                raise DataError(f"{f}: no such calibration file")
        kc, kv = _read_kv(c2c), _read_kv(v2c)
        key = f"P_rect_0{camera}"
        P = _projection(c2c, _matrix(c2c, _kv(c2c, kc, key), key, ((3, 4),)), key)
        R0 = _matrix(c2c, _kv(c2c, kc, "R_rect_00"), "R_rect_00", ((3, 3),))
        R = _matrix(v2c, _kv(v2c, kv, "R"), "R", ((3, 3),))
        T = _matrix(v2c, _kv(v2c, kv, "T"), "T", ((3, 1),))
        Tr = _pad4(np.hstack([R, T]))
        s_key = f"S_rect_0{camera}"
        size = None
        if s_key in kc:
            s = _kv(c2c, kc, s_key)
            if s.size != 2:
                raise DataError(f"{c2c}: '{s_key}' should be width and height, got {s.size} values")
            w, h = (float(v) for v in s)
            size = _image_size(c2c, s_key, h, w)
            problem = principal_point_problem(P, size, sized=True)
            if problem:
                raise DataError(f"{c2c}: '{key}' with '{s_key}': {problem}")
        _rigid(v2c, Tr, "R|T (velo to cam)")
        _rigid(c2c, _pad4(R0), "R_rect_00")  # a scaled rectification made the chain non-rigid, and it was used
        return cls(P, _rigid(c2c, _pad4(R0) @ Tr), size, str(folder))

    @classmethod
    def from_json(cls, path: str | Path) -> Rig:
        """The JSON rig format described in the module docstring."""
        path = Path(path)
        def no_twice(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for k, v in pairs:
                if k in out:
                    raise DataError(f"{path}: '{k}' is given twice")
                out[k] = v
            return out

        try:
            d = json.loads(_text(path), object_pairs_hook=no_twice)
        except DataError:
            raise
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise DataError(f"{path}: calibration is not readable JSON ({first_line(e)})") from None
        except RecursionError:  # arrays nested thousands deep: refused, not a traceback
            raise DataError(f"{path}: calibration is not readable JSON (nested too deeply)") from None
        if not isinstance(d, dict):
            raise DataError(f"{path}: calibration JSON must be an object with 'P' and 'T_lidar_to_cam'")
        if "P" in d and "K" in d:  # P won and a K that disagreed was ignored without a word
            raise DataError(f"{path}: give 'P' (3x4) or 'K' (3x3), not both")
        if "P" in d:
            P = _matrix(path, d["P"], "P", ((3, 4),))
        elif "K" in d:
            P = np.hstack([_matrix(path, d["K"], "K", ((3, 3),)), np.zeros((3, 1))])
        else:
            raise DataError(f"{path}: calibration has no 'P' (3x4) or 'K' (3x3)")
        T = _matrix(path, d.get("T_lidar_to_cam"), "T_lidar_to_cam", ((4, 4), (3, 4)))
        size = d.get("image_size")
        if size is not None:
            # whole numbers, written as 375 or as 375.0 (a tool that wrote the size from a float array)
            if not (isinstance(size, list) and len(size) == 2
                    and all(not isinstance(v, bool) and (
                        (isinstance(v, int) and 0 < v <= MAX_IMAGE_SIDE)  # an int past a float's range: no isfinite
                        or (isinstance(v, float) and math.isfinite(v) and v == int(v) and 0 < v <= MAX_IMAGE_SIDE))
                            for v in size)):
                raise DataError(f"{path}: 'image_size' should be [height, width] in whole pixels (each "
                                f"1..{MAX_IMAGE_SIDE})")
            size = (int(size[0]), int(size[1]))
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
            big = max(abs(v) for v in dist)
            if big > MAX_DISTORTION:  # the polynomial overflowed float32 pixels (RuntimeWarnings, inf points)
                raise DataError(f"{path}: 'D' has a coefficient {big:.4g}; a lens model's are within "
                                f"+-{MAX_DISTORTION:g}")
        T = _rigid(path, _pad4(T) if T.shape == (3, 4) else T)
        P = _projection(path, P, "P" if "P" in d else "K")
        if dist is not None and np.abs(P[:, 3]).max() > 0:
            raise DataError(f"{path}: 'D' (distortion) goes with a plain camera matrix: give 'K', or a 'P' whose 4th "
                            "column is 0")
        problem = principal_point_problem(P, size, sized=True) if size is not None else None
        if problem:
            raise DataError(f"{path}: '{'P' if 'P' in d else 'K'}' with 'image_size': {problem}")
        return cls(P, T, size, str(path), dist)

    @classmethod
    def load(cls, path: str | Path) -> Rig:
        """KITTI object .txt, KITTI raw folder, or the JSON rig format (by suffix / content)."""
        path = Path(path)
        if path.is_dir():  # a raw calibration folder, or a drive whose folder above holds the calibration
            return cls.from_kitti_raw(kitti_raw_calib_dir(path) or path)
        if not path.is_file():
            raise DataError(f"{path}: " + ("not a regular file (a calibration is a KITTI .txt, a rig .json or a "
                                           "KITTI raw calibration folder)" if path.exists() else
                                           "no such calibration file"))
        if path.suffix.lower() == ".json":
            return cls.from_json(path)
        try:
            with open(path, "rb") as f:
                head = f.read(64).removeprefix(b"\xef\xbb\xbf").lstrip()
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

    def horizon(self, image_size: tuple[int, int] | None = None, up: tuple[float, float, float] = (0.0, 0.0, 1.0),
                raised_deg: float = 0.0) -> np.ndarray | None:
        """The horizon in pixels: ``(a, b, c)`` with ``a^2 + b^2 = 1`` such that ``a u + b v + c`` is the signed
        distance (px) of pixel (u, v) from it, positive on the sky side; None when the camera looks straight up
        or down (no horizon in view).

        Why: nothing on a flat road is imaged above the image of the ground plane's line at infinity,
        ``K^-T n`` with ``n`` the up direction in the camera frame; a road-marking model can keep its lines off the
        sky with it. ``up`` is the up direction in the LiDAR frame (its z axis: KITTI's Velodyne and most roof
        LiDARs are mounted level; a tilted one makes the horizon tilt with it). ``image_size`` (h, w): the image
        the pixels are in, when it differs from the rig's own ``image_size`` (the intrinsics are scaled to it).
        Lens distortion is ignored (the line is that of the undistorted image). ``raised_deg``: the line moved
        ``fy tan(raised_deg)`` pixels towards the sky (that angle above the horizon at the principal point of a
        level camera, a little less towards the image's sides)."""
        n = self.T_lidar_to_cam[:3, :3] @ np.asarray(up, np.float64)
        K = self.P_for(image_size)[:, :3]
        # for the pixel p of a ray r = K^-1 p (r_z = 1), (K^-T n) . p = n . r: the ray's height above the horizontal
        try:
            line = np.linalg.solve(K.T, n)
        except np.linalg.LinAlgError:  # a singular camera matrix (a hand-built rig): no horizon to give
            return None
        norm = math.hypot(line[0], line[1])
        if not np.isfinite(line).all() or norm < 1e-12 * max(abs(line[2]), 1e-300):
            return None
        line = line / norm
        line[2] -= K[1, 1] * math.tan(math.radians(raised_deg))
        return line

    def P_for(self, image_size: tuple[int, int] | None = None) -> np.ndarray:
        """The projection (float64 3x4) for an image of ``image_size`` (h, w): the rig's own ``P``, scaled per
        axis when the rig knows its image size and this one differs (the same camera, resized). One rule for
        :meth:`project` and :meth:`horizon`, so a resized frame's points and horizon agree."""
        if image_size is not None and self.image_size is not None and tuple(image_size) != tuple(self.image_size):
            return resized_P(self.P, self.image_size, image_size)
        return self.P.astype(np.float64)

    def project(self, points_xyz: np.ndarray, image_size: tuple[int, int] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Pixels of LiDAR points: ``(uv [N, 2] float32, mask [N] bool)``.

        ``mask`` is True for points in front of the camera (z > 0 in the camera frame) and, when an
        image size (h, w) is given here or in the calibration, inside ``0 <= u < w, 0 <= v < h``. An
        ``image_size`` other than the rig's own is the same camera resized: the pixels are scaled to it
        (:meth:`P_for`). Points behind the camera still get a uv (meaningless); use the mask.
        """
        pts = np.asarray(points_xyz)
        if pts.dtype.names:  # a POINT_DTYPE array works too
            pts = np.stack([pts["x"], pts["y"], pts["z"]], axis=1)
        pts = pts.reshape(-1, pts.shape[-1])[:, :3].astype(np.float64, copy=False)
        P = self.P_for(image_size)
        cam, pix = pinhole(pts, self.T_lidar_to_cam, P)
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = pix[:, :2] / pix[:, 2:3]
            if self.distortion is not None:
                uv = self._distort(cam, P[:, :3])
        mask = (z > 0) & (pix[:, 2] > 0)
        size = image_size or self.image_size
        if size is not None:
            h, w = size
            mask &= (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        return np.ascontiguousarray(uv, np.float32), mask  # C order whatever pinhole's layout

    def _distort(self, cam: np.ndarray, K: np.ndarray) -> np.ndarray:
        """Pixels of camera-frame points through the OpenCV model (radial k1 k2 k3 ..., tangential p1 p2)."""
        k = list(self.distortion or ()) + [0.0] * 8
        k1, k2, p1, p2, k3 = k[:5]
        x, y = cam[:, 0] / cam[:, 2], cam[:, 1] / cam[:, 2]
        r2 = x * x + y * y
        radial = (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3) / (1 + k[5] * r2 + k[6] * r2**2 + k[7] * r2**3)
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return np.stack([K[0, 0] * xd + K[0, 1] * yd + K[0, 2], K[1, 1] * yd + K[1, 2]], 1)


def resized_P(P: np.ndarray, from_hw: tuple[int, int], to_hw: tuple[int, int]) -> np.ndarray:
    """The projection (float64 3x4) of camera ``P`` for its image resized from ``from_hw`` to ``to_hw`` (h, w): each
    axis scaled on its own. The one rule for a resized frame (:meth:`Rig.P_for`) and a model's input size."""
    return np.diag([to_hw[1] / from_hw[1], to_hw[0] / from_hw[0], 1.0]) @ np.asarray(P, np.float64)


def pinhole(xyz: np.ndarray, T: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(cam [N, 3], pix [N, 3])``: points ``xyz`` [N, 3] in the camera frame under the extrinsic ``T`` (4x4),
    and their homogeneous pixels under ``P`` (3x4); u = pix[:, 0] / pix[:, 2]. The one pinhole chain the rig,
    a model's host code and its overlays share (distortion is :meth:`Rig.project`'s); both are transposed views of
    coordinate-major buffers (read them; copy before handing them to code that needs C order). Written as
    multiply-adds: an [N, 3] @ [3, 3] matmul would start BLAS threads beside an inference runtime's."""
    cam = _affine_rows(xyz[:, 0], xyz[:, 1], xyz[:, 2], T)  # rows: each coordinate contiguous, returned transposed
    pix = _affine_rows(cam[0], cam[1], cam[2], P)
    return cam.T, pix.T


def pixels(xyz: np.ndarray, M: np.ndarray) -> np.ndarray:
    """[3, N] homogeneous pixels of ``xyz`` [N, 3] under ``M = P @ T`` (3x4): :func:`pinhole`'s chain in one stage,
    for a caller that needs no camera-frame points and projects the same points under many extrinsics (an
    alignment's search scores ~10,000 poses a frame; the two stages cost it twice as much)."""
    return _affine_rows(xyz[:, 0], xyz[:, 1], xyz[:, 2], M)


def _affine_rows(x: np.ndarray, y: np.ndarray, z: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Rows ``M[i, :3] . (x, y, z) + M[i, 3]`` for i < 3, as multiply-adds into a [3, N] buffer."""
    out = np.empty((3, len(x)), np.result_type(x, M))
    for i in range(3):
        out[i] = M[i, 0] * x + M[i, 1] * y + M[i, 2] * z + M[i, 3]
    return out


def kitti_raw_files(folder: str | Path) -> tuple[Path, Path]:
    """The two files a KITTI raw calibration folder is read from (cam-to-cam, velo-to-cam)."""
    folder = Path(folder)
    return folder / "calib_cam_to_cam.txt", folder / "calib_velo_to_cam.txt"


def kitti_raw_calib_dir(folder: str | Path) -> Path | None:
    """Where a KITTI raw drive's calibration is: ``folder`` when it holds both files, else the folder above it
    (KITTI's own tree keeps them in the date folder over ``<date>_drive_<n>_sync``; resolved, so ``.`` or a
    symlinked drive finds its real parent), else None. The one rule for ``kitti:DRIVE``, ``--calib DRIVE`` and
    ``--init DRIVE``."""
    folder = Path(folder)
    for d in (folder, folder.parent, folder.resolve().parent):
        if all(f.is_file() for f in kitti_raw_files(d)):
            return d
    return None


def rig_reads(path: str | Path | None) -> list[Path]:
    """The files :meth:`Rig.load` reads for ``path`` (a rig JSON or KITTI .txt, or a KITTI raw calibration
    folder's two files), so a command can refuse an output that would replace one of them before it runs.
    Empty when there is nothing there yet: loading then reports it in its own words."""
    if path is None:
        return []
    p = Path(path)
    try:
        if p.is_file():
            return [p]
        if p.is_dir():
            return list(kitti_raw_files(kitti_raw_calib_dir(p) or p))
    except OSError:  # a name too long for the file system: loading says so
        pass
    return []
