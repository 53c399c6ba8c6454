"""KITTI folders of both layouts a user meets:

* object layout: ``image_2/*.png``, ``velodyne/*.bin``, ``calib/*.txt`` (+ ``label_2``), one calib per
  index (:meth:`edge.data.rig.Rig.from_kitti`);
* raw drive (what online calibration runs on: consecutive frames of one rig): ``image_02/data/*.png``
  and ``velodyne_points/data/*.bin``, calibrated by ``calib_cam_to_cam.txt`` + ``calib_velo_to_cam.txt``
  in the drive folder itself or in its parent (KITTI's own tree puts them in the date folder above
  ``<date>_drive_<n>_sync``; :meth:`edge.data.rig.Rig.from_kitti_raw`), one rig for every frame.

Readers shared by the stream loop's KITTI source and by any family that trains or validates on KITTI
frames: scans as :data:`~edge.data.frame.POINT_DTYPE`, images as BGR uint8, and :func:`kitti_layout`,
which checks the folder (its sub-folders, indices present in all of them, ``.bin`` sizes a multiple of
16 bytes = float32 x, y, z, reflectance) before anything is read. Every problem is a one-line DataError
naming the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.data.frame import POINT_DTYPE
from edge.errors import DataError

SUBDIRS = ("image_2", "velodyne", "calib")
#: a raw drive's image and scan folders
RAW_SUBDIRS = ("image_02/data", "velodyne_points/data")


#: the largest scan read (16 M points): an HDL-64E sweep is ~2 MB; a 1 GB file (a sparse one holds no data) took
#: 7.6 GB of memory before the run found no point in view
MAX_SCAN_BYTES = 256 << 20


def _check_scan_size(path: Path, size: int) -> None:
    """A ``.bin`` of ``size`` bytes refused (one line) when it cannot be a KITTI scan: checked when the folder opens,
    before a run writes anything, and again when the scan is read."""
    if size == 0:  # a KITTI scan always has points: an empty file is a broken copy, not an empty street
        raise DataError(f"{path}: empty LiDAR scan (0 bytes)")
    if size > MAX_SCAN_BYTES:
        raise DataError(f"{path}: {size} bytes is {size // 16} points; a LiDAR scan of more than "
                        f"{MAX_SCAN_BYTES // 16} points is not read (an HDL-64E sweep is ~120,000)")
    if size % 16:
        raise DataError(f"{path}: {size} bytes is not a whole number of float32 (x, y, z, reflectance) points")


def read_bin(path: Path) -> np.ndarray:
    """KITTI ``.bin`` scan -> POINT_DTYPE (intensity = reflectance 0..1, ring 0, t 0)."""
    try:
        size = path.stat().st_size
    except OSError:
        raise DataError(f"{path}: no such LiDAR scan") from None
    if not path.is_file():  # a folder (IsADirectoryError from numpy), a FIFO (a read that never ends)
        raise DataError(f"{path}: not a regular file (a KITTI scan is a .bin of float32 points)")
    _check_scan_size(path, size)
    try:
        raw = np.fromfile(path, dtype="<f4").reshape(-1, 4)
    except OSError as e:  # (a scan this user may not read was "PermissionError: [Errno 13] ...": a review)
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    finite = np.isfinite(raw).all(1)
    if not finite.all():  # NaN or infinite values are no return (some converters write NaN for one): dropped,
        # so no projection computes with them; a scan of nothing else is refused
        if not finite.any():
            raise DataError(f"{path}: no finite points (all {len(raw)} hold NaN or infinite values)")
        raw = raw[finite]
    pts = np.zeros(len(raw), POINT_DTYPE)
    pts["x"], pts["y"], pts["z"], pts["intensity"] = raw[:, 0], raw[:, 1], raw[:, 2], raw[:, 3]
    return pts


def read_image(path: Path) -> np.ndarray:
    """BGR uint8 image via OpenCV (imported there, so a LiDAR-only install never loads it); a truncated,
    empty or undecodable file is one :class:`DataError` (:func:`edge.data.images.read_image`, which checks a
    PNG's or JPEG's end before the decoder prints its own complaint to stderr)."""
    from edge.data.images import read_image as read_checked

    img, problem = read_checked(path)
    if img is None:
        raise DataError(f"{path}: unreadable image ({problem})")
    return img


@dataclass(frozen=True)
class KittiLayout:
    """Where one KITTI folder keeps each index's image, scan and calibration (see the module docstring)."""

    root: Path
    kind: str  # "object" or "raw"
    raw_calib: Path | None = None  # a raw drive's calibration folder (the drive's or its parent)

    @property
    def image_dir(self) -> Path:
        return self.root / ("image_2" if self.kind == "object" else RAW_SUBDIRS[0])

    @property
    def scan_dir(self) -> Path:
        return self.root / ("velodyne" if self.kind == "object" else RAW_SUBDIRS[1])

    def image_path(self, index: str) -> Path:
        return self.image_dir / f"{index}.png"

    def scan_path(self, index: str) -> Path:
        return self.scan_dir / f"{index}.bin"

    def calib_path(self, index: str) -> Path:
        """The file (object layout) or folder (raw drive) the rig of ``index`` is read from."""
        return self.root / "calib" / f"{index}.txt" if self.kind == "object" else self.raw_calib  # type: ignore[return-value]

    def rig(self, index: str) -> Any:
        """The :class:`~edge.data.rig.Rig` of ``index`` (a raw drive's one rig for every index)."""
        from edge.data.rig import Rig

        return Rig.from_kitti(self.calib_path(index)) if self.kind == "object" else Rig.from_kitti_raw(self.raw_calib)

    def reads(self) -> tuple[Path, ...]:
        """What a run over this folder reads (outputs must not replace them)."""
        if self.kind == "object":
            return tuple(self.root / s for s in (*SUBDIRS, "label_2"))
        from edge.data.rig import kitti_raw_files

        return (self.image_dir, self.scan_dir, *kitti_raw_files(self.raw_calib))  # type: ignore[arg-type]

    def indices(self, index: str | None = None) -> list[str]:
        """The indices that have a scan, an image (and, object layout, a calib file), sorted; or just
        ``index``, checked. Scan sizes are checked here, before anything is read."""
        # the per-index files: scan, image and (object layout) calib; a raw drive's one calibration is checked
        # where its layout is found
        per_index = [(self.scan_dir, ".bin"), (self.image_dir, ".png")]
        per_index += [(self.root / "calib", ".txt")] if self.kind == "object" else []
        if index is not None:
            for d, ext in per_index:
                if not (d / f"{index}{ext}").is_file():
                    raise DataError(f"{d / f'{index}{ext}'}: missing for KITTI index {index}")
            indices = [index]
        else:
            from edge.files import list_problem

            for d, _ext in per_index:  # (a missing one is said below, as before)
                if (why := list_problem(d)) is not None:
                    raise DataError(f"{d}: {why}")
            indices = sorted(set.intersection(*({p.stem for p in d.glob(f"*{ext}")} for d, ext in per_index)))
            if not indices:
                names = [f"{d.relative_to(self.root).as_posix()}/*{ext}" for d, ext in per_index]
                raise DataError(f"{self.root}: no KITTI index has {', '.join(names[:-1])} and {names[-1]}")
        for idx in indices:
            f = self.scan_path(idx)
            _check_scan_size(f, f.stat().st_size)
        return indices

    def unpaired(self) -> list[str]:
        """The images that :meth:`indices` leaves out for want of their scan (or, object layout, their calib file),
        sorted: a run says how many, rather than read fewer frames without a word."""
        have = [{p.stem for p in self.scan_dir.glob("*.bin")}]
        have += [{p.stem for p in (self.root / "calib").glob("*.txt")}] if self.kind == "object" else []
        return sorted(p.stem for p in self.image_dir.glob("*.png") if not all(p.stem in h for h in have))

    def unpaired_scans(self) -> list[str]:
        """The scans :meth:`indices` leaves out for want of their image, sorted (said as the images are)."""
        images = {p.stem for p in self.image_dir.glob("*.png")}
        return sorted(p.stem for p in self.scan_dir.glob("*.bin") if p.stem not in images)

    def unpaired_lines(self, name: str, verb: str) -> dict[str, tuple[int, str]]:
        """``{"images": (count, line), "scans": (count, line)}``: what :meth:`unpaired` and :meth:`unpaired_scans`
        leave out, each said in one line naming the folder as ``name`` and what is not done with them (``verb``: an
        ``edge run`` does not read them, ``edge val`` does not score them)."""
        what = "scan or calibration" if self.kind == "object" else "scan"
        out = {}
        for key, names, said in (("images", self.unpaired(), f"image(s) without a {what}"),
                                 ("scans", self.unpaired_scans(), "scan(s) without an image")):
            out[key] = (len(names), f"{name}: {len(names)} {said} are not {verb} ({', '.join(names[:3])}"
                                    f"{', ...' if len(names) > 3 else ''})")
        return out


def kitti_layout(folder: str | Path) -> KittiLayout:
    """The layout of ``folder`` (object or raw drive), checked: one line naming what is missing."""
    root = Path(folder)
    try:
        if not root.is_dir():
            raise DataError(f"{root}: no such KITTI folder")
        has = {sub: (root / sub).is_dir() for sub in (*SUBDIRS, *RAW_SUBDIRS, "image_02", "velodyne_points")}
    except OSError as e:  # a name too long for the file system
        raise DataError(f"{str(root)[:120]}...: not a readable folder ({e.strerror or e})") from None
    if all(has[s] for s in RAW_SUBDIRS) or (not any(has[s] for s in SUBDIRS)
                                            and (has["image_02"] or has["velodyne_points"])):
        for sub in RAW_SUBDIRS:
            if not has[sub]:
                raise DataError(f"{root / sub}: missing KITTI raw sub-folder (need {', '.join(RAW_SUBDIRS)})")
        from edge.data.rig import kitti_raw_calib_dir, kitti_raw_files

        calib = kitti_raw_calib_dir(root)
        if calib is None:
            c2c, v2c = (f.name for f in kitti_raw_files(root))
            raise DataError(f"{root}: a KITTI raw drive needs {c2c} and {v2c} in its folder or the one above")
        return KittiLayout(root, "raw", calib)
    drives = [] if any(has[s] for s in SUBDIRS) else sorted(p.name for p in root.glob("*_sync") if p.is_dir())
    if drives:  # a date folder: its drives are the KITTI folders
        raise DataError(f"{root}: holds KITTI raw drives, not frames; give one drive, e.g. kitti:{root / drives[0]}")
    for sub in SUBDIRS:
        if not has[sub]:
            raise DataError(f"{root / sub}: missing KITTI sub-folder (need {', '.join(SUBDIRS)}, or a raw "
                            f"drive's {', '.join(RAW_SUBDIRS)})")
    return KittiLayout(root, "object")


def list_indices(folder: str | Path, index: str | None = None) -> list[str]:
    """The indices of ``folder`` (either layout) that have a scan, an image and a calibration (sorted), or
    just ``index``."""
    return kitti_layout(folder).indices(index)


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
    from edge.data.rig import NUMBER

    out = []
    for n, line in enumerate(text.splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) not in (15, 16):
            raise DataError(f"{p}:{n}: a KITTI label line has 15 fields, this one {len(f)}")
        # plain decimal numbers only: float() also takes nan / inf / 1e999 and "1_0" (as 10); KITTI marks
        # unknowns with -1 / -10 / -1000, never those
        bad = next((i for i, x in enumerate(f[1:15], 1) if not NUMBER.fullmatch(x)), None)
        if bad is None:
            v = [float(x) for x in f[1:15]]
            bad = next((i for i, x in enumerate(v, 1) if not math.isfinite(x)), None)
        if bad is not None:
            raise DataError(f"{p}:{n}: KITTI label field {bad + 1} is '{f[bad][:20]}', not a finite number")
        if v[1] not in (-1, 0, 1, 2, 3):  # KITTI's occlusion states (0-3; -1 for DontCare)
            raise DataError(f"{p}:{n}: KITTI label field 3 (occluded) is '{f[2][:20]}', not one of 0, 1, 2, 3 "
                            "(-1 for DontCare)")
        out.append(KittiObject(f[0], v[0], int(v[1]), v[2], (v[3], v[4], v[5], v[6]), (v[7], v[8], v[9]),
                               (v[10], v[11], v[12]), v[13]))
    return out
