"""Where results go: overlay video, JSONL, a live window, point-cloud dumps, a UDP JSON publisher.

Every sink has ``open()``, ``write(result)`` and ``close(commit)``. File sinks write under a temporary
name and rename on ``close(commit=True)``, which the pipeline calls on normal end *and* on
SIGINT/SIGTERM (after draining), so an interrupted run leaves a playable video and a JSONL whose
every line parses; only a crash leaves nothing (never a half-written file under the final name).
The overlay image is drawn once per result and shared by the video and display sinks.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from pathlib import Path
from typing import Any

import numpy as np

from edge import jsonout
from edge.data.frame import is_points
from edge.errors import DataError
from edge.files import (
    ASIDE,
    check_target,
    clean_stale_files,
    make_folder,
    partial_file,
    probe_write,
    put_back_aside,
    remove_made,
)
from edge.stream.task import Result


class Sink:
    """Base sink: subclasses override what they need."""

    name = "sink"
    wants_image = False

    def open(self) -> None:
        """Check and create what is needed now, so a bad path fails before the loop starts."""

    def write(self, result: Result) -> None:
        raise NotImplementedError

    def prepare(self) -> None:
        """The first half of a commit: finish writing and check what was written, still under its temporary name
        (a DataError when it is not whole). The loop prepares every sink before it commits any, and one that fails
        discards them all: a run's output files are all of that run, or none of it (a video that failed its check
        beside a JSONL that got its name mixed two runs in a reused --out folder)."""

    def close(self, commit: bool = True) -> None:
        """Finish; ``commit`` False discards (the run failed). After :meth:`prepare`, a commit only names."""

    def note(self) -> str | None:
        """One line on what went wrong while writing without stopping the run (None: nothing)."""
        return None


def _check_parent(path: Path) -> list[Path]:
    """Create ``path``'s folder if needed; returns the folders created (removed again on discard)."""
    try:
        made = make_folder(path.parent.absolute())
    except OSError as e:
        dangling = next((f for f in (path.parent, *path.parent.parents) if f.is_symlink() and not f.exists()), None)
        if dangling is not None:  # "File exists" said nothing about a link to nowhere
            raise DataError(f"{path}: cannot create its folder: {dangling} is a symbolic link to "
                            f"{os.readlink(dangling)}, which does not exist") from None
        raise DataError(f"{path}: cannot create its folder ({e.strerror})") from None
    if not os.access(path.parent, os.W_OK):
        remove_made(made)
        raise DataError(f"{path}: folder is not writable")
    try:  # access() says yes to root on a read-only mount or /sys; the video writer then blamed its codecs
        probe_write(path)
    except OSError as e:
        remove_made(made)
        raise DataError(f"{path}: cannot write ({e.strerror})") from None
    return made


class OverlaySink(Sink):
    """Overlay video: the task's drawing plus point clouds projected with the sensor rig."""

    name = "video"
    wants_image = True

    def __init__(self, path: str | os.PathLike[str], fps: float | None = None, fps_source: Any = None) -> None:
        check_target(path, "--save")  # the name as given: Path() drops a trailing '/'
        self.path = Path(path)
        from edge.stream.overlay import video_name_problem

        problem = video_name_problem(self.path)
        if problem is not None:
            raise DataError(f"{self.path}: --save writes a video; {problem}")
        self.fps = fps
        self.fps_source = fps_source  # the primary source: its frame rate is known once it is open
        self._w: Any = None
        self.frames = 0
        self.results = 0

    def open(self) -> None:
        from edge.stream.overlay import VideoWriter

        self._made = _check_parent(self.path)
        fps = self.fps or getattr(self.fps_source, "fps", None) or 30.0
        self._w = VideoWriter(self.path, fps)

    def write(self, result: Result) -> None:
        self.results += 1
        img = result._image
        if img is not None and self._w is not None:
            self._w.write(img)
            self.frames += 1

    def note(self) -> str | None:
        """A run whose results had no overlay frame (the model drew none for them): the video was not written."""
        if self.results and not self.frames:
            return (f"--save {self.path}: no overlay frame in this run's {self.results} result(s) (the model drew "
                    "none for these frames); nothing written")
        return None

    def prepare(self) -> None:
        if self._w is not None and self.frames > 0:
            self._w.prepare()  # the file reads back whole, or a DataError

    def close(self, commit: bool = True) -> None:
        if self._w is not None:
            w, self._w = self._w, None
            try:
                w.close(commit=commit and self.frames > 0)  # verified (prepare) before it gets its name
            except BaseException:
                remove_made(self._made)
                raise
            if not commit or self.frames == 0:
                remove_made(self._made)


class JsonlSink(Sink):
    """One JSON object per result, flushed per line (a reader tailing the partial file sees whole lines)."""

    name = "jsonl"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        check_target(path, "--jsonl")  # the name as given: Path() drops a trailing '/'
        self.path = Path(path)
        self.tmp = partial_file(self.path)  # private to this run
        self._f: Any = None
        self.lines = 0

    @property
    def frames(self) -> int:
        return self.lines

    def open(self) -> None:
        self._made = _check_parent(self.path)
        clean_stale_files(self.path.parent, self.path.name)  # a killed run's file of this name
        try:
            self._f = self.tmp.open("w")
        except OSError as e:
            remove_made(self._made)
            raise DataError(f"{self.path}: cannot write ({e.strerror})") from None

    def write(self, result: Result) -> None:
        try:
            self._f.write(jsonout.dumps(result.record, separators=(",", ":")) + "\n")
            self._f.flush()
        except OSError as e:  # disk full: the stage stops the run; close() removes the partial file
            raise DataError(f"{self.path}: cannot write ({e.strerror})") from None
        self.lines += 1

    _synced = False

    def prepare(self) -> None:
        """Flushed and fsynced under the partial name (a full disk shows here)."""
        if self._f is None or self.lines == 0 or self._synced:
            return
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
            here, written = os.stat(self.tmp), os.fstat(self._f.fileno())
        except OSError as e:  # the stat too: a folder removed mid-run failed only the rename, after the others were
            # named beside a summary listing this file (a review)
            raise DataError(f"{self.path}: cannot write ({e.strerror}); nothing was kept") from None
        if (here.st_dev, here.st_ino) != (written.st_dev, written.st_ino):
            raise DataError(f"{self.path}: its partial file {self.tmp.name} was replaced while it was written; "
                            "nothing was kept")
        self._synced = True

    def close(self, commit: bool = True) -> None:
        """Commit = flushed, fsynced (:meth:`prepare`), renamed; a failure at any step removes the partial file
        and says so."""
        if self._f is None:
            return
        f, self._f = self._f, None
        commit = commit and self.lines > 0
        kept = False  # set only once renamed: any exception before (KeyboardInterrupt too) removes the partial
        try:
            try:
                if commit and not self._synced:
                    f.flush()
                    os.fsync(f.fileno())
            finally:
                f.close()
            if commit:
                os.replace(self.tmp, self.path)
                kept = True
        except OSError as e:
            raise DataError(f"{self.path}: cannot write ({e.strerror}); nothing was kept") from None
        finally:
            if not kept:
                self.tmp.unlink(missing_ok=True)
                remove_made(self._made)


class DisplaySink(Sink):
    """A live OpenCV window; needs a display and an OpenCV with GUI support (pip's headless has none)."""

    name = "display"
    wants_image = True

    def __init__(self, title: str = "edge run") -> None:
        self.title = title
        self.quit = False

    def open(self) -> None:
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise DataError("--display: no display here (DISPLAY is not set)")
        import cv2

        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise DataError("--display: this OpenCV has no GUI support (opencv-python-headless); install "
                            "opencv-python or use the system OpenCV") from None

    def write(self, result: Result) -> None:
        import cv2

        if result._image is not None:
            cv2.imshow(self.title, result._image)
            if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                self.quit = True

    def close(self, commit: bool = True) -> None:
        import cv2

        with contextlib.suppress(cv2.error):
            cv2.destroyWindow(self.title)


class PointDumpSink(Sink):
    """Every point cloud of a result as ``<sensor>_<seq>.npy`` (structured POINT_DTYPE), and the model's own
    output cloud (a family whose payload carries ``points``, e.g. a cleaned scan) as
    ``output_<seq>.npy``; each written atomically."""

    name = "points"

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise DataError(f"{self.folder}: exists and is not a folder; --dump-points needs a folder")
        self.files = 0
        self.results = 0  # results seen, and point clouds among them (kept even when a failed run removes its files)
        self.clouds = 0
        self._made: list[Path] = []
        self._written: list[Path] = []
        self._earlier: set[str] = set()  # the clouds the folder held when the run opened it
        self._kept_aside: dict[Path, Path] = {}  # an earlier run's cloud this run wrote over -> where it waits

    def open(self) -> None:
        try:
            self._made = make_folder(self.folder.absolute())
        except OSError as e:
            raise DataError(f"{self.folder}: cannot create the point-cloud folder ({e.strerror})") from None
        put_back_aside(self.folder)  # an earlier run's clouds a killed run had moved aside: back on their names
        clean_stale_files(self.folder)  # the clouds a killed run was writing
        self._earlier = {p.name for p in self.folder.glob("*.npy") if p.is_file() and not p.name.startswith(".")}
        from edge.files import replace_problem

        for name in sorted(self._earlier):  # one this run may write over but not replace failed after the run; only
            # the names it writes (SENSOR_NNNNNN.npy, output_NNNNNN.npy): another user's notes.npy beside is no matter
            if re.fullmatch(r".+_\d{6}\.npy", name) and (why := replace_problem(self.folder / name)) is not None:
                remove_made(self._made)
                raise DataError(f"{self.folder / name}: {why}; --dump-points may write over an earlier run's "
                                "clouds: give another folder")

    def note(self) -> str | None:
        """The clouds an earlier run left in the folder that this run did not write over (they would read as
        this run's: a second, shorter run left the first one's later frames beside its own)."""
        if self.results and not self.clouds:  # an option that did nothing, said (a camera-only run)
            return (f"--dump-points {self.folder}: no point cloud in this run's {self.results} result(s) (no LiDAR "
                    "rotation was paired with a frame, and the model gives none); nothing written")
        left = sorted(self._earlier - {f.name for f in self._written})
        if not left:
            return None
        return (f"{self.folder} also holds {len(left)} point cloud(s) this run did not write ({', '.join(left[:2])}"
                f"{', ...' if len(left) > 2 else ''}): an earlier run's")

    def _save(self, stem: str, data: np.ndarray) -> None:
        final = self.folder / f"{stem}.npy"
        tmp = partial_file(final, ".npy")  # private to this run (np.save keeps a name ending in .npy)
        try:
            np.save(tmp, data)
            if final.name in self._earlier and final not in self._kept_aside:
                # an earlier run's cloud of this name: moved aside until this run commits, and put back if it does
                # not (a run discarded by a failed video check deleted the earlier run's clouds)
                aside = partial_file(final, ASIDE)  # a dead run's is put back by the next (put_back_aside)
                os.replace(final, aside)
                self._kept_aside[final] = aside
            os.replace(tmp, final)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            # a short write (disk full, a file-size limit) raises without an errno
            raise DataError(f"{final}: cannot write ({e.strerror or 'short write: disk full?'})") from None
        self._written.append(final)
        self.files += 1
        self.clouds += 1

    def close(self, commit: bool = True) -> None:
        if not commit:  # a failed run keeps none of its outputs: the clouds it dumped go with the rest
            for f in self._written:
                f.unlink(missing_ok=True)
            self._written, self.files = [], 0
        for final, aside in self._kept_aside.items():  # the earlier run's clouds: back, or replaced for good
            with contextlib.suppress(OSError):
                if commit:
                    aside.unlink(missing_ok=True)
                else:
                    os.replace(aside, final)
        self._kept_aside = {}
        if self.files == 0:  # an empty folder is not a result
            remove_made(self._made)

    def write(self, result: Result) -> None:
        self.results += 1
        for sensor, fr in result.frames.items():
            if is_points(fr.data):
                self._save(f"{sensor}_{fr.seq:06d}", fr.data)
        out = result.payload.get("points") if isinstance(result.payload, dict) else None
        if out is not None and is_points(out):
            self._save(f"output_{result.seq:06d}", out)


class UdpJsonSink(Sink):
    """Each record as one UDP datagram of JSON to HOST:PORT (fire and forget, like a sensor would)."""

    name = "udp"
    MAX_DATAGRAM = 65_000

    def __init__(self, target: str) -> None:
        from edge.errors import shown, unsafe_character

        if any(unsafe_character(c) for c in target):  # getaddrinfo read "localhost\x00.example.com" as localhost
            raise DataError(f"bad UDP target '{shown(target)}': a control character in it (use HOST:PORT)")
        host, _, port = target.rpartition(":")
        host = host.removeprefix("udp://")
        if host.startswith("[") and host.endswith("]"):  # an IPv6 address as URLs write it: [::1]:5600
            host = host[1:-1]
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise DataError(f"bad UDP target '{target}' (use HOST:PORT, e.g. 127.0.0.1:5600)")
        self.addr = (host, int(port))
        self.sock: socket.socket | None = None
        self.sent = 0
        self.oversize = 0
        self.errors = 0
        self.first_error = ""

    def open(self) -> None:
        try:
            info = socket.getaddrinfo(self.addr[0], self.addr[1], type=socket.SOCK_DGRAM)[0]
        except socket.gaierror as e:
            raise DataError(f"UDP target {self.addr[0]}:{self.addr[1]}: {e.strerror}") from None
        self.sock = socket.socket(info[0], socket.SOCK_DGRAM)
        self.addr = info[4][:2]

    def write(self, result: Result) -> None:
        data = jsonout.dumps(result.record, separators=(",", ":")).encode()
        if len(data) > self.MAX_DATAGRAM:
            self.oversize += 1
            return
        try:
            assert self.sock is not None
            self.sock.sendto(data, self.addr)
            self.sent += 1
        except OSError as e:  # no listener / network down: a publisher must not stop the car's loop
            self.errors += 1
            self.first_error = self.first_error or (e.strerror or type(e).__name__)

    def note(self) -> str | None:
        tried = self.sent + self.errors + self.oversize
        parts = [f"{self.errors} failed ({self.first_error})" if self.errors else "",
                 f"{self.oversize} over {self.MAX_DATAGRAM} bytes, not sent" if self.oversize else ""]
        said = ", ".join(p for p in parts if p)
        return f"--udp {self.addr[0]}:{self.addr[1]}: of {tried} records {said}" if said else None

    def close(self, commit: bool = True) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
