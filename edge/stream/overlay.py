"""Overlay drawing and a video writer that works with OpenCV 4.x (Jetson) and 5.x (pip).

pip's OpenCV has no H.264 encoder, so the writer encodes what each container takes here (:data:`VIDEO_CODECS`:
mp4v in .mp4, MJPG in .avi, ...). The file gets the name it was given, or none: it used to fall back to MJPG in
``NAME.avi`` when mp4v would not open, a name no output check had seen (``--save clip.txt`` wrote over the
``clip.avi`` the run was reading). The file is written under a temporary name and renamed on close, so an
interrupted run never leaves a truncated video that looks complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import DataError


def letterbox(img: np.ndarray, hw: tuple[int, ...]) -> np.ndarray:
    """``img`` scaled to fit ``hw`` (aspect kept, area averaging when shrinking), centred on black."""
    import cv2

    H, W = hw[:2]
    h, w = img.shape[:2]
    s = min(W / w, H / h)
    nw, nh = max(1, min(W, round(w * s))), max(1, min(H, round(h * s)))
    out = np.zeros((H, W, *img.shape[2:]), img.dtype)
    y, x = (H - nh) // 2, (W - nw) // 2
    out[y:y + nh, x:x + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    return out


#: the containers a video may be written as and the codecs tried for each, in order (MJPG in .avi is OpenCV's own
#: writer, which needs no FFmpeg; the others are FFmpeg's as OpenCV builds it)
VIDEO_CODECS = {".mp4": ("mp4v", "MJPG"), ".m4v": ("mp4v", "MJPG"), ".mov": ("mp4v", "MJPG"),
                ".mkv": ("mp4v", "MJPG"), ".avi": ("MJPG", "mp4v"), ".webm": ("VP80", "VP90")}
#: the rate a video slower than no writer here opens for is written at (OpenCV's MJPG writer refuses under 1 fps;
#: FFmpeg's mp4v took 0.01 and refused 0.001)
MIN_VIDEO_FPS = 1.0


def video_name_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot name a video this writer makes (its suffix is no container it writes), or None."""
    from edge.files import utf8_name_problem

    if Path(path).suffix.lower() not in VIDEO_CODECS:
        return f"not a video file name (one ends in {', '.join(VIDEO_CODECS)})"
    return utf8_name_problem(path, absolute=True)  # the writer is given it absolute (media_path)


#: what a video's first write needs at least: a writer that cannot open for lack of it says so
PROBE_BYTES = 256 * 1024


def _say_unwritable(path: Path, tmp: Path) -> None:
    """A DataError when ``tmp``'s folder cannot take :data:`PROBE_BYTES` (a full disk, a quota), else nothing."""
    try:
        with open(tmp, "wb") as f:
            f.write(b"\0" * PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise DataError(f"{path}: cannot write the video ({e.strerror or e}); nothing was kept") from None
    finally:
        tmp.unlink(missing_ok=True)


class VideoWriter:
    """Atomic video writer: ``with VideoWriter(path, fps) as w: w.write(frame)``. ``path`` ends in one of
    :data:`VIDEO_CODECS`' suffixes (DataError otherwise). A rate under :data:`MIN_VIDEO_FPS` that no codec opens
    for is written at that rate instead (``fps`` says the rate written, once the first frame opened it)."""

    def __init__(self, path: str | os.PathLike[str], fps: float) -> None:
        self.path = Path(path)
        problem = video_name_problem(self.path)
        if problem is not None:
            raise DataError(f"{self.path}: {problem}")
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self._w: Any = None
        self._tmp: Path | None = None
        self.frames = 0

    def _open(self, shape: tuple[int, ...]) -> None:
        import cv2

        from edge.files import clean_stale_files, media_path, partial_file
        from edge.native_stderr import caught

        h, w = shape[:2]
        clean_stale_files(self.path.parent, self.path.name)  # a killed run's file of this name
        tmp = partial_file(self.path, self.path.suffix)  # private to this run; OpenCV picks the container by suffix
        codecs = VIDEO_CODECS[self.path.suffix.lower()]
        said: list[str] = []
        for fps in (self.fps, MIN_VIDEO_FPS) if self.fps < MIN_VIDEO_FPS else (self.fps,):
            for fourcc in codecs:
                with caught() as lines:  # FFmpeg's complaints about a codec it cannot open: in the error, not stderr
                    wr = cv2.VideoWriter(media_path(tmp), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
                said += lines
                if wr.isOpened():
                    self._w, self._tmp, self.fps = wr, tmp, fps
                    return
                wr.release()
                tmp.unlink(missing_ok=True)  # a writer that did not open may have left its file
        why = next((ln.split("]", 1)[-1].strip() for ln in said if "Could not" in ln or "Failed" in ln), "")
        if not why:  # FFmpeg's mp4 muxer fails on a full disk without a word: it was blamed on the codecs (a review)
            _say_unwritable(self.path, tmp)
        raise DataError(f"{self.path}: OpenCV cannot write a {self.path.suffix} video here (tried "
                        f"{' and '.join(codecs)}{': ' + why if why else ''}); .avi uses OpenCV's own MJPG writer")

    def write(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if h % 2 or w % 2:  # MPEG-4 needs even sizes and would crop the odd row/column: pad it instead
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))
        if self._w is None:
            self._open(frame.shape)
            self._size = frame.shape[:2]
        elif frame.shape[:2] != self._size:  # a folder of mixed sizes: the encoder silently dropped these
            frame = letterbox(frame, self._size)
        self._w.write(frame)
        self.frames += 1

    _size: tuple[int, ...] = ()

    def prepare(self) -> None:
        """The first half of a commit: release the encoder and check that the file is on disk and reads back whole,
        still under its temporary name (OpenCV reports write errors, such as a full disk, only as FFmpeg log
        lines); a DataError when it does not. :meth:`close` then only gives it its name."""
        if self._w is None:
            return
        w, self._w = self._w, None
        w.release()
        assert self._tmp is not None
        self._check(self._tmp)
        self._ready = True

    def _check(self, tmp: Path) -> None:
        from edge.files import fsync_file

        try:
            fsync_file(tmp)
        except OSError as e:
            raise DataError(f"{self.path}: cannot write the video ({e.strerror}); nothing was kept") from None
        readable = readable_frames(tmp, self.frames)
        if readable != self.frames:
            raise DataError(f"{self.path}: the video did not write completely ({readable} of {self.frames} "
                            "frames read back; disk full?); nothing was kept")

    def close(self, commit: bool = True) -> None:
        """Release the encoder; with ``commit`` the file gets its name only once it is on disk and reads
        back whole (checked here unless :meth:`prepare` checked it)."""
        tmp, self._tmp = self._tmp, None
        if tmp is None:
            return
        try:
            if self._w is not None:
                w, self._w = self._w, None
                w.release()
                if commit:
                    self._check(tmp)
            elif not self._ready:  # prepare() raised: its file is not the video
                commit = False
            if commit:
                try:
                    os.replace(tmp, self.path)
                except OSError as e:
                    raise DataError(f"{self.path}: cannot write the video ({e.strerror}); nothing was kept") from None
        finally:
            tmp.unlink(missing_ok=True)  # after a commit it is gone already

    _ready = False

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.close(commit=exc_type is None)


def readable_frames(path: str | os.PathLike[str], expected: int) -> int:
    """How many of ``expected`` frames a video file gives back: its container's frame count, confirmed
    by decoding the last frame (a file without its index, or cut short, reads as fewer or none)."""
    import cv2

    from edge.files import media_path

    cap = cv2.VideoCapture(media_path(path))
    try:
        if not cap.isOpened():
            return 0
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if n <= 0:
            return 0
        n = min(n, expected) if expected else n
        cap.set(cv2.CAP_PROP_POS_FRAMES, n - 1)
        ok, _ = cap.read()
        return n if ok else 0
    finally:
        cap.release()


def jet(level: np.ndarray) -> np.ndarray:
    """uint8 levels -> [N, 3] BGR colours of OpenCV's JET map. Empty in, empty out: ``cv2.applyColorMap``
    returns None for an empty array, which crashed a drawing whenever no point landed in the picture."""
    import cv2

    level = np.asarray(level, np.uint8).reshape(-1, 1)
    if level.size == 0:
        return np.zeros((0, 3), np.uint8)
    return cv2.applyColorMap(level, cv2.COLORMAP_JET).reshape(-1, 3)


def draw_points(img: np.ndarray, uv: np.ndarray, rng: np.ndarray, max_range: float = 60.0) -> np.ndarray:
    """Draw projected LiDAR points in place, coloured by range (near red -> far blue, JET colormap)."""
    if len(uv) == 0:
        return img
    h, w = img.shape[:2]
    p = np.round(uv).astype(np.int32)
    keep = (p[:, 0] >= 0) & (p[:, 0] < w) & (p[:, 1] >= 0) & (p[:, 1] < h)
    p, r = p[keep], np.asarray(rng)[keep]
    level = np.clip(255 - r / max_range * 255, 0, 255).astype(np.uint8)
    colors = jet(level)
    img[p[:, 1], p[:, 0]] = colors
    if w >= 640:  # one pixel is hard to see on a large frame: thicken to 2x2
        p2 = np.minimum(p + 1, [w - 1, h - 1])
        img[p2[:, 1], p2[:, 0]] = colors
    return img


def draw_caption(img: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` in the top-left corner, in place."""
    import cv2

    scale = max(1, img.shape[1] // 640)
    cv2.putText(img, text, (10, 30 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, (255, 255, 255), 2 * scale)
    return img
