"""What every packet LiDAR source shares: a pcap file or a live UDP socket feeding a decoder.

Velodyne and Ouster differ only in the decoder (packet checks + library) and in how a finished
rotation becomes a Frame; reading the pcap (with ``realtime`` pacing by the recorded times), the
live socket (flush the rotation in progress after a quiet gap, ``SourceLost`` after ``silence_s``),
port filtering and the counters are here once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge.data.frame import Frame
from edge.data.pcap import PcapReader
from edge.errors import DataError
from edge.stream.sources.base import Source
from edge.stream.sources.udp import UdpReceiver, parse_udp_url

log = logging.getLogger("edge.stream")
#: the sensor families' default data ports, to recognise a capture given to the wrong decoder
KNOWN_PORTS = {2368: "Velodyne (velodyne:PATH, or PATH without meta=)", 7502: "Ouster (ouster:PATH,meta=SENSOR.json)"}
#: ports whose packets carry no points: what the capture holds instead
NO_POINTS_PORTS = {8308: "Velodyne's position (GPS/PPS) packets, which carry no points: the capture holds no "
                         "Velodyne data packets (port 2368 by default)",
                   7503: "Ouster's IMU packets, which carry no points: the capture holds no Ouster lidar packets "
                         "(port 7502 by default)"}


class PacketLidarSource(Source):
    """Base class; subclasses create ``self.decoder`` (``feed(t_ns, payload)``, ``finish()``,
    ``counters``) and implement ``_frame(out, partial)``, then call :meth:`_setup`."""

    sensors = ("lidar",)
    decoder: Any

    def _setup(self, target: str, *, realtime: bool, port: int, silence_s: float, packet_size: int | None) -> None:
        self.target = self.spec = str(target)
        self.udp = self.target.startswith("udp://")
        self.realtime = realtime
        self.port = port
        self.silence_s = silence_s
        self.live = self.udp or realtime
        self.reconnect = self.udp
        self._seq = 0
        self._reader: PcapReader | None = None
        self._rx: UdpReceiver | None = None
        self._pcap_counts: dict[str, int] = {}
        self._other_ports = 0
        if self.udp:
            host, uport = parse_udp_url(self.target)
            self._rx = UdpReceiver(host, uport, size=packet_size)

    def reads(self) -> tuple[Path, ...]:
        return () if self.udp else (Path(self.target),)

    def _frame(self, out: Any, partial: bool) -> Frame:
        raise NotImplementedError

    def _feed(self, t_ns: int, payload: bytes) -> Any:
        """Hand one datagram (host receive/record time in ns) to the decoder."""
        return self.decoder.feed(t_ns, payload)

    @property
    def address(self) -> tuple[str, int] | None:
        """The bound UDP address (useful with port 0), None for a pcap."""
        return self._rx.address if self._rx is not None else None

    def open(self) -> None:
        if self._rx is not None:
            self._rx.open()
            self.decoder.finish()
        else:
            self.close()
            self._reader = PcapReader(self.target)

    def __iter__(self) -> Iterator[Frame]:
        if self._rx is not None:
            if self._rx.sock is None:
                self.open()
            yield from self._iter_udp()
        else:
            if self._reader is None:
                self.open()
            yield from self._iter_pcap()

    _pacer: Any = None  # the pcap replay's Pacer, once replaying

    def _iter_pcap(self) -> Iterator[Frame]:
        from edge.data.pacing import Pacer

        reader, dec = self._reader, self.decoder
        assert reader is not None
        self._pacer = pacer = Pacer()
        ports: dict[int, int] = {}
        frames = 0
        t_first = t_start = t_last = None  # recorded times: the capture's first packet, this rotation's, the last

        def stamped(frame: Frame, t_end: int) -> Frame:
            # the rotation's middle on the capture's own clock (the stream pairs recordings on it)
            frame.meta["t_recorded_ns"] = (t_start + t_end) // 2 - t_first
            return frame

        try:
            for t_ns, dport, payload in reader:
                if dport != self.port:
                    self._other_ports += 1
                    ports[dport] = ports.get(dport, 0) + 1
                    continue
                if t_first is None:
                    t_first = t_start = t_ns
                t_last = t_ns
                if self.realtime:
                    pacer.wait(t_ns)
                out = self._feed(t_ns, payload)
                if out is not None:
                    frames += 1
                    yield stamped(self._frame(out, False), t_ns)
                    t_start = t_ns
            out = dec.finish()
            if out is not None:
                frames += 1
                yield stamped(self._frame(out, True), t_last)
            if frames == 0:  # a capture that gives nothing: say why, instead of a run of 0 frames
                raise DataError(self._why_no_frames(ports, reader.ended_early))
        finally:
            self._pcap_counts = dict(reader.counters)
            if reader.ended_early and frames:  # said, as a video cut short is (with none, the error says why)
                log.warning("%s: %s; its %d record(s) before it were read", self.target, reader.ended_early,
                            reader.counters["records"])
            reader.close()
            self._reader = None

    kind = "LiDAR"

    def _why_no_frames(self, ports: dict[int, int], ended_early: str | None = None) -> str:
        """One line on why a pcap gave no frame: the file broken before any packet, packets elsewhere (another
        sensor's port?) or all refused."""
        dec = self.decoder
        head = f"{self.target}: no {self.kind} frames"
        if dec.counters["packets"] == 0:
            if not ports and ended_early:  # a corrupt first record said "no UDP packets", not what was wrong
                return f"{head}: {ended_early}"
            if not ports:
                return f"{head}: the capture holds no UDP packets"
            top, n = max(ports.items(), key=lambda kv: kv[1])
            if top in NO_POINTS_PORTS and len(ports) == 1:  # "pass port=8308" was advice that then failed
                return f"{head} on UDP port {self.port}; its {n} packets are on port {top}: {NO_POINTS_PORTS[top]}"
            hint = KNOWN_PORTS.get(top)
            guess = (f"; port {top} is the default of {hint}" if hint and top != self.port
                     else f"; pass port={top} if that is the sensor's")
            return f"{head} on UDP port {self.port}; {n} packets are on port {top}{guess}"
        reasons = getattr(dec, "bad_reasons", {})
        why = "; ".join(f"{k} ({v})" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])[:2])
        bad = dec.counters.get("bad_packets", 0)
        return (f"{head}: {bad} of {dec.counters['packets']} packets on port {self.port} were refused"
                + (f": {why}" if why else "") + self.MISMATCH_HINT)

    MISMATCH_HINT = ""

    def _iter_udp(self) -> Iterator[Frame]:
        rx, dec = self._rx, self.decoder
        assert rx is not None
        for item in rx.datagrams(silence_s=self.silence_s, stalled=self.stalled, stopping=self.stop_asked):
            if item is None:  # quiet: the sensor stopped mid-rotation; hand over what we have
                out = dec.finish()
                if out is not None:
                    yield self._frame(out, True)
                continue
            out = self._feed(item[0], item[1])
            if out is not None:
                yield self._frame(out, False)

    def counters(self) -> dict[str, int]:
        c = dict(self.decoder.counters)
        if self._rx is not None:
            rxc = self._rx.counters
            c["undersize"], c["oversize"] = rxc["undersize"], rxc["oversize"]
            # datagrams refused for their size are packets that came, and bad ones (bad_packets > packets before)
            c["bad_packets"] += rxc["undersize"] + rxc["oversize"]
            c["packets"] += rxc["undersize"] + rxc["oversize"]
        else:
            counts = self._reader.counters if self._reader is not None else self._pcap_counts
            for k in ("truncated", "malformed", "non_udp"):
                c[k] = counts.get(k, 0)
            c["other_ports"] = self._other_ports
            if self.realtime and self._pacer is not None:  # gaps and clock steps the replay did not sleep through
                c["time_jumps"] = self._pacer.jumps
        return c

    def lost(self) -> None:
        """A UDP stream gone quiet: the socket stays bound (the kernel keeps what arrives until the next read)."""
        if self._rx is None:
            self.close()

    def close(self) -> None:
        if self._reader is not None:
            self._pcap_counts = dict(self._reader.counters)
            self._reader.close()
            self._reader = None
        if self._rx is not None:
            self._rx.close()
