"""Camera-like sources through OpenCV: V4L2 index, video file, RTSP/HTTP URL, GStreamer pipeline.

One class covers them because OpenCV's VideoCapture does; what differs is policy. A file ends (or,
with ``realtime``, is paced at its own frame rate the way a camera would deliver it); a device, URL
or GStreamer pipeline is live: a failed read means the stream was lost, and the runner reconnects
with backoff. OpenCV is imported inside the methods so a LiDAR-only deployment never loads it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge.data.frame import Frame, now_ns
from edge.data.pacing import Pacer, frame_ns
from edge.errors import DataError
from edge.stream.sources.base import Source, SourceLost, Stalled

log = logging.getLogger("edge.stream")

#: a live stream that returns no frame for this long is lost (OpenCV's own read timeout where it has one)
READ_TIMEOUT_S = 5.0


def _cv2() -> Any:
    # FFmpeg prints its own diagnostics for broken files; our DataError is the one line the user sees.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2

    return cv2


def has_gstreamer() -> bool:
    """Whether this OpenCV build can open GStreamer pipelines (pip wheels cannot; JetPack's can)."""
    cv2 = _cv2()
    info = cv2.getBuildInformation()
    for line in info.splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.split(":", 1)[1].upper()
    return False


def jetson_csi_pipeline(sensor_id: int = 0, width: int = 1280, height: int = 720, fps: int = 30) -> str:
    """The nvarguscamerasrc pipeline for a Jetson CSI camera, ending in BGR frames for appsink."""
    return (f"nvarguscamerasrc sensor-id={sensor_id} ! video/x-raw(memory:NVMM),width={width},height={height},"
            f"framerate={fps}/1 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
            "appsink drop=true max-buffers=1 sync=false")


class FileClock:
    """Seconds from a video file's first frame, from the timestamps OpenCV reads (``CAP_PROP_POS_MSEC`` after a
    read: the frame just read), so a variable-frame-rate file is paced and paired by when each frame was
    taken (its nominal fps drifted 2 s in 6 s on a 50 -> 12.5 fps file); a missing, negative or
    non-increasing stamp is taken as one nominal period after the last."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.first: float | None = None
        self.last: float | None = None

    def at(self, pos_ms: float) -> float:
        t = pos_ms / 1e3
        if self.first is None and math.isfinite(t) and t >= 0:
            self.first = t
        if self.first is not None and math.isfinite(t) and (self.last is None or t - self.first > self.last):
            self.last = t - self.first
        else:
            self.last = 0.0 if self.last is None else self.last + self.period_s
        return self.last


def _file_and_options(target: str) -> tuple[str, str] | None:
    """(file, options text) of a spec that names an existing file followed by options, split where the source specs
    split (at a comma before ``key=``, so a folder named "a,b" stays whole), else at the first comma (``x.jpg,realtime,
    fps=5``); None when no split names a file."""
    from edge.stream.sources import spec_options

    head, opts = spec_options(target)
    if opts and Path(head).is_file():
        return head, target[len(head) + 1:]
    head, _, rest = target.partition(",")
    if rest and "=" in rest and Path(head).is_file():
        return head, rest
    return None


class CameraSource(Source):
    """Frames from OpenCV. ``kind`` is one of "file", "device", "url", "gst"."""

    sensors = ("camera",)

    def __init__(self, spec: str, kind: str, target: Any, *, realtime: bool = False, sensor: str = "camera",
                 max_frames: int = 0) -> None:
        self.spec, self.kind, self.target = spec, kind, target
        self.sensors = (sensor,)
        self.realtime = realtime
        self.live = kind != "file" or realtime
        self.reconnect = kind != "file"
        self.max_frames = max_frames
        self.fps = 30.0
        self.period_s = 1 / 30.0
        self.frames_total: int | None = None
        self._cap: Any = None
        self._first: Any = None  # the frame open() read to check the file, delivered first
        self._seq = 0
        self.read_failures = 0

    def reads(self) -> tuple[Path, ...]:
        return (Path(self.target),) if self.kind == "file" else ()

    def open(self) -> None:
        from edge.files import is_utf8

        cv2 = _cv2()
        if self.kind == "gst" and not has_gstreamer():
            raise DataError(f"{self.spec}: this OpenCV build has no GStreamer support (pip's opencv-python "
                            "does not; on a Jetson use the system OpenCV from JetPack)")
        if self.kind == "file":
            path = Path(self.target)
            if not path.exists():
                given = _file_and_options(str(self.target))
                if given is not None:  # 'c.avi,fps=5' named c.avi,fps=5 as missing
                    from edge.data.images import IMAGE_FORMATS, looks_like_image, named_as_image

                    head, opts = given
                    if named_as_image(head) and looks_like_image(head):  # an image: its options are wrong
                        raise DataError(f"bad image source '{self.spec}' (use IMAGE[,fps=N]; got {opts})")
                    if named_as_image(head):  # an image's name, but no image's first bytes
                        raise DataError(f"{head}: does not start as {IMAGE_FORMATS} does (damaged, or another "
                                        f"format), so it is read as a video, and a video file takes no options "
                                        f"({opts})")
                    raise DataError(f"{head}: a video file takes no options ({opts}): it plays at its own rate "
                                    "(--realtime paces it)")
                raise DataError(f"{path}: no such video file")
            if not path.is_file():
                raise DataError(f"{path}: not a file")
            from edge.files import media_path, read_problem

            if (why := read_problem(path)) is not None:  # OpenCV called it corrupt
                raise DataError(f"{path}: {why}")

            cap = cv2.VideoCapture(media_path(path))
        elif self.kind in ("gst", "url") and not is_utf8(self.target):
            # (bytes that are not UTF-8 in a URL or a pipeline crashed OpenCV's binding, as in a file's name)
            raise DataError(f"{self.spec}: the {'URL' if self.kind == 'url' else 'pipeline'} is not valid UTF-8, "
                            "which OpenCV cannot open")
        elif self.kind == "gst":
            cap = cv2.VideoCapture(self.target, cv2.CAP_GSTREAMER)
        elif self.kind == "url":
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(READ_TIMEOUT_S * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(READ_TIMEOUT_S * 1000)]
            cap = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, params)
        else:
            cap = cv2.VideoCapture(int(self.target))
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # a camera's own queue adds latency under load
        if not cap.isOpened():
            cap.release()
            what = {"file": "corrupt or unsupported codec", "device": "no such camera or it is busy",
                    "url": "stream unreachable or unsupported", "gst": "GStreamer pipeline failed to start"}
            raise DataError(f"{self.spec}: OpenCV cannot open it ({what[self.kind]})")
        from edge.data.images import max_pixels

        self._max_px = max_pixels()
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if w * h > self._max_px:  # images have this limit; a 5 MB video of 12000x12000 frames took 4 GB to run
            cap.release()
            raise DataError(f"{self.spec}: frames of {w}x{h} are over the {self._max_px}-pixel limit images have "
                            "(OPENCV_IO_MAX_IMAGE_PIXELS raises it)")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        # a time-lapse file can hold 0.5 fps (it was taken as 30), or 0.005 (it was taken as 30 below 0.01, where an
        # image folder's fps= kept it): the slowest rate the loop paces (FPS_RANGE) at least; 0, NaN or a rate above
        # the loop's range (an MPEG-TS time base read as 90000): 30
        from edge.stream.sources import FPS_RANGE

        self.fps = max(fps, FPS_RANGE[0]) if 0.0 < fps <= FPS_RANGE[1] else 30.0
        self.period_s = 1.0 / self.fps
        if self.kind == "file":
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            self.frames_total = n if n > 0 else None
            ok, first = cap.read()
            if not ok or first is None:
                cap.release()
                from edge.data.images import IMAGE_FORMATS, named_as_image

                if named_as_image(str(self.target)):  # named as an image, opened as a video
                    raise DataError(f"{self.spec}: neither an image (it does not start as {IMAGE_FORMATS} does: "
                                    "damaged, or another format) nor a video with readable frames")
                raise DataError(f"{self.spec}: video has no readable frames")
            self._first = first
        self._cap = cap

    def frame_sizes(self) -> dict[str, tuple[int, int]]:
        if self._first is not None:
            return {self.sensors[0]: (int(self._first.shape[0]), int(self._first.shape[1]))}
        if self._cap is None:
            return {}
        cv2 = _cv2()
        h, w = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0), int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        return {self.sensors[0]: (h, w)} if h > 0 and w > 0 else {}

    def __iter__(self) -> Iterator[Frame]:
        if self._cap is None:
            raise SourceLost("not open")
        cap = self._cap
        pacer = Pacer(max_gap_s=None)
        clock = FileClock(self.period_s)
        first, self._first = self._first, None
        while True:
            if self.max_frames and self._seq >= self.max_frames:
                return
            if first is not None:
                ok, img = True, first
                first = None
            else:
                ok, img = cap.read()
            if self.stalled():
                raise Stalled("watchdog: stream stalled")
            if not ok or img is None:
                if self.kind == "file":
                    self._note_cut_short()
                    return
                self.read_failures += 1
                raise SourceLost("read failed")
            if img.shape[0] * img.shape[1] > self._max_px:  # a device or stream that declared no size (0x0) at open
                raise DataError(f"{self.spec}: a frame of {img.shape[1]}x{img.shape[0]} is over the {self._max_px}-"
                                "pixel limit images have (OPENCV_IO_MAX_IMAGE_PIXELS raises it)")
            meta: dict[str, Any] = {"fps": self.fps}
            if self.kind == "file":
                meta["position"] = self._seq  # the frame's number in the file (a multi: source aligns on it)
                meta["pos_ms"] = pos = float(cap.get(_cv2().CAP_PROP_POS_MSEC))
                at_s = clock.at(pos)
                meta["t_recorded_ns"] = round(at_s * 1e9)
                if self.realtime:
                    # deliver when the file's own timestamps say, as the camera that recorded it would have
                    pacer.wait(meta["t_recorded_ns"])
            yield Frame(img, now_ns(), self._seq, self.sensors[0], meta)
            self._seq += 1

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    unread_frames = 0

    def _note_cut_short(self) -> None:
        """A file that ends before the frame count its container states was cut short or is corrupt past
        that point: say so once and count it, rather than end as if complete. The count is the container's
        estimate for some formats, so a frame or two (2 %) short is not reported."""
        total = self.frames_total
        if not total or (self.max_frames and self._seq >= self.max_frames):
            return
        missing = total - self._seq
        if missing > max(2, 0.02 * total):
            self.unread_frames = missing
            log.warning("%s: the file states %d frames, only %d could be read (cut short or corrupt)",
                        self.spec, total, self._seq)

    def counters(self) -> dict[str, int]:
        return {"read_failures": self.read_failures, **({"unread_frames": self.unread_frames}
                                                         if self.unread_frames else {})}


class MemorySource(Source):
    """Frames from a list of arrays (tests, benchmarks, frames already in memory), optionally paced.

    ``fps`` None delivers as fast as the pipeline takes them (``block`` runs measure the loop itself);
    with ``fps`` it behaves like a live camera at that rate. ``count`` frames cycle through ``images``.
    """

    def __init__(self, images: list[Any], *, count: int | None = None, fps: float | None = None,
                 sensor: str = "camera", spec: str = "memory", meta: list[dict[str, Any]] | None = None) -> None:
        if not images:
            raise DataError(f"{spec}: no frames given")
        self.images, self.count = list(images), count if count is not None else len(images)
        self.spec, self.sensors = spec, (sensor,)
        self.fps = fps or 30.0
        self.live = fps is not None
        self.period_s = 1.0 / fps if fps else None
        self.meta = meta
        self.frames_total = self.count

    def frame_sizes(self) -> dict[str, tuple[int, int]]:
        first = self.images[0]
        return {self.sensors[0]: (int(first.shape[0]), int(first.shape[1]))} if getattr(first, "ndim", 0) == 3 else {}

    def __iter__(self) -> Iterator[Frame]:
        pacer = Pacer(max_gap_s=None)
        for i in range(self.count):
            if self.period_s:
                pacer.wait(frame_ns(i, self.period_s))
            k = i % len(self.images)
            meta = dict(self.meta[k]) if self.meta else {}
            yield Frame(self.images[k], now_ns(), i, self.sensors[0], meta)
