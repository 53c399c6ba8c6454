"""Velodyne packets (VLP-16, HDL-32E, VLP-32C, VLS-128, ...) -> rotations of points.

Decoding is velodyne-decoder's ``StreamDecoder`` (C++); this module decides what reaches it and turns
its rotations into :data:`~edge.data.frame.POINT_DTYPE` arrays. The stream loop's source
(:mod:`edge.stream.sources.velodyne`) and any family that trains on Velodyne captures use it alike.

What we check before the decoder sees a packet, and why (measured on velodyne-decoder 3.0/3.1):

- size 1206, all 12 block flags 0xEEFF (0xDDFF: HDL-64E lower block), azimuths < 36000, return-mode
  byte 0x37/0x38/0x39: anything else is counted in ``bad_packets`` and skipped;
- the product (factory) byte: the decoder checks it only when a rotation completes and then raises,
  losing the whole rotation, so we pin the model at the first good packet and count packets of
  another model as bad instead;
- a model override (``model="VLP16"``) for sensors whose factory byte lies (the VLP-16 captures in
  shared/ say 0x21 = HDL-32E): the decoder refuses a configured model that disagrees with the byte,
  so the byte is rewritten to the override's id before decoding. Without an override, a packet
  clock that ticks like a VLP-16 (1.33 ms per packet) under an HDL-32E byte logs a warning.

Any exception from the decoder is caught and counted (``decode_errors`` and ``bad_packets``); the
decoder is rebuilt and the loop goes on. HDL-64E needs a per-unit calibration and is not supported.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import numpy as np

from edge.data.frame import POINT_DTYPE
from edge.errors import DataError, first_line

log = logging.getLogger("edge.data")

PACKET_SIZE = 1206
DEFAULT_PORT = 2368
#: product id (last byte of a data packet) per velodyne-decoder model name
MODEL_IDS = {"HDL32E": 0x21, "VLP16": 0x22, "PuckLite": 0x22, "VLP32A": 0x23, "VLP32B": 0x23, "PuckHiRes": 0x24,
             "VLP32C": 0x28, "VLS128": 0xA1, "AlphaPrime": 0xA1}
_ID_NAMES = {0x21: "HDL32E", 0x22: "VLP16", 0x23: "VLP32A", 0x24: "PuckHiRes", 0x28: "VLP32C", 0xA1: "VLS128"}
_RETURN_MODES = (0x37, 0x38, 0x39)
_BLOCK_FLAGS = (0xEEFF, 0xDDFF)
_BLOCKS = struct.Struct("<" + "HH96x" * 12)  # (flag, azimuth) of each 100-byte block


def normalize_model(name: str) -> str:
    """'vlp-16' / 'VLP16' / 'hdl_32e' -> velodyne-decoder's model name; DataError for unknown ones."""
    key = "".join(ch for ch in name.upper() if ch.isalnum())
    for canon in MODEL_IDS:
        if canon.upper() == key:
            return canon
    if key.startswith("HDL64"):
        raise DataError(f"model={name}: HDL-64E needs its per-unit calibration, which is not supported yet")
    raise DataError(f"model={name}: unknown Velodyne model; known: {', '.join(MODEL_IDS)}")


def check_packet(data: bytes) -> str | None:
    """Why a datagram is not a Velodyne data packet ("size", "flag", "azimuth", "return_mode"), or None."""
    if len(data) != PACKET_SIZE:
        return "size"
    fields = _BLOCKS.unpack_from(data)
    if any(f not in _BLOCK_FLAGS for f in fields[0::2]):
        return "flag"
    if any(a >= 36000 for a in fields[1::2]):
        return "azimuth"
    if data[1204] not in _RETURN_MODES:
        return "return_mode"
    return None


def _vlp16_clock(dt_us: float) -> bool:
    """Whether packets ``dt_us`` apart come at a VLP-16's rate (1,327 us single return), not an HDL-32E's (552 us)."""
    return 1000 < dt_us < 1700


def to_points(cloud: np.ndarray) -> np.ndarray:
    """velodyne-decoder's PCL structs -> POINT_DTYPE (t rebased to the rotation's first point)."""
    out = np.empty(len(cloud), POINT_DTYPE)
    for k in ("x", "y", "z", "intensity"):
        out[k] = cloud[k]
    out["ring"] = cloud["ring"]
    t = cloud["time"]
    out["t"] = t - t.min() if len(t) else t
    return out


class VelodyneDecoder:
    """Packets in, rotations out: ``feed(host_s, packet)`` returns ``(points, t_sensor_ns, packets)``
    when a rotation completes, ``finish()`` returns the partial one at the end of a stream.

    ``host_s`` is the host clock in epoch seconds (the recorded time for a pcap): the decoder takes the
    hour from it, since a Velodyne packet only counts microseconds past the hour.
    """

    def __init__(self, model: str | None = None) -> None:
        import velodyne_decoder as vd

        self._vd = vd
        self.override = normalize_model(model) if model else None
        self.model_id: int | None = MODEL_IDS[self.override] if self.override else None
        self.model: str | None = self.override
        self.counters: dict[str, int] = {"packets": 0, "bad_packets": 0, "decode_errors": 0}
        self.bad_reasons: dict[str, int] = {}
        self.model_warning: str | None = None
        self._pending = 0
        self._stamps: list[int] = []
        self._new_decoder()

    def _new_decoder(self) -> None:
        # Without an override the decoder detects the model itself (it knows VLP-32A from B); we only
        # pin the product byte so that a stray packet of another model is skipped, not fatal.
        vd = self._vd
        cfg = vd.Config(model=getattr(vd.Model, self.override)) if self.override else vd.Config()
        self._dec = vd.StreamDecoder(cfg)
        self._pending = 0

    def _bad(self, reason: str) -> None:
        self.counters["bad_packets"] += 1
        self.bad_reasons[reason] = self.bad_reasons.get(reason, 0) + 1

    def feed(self, host_s: float, data: bytes) -> tuple[np.ndarray, int, int] | None:
        self.counters["packets"] += 1
        reason = check_packet(data)
        if reason is not None:
            self._bad(reason)
            return None
        product = data[1205]
        if self.override is not None:
            if len(self._stamps) < 64:
                self._check_forced(data)
            if product != self.model_id:
                data = data[:1205] + bytes((self.model_id,))
        elif self.model_id is None:
            if product not in _ID_NAMES:
                self._bad("product")
                return None
            self.model_id, self.model = product, _ID_NAMES[product]
        elif product != self.model_id:
            self._bad("product")
            return None
        if self.override is None and len(self._stamps) < 64:
            self._check_rate(data)
        try:
            res = self._dec.decode(host_s, data, True)
        except Exception as e:  # the C++ decoder rejected it; never let it end the stream
            self.counters["decode_errors"] += 1
            self._bad("decoder")
            log.debug("velodyne decoder: %s", first_line(e))
            self._new_decoder()
            return None
        self._pending += 1
        return self._result(res)

    def finish(self) -> tuple[np.ndarray, int, int] | None:
        try:
            res = self._dec.finish(True)
        except Exception as e:
            self.counters["decode_errors"] += 1
            log.debug("velodyne decoder finish: %s", first_line(e))
            res = None
        out = self._result(res)
        self._new_decoder()  # a new stream after a gap starts clean
        return out

    def _result(self, res: Any) -> tuple[np.ndarray, int, int] | None:
        if res is None:
            return None
        stamp, cloud = res
        packets, self._pending = self._pending, 0
        if len(cloud) == 0:
            return None
        return to_points(cloud), round(stamp.device * 1e9), packets

    def _interval(self, data: bytes) -> float | None:
        """The median microseconds between the first 64 packets' timestamps, once the 64th (``data``) is in; None
        before it."""
        self._stamps.append(struct.unpack_from("<I", data, 1200)[0])
        if len(self._stamps) < 64:
            return None
        return float(np.median(np.diff(np.asarray(self._stamps, np.int64))))

    def _check_forced(self, data: bytes) -> None:
        """Warn when ``model=`` contradicts the packets' own model byte, unless it is the one known lie (an HDL-32E
        byte on a VLP-16's packet clock, which model=VLP16 is the fix for): a VLP-16 capture forced to VLS-128
        decoded 32 rings out to 189 m without a word."""
        dt = self._interval(data)
        said = _ID_NAMES.get(data[1205])
        if dt is None or said is None or MODEL_IDS[said] == self.model_id:
            return
        if said == "HDL32E" and self.override in ("VLP16", "PuckLite") and _vlp16_clock(dt):
            return
        log.warning("velodyne: model=%s given, but the packets say %s (a packet every %.0f us); the points are "
                    "decoded as %s and may be wrong", self.override, said, dt, self.override)
        self.model_warning = f"model={self.override} given on packets that say {said} ({dt:.0f} us apart)"

    def _check_rate(self, data: bytes) -> None:
        """Warn when an HDL-32E byte comes with a VLP-16 packet clock (the lie seen in real captures)."""
        dt = self._interval(data)
        if dt is not None and self.model == "HDL32E" and data[1204] != 0x39 and _vlp16_clock(dt):
            log.warning("velodyne: packets say HDL-32E but arrive every %.0f us like a VLP-16; "
                        "pass model=VLP16 if the points look wrong", dt)
            self.model_warning = f"HDL-32E id with a VLP-16 packet interval ({dt:.0f} us)"
