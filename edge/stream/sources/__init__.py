"""Sources of the stream loop, chosen by a URI-like spec (``edge run --source SPEC --lidar SPEC``).

Specs (``open_source``): ``synthetic[:FRAMES[:HxW]][,key=value...]`` (the model family's synthetic stream;
options go to its generator), ``waveform:sim[,frames=N][,key=value...]`` (the same, for full-waveform
families), ``waveform:FILE[,loop=N]`` (an edge-waveform file), ``camera:N`` (V4L2 index), ``csi:N`` (Jetson
CSI camera through nvarguscamerasrc), ``gst:<pipeline>``, ``rtsp://...`` / ``http(s)://...``,
``kitti:FOLDER[,index=ID]`` (camera + LiDAR pairs), ``multi:NAME=SPEC,NAME=SPEC,...`` (several cameras
read in lockstep, each NAME one of the family's sensors: ``edge.stream.sources.multi``), a folder of
images (``FOLDER[,fps=N]``, natural file order) or a video file path. LiDAR specs
(``edge.stream.sources.lidar.lidar_source``): a ``.pcap`` path, ``velodyne:...``, ``ouster:...,meta=F.json``
or ``udp://HOST:PORT``. Each spec becomes a :class:`Source`; nothing is opened until ``open()``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edge.data.frame import is_waveform
from edge.errors import DataError
from edge.names import keyword_options
from edge.stream.sources.base import Source, SourceLost, SourceThread
from edge.stream.sources.camera import CameraSource, MemorySource, jetson_csi_pipeline
from edge.stream.sources.synthetic import SyntheticSource, parse_synthetic, pattern_frames

__all__ = ["CameraSource", "MemorySource", "Source", "SourceLost", "SourceThread", "SyntheticSource",
           "lidar_spec_source", "open_source", "parse_synthetic", "pattern_frames"]


#: the largest camera index a source spec takes (OpenCV takes a C int; V4L2 devices are numbered far lower)
MAX_DEVICE_INDEX = 1023


def _device_index(spec: str, what: str, meaning: str) -> int:
    """N of ``camera:N`` / ``csi:N``: ASCII digits within 0..MAX_DEVICE_INDEX (``camera:2147483648`` was an
    OpenCV traceback, and ``str.isdigit`` also passes digits ``int`` cannot read, such as superscripts)."""
    idx = spec.split(":", 1)[1]
    prefix = spec.split(":", 1)[0]
    if not (idx.isascii() and idx.isdigit()) or int(idx) > MAX_DEVICE_INDEX:
        raise DataError(f"bad {what} source '{spec[:40]}' (use {prefix}:N with N {meaning}, 0 to {MAX_DEVICE_INDEX}, "
                        f"e.g. {prefix}:0)")
    return int(idx)


def open_source(spec: str, *, realtime: bool = False, max_frames: int = 0, card: Any = None) -> Source:
    """Build (not open) the source for ``spec``; a malformed spec is a one-line DataError.

    ``card``: the model family whose synthetic stream ``synthetic`` means (None, a bundle without a family: a moving
    test pattern; a family that declares no data is refused).
    """
    if spec == "synthetic" or spec.startswith(("synthetic:", "synthetic,")) or spec == "waveform:sim" \
            or spec.startswith("waveform:sim,"):
        head, opts = spec_options(spec, path=False)
        if head.startswith("waveform:"):
            n, hw = _int_option(spec, opts, "frames", 60), None
        else:
            n, hw = parse_synthetic(head)
        n = min(n, max_frames) if max_frames else n
        if card is not None and card.data is not None:
            gen = card.data.synthetic
            seed = _int_option(spec, opts, "seed", 7, lowest=0) if "seed" in opts else 7
            known = keyword_options(gen, 3)
            unknown = sorted(k for k in opts if k not in known)
            if unknown:  # listed, where the call said "synthetic() got an unexpected keyword argument"
                there = ["seed", *(["frames"] if head.startswith("waveform:") else []),
                         *(sorted(known) if isinstance(known, set) else [])]
                raise DataError(f"bad source '{spec}': unknown option {unknown[0]} (model '{card.name}' takes "
                                f"{', '.join(there)})")
            src = SyntheticSource(spec, n, hw, generator=lambda n_, hw_, seed_: gen(n_, hw_, seed_, **opts),
                                  realtime=realtime, seed=seed)
            if head.startswith("waveform:") and not any(is_waveform(d) for d, _ in src.first_tick().values()):
                raise DataError(f"bad source '{spec}': model '{card.name}' reads no full waveforms; its own synthetic "
                                "stream is --source synthetic")
            return src
        if card is not None:  # the test pattern is a camera image: a family's own sensors may be anything else
            raise DataError(f"--source {spec}: model '{card.name}' declares no synthetic data (its card's data); run "
                            f"it on a recording or a device that gives {', '.join(card.sensors.required)}")
        if opts:
            raise DataError(f"bad source '{spec}': options {sorted(opts)} need a model family's synthetic data")
        return SyntheticSource(spec, n, hw, realtime=realtime)
    if spec.startswith("waveform:"):
        from edge.stream.sources.waveform import WaveformFileSource

        path, opts = spec_options(spec[len("waveform:"):], said=spec)
        unknown = set(opts) - {"loop"}
        if unknown or not path:
            raise DataError(f"bad waveform source '{spec}' (use waveform:FILE[,loop=N] or waveform:sim[,...])")
        src = WaveformFileSource(path, realtime=realtime, loop=_int_option(spec, opts, "loop", 1),
                                 max_frames=max_frames)
        src.spec = spec
        return src
    if spec.startswith("camera:"):
        idx = _device_index(spec, "camera", "the V4L2 index")
        return CameraSource(spec, "device", idx, max_frames=max_frames)
    if spec.startswith("csi:"):
        idx = _device_index(spec, "CSI", "the sensor id")
        return CameraSource(spec, "gst", jetson_csi_pipeline(idx), max_frames=max_frames)
    if spec.startswith("gst:"):
        pipe = spec[4:].strip()
        if not pipe:
            raise DataError(f"bad GStreamer source '{spec}' (use gst:<pipeline ending in appsink>)")
        return CameraSource(spec, "gst", pipe, max_frames=max_frames)
    if spec.split("://", 1)[0].lower() in ("rtsp", "rtsps", "http", "https", "rtmp") and "://" in spec:
        return CameraSource(spec, "url", spec, max_frames=max_frames)
    if spec.startswith("multi:"):
        from edge.stream.sources.multi import multi_source

        # the parts read uncapped and the multi source stops at max_frames sets: a part capped by its own count
        # ended the run early where another skipped an unreadable image and the parts read on to meet it
        src = multi_source(spec, lambda sub: open_source(sub, realtime=realtime), card)
        src.max_frames = max_frames
        return src
    if re.match(r"^(velodyne|ouster):", spec, flags=re.IGNORECASE) or (
            spec.lower().split(",")[0].endswith((".pcap", ".pcapng")) and Path(spec.split(",")[0]).is_file()):
        # a LiDAR capture read as a video was "OpenCV cannot open it (corrupt ...)" or "no such video file"
        raise DataError(f"{spec}: a LiDAR capture or spec, which edge run reads with --lidar (beside a camera "
                        "--source, or kitti:FOLDER for both)")
    if spec.startswith("kitti:"):
        from edge.stream.sources.kitti import kitti_source

        return kitti_source(spec, realtime=realtime, max_frames=max_frames)
    head, opts = spec_options(spec)
    if head == "" or (not head.strip() and not Path(head).exists()):  # ',fps=5' read the current folder ('' is
        # '.'), a missing ' ' said ": no such video file"
        raise DataError(f"bad source '{spec}': no video, image folder or device before its options")
    if Path(head).is_dir():
        from edge.stream.sources.images import ImageFolderSource

        unknown = set(opts) - {"fps"}
        if unknown:
            raise DataError(f"bad image folder source '{spec}' (use FOLDER[,fps=N]; unknown {sorted(unknown)})")
        return ImageFolderSource(spec, head, fps=fps_option(spec, opts), realtime=realtime, max_frames=max_frames)
    from edge.data.images import looks_like_image, named_as_image

    if named_as_image(head) and (Path(head).is_file() or Path(head).is_symlink()) and looks_like_image(head):
        # one image: read as the folder reader reads its images (EXIF orientation, damaged files refused), not
        # as a one-frame video (a video named .jpg still plays as one)
        from edge.stream.sources.images import ImageFolderSource

        unknown = set(opts) - {"fps"}
        if unknown:
            raise DataError(f"bad image source '{spec}' (use IMAGE[,fps=N]; unknown {sorted(unknown)})")
        return ImageFolderSource(spec, Path(head).parent, fps=fps_option(spec, opts), realtime=realtime,
                                 max_frames=max_frames, image=head)
    if head.lower().endswith(".npz") and Path(head).is_file():  # no video: a recording named as --calib takes it
        import zipfile

        from edge.data.waveform import SCHEMA, is_waveform_file

        # a file that is no archive at all (a recording cut short loses the archive's directory at its end) goes to
        # the recording reader too, which says what is wrong with it: it was "not a recording" (a review)
        if is_waveform_file(head) or not zipfile.is_zipfile(head):
            src = open_source(f"waveform:{spec}", realtime=realtime, max_frames=max_frames, card=card)
            src.spec = spec  # errors name the source as given
            return src
        raise DataError(f"{head}: an .npz that is not an {SCHEMA} recording (the .npz that --source replays, as "
                        "waveform:FILE or the file alone)")
    if head.lower().endswith((".bin", ".pcd")) and Path(head).is_file() and not _starts_as_video(head):
        # a KITTI velodyne/*.bin was "corrupt or unsupported codec"; nuScenes' LIDAR_TOP .pcd.bin opened as one
        # 1280x34688 frame (FFmpeg's binary-text demuxer) and ran, exit 0, on the point floats drawn as pixels
        raise DataError(f"{head}: a LiDAR point file (.bin, .pcd: KITTI's or nuScenes' scans), not a camera source; "
                        "a KITTI folder runs as kitti:FOLDER (image_2, velodyne, calib), a live or captured LiDAR with "
                        "--lidar (a video of a container not known here named so: give it its container's suffix)")
    return CameraSource(spec, "file", spec, realtime=realtime, max_frames=max_frames)


#: the first bytes of the containers and streams FFmpeg reads a camera's recording from: (offset, magic). MP4/MOV/3GP,
#: AVI, Matroska/WebM, MPEG-PS and MPEG-1/2 video, FLV, Ogg, an H.264/H.265 stream, motion JPEG, ASF/WMV, Y4M, IVF
#: (VP8/VP9), NUT
_VIDEO_MAGIC = ((4, b"ftyp"), (0, b"RIFF"), (0, b"\x1aE\xdf\xa3"), (0, b"\x00\x00\x01\xba"), (0, b"\x00\x00\x01\xb3"),
                (0, b"FLV"), (0, b"OggS"), (0, b"\x00\x00\x00\x01"), (0, b"\xff\xd8\xff"), (0, b"0&\xb2u"),
                (0, b"YUV4MPEG2"), (0, b"DKIF"), (0, b"nut/multimed"))


def _starts_as_video(path: str) -> bool:
    """Whether a file starts as a video container or stream does (:data:`_VIDEO_MAGIC`, or MPEG-TS's sync byte every
    188 bytes, M2TS's every 192 after a 4-byte stamp): a recording named .bin plays; a LiDAR scan's floats do not
    start so (every KITTI and nuScenes scan here checked)."""
    try:
        with open(path, "rb") as f:
            first = f.read(4 + 2 * 192 + 1)
    except OSError:
        return True  # its reader says what is wrong with it
    for at, step in ((0, 188), (4, 192)):
        if len(first) > at + 2 * step and first[at] == first[at + step] == first[at + 2 * step] == 0x47:
            return True
    return any(first[at:at + len(magic)] == magic for at, magic in _VIDEO_MAGIC)


def spec_options(spec: str, *, path: bool = True, said: str | None = None) -> tuple[str, dict[str, str]]:
    """``head,key=value,...`` -> (head, options); a comma inside the head (a file name) stays there. Where the head
    is a path (``path``; not a ``synthetic`` spec), a spec that names an existing path as a whole is that path,
    options and all: a folder named "drive, x=1" is not drive + option x (one rule for every reader of specs;
    callers hand over the part after a scheme such as ``kitti:``, and the spec as typed as ``said`` for errors)."""
    import os
    import re

    if path and os.path.exists(spec):
        return spec, {}
    parts = re.split(r",(?=\s*\w+\s*=)", spec)
    opts = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        if k.strip() in opts:  # the last one silently won ("deg=5,deg=6" scored at 6)
            raise DataError(f"bad spec '{said or spec}': {k.strip()}= given twice")
        opts[k.strip()] = v.strip()
    return parts[0], opts


#: the frame rates a file source paces at: below a thousandth of a frame a second the clock's nanoseconds per
#: frame overflow (fps=1e-320 gave NaN, 1e-300 infinity), above 1000 a frame is shorter than the loop's tick
FPS_RANGE = (1e-3, 1000.0)


def check_fps(fps: float, said: str) -> float:
    """``fps`` when it is in :data:`FPS_RANGE` (NaN is not), else a one-line DataError: ``said`` (which names the
    source and the value) "must be in [0.001, 1000]"."""
    if not FPS_RANGE[0] <= fps <= FPS_RANGE[1]:
        raise DataError(f"{said} must be in [{FPS_RANGE[0]:g}, {FPS_RANGE[1]:g}]")
    return fps


def fps_option(spec: str, opts: dict[str, str], default: float = 10.0) -> float:
    """``fps=`` of a file source's options: a one-line DataError when it is not a number in :data:`FPS_RANGE`."""
    try:
        fps = float(opts.get("fps", default))
    except ValueError:
        raise DataError(f"bad source '{spec}': fps={opts['fps']} is not a number") from None
    return check_fps(fps, f"bad source '{spec}': fps={opts.get('fps', default)}")


def _int_option(spec: str, opts: dict[str, str], key: str, default: int, lowest: int = 1) -> int:
    if key not in opts:
        return default
    v = opts.pop(key)
    # isdigit alone passes '²', which int() refuses; a seed past 32 bits is numpy's error far from here
    if not (v.isascii() and v.isdigit()) or not lowest <= int(v) < 2**32:
        raise DataError(f"bad source '{spec}': {key}={v} must be a whole number from {lowest} to {2**32 - 1}")
    return int(v)


def lidar_spec_source(spec: str, *, realtime: bool = False) -> Source:
    """Build (not open) the LiDAR source for ``spec`` (see edge.stream.sources.lidar)."""
    from edge.stream.sources.lidar import lidar_source

    return lidar_source(spec, realtime=realtime)
