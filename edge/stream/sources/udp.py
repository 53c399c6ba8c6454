"""A small UDP receiver for LiDAR packet streams.

A LiDAR sends one fixed-size datagram every 0.3-1.5 ms and never says goodbye, so the receiver's job
is: a large ``SO_RCVBUF`` (a 100 ms hiccup in the consumer is ~75-180 packets, up to 1.3 MB for an
Ouster), a short socket timeout (0.2 s) so the loop can notice a watchdog stall request or a stop,
and a silence limit after which the stream counts as lost (:class:`SourceLost`, the runner
reopens the socket with backoff). Datagrams of the wrong size are counted and dropped here, before
any decoder sees them.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Callable, Iterator

from edge.errors import DataError
from edge.stream.sources.base import SourceLost, Stalled

log = logging.getLogger("edge.stream")

#: requested receive buffer; Linux caps it at net.core.rmem_max (a warning says so once)
RCVBUF_BYTES = 8 << 20
#: socket timeout: how often a blocked loop wakes up to check stop / stall requests
POLL_S = 0.2

_URL = re.compile(r"^udp://(?:\[(?P<h6>[^\]]*)\]|(?P<h>[^:/\[\]]*)):(?P<port>\d{1,5})/?$")


def parse_udp_url(url: str) -> tuple[str, int]:
    """``udp://HOST:PORT`` -> (host, port). An empty host (``udp://:2368``) binds every interface;
    IPv6 hosts go in brackets (``udp://[::]:7502``)."""
    m = _URL.match(url.strip())
    if not m or int(m["port"]) > 65535 or not url.strip().isprintable():
        # a NUL in the host reached socket.bind as a TypeError (Python API; a review); control characters are
        # shown escaped so the error stays one line
        shown = url if url.isprintable() else repr(url)
        raise DataError(f"{shown}: not a UDP address; expected udp://HOST:PORT (e.g. udp://0.0.0.0:2368)")
    host = m["h6"] if m["h6"] is not None else m["h"]
    if not host:
        host = "0.0.0.0"
    return host, int(m["port"])


class UdpReceiver:
    """Bound UDP socket delivering ``(t_ns, payload)`` with size checks and a silence limit.

    ``size``: the one datagram size the sensor sends (others are counted in ``undersize`` /
    ``oversize`` and dropped); None accepts any. ``port=0`` binds a free port (``address`` tells which).
    """

    def __init__(self, host: str, port: int, *, size: int | None = None, rcvbuf: int = RCVBUF_BYTES,
                 timeout_s: float = POLL_S) -> None:
        self.host, self.port, self.size = host, port, size
        self.rcvbuf, self.timeout_s = rcvbuf, timeout_s
        self.sock: socket.socket | None = None
        self.counters: dict[str, int] = {"datagrams": 0, "undersize": 0, "oversize": 0}
        self._buf = bytearray(65536)
        self._warned_rcvbuf = False

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); differs from the request when ``port`` was 0."""
        if self.sock is None:
            return self.host, self.port
        name = self.sock.getsockname()
        return name[0], name[1]

    @property
    def url(self) -> str:
        host, port = self.address
        return f"udp://[{host}]:{port}" if ":" in host else f"udp://{host}:{port}"

    def open(self) -> None:
        """Bind (no SO_REUSEADDR: a second receiver on the same port must fail, not split the stream); a socket
        still bound (a reconnect after silence) is kept, with what arrived meanwhile."""
        if self.sock is not None:
            return
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            sock.bind((self.host, self.port))
        except OSError as e:
            sock.close()
            raise DataError(f"udp://{self.host}:{self.port}: cannot listen ({e.strerror or e})") from None
        sock.settimeout(self.timeout_s)
        self.sock = sock
        got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        if got < self.rcvbuf // 2 and not self._warned_rcvbuf:  # Linux reports double what it grants
            self._warned_rcvbuf = True
            log.warning("%s: receive buffer is %d bytes, not %d; raise net.core.rmem_max to lose fewer packets "
                        "when the consumer stalls", self.url, got, self.rcvbuf)

    def recv(self) -> tuple[int, bytes] | None:
        """One datagram of the right size, or None after ``timeout_s`` without any datagram or when the
        one that came had the wrong size (counted), so a flood of foreign packets cannot hide silence."""
        assert self.sock is not None, "open() first"
        try:
            n = self.sock.recv_into(self._buf)
        except TimeoutError:  # socket.timeout is this class since 3.10
            return None
        except OSError as e:  # the socket itself failed: closed, so the reconnect binds a new one (a quiet spell
            # keeps the socket bound, and this one would have been kept too)
            self.close()
            raise SourceLost(f"socket error ({e.strerror or e})") from None
        t_ns = time.monotonic_ns()
        self.counters["datagrams"] += 1
        if self.size is not None and n != self.size:
            self.counters["undersize" if n < self.size else "oversize"] += 1
            return None
        return t_ns, bytes(self._buf[:n])

    def datagrams(self, *, silence_s: float, stalled: Callable[[], bool] = lambda: False,
                  idle_s: float = 0.3, stopping: Callable[[], bool] = lambda: False
                  ) -> Iterator[tuple[int, bytes] | None]:
        """Datagrams until the stream is lost, with ``None`` once per quiet spell of ``idle_s`` (sources
        flush a partial rotation then, as a file source does at its end).

        Raises :class:`SourceLost` after ``silence_s`` without a datagram of the right size, or within
        ``timeout_s`` of ``stalled()`` saying the watchdog asked for a reconnect (checked while packets
        flow too: a stream of packets that never completes a frame is stalled as well). Ends within ``timeout_s``
        of ``stopping()`` (the run is over): a quiet socket kept its thread, and the decoder it holds, alive
        past the run's end (a daemon thread at exit: nanobind's "leaked instances" dump under the summary).
        """
        last = checked = time.monotonic()
        idled = False
        while True:
            got = self.recv()
            if stopping():
                return
            now = time.monotonic()
            if now - checked >= self.timeout_s:  # also while packets flow but no frame comes out
                checked = now
                if stalled():
                    raise Stalled("stalled (watchdog)")  # the runner names the source
            if got is not None:
                last, idled = now, False
                yield got
                continue
            if not idled and now - last >= idle_s:
                idled = True
                yield None
            if now - last >= silence_s:
                raise SourceLost(f"no packets for {silence_s:.1f} s")  # the runner names the source

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()
