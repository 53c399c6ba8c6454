"""Ouster LiDAR from a pcap or a live UDP stream: :class:`~edge.data.ouster.OusterDecoder` behind the
shared packet source (pcap pacing, live socket, counters)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge.data.frame import Frame, now_ns
from edge.data.ouster import DEFAULT_PORT, OusterDecoder, load_sensor_info
from edge.stream.sources.packets import PacketLidarSource

__all__ = ["DEFAULT_PORT", "OusterSource"]


class OusterSource(PacketLidarSource):
    """One Frame per Ouster frame (rotation) from a ``.pcap`` path or ``udp://HOST:PORT``.

    Same behaviour as :class:`~edge.stream.sources.velodyne.VelodyneSource`: a pcap ends at its end
    (the frame in progress comes out last), ``realtime`` paces by the recorded times; udp is live,
    flushes the frame in progress after 0.3 s of quiet and is lost after ``silence_s``. ``port`` is
    the lidar port in a pcap (IMU packets on 7503 are skipped).
    """

    kind = "Ouster"
    MISMATCH_HINT = "; is the metadata JSON from this sensor (model, mode, UDP profile)?"

    def _why_no_frames(self, ports: dict[int, int], ended_early: str | None = None) -> str:
        line = super()._why_no_frames(ports, ended_early)
        sizes = self.decoder.bad_sizes
        if sizes:
            seen = ", ".join(f"{n} B" for n in sorted(sizes, key=lambda k: -sizes[k])[:2])
            line += f" (packets of {seen}; the metadata's format makes {self.decoder.size} B)"
        return line

    def __init__(self, target: str | Path, *, meta: str | Path, realtime: bool = False, port: int = DEFAULT_PORT,
                 silence_s: float = 2.0) -> None:
        self.meta_path = Path(meta)
        self.info = load_sensor_info(self.meta_path)
        self.decoder = OusterDecoder(self.info, where=str(self.meta_path))
        fps = float(self.info.format.fps or 10)
        self.period_s = 1.0 / fps if fps > 0 else 0.1
        self._setup(str(target), realtime=realtime, port=port, silence_s=silence_s, packet_size=self.decoder.size)

    def reads(self) -> tuple[Path, ...]:
        return (*super().reads(), self.meta_path)

    def _frame(self, out: tuple[np.ndarray, dict[str, Any]], partial: bool = False) -> Frame:
        points, meta = out
        meta.update(bad_packets=self.counters()["bad_packets"], model=str(self.info.prod_line or "ouster"))
        frame = Frame(points, now_ns(), self._seq, "lidar", meta)
        self._seq += 1
        return frame
