"""What a source is, and the thread that runs one with reconnects and a heartbeat.

A source is a plain iterable of :class:`~edge.data.frame.Frame` (easy to test without threads).
``open()`` checks everything that can be checked before the loop starts (file exists, camera opens,
metadata parses) and raises a one-line :class:`~edge.errors.DataError`; inside ``__iter__`` a live
source that loses its device raises :class:`SourceLost`, and :class:`SourceThread` reopens it with
exponential backoff. A finite source (file, pcap, folder) simply ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from edge.data.frame import Frame
from edge.errors import DataError, EdgeError

#: what a source's iterator gives when it is done (None is a value a user's source can yield by mistake)
_END = object()


def source_name(source: Any) -> str:
    """How errors name a source: its spec as given, else its sensors (a user's own source has no spec, and an error
    line began ": RuntimeError: ..."; a review). A function, not a property: a user's subclass may set ``name``."""
    return getattr(source, "spec", "") or "+".join(getattr(source, "sensors", ())) or type(source).__name__

log = logging.getLogger("edge.stream")


#: the sensor name this package's LiDAR sources publish under (pcap, UDP, KITTI scans): what a family's point-cloud
#: sensors (``Sensors.points``) are bound to
POINT_SENSOR = "lidar"


def point_sensors(sensors: Any) -> set[str]:
    """A family's sensors (its :class:`edge.models.contract.Sensors`) that take point clouds: those it declares in
    ``points``, and one called ``lidar`` (what our LiDAR sources publish under), declared or not."""
    return set(sensors.points) | ({POINT_SENSOR} & {*sensors.required, *sensors.optional})


class SourceLost(Exception):
    """A live source lost its device/stream; the runner reconnects it (not a user error)."""


class Stalled(SourceLost):
    """A live source gave up its stream because the pipeline's watchdog asked (:meth:`Source.stalled`): the
    watchdog has said so already, so the runner reconnects without a second line."""


class Source:
    """Base class. Subclasses set ``sensors`` and ``live`` and implement ``open`` and ``__iter__``.

    ``live`` sources (cameras, RTSP, UDP, ``--realtime`` replays) deliver at the sensor's pace, so the
    pipeline defaults to the ``latest`` policy for them; ``reconnect`` says whether losing the stream
    should be retried (cameras, RTSP, UDP) or is the end (files).
    """

    spec: str = ""
    sensors: tuple[str, ...] = ("camera",)
    live: bool = False
    reconnect: bool = False
    #: expected seconds between frames (None: unknown); the watchdog's default stall limit derives from it
    period_s: float | None = None
    #: whether every frame of one tick (one frame set, several sensors) carries the tick's ``seq``: the loop then
    #: pairs this source's sensors on the ticks' own clock (``seq`` x ``period_s``), not on arrival (ticks read
    #: faster than real time all arrived within the sync tolerance, and a tick without an optional sensor got
    #: whichever frame came nearest in wall time)
    ticked: bool = False

    #: set by the pipeline's watchdog when no frame came in time; live sources poll it in their read
    #: loops (socket timeouts, grab loops) and raise SourceLost so the runner reconnects them
    stall: threading.Event

    #: original sensor name -> the name frames are published under (set by :meth:`rename_sensors`)
    renamed: dict[str, str] | None = None

    def rename_sensors(self, mapping: dict[str, str]) -> None:
        """Publish this source's frames under other sensor names (the ones the model family reads)."""
        originals = tuple(self.renamed) if self.renamed else tuple(self.sensors)
        self.renamed = {o: mapping.get(cur, cur) for o, cur in zip(originals, self.sensors)}
        self.sensors = tuple(self.renamed[o] for o in originals)

    def stop_asked(self) -> bool:
        """Whether the run was asked to stop (the pipeline replaces this before ``open()``): an ``open`` that
        takes long (a synthetic source rendering ahead) polls it, so a Ctrl-C there is not kept waiting."""
        return False

    def stalled(self) -> bool:
        ev = self.__dict__.get("stall")
        if ev is not None and ev.is_set():
            ev.clear()
            return True
        return False

    def request_reconnect(self) -> None:
        self.__dict__.setdefault("stall", threading.Event()).set()

    def open(self) -> None:
        """Check and open the underlying device/file; raise DataError with a one-line reason."""

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device/file. Safe to call more than once."""

    def lost(self) -> None:
        """What a reconnecting source does with its device when its stream is lost, before :meth:`open` is tried
        again: closes it (a camera, an RTSP stream). A UDP receiver keeps its socket bound instead: closed, the
        datagrams sent while it waited to reopen were lost and counted nowhere (two rotations after a 2 s gap)."""
        self.close()

    def reads(self) -> tuple[Path, ...]:
        """The files and folders this source reads (a run's outputs may not replace them); none for devices."""
        return ()

    #: whether the frames carry a camera-LiDAR rig of their own (``meta["rig"]``: a KITTI folder's calibration, a
    #: family's synthetic rigs): a family that needs one then runs without ``--calib``
    brings_rigs = False

    def own_rig(self) -> Any:
        """The camera-LiDAR calibration (:class:`edge.data.rig.Rig`) the source brings with it and that holds
        for every frame it will give (a KITTI folder's calib), None when it brings none; a DataError when its
        frames carry different ones. ``edge calibrate`` starts from it without ``--init`` and scores against it."""
        return None

    def frame_sizes(self) -> dict[str, tuple[int, int]]:
        """Camera frame sizes (sensor -> (H, W)) known once the source is open; {} when unknown. The
        pipeline prepares the engines for them before its clock starts, so an engine that compiles per
        camera size (OpenVINO's in-engine preprocessing) does not do it inside the first frame."""
        return {}

    def counters(self) -> dict[str, int]:
        """Source-specific counts for the stats summary (bad packets, truncated records, ...)."""
        return {}

    def fps_hint(self) -> float | None:
        return 1.0 / self.period_s if self.period_s else None

    @property
    def recorded(self) -> bool:
        """Whether this source replays a recording with a time axis of its own (a file read without
        ``--realtime``, with a known frame period): see :meth:`recorded_ns`."""
        return not self.live and bool(self.period_s)

    def recorded_ns(self, frame: Frame) -> int:
        """Where ``frame`` sits in its recording, in ns from the recording's start: ``meta['t_recorded_ns']``
        when the source stamps it (a pcap's packet times), else its number times the frame period.

        Why: a file read as fast as the loop takes it is stamped when it is read, not when it was captured,
        and two recordings (a video and a pcap) share no clock; the stream pairs such files on this time
        instead, both taken to start together (what a ``--realtime`` replay of the two assumes too)."""
        t = frame.meta.get("t_recorded_ns")
        if t is not None:
            return int(t)
        return round(frame.seq * float(self.period_s or 0.0) * 1e9)


class SourceThread(threading.Thread):
    """Runs one source: publishes each frame, reconnects live sources with backoff, beats a heartbeat.

    ``publish(frame)`` returns False when the pipeline is stopping. The thread ends when the source
    ends, when ``stop`` is set, or (for non-reconnecting sources) on an error, which it records in
    ``error`` for the pipeline to report.
    """

    def __init__(self, source: Source, publish: Callable[[Frame], bool], stop: threading.Event, *,
                 backoff_s: tuple[float, float] = (0.25, 5.0), on_exit: Callable[[], None] | None = None) -> None:
        super().__init__(name=f"source:{'+'.join(source.sensors)}", daemon=True)
        self.source = source
        self.publish = publish
        self.stop_event = stop
        self.backoff_s = backoff_s
        self.reconnects = 0
        self.last_frame_ns = time.monotonic_ns()
        self.frames = 0
        #: when the stream was lost (monotonic ns) if no frame came since: one loss is said once, however many
        #: reconnects it takes (a silent UDP LiDAR said "no packets for 2.0 s; reconnecting" every 2.25 s for
        #: as long as it stayed silent, beside the watchdog's line and a "stalled" line for the same stall)
        self.lost_ns: int | None = None
        #: when the source was last opened again after a loss (monotonic ns): the watchdog's silence counts from
        #: the later of this and the last frame, so a source that reopened and then hangs is asked again
        self.reopened_ns = 0
        #: True while :meth:`_reopen` retries (the watchdog leaves a source alone that knows it is lost)
        self.reopening = False
        #: seconds the source took to deliver each frame set (inside its iterator, not waiting for room in
        #: the pipeline; frames sharing a ``seq`` are one set): its own rate, so a summary can tell a slow
        #: source from a slow model
        self.produce_s: list[float] = []
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self.on_exit = on_exit
        self.cpu_s: float | None = None  # this thread's CPU time when it ended (decoding, parsing)

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                try:
                    frames, last_seq = iter(self.source), None
                    while True:
                        t0 = time.perf_counter()
                        frame = next(frames, _END)
                        if frame is _END:
                            break
                        if not isinstance(frame, Frame):  # None ended the run as if the source were done, a bare
                            # array failed deep inside (".seq"), both from a user's own source (a review)
                            raise DataError(f"source {source_name(self.source)}: yielded "
                                            f"{type(frame).__name__}, not an edge.data.frame.Frame")
                        dt = time.perf_counter() - t0
                        if len(self.produce_s) >= 100_000:  # enough for a median; the rest are not kept
                            pass
                        elif frame.seq == last_seq and self.produce_s:  # one tick's frames (camera + LiDAR)
                            self.produce_s[-1] += dt
                        else:
                            self.produce_s.append(dt)
                        last_seq = frame.seq
                        before, self.last_frame_ns = self.last_frame_ns, time.monotonic_ns()
                        self.frames += 1
                        if self.lost_ns is not None:
                            what = ("frames again, %.1f s after the last one" if self.frames > 1
                                    else "first frame, %.1f s after the start")  # (none before the loss)
                            log.warning("%s: " + what, self.source.spec, (self.last_frame_ns - before) / 1e9)
                            self.lost_ns = None
                        if self.source.renamed and frame.sensor in self.source.renamed:
                            frame = replace(frame, sensor=self.source.renamed[frame.sensor])
                        if not self.publish(frame) or self.stop_event.is_set():
                            return
                    return  # a finite source ended
                except (SourceLost, Exception) as e:
                    # a reconnecting (live) source treats any failure of its device as a lost stream
                    if not isinstance(e, SourceLost) and (not self.source.reconnect or isinstance(e, EdgeError)):
                        raise
                    if not self.source.reconnect:
                        return
                    if self.lost_ns is None:
                        self.lost_ns = time.monotonic_ns()
                        if not isinstance(e, Stalled):  # the watchdog said that one
                            log.warning("%s: %s; reconnecting", self.source.spec, e)
                    self.source.lost()
                    if not self._reopen():
                        return
        except BaseException as e:  # recorded; the pipeline reports it as one line
            self.error = e
        finally:
            try:
                self.source.close()
            except Exception as e:  # a failing close must still end the stream below, or the loop hangs
                log.warning("%s: close failed (%s)", self.source.spec, e)
            finally:
                self.cpu_s = time.thread_time()
                self.finished.set()
                if self.on_exit is not None:
                    self.on_exit()

    def _reopen(self) -> bool:
        """Retry ``open()`` with exponential backoff until it works or the pipeline stops."""
        delay = self.backoff_s[0]
        said = None
        self.reopening = True
        try:
            while not self.stop_event.wait(delay):
                self.reconnects += 1
                try:
                    self.source.open()
                    self.reopened_ns = time.monotonic_ns()
                    return True
                except Exception as e:  # retried; the count is in the stats, a reason is said when it changes
                    if str(e) != said:
                        said = str(e)
                        log.warning("%s: reopen failed (%s); retrying every %.2g s at most", self.source.spec, e,
                                    self.backoff_s[1])
                    delay = min(delay * 2, self.backoff_s[1])
            return False
        finally:
            self.reopening = False

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"frames": self.frames, "reconnects": self.reconnects, **self.source.counters()}
        if self.produce_s:
            # the first frame includes opening latency (a camera's start-up): the median is the steady rate
            p50 = float(sorted(self.produce_s)[len(self.produce_s) // 2]) * 1e3
            out["produce_p50_ms"] = round(p50, 3)
            out["produce_fps"] = round(1e3 / p50, 1) if p50 > 0 else None
        return out
