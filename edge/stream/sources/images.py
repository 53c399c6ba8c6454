"""A folder of image files as a camera: frames in natural file order (``frame2`` before ``frame10``).

Users expect a folder of frames to work like a video. Files that are not whole (a JPEG cut short,
which OpenCV would decode into a half-grey frame without a word) are skipped, counted in
``bad_images`` and named once in the log; ``realtime`` paces delivery at ``fps`` like a camera.
One image file given as the source is read the same way (not as a one-frame video: OpenCV's video reader
ignores a JPEG's EXIF orientation, which the image reader applies, and decodes a damaged file without a word);
that one file unreadable is the run's one-line error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from edge.data.frame import Frame, now_ns
from edge.data.images import list_images, read_image
from edge.data.pacing import Pacer, frame_ns
from edge.errors import DataError
from edge.stream.sources.base import Source

log = logging.getLogger("edge.stream")


class ImageFolderSource(Source):
    """One Frame per image file of ``folder`` (not its sub-folders)."""

    sensors = ("camera",)

    def __init__(self, spec: str, folder: str | Path, *, fps: float = 10.0, realtime: bool = False,
                 max_frames: int = 0, image: str | Path | None = None) -> None:
        """``image``: this one file of ``folder`` instead of every image in it."""
        from edge.stream.sources import check_fps

        check_fps(fps, f"{spec}: fps {fps}")  # 1e-320 overflowed the clock
        self.spec, self.folder = spec, Path(folder)
        self.image = None if image is None else Path(image)
        self.fps, self.period_s = float(fps), 1.0 / float(fps)
        self.realtime = self.live = realtime
        self.max_frames = max_frames
        self.files: list[Path] = []
        self.bad_images = 0

    def reads(self) -> tuple[Path, ...]:
        """The images it reads (not the folder: a rerun's outputs beside them are not inputs)."""
        return tuple(self.files or self._listed())

    def _listed(self) -> list[Path]:
        return [self.image] if self.image is not None else list_images(self.folder)

    def open(self) -> None:
        self.files = self._listed()
        if not self.files:
            raise DataError(f"{self.folder}: no images in this folder (sub-folders are not read)")
        self.frames_total = len(self.files) if not self.max_frames else min(len(self.files), self.max_frames)

    def __iter__(self) -> Iterator[Frame]:
        if not self.files:
            self.open()
        pacer, seq = Pacer(max_gap_s=None), 0
        for k, path in enumerate(self.files):
            if self.max_frames and seq >= self.max_frames:
                return
            img, problem = read_image(path)
            if img is None and self.image is not None:  # the one image the run was given: its error
                raise DataError(f"{path}: {problem}")
            if img is None:
                self.bad_images += 1
                log.warning("%s: %s; skipped", path, problem)
                continue
            # placed in the recording (and paced) by its file's position, so a skipped unreadable file leaves its gap
            t_ns = frame_ns(k, self.period_s)
            if self.realtime:
                pacer.wait(t_ns)
            # position: the file's index, skipped files included (how a multi: source keeps its parts aligned)
            meta = {"file": path.name, "fps": self.fps, "t_recorded_ns": t_ns, "position": k}
            yield Frame(img, now_ns(), seq, self.sensors[0], meta)
            seq += 1
        if seq == 0:
            raise DataError(f"{self.folder}: none of its {len(self.files)} images could be read")

    def counters(self) -> dict[str, int]:
        return {"bad_images": self.bad_images}
