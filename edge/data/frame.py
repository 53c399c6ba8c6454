"""The unit every source publishes and every stage passes on.

A ``Frame`` is immutable on purpose: the same frame can sit in the sync buffer, the overlay sink and
the point-cloud dump at once, and no stage may change what another one sees.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: One LiDAR rotation as a structured array: metres in the sensor frame, intensity as the sensor
#: reports it (Velodyne reflectivity 0..255, Ouster reflectivity/signal), ring = laser row (0 = lowest
#: elevation for Velodyne, top row for Ouster as the SDK orders it), t = seconds since the rotation's
#: first point.
POINT_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<u2"),
                        ("t", "<f4")])


def is_points(data: Any) -> bool:
    """A point cloud: a structured array with x, y, z fields (POINT_DTYPE or a superset of it)."""
    names = getattr(getattr(data, "dtype", None), "names", None) or ()
    return {"x", "y", "z"} <= set(names)


def is_image(data: Any) -> bool:
    """An image: ``uint8 [H, W, 3]`` (BGR, as OpenCV delivers it)."""
    return isinstance(data, np.ndarray) and data.ndim == 3 and data.shape[2] == 3 and data.dtype == np.uint8


def is_waveform(data: Any) -> bool:
    """Full waveforms of one rotation: a float ``[channels, azimuths, bins]`` array (what ``waveform:`` sources
    give)."""
    return isinstance(data, np.ndarray) and data.ndim == 3 and data.dtype.kind == "f"


def now_ns() -> int:
    """The capture clock: monotonic host time in ns (never jumps with NTP, unlike time.time)."""
    return time.monotonic_ns()


@dataclass(frozen=True, slots=True)
class Frame:
    """One sensor sample.

    data: ``uint8 [H, W, 3]`` BGR image for cameras, ``POINT_DTYPE [N]`` array for LiDAR.
    t_capture_ns: host monotonic time when the sample was complete on this machine (``now_ns``);
    end-to-end latency and multi-sensor sync use it (two files read without ``--realtime`` pair on
    their recorded times instead: ``Source.recorded_ns``, ``meta["t_recorded_ns"]`` where a source stamps it).
    seq: per-source counter, starting at 0, counting every sample the sensor delivered (so gaps in the
    sequence a stage sees are drops).
    sensor: the slot name the pipeline routes it to ("camera", "lidar", ...; sources name their sensors).
    meta: source facts: ``t_sensor_ns`` (the sensor's own stamp when it has one), ``gt`` labels from
    synthetic sources, ``rig`` (:class:`~edge.data.rig.Rig`) for KITTI, ``bad_packets`` counts for LiDAR, ...
    """

    data: Any
    t_capture_ns: int
    seq: int
    sensor: str
    meta: dict[str, Any] = field(default_factory=dict)
