"""A KITTI folder as a camera + LiDAR rig: the object layout (``image_2/*.png``, ``velodyne/*.bin``,
``calib/*.txt``) or a raw drive (``image_02/data``, ``velodyne_points/data`` and its calibration files; see
:mod:`edge.data.kitti`).

Each index becomes two frames with the same ``t_capture_ns`` and ``seq`` (camera first, then lidar),
so the pipeline's timestamp matching pairs them exactly, and both carry ``meta["rig"]`` (a
:class:`~edge.data.rig.Rig`; an object calib's states no image size) and ``meta["index"]``, and each its own
``meta["file"]`` (what an error or a skip names): fusion models get the projection with the data, not from a
side channel. The folder is checked at ``open()`` (see :mod:`edge.data.kitti`); images are
read lazily with OpenCV. ``realtime`` paces the indices at ``fps`` like a live rig.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge.data.frame import Frame, now_ns
from edge.data.kitti import KittiLayout, kitti_layout, read_bin, read_image
from edge.data.pacing import Pacer, frame_ns
from edge.data.rig import Rig
from edge.errors import DataError
from edge.stream.sources.base import Source

log = logging.getLogger("edge.stream")
#: (spec, count) of the folders whose unpaired images were said
_SAID: set[tuple[str, int]] = set()


class KittiSource(Source):
    """Camera + LiDAR frames from a KITTI folder (e.g. ``.../object/training`` or a raw drive).

    ``index`` limits it to one sample ("000114"); otherwise every index that has a scan, an image and
    a calibration, in sorted order. ``max_frames`` (0 = all) stops after that many samples (pairs).
    """

    sensors = ("camera", "lidar")
    brings_rigs = True

    def __init__(self, folder: str | Path, *, index: str | None = None, realtime: bool = False,
                 fps: float = 10.0, max_frames: int = 0) -> None:
        from edge.stream.sources import check_fps

        check_fps(fps, f"kitti:{folder}: fps {fps}")  # NaN turned pacing off; 1e-320 overflowed the clock
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
        self._rigs: dict[Path, Rig] = {}
        self._layout: KittiLayout | None = None
        self.unpaired_images = 0
        self.unpaired_scans = 0

    @property
    def layout(self) -> KittiLayout:
        """The folder's layout (checked when first asked: a missing folder is one line)."""
        if self._layout is None:
            self._layout = kitti_layout(self.folder)
        return self._layout

    def reads(self) -> tuple[Path, ...]:
        try:
            return self.layout.reads()
        except (DataError, OSError):  # not a (readable) KITTI folder: open() says so, in the run
            from edge.data.kitti import SUBDIRS

            return tuple(self.folder / s for s in (*SUBDIRS, "label_2"))

    def open(self) -> None:
        indices = self.layout.indices(self.index)
        if self.index is None:
            said = self.layout.unpaired_lines(self.spec, "read")
            self.unpaired_images, self.unpaired_scans = said["images"][0], said["scans"][0]
            for sign, key in ((1, "images"), (-1, "scans")):
                n, line = said[key]
                # said once a process (edge calibrate opens the folder for its rig and again to run), counted in
                # each run's summary
                if n and (self.spec, sign * n) not in _SAID:
                    _SAID.add((self.spec, sign * n))
                    log.warning("%s", line)
        self.indices = indices[:self.max_frames] if self.max_frames > 0 else indices

    def calib_name(self, index: str) -> str:
        """Where the rig of ``index`` comes from, for messages ("calib/000114.txt", or a raw drive's folder)."""
        p = self.layout.calib_path(index)
        return f"calib/{p.name}" if self.layout.kind == "object" else str(p)

    def rig(self, index: str) -> Rig:
        """The rig of one index, read once per calibration file or folder (a raw drive's one for every index)."""
        key = self.layout.calib_path(index)
        rig = self._rigs.get(key)
        if rig is None:
            rig = self._rigs[key] = self.layout.rig(index)
        return rig

    def own_rig(self) -> Rig:
        """The calibration of the indices this source will read (it is built with ``--frames``): one rig, as
        frames of several drives would mix calibrations (a DataError naming the two files that differ)."""
        import numpy as np

        if not self.indices:
            self.open()
        idx = self.indices[0]
        rig = self.rig(idx)
        for other in self.indices[1:]:
            o = self.rig(other)
            same = np.allclose(o.T_lidar_to_cam, rig.T_lidar_to_cam, atol=1e-6) and np.allclose(o.P, rig.P, atol=1e-6)
            if not same:
                raise DataError(f"{self.folder}: {self.calib_name(other)} differs from {self.calib_name(idx)}; "
                                "calibrate one rig at a time (kitti:FOLDER,index=ID, or a folder of one drive)")
        return rig

    def __iter__(self) -> Iterator[Frame]:
        if not self.indices:
            self.open()
        pacer = Pacer(max_gap_s=None)
        for i, idx in enumerate(self.indices):
            if self.realtime:
                pacer.wait(frame_ns(i, self.period_s))
            # a calibration stating no image size (KITTI object's) stays so: the stream checks its principal point
            # against each image (a calib for another image size is a counted skip, not a projection at its scale)
            rig = self.rig(idx)
            image_path, scan_path = self.layout.image_path(idx), self.layout.scan_path(idx)
            image = read_image(image_path)
            points = read_bin(scan_path)
            t = now_ns()
            meta: dict[str, Any] = {"rig": rig, "index": idx}
            yield Frame(image, t, self._seq, "camera", {**meta, "file": str(image_path)})
            yield Frame(points, t, self._seq, "lidar", {**meta, "file": str(scan_path)})
            self._seq += 1


    def counters(self) -> dict[str, int]:
        return {"unpaired_images": self.unpaired_images, "unpaired_scans": self.unpaired_scans}


def kitti_source(spec: str, *, realtime: bool = False, max_frames: int = 0) -> KittiSource:
    """``kitti:FOLDER[,index=000114][,fps=10]`` -> :class:`KittiSource`."""
    from edge.stream.sources import spec_options

    # an option given twice is refused there (the last one silently won); an existing folder is taken whole
    folder, opts = spec_options(spec[len("kitti:"):] if spec.startswith("kitti:") else spec, said=spec)
    if not folder:
        raise DataError(f"{spec}: no folder; expected kitti:FOLDER[,index=000114][,fps=10]")
    unknown = set(opts) - {"index", "fps"}
    if unknown:
        raise DataError(f"{spec}: unknown option {sorted(unknown)[0]!r}; expected kitti:FOLDER[,index=000114][,fps=10]")
    if "index" in opts and not opts["index"]:  # read every frame without a word
        raise DataError(f"{spec}: index= is empty; name a frame (index=000114) or leave the option out")
    from edge.stream.sources import fps_option

    src = KittiSource(folder, index=opts.get("index") or None, realtime=realtime, fps=fps_option(spec, opts),
                      max_frames=max_frames)
    src.spec = spec
    return src
