"""Velodyne LiDAR from a pcap or a live UDP stream: :class:`~edge.data.velodyne.VelodyneDecoder` behind
the shared packet source (pcap pacing, live socket, counters)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.data.frame import Frame, now_ns
from edge.data.velodyne import DEFAULT_PORT, PACKET_SIZE, VelodyneDecoder, normalize_model
from edge.stream.sources.packets import PacketLidarSource

__all__ = ["DEFAULT_PORT", "VelodyneSource"]


class VelodyneSource(PacketLidarSource):
    """One Frame per rotation from a ``.pcap`` path or ``udp://HOST:PORT``.

    pcap: ends at the file's end (the last partial rotation comes out as a frame with
    ``meta["partial"]=True``); ``realtime`` paces packets by their recorded times, like the sensor.
    udp: live and reconnecting; after 0.3 s without packets the partial rotation is flushed the same
    way, after ``silence_s`` the stream counts as lost (:class:`SourceLost`).
    ``port`` is the data port in a pcap (other ports, e.g. 8308 position packets, are skipped).
    """

    kind = "Velodyne"

    def __init__(self, target: str | Path, *, model: str | None = None, realtime: bool = False,
                 port: int = DEFAULT_PORT, silence_s: float = 2.0) -> None:
        self.model_override = normalize_model(model) if model else None
        self.period_s = 0.1
        self.decoder = VelodyneDecoder(self.model_override)
        self._setup(str(target), realtime=realtime, port=port, silence_s=silence_s, packet_size=PACKET_SIZE)

    def _feed(self, t_ns: int, payload: bytes) -> Any:
        if self.udp:  # a datagram's stamp is the monotonic clock (silences are timed on it), and the decoder takes
            # the hour of the packet's microseconds-past-the-hour from the host's epoch time: live frames said
            # an hour since boot where the same packets from a pcap said their epoch time (a review)
            t_ns += time.time_ns() - time.monotonic_ns()
        return self.decoder.feed(t_ns / 1e9, payload)  # velodyne-decoder takes host stamps in seconds

    def _frame(self, rot: tuple[np.ndarray, int, int], partial: bool = False) -> Frame:
        points, t_sensor_ns, packets = rot
        meta: dict[str, Any] = {"t_sensor_ns": t_sensor_ns, "packets": packets,
                                "bad_packets": self.counters()["bad_packets"], "model": self.decoder.model}
        if partial:
            meta["partial"] = True
        frame = Frame(points, now_ns(), self._seq, "lidar", meta)
        self._seq += 1
        return frame
