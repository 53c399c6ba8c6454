"""Sources of the stream loop, chosen by a URI-like spec (``edge run --source SPEC --lidar SPEC``).

Camera specs (``open_source``): ``synthetic[:FRAMES[:HxW]]`` (the model family's synthetic stream),
``camera:N`` (V4L2 index), ``csi:N`` (Jetson
CSI camera through nvarguscamerasrc), ``gst:<pipeline>``, ``rtsp://...`` / ``http(s)://...``,
``kitti:FOLDER[,index=ID]`` (camera + LiDAR pairs) or a video file path. LiDAR specs
(``edge.stream.sources.lidar.lidar_source``): a ``.pcap`` path, ``velodyne:...``, ``ouster:...,meta=F.json``
or ``udp://HOST:PORT``. Each spec becomes a :class:`Source`; nothing is opened until ``open()``.
"""

from __future__ import annotations

from typing import Any

from edge.errors import DataError
from edge.stream.sources.base import Source, SourceLost, SourceThread
from edge.stream.sources.camera import CameraSource, MemorySource, jetson_csi_pipeline
from edge.stream.sources.synthetic import SyntheticSource, parse_synthetic, pattern_frames

__all__ = ["CameraSource", "MemorySource", "Source", "SourceLost", "SourceThread", "SyntheticSource",
           "lidar_spec_source", "open_source", "parse_synthetic", "pattern_frames"]


def open_source(spec: str, *, realtime: bool = False, max_frames: int = 0, card: Any = None) -> Source:
    """Build (not open) the source for ``spec``; a malformed spec is a one-line DataError.

    ``card``: the model family whose synthetic stream ``synthetic`` means (None: a moving test pattern).
    """
    if spec == "synthetic" or spec.startswith("synthetic:"):
        n, hw = parse_synthetic(spec)
        n = min(n, max_frames) if max_frames else n
        if card is not None and card.data is not None:
            return SyntheticSource(spec, n, hw, generator=card.data.synthetic, realtime=realtime)
        return SyntheticSource(spec, n, hw, realtime=realtime)
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
