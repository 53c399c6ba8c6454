"""Sources of the stream loop, chosen by a URI-like spec (``edge run --source SPEC --lidar SPEC``).

Camera specs (``open_source``): ``synthetic[:FRAMES[:HxW]]``, ``camera:N`` (V4L2 index), ``csi:N`` (Jetson
CSI camera through nvarguscamerasrc), ``gst:<pipeline>``, ``rtsp://...`` / ``http(s)://...``,
``kitti:FOLDER[,index=ID]`` (camera + LiDAR pairs) or a video file path. LiDAR specs
(``edge.stream.sources.lidar.lidar_source``): a ``.pcap`` path, ``velodyne:...``, ``ouster:...,meta=F.json``
or ``udp://HOST:PORT``. Each spec becomes a :class:`Source`; nothing is opened until ``open()``.
"""

from __future__ import annotations

from edge.errors import DataError
from edge.stream.sources.base import Source, SourceLost, SourceThread
from edge.stream.sources.camera import (
    CameraSource,
    MemorySource,
    SyntheticSource,
    jetson_csi_pipeline,
    synthetic_frames,
)

__all__ = ["CameraSource", "MemorySource", "Source", "SourceLost", "SourceThread", "SyntheticSource",
           "lidar_spec_source", "open_source", "parse_synthetic", "synthetic_frames"]


def parse_synthetic(spec: str) -> tuple[int, tuple[int, int]]:
    """'synthetic', 'synthetic:N' or 'synthetic:N:HxW' -> (frames, (h, w))."""
    parts = spec.split(":")
    try:
        n = int(parts[1]) if len(parts) > 1 and parts[1] else 60
        hw = tuple(int(v) for v in parts[2].lower().split("x")) if len(parts) > 2 else (720, 1280)
    except ValueError:
        raise DataError(f"bad synthetic source '{spec}' (use synthetic[:FRAMES[:HxW]])") from None
    if n < 1 or len(hw) != 2 or min(hw) < 32:
        raise DataError(f"bad synthetic source '{spec}' (frames >= 1, size >= 32x32)")
    return n, (hw[0], hw[1])


def open_source(spec: str, *, realtime: bool = False, max_frames: int = 0, slots: int = 6) -> Source:
    """Build (not open) the camera-side source for ``spec``; a malformed spec is a one-line DataError."""
    if spec == "synthetic" or spec.startswith("synthetic:"):
        n, hw = parse_synthetic(spec)
        return SyntheticSource(spec, min(n, max_frames) if max_frames else n, hw, realtime=realtime, slots=slots)
    if spec.startswith("camera:"):
        idx = spec.split(":", 1)[1]
        if not idx.isdigit():
            raise DataError(f"bad camera source '{spec}' (use camera:N with N the V4L2 index, e.g. camera:0)")
        return CameraSource(spec, "device", int(idx), max_frames=max_frames)
    if spec.startswith("csi:"):
        idx = spec.split(":", 1)[1]
        if not idx.isdigit():
            raise DataError(f"bad CSI source '{spec}' (use csi:N with N the sensor id, e.g. csi:0)")
        return CameraSource(spec, "gst", jetson_csi_pipeline(int(idx)), max_frames=max_frames)
    if spec.startswith("gst:"):
        pipe = spec[4:].strip()
        if not pipe:
            raise DataError(f"bad GStreamer source '{spec}' (use gst:<pipeline ending in appsink>)")
        return CameraSource(spec, "gst", pipe, max_frames=max_frames)
    if spec.split("://", 1)[0].lower() in ("rtsp", "rtsps", "http", "https", "rtmp") and "://" in spec:
        return CameraSource(spec, "url", spec, max_frames=max_frames)
    if spec.startswith("kitti:"):
        from edge.stream.sources.kitti import kitti_source

        return kitti_source(spec, realtime=realtime, max_frames=max_frames)
    return CameraSource(spec, "file", spec, realtime=realtime, max_frames=max_frames)


def lidar_spec_source(spec: str, *, realtime: bool = False) -> Source:
    """Build (not open) the LiDAR source for ``spec`` (see edge.stream.sources.lidar)."""
    from edge.stream.sources.lidar import lidar_source

    return lidar_source(spec, realtime=realtime)
