"""UDP payloads out of pcap / pcapng captures, and a replayer that sends them to a socket.

LiDAR recordings are pcaps of the sensor's UDP stream, so both LiDAR sources read files through
:func:`iter_udp` and a user (or a test) can stand in for a sensor with :func:`replay_udp`.

Why not only dpkt: pcapng goes through ``dpkt.pcapng.Reader``, but classic pcap records and the
link/IP/UDP headers are parsed here with ``struct``, because dpkt's classic reader silently yields a
short buffer for a truncated last record and trusts a corrupt ``caplen`` (it would read the rest of
the file as one record), and IPv4 fragment reassembly (an Ouster 8448-byte datagram captured on a
1500-MTU link arrives as six fragments) needs the raw payload offsets. The reader never raises on
bad records: they are counted (``counters``) and skipped, and a record it cannot step over (torn or
corrupt file) ends the iteration. Only opening a file that is missing or is not a capture at all
raises a one-line :class:`~edge.errors.DataError`.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from edge.data.pacing import Pacer
from edge.errors import DataError, first_line

# Classic pcap magics (as read little-endian) -> (byte order, ns per fraction unit)
_MAGICS = {
    0xA1B2C3D4: ("<", 1000),
    0xD4C3B2A1: (">", 1000),
    0xA1B23C4D: ("<", 1),
    0x4D3CB2A1: (">", 1),
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
#: a record bigger than this is a corrupt length field, not a packet (largest snaplen in use: 256 KiB)
_MAX_RECORD = 262144 + 65536
#: a pcapng block bigger than this is a corrupt length or a bomb: a record plus its headers and any real options
#: (dpkt parses a block's options in time quadratic in their length: 8 MB of them held a run for minutes)
_MAX_BLOCK = _MAX_RECORD + 65536
#: IPv4 datagrams waiting for fragments; beyond this the oldest is dropped (and counted)
_MAX_PENDING_FRAGMENTS = 64
#: fragments one datagram may take: a 64 KB datagram is 45 at a 1500-byte MTU, 120 at IPv4's minimum 576; more
#: (8-byte fragments, or resends at one offset) are not a sensor's, and each one re-walked all stored parts (a 9 MB
#: capture of them held a run for 214 s): the datagram is dropped and its fragments counted
_MAX_PARTS = 128

# Link types we can step over to reach IP
_LINK_ETHERNET, _LINK_NULL, _LINK_LOOP, _LINK_SLL, _LINK_SLL2 = 1, 0, 108, 113, 276
_LINK_RAW = (101, 12, 14, 228, 229)  # DLT_RAW variants, IPv4, IPv6
SUPPORTED_LINKTYPES = (_LINK_ETHERNET, _LINK_NULL, _LINK_LOOP, _LINK_SLL, _LINK_SLL2, *_LINK_RAW)

_COUNTER_KEYS = ("records", "udp", "non_udp", "truncated", "malformed", "fragments", "fragments_dropped")


#: pcapng block types whose options dpkt parses (section header, interface, packet, simple and enhanced packet):
#: capped at :data:`_MAX_BLOCK`; any other block (name resolution, statistics, decryption secrets) is read whole and
#: skipped, capped only against memory
_PARSED_BLOCKS = frozenset({0x0A0D0D0A, 1, 2, 3, 6})
_MAX_OTHER_BLOCK = 64 << 20


class _Blocks:
    """The pcapng file as dpkt reads it, each block's header checked as the reading reaches it (no pass of its own
    over the file, and no seek: dpkt reads in order): a block longer than its type can be ends the file there for
    dpkt (``stop`` = its offset and claimed length). A section header says the byte order of the blocks after it.
    The next block is checked where dpkt reads on from: the claimed length on, odd lengths included (dpkt skips a
    block of a type it does not parse whatever its length: stopping the checks there let a later block through, a
    review found); under 8, dpkt reads the rest of the file as that block. The two reads dpkt makes a block (its
    type and length, then the rest) take a fast path."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self._pos = f.tell()  # the offset of the next byte handed out
        self._next: int | None = self._pos  # where the next block header starts
        self._order = "<"
        self._pending = b""  # bytes read ahead of dpkt (a section header's byte-order magic), to be handed out
        self.stop: tuple[int, int] | None = None

    def _judge(self, head: bytes) -> None:
        """A block header's first 8 bytes (12 for a section header) at ``_pos``: where the next block starts."""
        self._next = None
        if len(head) < 8:
            return
        if head[:4] == _PCAPNG_MAGIC and len(head) == 12:
            self._order = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}.get(head[8:12], self._order)
        btype, length = struct.unpack(self._order + "II", head[:8])
        if length > (_MAX_BLOCK if btype in _PARSED_BLOCKS else _MAX_OTHER_BLOCK):
            self.stop = (self._pos, length)
        elif length >= len(head):  # where dpkt reads on from, odd lengths too (a block it skips; one it parses it
            self._next = self._pos + length  # refuses); a section header under its own 12 bytes is dpkt's to refuse

    def read(self, n: int = -1) -> bytes:
        if self.stop is not None:
            return b""
        nxt, pos = self._next, self._pos
        if nxt is not None and n is not None and n >= 0 and not self._pending:
            if pos != nxt and n <= nxt - pos:  # within a block: dpkt's read of a block's body
                chunk = self._f.read(n)
                self._pos += len(chunk)
                return chunk
            if pos == nxt and n == 8:  # dpkt's read of a block's type and length
                head = self._f.read(8)
                if head[:4] == _PCAPNG_MAGIC:
                    self._pending = head
                else:
                    self._judge(head)
                    if self.stop is not None:
                        return b""
                    self._pos += len(head)
                    return head
        return self._read_slow(n)

    def _read_slow(self, n: int) -> bytes:
        whole = n is None or n < 0
        out = bytearray()
        while self.stop is None and (whole or len(out) < n):
            if self._pos == self._next:
                head = self._pending + self._f.read(8 - len(self._pending)) if len(self._pending) < 8 else self._pending
                if len(head) == 8 and head[:4] == _PCAPNG_MAGIC:
                    head += self._f.read(4)
                self._pending = head
                self._judge(head)
                if self.stop is not None or not head:
                    break
            if self._pending:
                k = len(self._pending) if whole else min(len(self._pending), n - len(out))
                chunk, self._pending = self._pending[:k], self._pending[k:]
            else:
                want = -1 if whole else n - len(out)
                if self._next is not None:  # never read across a block's start unchecked
                    want = self._next - self._pos if want < 0 else min(want, self._next - self._pos)
                chunk = self._f.read(want)
                if not chunk:
                    break
            out += chunk
            self._pos += len(chunk)
        return bytes(out)

    def __getattr__(self, name: str) -> Any:  # name, fileno, close: the file's own
        return getattr(self._f, name)


class PcapReader:
    """Iterates ``(t_ns, dst_port, payload)`` for every UDP datagram of a pcap or pcapng file.

    ``counters``: ``records`` read, ``udp`` datagrams yielded, and the skipped ones: ``non_udp`` (ARP,
    TCP, ...), ``truncated`` (record cut by the snap length or a torn file), ``malformed`` (headers that
    do not add up), ``fragments`` seen and ``fragments_dropped`` (never completed). Open checks the
    file header; iterating never raises.
    """

    def __init__(self, source: str | Path | IO[bytes], *, name: str | None = None) -> None:
        self.name = name or str(getattr(source, "name", source))
        self.counters: dict[str, int] = dict.fromkeys(_COUNTER_KEYS, 0)
        #: why reading stopped before the end of the file (a torn last record, a corrupt header), None when it did not
        self.ended_early: str | None = None
        self._own = not hasattr(source, "read")
        if self._own:
            path = Path(source)  # type: ignore[arg-type]
            if not path.exists():
                raise DataError(f"{path}: no such pcap file")
            if not path.is_file():
                raise DataError(f"{path}: not a file")
            self._f: IO[bytes] = path.open("rb")
        else:
            self._f = source  # type: ignore[assignment]
        try:
            self._open_header()
        except BaseException:
            self.close()
            raise
        self._frags: OrderedDict[tuple, dict[str, Any]] = OrderedDict()

    # ---- file formats ----------------------------------------------------------------------
    def _open_header(self) -> None:
        head = self._f.read(24)
        if head[:4] == _PCAPNG_MAGIC:
            import dpkt

            self._f.seek(self._f.tell() - len(head))
            self._blocks = _Blocks(self._f)
            try:
                self._ng = dpkt.pcapng.Reader(self._blocks)
            except Exception as e:  # dpkt raises ValueError / UnpackError / struct.error
                if (stop := self._blocks.stop) is not None:  # in the header blocks
                    raise DataError(f"{self.name}: not a readable pcapng file (a block at byte {stop[0]} claims "
                                    f"{stop[1]} bytes, more than a block of its type holds)") from None
                raise DataError(f"{self.name}: not a readable pcapng file ({first_line(e)})") from None
            self.linktype = int(self._ng.datalink())
            self.format = "pcapng"
        else:
            if len(head) < 24:
                raise DataError(f"{self.name}: not a pcap file (only {len(head)} bytes)")
            magic = struct.unpack("<I", head[:4])[0]
            if magic not in _MAGICS:
                raise DataError(f"{self.name}: not a pcap file (magic {head[:4].hex()} is neither pcap nor pcapng)")
            self._order, self._ns_per_unit = _MAGICS[magic]
            self._rec = struct.Struct(self._order + "IIII")
            self.linktype = struct.unpack(self._order + "I", head[20:24])[0] & 0xFFFF
            self._ng = None
            self.format = "pcap"
        if self.linktype not in SUPPORTED_LINKTYPES:
            raise DataError(f"{self.name}: unsupported pcap link type {self.linktype} "
                            "(supported: Ethernet, Linux SLL/SLL2, raw IP, BSD loopback)")

    def _records(self) -> Iterator[tuple[int, bytes]]:
        """(t_ns, frame bytes) per record; ends (counting it) on a torn or corrupt record.

        A record cut by the snap length is still yielded: the IP and UDP length fields tell whether
        the datagram inside is whole."""
        if self._ng is not None:
            it = iter(self._ng)
            while True:
                try:
                    ts, buf = next(it)
                except StopIteration:
                    if (stop := self._blocks.stop) is not None:  # read up to an oversized block (_Blocks)
                        self.counters["malformed"] += 1
                        self.ended_early = (f"a pcapng block at byte {stop[0]} claims {stop[1]} bytes (corrupt); "
                                            "nothing after it is read")
                    return
                except Exception:  # torn or corrupt block: nothing after it can be trusted
                    self.counters["truncated"] += 1
                    self.ended_early = "a torn or corrupt pcapng block; nothing after it is read"
                    return
                yield round(float(ts) * 1e9), bytes(buf)
        rec, f = self._rec, self._f
        at = 24  # the byte each record starts at (after the file's 24-byte header); counted, as a pipe cannot tell
        while True:
            hdr = f.read(16)
            if not hdr:
                return
            if len(hdr) < 16:
                self.counters["truncated"] += 1
                self.ended_early = f"the file ends inside a record header at byte {at} (cut short?)"
                return
            sec, frac, incl, _orig = rec.unpack(hdr)
            if incl > _MAX_RECORD:
                self.counters["malformed"] += 1
                self.ended_early = f"a record at byte {at} claims {incl} bytes (corrupt); nothing after it is read"
                return
            buf = f.read(incl)
            if len(buf) < incl:
                self.counters["truncated"] += 1
                self.ended_early = f"the file ends inside the record at byte {at} (cut short?)"
                return
            at += 16 + incl
            yield sec * 1_000_000_000 + frac * self._ns_per_unit, buf

    # ---- protocol layers --------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[int, int, bytes]]:
        c = self.counters
        for t_ns, buf in self._records():
            c["records"] += 1
            try:
                out = self._udp(buf, t_ns)
            except (struct.error, IndexError, ValueError):
                c["malformed"] += 1
                continue
            if out is None:
                continue
            c["udp"] += 1
            yield out

    def _ip_offset(self, buf: bytes) -> tuple[int, int] | None:
        """(offset of the IP header, IP version) or None (counted) for non-IP frames."""
        lt = self.linktype
        if lt == _LINK_ETHERNET:
            off, etype = 14, struct.unpack_from(">H", buf, 12)[0]
            while etype in (0x8100, 0x88A8, 0x9100):  # VLAN / QinQ tags
                etype = struct.unpack_from(">H", buf, off + 2)[0]
                off += 4
        elif lt == _LINK_SLL:
            off, etype = 16, struct.unpack_from(">H", buf, 14)[0]
        elif lt == _LINK_SLL2:
            off, etype = 20, struct.unpack_from(">H", buf, 0)[0]
        elif lt in (_LINK_NULL, _LINK_LOOP):
            fam = struct.unpack_from("<I", buf, 0)[0]
            if fam > 0xFFFF:  # written in the other byte order
                fam = struct.unpack_from(">I", buf, 0)[0]
            off, etype = 4, 0x0800 if fam == 2 else 0x86DD if fam in (10, 24, 28, 30) else 0
        else:  # raw IP: the version nibble says which
            v = buf[0] >> 4
            off, etype = 0, 0x0800 if v == 4 else 0x86DD if v == 6 else 0
        if etype == 0x0800:
            return off, 4
        if etype == 0x86DD:
            return off, 6
        self.counters["non_udp"] += 1
        return None

    def _udp(self, buf: bytes, t_ns: int) -> tuple[int, int, bytes] | None:
        loc = self._ip_offset(buf)
        if loc is None:
            return None
        o, version = loc
        c = self.counters
        if version == 6:
            if len(buf) < o + 40:
                c["truncated"] += 1
                return None
            plen, nxt = struct.unpack_from(">HB", buf, o + 4)
            if nxt != 17:  # extension headers are not walked: LiDARs send plain UDP
                c["non_udp"] += 1
                return None
            seg = buf[o + 40:o + 40 + plen]
            if len(seg) < plen:
                c["truncated"] += 1
                return None
            return self._udp_segment(seg, t_ns)
        if len(buf) < o + 20:
            c["truncated"] += 1
            return None
        vihl, total, ident, flags_off, proto = struct.unpack_from(">BxHHHxB", buf, o)
        ihl = (vihl & 15) * 4
        if vihl >> 4 != 4 or ihl < 20 or total < ihl:
            c["malformed"] += 1
            return None
        if proto != 17:
            c["non_udp"] += 1
            return None
        # A short IP payload is left to the UDP length check: VLP-16 position packets claim an IP total
        # length of 1234 for a 540-byte datagram, and their UDP length is right.
        seg = buf[o + ihl:o + total]
        more, frag_off = flags_off & 0x2000, (flags_off & 0x1FFF) * 8
        if more or frag_off:
            if len(seg) < total - ihl:
                c["truncated"] += 1
                return None
            c["fragments"] += 1
            seg = self._reassemble((buf[o + 12:o + 20], ident), frag_off, bool(more), seg)
            if seg is None:
                return None
        return self._udp_segment(seg, t_ns)

    def _udp_segment(self, seg: bytes, t_ns: int) -> tuple[int, int, bytes] | None:
        if len(seg) < 8:
            self.counters["truncated"] += 1
            return None
        dport, ulen = struct.unpack_from(">HH", seg, 2)
        if ulen < 8:
            if ulen == 0 and len(seg) > 65535:  # jumbogram-style length 0: take what is there
                return t_ns, dport, bytes(seg[8:])
            self.counters["malformed"] += 1
            return None
        if ulen > len(seg):
            self.counters["truncated"] += 1
            return None
        return t_ns, dport, bytes(seg[8:ulen])

    def _reassemble(self, key: tuple, off: int, more: bool, data: bytes) -> bytes | None:
        """RFC 791 reassembly keyed by (src, dst, id); returns the whole IP payload when complete."""
        entry = self._frags.get(key)
        if entry is None:
            entry = self._frags[key] = {"parts": {}, "total": None}
            if len(self._frags) > _MAX_PENDING_FRAGMENTS:
                _, old = self._frags.popitem(last=False)
                self.counters["fragments_dropped"] += len(old["parts"])
        parts = entry["parts"]
        if parts.get(off) == data:  # a resend of a fragment already held changes nothing
            return None
        parts[off] = data
        if len(parts) > _MAX_PARTS:
            del self._frags[key]
            self.counters["fragments_dropped"] += len(parts)
            return None
        if not more:
            entry["total"] = off + len(data)
        total = entry["total"]
        if total is None:
            return None
        pos, pieces = 0, []
        for start in sorted(entry["parts"]):
            part = entry["parts"][start]
            if start > pos:
                return None  # a hole: wait for more fragments
            pieces.append(part[pos - start:])
            pos = max(pos, start + len(part))
        if pos < total:
            return None
        del self._frags[key]
        return b"".join(pieces)[:total]

    def close(self) -> None:
        f, self._f = getattr(self, "_f", None), None  # type: ignore[assignment]
        if f is not None and self._own:
            f.close()

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_udp(path: str | Path, counters: dict[str, int] | None = None) -> Iterator[tuple[int, int, bytes]]:
    """``(t_ns, dst_port, payload)`` for each UDP datagram in a pcap/pcapng file, in file order.

    The file is opened (and its header checked, raising :class:`DataError`) before this returns, not
    at the first ``next()``; ``counters`` (optional) is updated in place with the reader's counts.
    """
    reader = PcapReader(path)

    def gen() -> Iterator[tuple[int, int, bytes]]:
        try:
            yield from reader
        finally:
            reader.close()
            if counters is not None:
                for k, v in reader.counters.items():
                    counters[k] = counters.get(k, 0) + v

    return gen()


def replay_udp(path: str | Path, host: str, port: int | None, *, realtime: bool = True,
               ports: set[int] | None = None, speed: float = 1.0, stop: threading.Event | None = None) -> int:
    """Send a pcap's UDP payloads to ``host:port`` (``port=None``: each datagram's recorded port).

    Simulates a sensor: ``realtime`` paces the datagrams by their recorded times (divided by
    ``speed``), otherwise they go out as fast as the socket takes them (a receiver with a small
    ``SO_RCVBUF`` will then drop some). ``ports`` keeps only datagrams recorded to those destination
    ports (e.g. ``{2368}`` to leave out Velodyne position packets). ``stop`` ends it early. Returns
    the number of datagrams sent.
    """
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sent = 0
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        pacer = Pacer(speed, stop)
        for t_ns, dport, payload in iter_udp(path):
            if stop is not None and stop.is_set():
                break
            if ports is not None and dport not in ports:
                continue
            if realtime:
                pacer.wait(t_ns)
            sock.sendto(payload, (host, dport if port is None else port))
            sent += 1
    finally:
        sock.close()
    return sent


def udp_frame(payload: bytes, dport: int, *, sport: int = 10000, src: str = "192.168.1.201",
              dst: str = "192.168.1.100", ident: int = 0) -> bytes:
    """An Ethernet + IPv4 + UDP frame around ``payload`` (checksums zero: UDP allows it), for writing
    captures of a live stream or test files with :func:`write_pcap`."""
    import socket

    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return b"\x00\x11\x22\x33\x44\x55" + b"\x66\x77\x88\x99\xaa\xbb" + b"\x08\x00" + ip + udp


def write_pcap(path: str | Path, records: Any, *, linktype: int = _LINK_ETHERNET, nanosecond: bool = False,
               byteorder: str = "<") -> int:
    """Write ``(t_ns, frame_bytes)`` records as a classic pcap (atomically: temp name, then rename).

    Returns the number of records. ``nanosecond`` picks the ns-resolution magic, ``byteorder`` "<"/">".
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    unit = 1 if nanosecond else 1000
    n = 0
    with tmp.open("wb") as f:
        f.write(struct.pack(byteorder + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype))
        for t_ns, frame in records:
            sec, rest = divmod(int(t_ns), 1_000_000_000)
            f.write(struct.pack(byteorder + "IIII", sec, rest // unit, len(frame), len(frame)))
            f.write(frame)
            n += 1
    tmp.replace(path)
    return n
