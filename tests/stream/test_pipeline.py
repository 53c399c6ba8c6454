"""Pipeline semantics with a model-free task: policies, sync, drain on stop, errors, watchdog, slots."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from edge.data.frame import Frame, now_ns
from edge.errors import DataError, EdgeError
from edge.stream.pipeline import Pipeline
from edge.stream.sinks import Sink
from edge.stream.slot import CLOSED, EMPTY, Slot
from edge.stream.sources import MemorySource, Source, SourceLost


class EchoTask:
    """Passes the camera frame through; ``delay`` makes inference slow, ``fail_at`` raises on that seq."""

    name = "echo"
    sensors: tuple[str, ...] = ("camera",)
    optional = ("lidar",)

    def __init__(self, delay: float = 0.0, fail_at: int | None = None) -> None:
        self.delay, self.fail_at = delay, fail_at
        self.infer_threads: set[str] = set()

    def preprocess(self, frames: dict[str, Frame]) -> Any:
        return frames["camera"]

    def infer(self, x: Frame) -> Any:
        self.infer_threads.add(threading.current_thread().name)
        if self.fail_at is not None and x.seq == self.fail_at:
            raise ValueError("boom\nsecond line")
        if self.delay:
            time.sleep(self.delay)
        return x.seq

    def postprocess(self, out: int, frames: dict[str, Frame]) -> tuple[dict[str, Any], Any]:
        return {"cam": out, "lid": frames["lidar"].seq if "lidar" in frames else None}, None

    def draw(self, result: Any) -> Any:
        return result.frames["camera"].data

    def summary(self) -> dict[str, Any]:
        return {"task": self.name}

    def close(self) -> None:
        pass


class UncheckedSink(Sink):
    """A sink whose output fails its check (``prepare``) with ``why``: a video on a full disk, a JSONL not fsynced."""

    name = "unchecked"

    def __init__(self, why: str) -> None:
        self.why = why

    def write(self, result: Any) -> None:
        pass

    def prepare(self) -> None:
        raise DataError(self.why)


class ListSink(Sink):
    name = "list"

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.closed_with: bool | None = None
        self.opened = False

    def open(self) -> None:
        self.opened = True

    def write(self, result: Any) -> None:
        self.records.append(result.record)

    def close(self, commit: bool = True) -> None:
        self.closed_with = commit


def _images(n: int) -> list[np.ndarray]:
    return [np.full((8, 8, 3), i % 256, np.uint8) for i in range(n)]


def test_block_policy_processes_every_frame_once_in_order() -> None:
    sink = ListSink()
    s = Pipeline([MemorySource(_images(5), count=200)], EchoTask(), [sink], policy="block").run()
    assert [r["cam"] for r in sink.records] == list(range(200))
    assert s["frames"] == 200 and s["counters"]["dropped_camera"] == 0 and s["policy"] == "block"
    assert sink.closed_with is True
    assert set(s["stages"]) == {"preprocess", "infer", "postprocess", "sinks"}
    assert s["queues"]["infer"]["max"] <= 1


def test_auto_policy_is_latest_for_live_sources_and_block_for_files() -> None:
    assert Pipeline([MemorySource(_images(1), fps=30)], EchoTask()).policy == "latest"
    assert Pipeline([MemorySource(_images(1))], EchoTask()).policy == "block"


def test_latest_policy_drops_stale_frames_and_bounds_latency() -> None:
    """Source at 200 fps, inference 20 ms: most frames must be dropped, and latency stays ~2 frames' work."""
    sink = ListSink()
    delay = 0.02
    p = Pipeline([MemorySource(_images(3), count=300, fps=200)], EchoTask(delay=delay), [sink], policy="latest")
    s = p.run()
    drops = s["counters"]["dropped_camera"]
    assert drops > 100 and len(sink.records) + drops <= 300
    seqs = [r["cam"] for r in sink.records]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # a frame waits at most one inference (the one in flight) before its own; not the whole backlog
    assert s["end_to_end"]["p99_ms"] < 3 * delay * 1e3 + 30, s["end_to_end"]
    assert s["sources"]["memory"]["dropped"] == drops


def test_block_policy_with_slow_model_drops_nothing() -> None:
    sink = ListSink()
    s = Pipeline([MemorySource(_images(3), count=40, fps=500)], EchoTask(delay=0.005), [sink], policy="block").run()
    assert [r["cam"] for r in sink.records] == list(range(40)) and s["counters"]["dropped_camera"] == 0


class StampedSource(Source):
    """Frames with given capture times (ns offsets from start) for one sensor."""

    def __init__(self, sensor: str, offsets_ms: list[float], live: bool = True) -> None:
        self.sensors, self.spec, self.live = (sensor,), sensor, live
        self.offsets = offsets_ms

    def __iter__(self) -> Iterator[Frame]:
        t0 = now_ns()
        start = time.monotonic()
        for i, off in enumerate(self.offsets):
            wait = start + off / 1e3 - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            yield Frame(np.zeros((4, 4, 3), np.uint8), t0 + int(off * 1e6), i, self.sensors[0], {})


def test_secondary_sensor_is_matched_by_capture_time() -> None:
    """Camera every 100 ms, LiDAR at +10 ms of every other camera frame: matched pairs only within 30 ms."""
    cam = StampedSource("camera", [100.0 * i for i in range(8)])
    lid = StampedSource("lidar", [100.0 * i + 10 for i in range(0, 8, 2)])
    sink = ListSink()
    Pipeline([cam, lid], EchoTask(), [sink], policy="block", sync_tolerance_ms=30).run()
    got = {r["cam"]: r["lid"] for r in sink.records}
    assert got == {0: 0, 1: None, 2: 1, 3: None, 4: 2, 5: None, 6: 3, 7: None}


class PartialSource(StampedSource):
    """A LiDAR whose frames at ``partial`` indices are rotations cut short (``meta["partial"]``, as the packet
    sources mark a capture's first or last rotation)."""

    def __init__(self, offsets_ms: list[float], partial: set[int]) -> None:
        super().__init__("lidar", offsets_ms)
        self.partial = partial

    def __iter__(self) -> Iterator[Frame]:
        for f in super().__iter__():
            if f.seq in self.partial:
                f.meta["partial"] = True
            yield f


def test_partial_rotations_are_counted_not_paired() -> None:
    """The VLP-16 capture's last rotation (1,425 points of 18,154, 5 of 36 azimuth sectors) was paired with the
    camera frames nearest it, a wedge of the sweep as their scan. Now it is counted and no frame takes it."""
    cam = StampedSource("camera", [100.0 * i for i in range(4)])
    lid = PartialSource([100.0 * i + 5 for i in range(4)], partial={0, 3})
    sink = ListSink()
    s = Pipeline([cam, lid], EchoTask(), [sink], policy="block", sync_tolerance_ms=30).run()
    assert {r["cam"]: r["lid"] for r in sink.records} == {0: None, 1: 1, 2: 2, 3: None}
    assert s["counters"]["partial_lidar"] == 2 and "unmatched_lidar" not in s["counters"]


def test_a_short_run_reports_its_memory() -> None:
    """RSS was sampled once a second, so a run under a second had no rss_mb in its summary."""
    s = Pipeline([MemorySource(_images(2), count=3)], EchoTask(), [], policy="block").run()
    assert s["frames"] == 3 and s["wall_s"] < 1.0 and s["rss_mb"]["end"] > 0


def test_secondary_frames_no_primary_frame_took_are_counted() -> None:
    """A LiDAR (or side camera) faster than the primary camera: the frames passed over for a nearer one were in no
    counter (a side camera's 124 used + 86 dropped of 300). Each is now matched or counted as unmatched_<sensor>."""
    cam = StampedSource("camera", [100.0 * i for i in range(8)])
    lid = StampedSource("lidar", [100.0 * i / 3 for i in range(16)])  # 0..500 ms, three a camera frame
    sink = ListSink()
    s = Pipeline([cam, lid], EchoTask(), [sink], policy="block", sync_tolerance_ms=20).run()
    used = {r["lid"] for r in sink.records if r["lid"] is not None}
    assert len(used) + s["counters"]["unmatched_lidar"] == 16 and s["counters"]["unmatched_lidar"] >= 9, s["counters"]


def _every_lidar_frame_counted_once(s: dict[str, Any], sink: ListSink) -> None:
    """Each LiDAR frame read is in exactly one of: delivered in a result, unmatched, dropped, unused; and the
    counter of its drops is its source's."""
    c = s["counters"]
    src = next(v for v in s["sources"].values() if v["sensors"] == ["lidar"])
    used = {r["lid"] for r in sink.records if r["lid"] is not None}
    parts = len(used) + sum(c.get(f"{k}_lidar", 0) for k in ("unmatched", "dropped", "unused", "sync_dropped"))
    assert parts == src["frames"] > 0, (src, c, sorted(used))
    assert c.get("dropped_lidar", 0) == src["dropped"], (src, c)


@pytest.mark.parametrize("policy", ["block", "latest"])
def test_lidar_frames_read_after_the_camera_ended_are_counted(policy: str) -> None:
    """A review: a LiDAR recording longer than the video went on being read after the video ended, and those
    rotations were in no counter (20 read, 6 used, 11 counted); the drops counted before the sources stopped
    disagreed with the source's own."""
    cam = StampedSource("camera", [100.0 * i for i in range(3)])
    lid = StampedSource("lidar", [20.0 * i for i in range(40)])  # runs on ~600 ms past the camera's end
    sink = ListSink()
    s = Pipeline([cam, lid], EchoTask(delay=0.01), [sink], policy=policy, sync_tolerance_ms=15).run()
    assert len(sink.records) == 3
    _every_lidar_frame_counted_once(s, sink)


def test_lidar_frames_matched_only_to_skipped_frame_sets_are_counted_unused() -> None:
    """A frame set the task cannot use (a counted skip) took its LiDAR rotation with it: in no counter."""
    class SkipOdd(EchoTask):
        def preprocess(self, frames: dict[str, Frame]) -> Any:
            if frames["camera"].seq % 2:
                raise DataError("this frame set cannot be used")
            return super().preprocess(frames)

    cam = StampedSource("camera", [100.0 * i for i in range(6)])
    lid = StampedSource("lidar", [100.0 * i + 5 for i in range(6)])
    sink = ListSink()
    s = Pipeline([cam, lid], SkipOdd(), [sink], policy="block", sync_tolerance_ms=30).run()
    assert [r["lid"] for r in sink.records] == [0, 2, 4] and s["counters"]["skipped"] == 3
    assert s["counters"]["unused_lidar"] == 3
    _every_lidar_frame_counted_once(s, sink)


def test_lidar_frames_the_sync_buffer_overflows_are_counted_once() -> None:
    """A review: a rotation the full sync buffer let go was counted as sync_dropped and, at the end, as unused too
    (307 counted of 170 read); one already delivered was counted as sync_dropped as well."""
    cam = StampedSource("camera", [150.0 * i for i in range(4)])
    lid = StampedSource("lidar", [1.0 * i for i in range(600)])  # 150 rotations a camera frame, and a slot that
    # holds them all (the default 8 would hold the source back): 50 or more between two reads of it, more than the
    # sync buffer's 32
    sink = ListSink()
    s = Pipeline([cam, lid], EchoTask(), [sink], policy="block", sync_tolerance_ms=0.6, capacity=1000).run()
    assert s["counters"].get("sync_dropped_lidar", 0) > 0
    _every_lidar_frame_counted_once(s, sink)


def test_a_recording_read_on_demand_counts_what_its_slot_held_at_the_end() -> None:
    """A review: with two files paired on their recorded times, the rotations the LiDAR's source had read into its
    slot when the video ended (up to 8) were in no counter."""
    cam, lid = RecordedSource("camera", 3, 0.1), RecordedSource("lidar", 200, 0.1)
    sink = ListSink()
    s = Pipeline([cam, lid], EchoTask(), [sink], policy="block", sync_tolerance_ms=20).run()
    assert s["sync"] == {"lidar": "recording"} and [r["lid"] for r in sink.records] == [0, 1, 2]
    _every_lidar_frame_counted_once(s, sink)


class LateLidar(Source):
    """One rotation, then a read that outlasts the loop's wait for its sources (it ignores the stop), then another."""

    sensors, spec, live = ("lidar",), "lidar", True

    def __iter__(self) -> Iterator[Frame]:
        yield Frame(np.zeros((4, 4, 3), np.uint8), now_ns(), 0, "lidar", {})
        time.sleep(1.0)
        yield Frame(np.zeros((4, 4, 3), np.uint8), now_ns(), 1, "lidar", {})


def test_a_frame_a_stuck_source_adds_after_the_count_is_refused_and_counted() -> None:
    """A review: a source still in a read past the stop put one more frame in its slot after the loop had counted
    it, and the summary (written after a slow sink's prepare) read it in no counter."""
    class SlowPrepare(ListSink):
        def prepare(self) -> None:
            time.sleep(1.2)

    sink = SlowPrepare()
    s = Pipeline([StampedSource("camera", [0.0, 10.0, 20.0]), LateLidar()], EchoTask(), [sink], policy="block",
                 sync_tolerance_ms=50).run()
    assert s["sources"]["lidar"]["frames"] == 2, s["sources"]
    _every_lidar_frame_counted_once(s, sink)


def test_side_frames_an_abort_abandons_are_counted() -> None:
    """A review: after a second Ctrl-C the primary frames in the loop were counted as abandoned, and the side
    cameras' frames matched to them were in no counter."""
    import threading

    cam = StampedSource("camera", [5.0 * i for i in range(400)])
    lid = StampedSource("lidar", [5.0 * i + 1 for i in range(400)])
    sink = ListSink()
    p = Pipeline([cam, lid], EchoTask(delay=0.01), [sink], policy="block", sync_tolerance_ms=3)
    threading.Timer(0.5, p.abort).start()
    s = p.run(handle_signals=False)
    assert 0 < s["frames"] < 400
    _every_lidar_frame_counted_once(s, sink)


def test_frames_an_abort_leaves_in_the_loop_are_counted() -> None:
    """A second signal stops at once: the frames in the loop's queues and stages' hands were in no counter (95
    read, 86 processed, 0 dropped). They are counted as abandoned, so every frame read is accounted for."""
    import threading

    sink = ListSink()
    p = Pipeline([MemorySource(_images(3), count=400)], EchoTask(delay=0.01), [sink], policy="block")
    threading.Timer(0.5, p.abort).start()  # as the second SIGINT does (no reason: the sinks keep what they have)
    s = p.run(handle_signals=False)
    read = s["sources"]["memory"]["frames"]
    assert 0 < s["frames"] < 400 and s["frames"] == len(sink.records)
    assert s["frames"] + s["counters"].get("abandoned", 0) + s["counters"].get("dropped_camera", 0) == read, s


def test_a_frame_a_source_held_as_a_graceful_stop_came_is_counted() -> None:
    """A review (and one earlier run in ~8): in block mode a source waiting for room when a single Ctrl-C came gave up
    its frame after 50 ms, read and never delivered, in no counter (the summary read one more than it processed).
    It is counted as abandoned; the frames in flight are still processed."""
    import threading

    class SlowPre(EchoTask):
        def preprocess(self, frames: dict[str, Frame]) -> Any:
            time.sleep(0.3)  # the stage that empties the source's slot: busy longer than the put waits (50 ms)
            return frames["camera"]

    sink = ListSink()
    p = Pipeline([MemorySource(_images(3), count=400)], SlowPre(), [sink], policy="block")
    threading.Timer(0.45, p.stop).start()  # as the first SIGINT does, while the source waits for room
    s = p.run(handle_signals=False)
    read = s["sources"]["memory"]["frames"]
    assert 0 < s["frames"] < 400 and s["frames"] == len(sink.records)
    assert s["frames"] + s["counters"].get("abandoned", 0) == read, s
    assert s["counters"].get("abandoned", 0) == 1, s["counters"]


def test_required_secondary_sensor_skips_unmatched_frames() -> None:
    task = EchoTask()
    task.sensors = ("camera", "lidar")
    cam = StampedSource("camera", [100.0 * i for i in range(6)])
    lid = StampedSource("lidar", [100.0 * i + 5 for i in range(0, 6, 3)])
    sink = ListSink()
    s = Pipeline([cam, lid], task, [sink], policy="block", sync_tolerance_ms=20).run()
    assert [(r["cam"], r["lid"]) for r in sink.records] == [(0, 0), (3, 1)]
    assert s["counters"]["unsynced"] == 4


class SilentLidar(Source):
    """A live LiDAR that never sends a frame (a sensor unplugged), polling for the end of the run."""

    live, sensors, spec, period_s = True, ("lidar",), "silent", 0.1

    def __iter__(self) -> Iterator[Frame]:
        while not self.stalled():
            time.sleep(0.01)
        return
        yield


def test_a_silent_lidar_waits_no_longer_than_the_watchdog_whatever_the_tolerance() -> None:
    """Found by a review: with --sync-ms 1e9 and a LiDAR that sent nothing, each camera frame waited the whole
    tolerance (11 days) for a partner: a 2 s file ran for ever. The wait is capped by the watchdog's limit (here
    0.3 s against the largest tolerance taken, a minute a frame)."""
    task = EchoTask()
    task.sensors = ("camera", "lidar")
    cam = StampedSource("camera", [100.0 * i for i in range(3)], live=False)
    t0 = time.monotonic()
    s = Pipeline([cam, SilentLidar()], task, [ListSink()], policy="block", sync_tolerance_ms=60_000,
                 stall_s=0.3).run(handle_signals=False)
    assert time.monotonic() - t0 < 10 and s["counters"]["unsynced"] == 3
    # a secondary that is not live is the watchdog's to leave alone: a large tolerance still waits for it (a review:
    # a file's frame 3 s off and 3 s late was lost under the cap)
    lid = StampedSource("lidar", [3000.0], live=False)
    sink = ListSink()
    Pipeline([StampedSource("camera", [0.0], live=False), lid], task, [sink], policy="block",
             sync_tolerance_ms=5000, stall_s=0.3).run(handle_signals=False)
    assert [(r["cam"], r["lid"]) for r in sink.records] == [(0, 0)]
    with pytest.raises(DataError, match=r"--sync-ms 1e\+308: the camera-LiDAR tolerance is a number of "
                                        r"milliseconds from 0 to 60000"):
        Pipeline([cam, SilentLidar()], task, [], sync_tolerance_ms=1e308)


def test_once_a_live_lidar_is_silent_frames_stop_waiting_for_it() -> None:
    """Found by a review: a silent live LiDAR slowed every camera frame by up to the watchdog's limit for the whole
    run (0.5 fps from a 10 fps video with --sync-ms 60000; 50 ms a frame queued at the default tolerance). Once the
    source has delivered nothing for the watchdog's limit, frame sets are not held back for it: 80 frames of a 100 fps
    camera take their own 0.8 s and about one limit (1.3 s measured), not one limit a frame (80 x 0.3 s = 24 s
    before)."""
    task = EchoTask()
    task.optional = ("lidar",)
    cam = StampedSource("camera", [10.0 * i for i in range(80)], live=False)  # a 100 fps camera
    t0 = time.monotonic()
    s = Pipeline([cam, SilentLidar()], task, [ListSink()], policy="block", sync_tolerance_ms=60_000,
                 stall_s=0.3).run(handle_signals=False)
    assert s["frames"] == 80 and time.monotonic() - t0 < 80 * 0.3 / 2, s


def test_missing_sensor_and_duplicate_sensor_are_one_line_errors() -> None:
    task = EchoTask()
    task.sensors = ("camera", "lidar")
    with pytest.raises(DataError, match="needs sensor"):
        Pipeline([MemorySource(_images(1))], task)
    with pytest.raises(DataError, match="same sensor"):
        Pipeline([MemorySource(_images(1)), MemorySource(_images(1))], EchoTask())
    with pytest.raises(DataError, match="policy"):
        Pipeline([MemorySource(_images(1))], EchoTask(), policy="fastest")


def test_stop_drains_in_flight_frames_and_commits() -> None:
    sink = ListSink()
    p = Pipeline([MemorySource(_images(2), count=10_000, fps=100)], EchoTask(delay=0.002), [sink], policy="block")
    threading.Timer(0.4, p.stop).start()
    s = p.run()
    n = len(sink.records)
    assert 5 < n < 10_000 and sink.closed_with is True
    assert [r["cam"] for r in sink.records] == list(range(n))  # block: nothing lost up to the stop
    assert s["frames"] == n


def test_stage_error_aborts_with_one_line_and_discards_sinks() -> None:
    sink = ListSink()
    p = Pipeline([MemorySource(_images(2), count=50)], EchoTask(fail_at=7), [sink], policy="block")
    with pytest.raises(EdgeError) as ei:
        p.run()
    assert "infer failed: ValueError: boom" in str(ei.value) and "\n" not in str(ei.value)
    assert sink.closed_with is False


class _Raising(ListSink):
    def __init__(self, exc: BaseException, where: str = "write") -> None:
        super().__init__()
        self.exc, self.where = exc, where

    def open(self) -> None:
        if self.where == "open":
            raise self.exc

    def write(self, result: Any) -> None:
        raise self.exc


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt()])
def test_a_sink_raising_systemexit_or_keyboardinterrupt_fails_the_run(exc: BaseException) -> None:
    """A review: either, raised by a sink's own write(), ended the post thread alone; the run reported success over
    the frame before it, committed the other sinks and left the infer thread waiting. Now the run's error: one
    line, every sink discarded, no stage thread left."""
    sink = ListSink()
    p = Pipeline([MemorySource(_images(2), count=20)], EchoTask(), [sink, _Raising(exc)], policy="block")
    with pytest.raises(EdgeError, match=rf"postprocess failed: {type(exc).__name__} raised in a stage thread"):
        p.run()
    assert sink.closed_with is False
    time.sleep(0.2)
    assert not [t.name for t in threading.enumerate() if t.name in ("preprocess", "infer", "postprocess", "sinks")]


def test_a_sink_whose_open_raises_is_one_edge_error() -> None:
    with pytest.raises(EdgeError, match=r"sink list: open failed: RuntimeError: no device"):
        Pipeline([MemorySource(_images(2), count=2)], EchoTask(), [_Raising(RuntimeError("no device"), "open")]).run()


class _Ticks(Source):
    """One source of two sensors: a camera frame every tick, a LiDAR one on the ticks ``lidar_on`` names (an optional
    sensor a generator leaves out now and then), every frame of a tick with its ``seq``, read as fast as taken."""

    sensors = ("camera", "lidar")
    ticked = True

    def __init__(self, n: int, lidar_on: Any) -> None:
        self.n, self.lidar_on = n, lidar_on

    def open(self) -> None:
        pass

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self.n):
            t = now_ns()
            yield Frame(np.zeros((4, 4, 3), np.uint8), t, i, "camera", {})
            if self.lidar_on(i):
                yield Frame(np.zeros((5, 3), np.float32), t, i, "lidar", {})


def _nearest_tick(i: int, ticks: list[int], period_ms: float, tol_ms: float) -> int | None:
    """The tick nearest ``i`` on the ticks' clock within the tolerance, the older on a tie (what a paced run pairs)."""
    near = [j for j in ticks if abs(j - i) * period_ms <= tol_ms]
    return min(near, key=lambda j: (abs(j - i), j)) if near else None


@pytest.mark.parametrize(("lidar_on", "sync_ms"), [(lambda i: i % 2 == 1, 50.0), (lambda i: i % 2 == 0, 50.0),
                                                   (lambda i: i % 3 == 0, 50.0), (lambda i: i % 3 == 0, 20.0),
                                                   (lambda i: i % 4 == 0, 80.0)])
def test_sensors_of_one_ticked_source_pair_on_the_ticks_clock(lidar_on: Any, sync_ms: float) -> None:
    """A review: read faster than real time, every tick of a source arrived within the sync tolerance, so a tick
    without its optional sensor got whichever frame came nearest in wall time. A source whose frames carry their
    tick's seq pairs on the ticks' clock (seq x period): the pairs a paced run makes, on any machine; a slower
    sensor is paired with its nearest tick within --sync-ms (a review of tick-equality pairing: it lost those)."""
    sink = ListSink()
    s = Pipeline([_Ticks(12, lidar_on)], EchoTask(), [sink], policy="block", sync_tolerance_ms=sync_ms).run()
    ticks = [j for j in range(12) if lidar_on(j)]
    assert [(r["cam"], r["lid"]) for r in sink.records] == [(i, _nearest_tick(i, ticks, 1000 / 30, sync_ms))
                                                            for i in range(12)]
    assert s["sync"] == {"lidar": "tick"}


def test_frames_of_a_sensor_the_source_did_not_announce_are_counted() -> None:
    """A synthetic generator's sensors are those of its first tick: a sensor that appears later was dropped in no
    counter; it is counted (``unannounced_<sensor>``) and ``edge run`` says so."""
    from edge.stream.sources.synthetic import SyntheticSource

    def gen(n: int, hw: Any, seed: int) -> Iterator[dict[str, Any]]:
        for i in range(n):
            tick = {"camera": (np.zeros((4, 4, 3), np.uint8), {})}
            if i % 2:
                tick["lidar"] = (np.zeros((5, 3), np.float32), {})
            yield tick

    sink = ListSink()
    s = Pipeline([SyntheticSource("synthetic:6", 6, None, generator=gen)], EchoTask(), [sink], policy="block").run()
    assert len(sink.records) == 6 and s["counters"]["unannounced_lidar"] == 3
    from edge.stream.api import unannounced_note

    assert unannounced_note(s).startswith("frames of lidar were ignored: their source did not announce the sensor")


def test_max_frames_is_exact() -> None:
    sink = ListSink()
    Pipeline([MemorySource(_images(2), count=100)], EchoTask(), [sink], policy="block", max_frames=13).run()
    assert len(sink.records) == 13


class FlakyLiveSource(Source):
    """A live camera that goes silent after 3 frames (a stalled stream) until reconnected, twice."""

    live = True
    reconnect = True
    period_s = 0.01
    #: what it raises when the watchdog asks (a real reader's :class:`Stalled`; the base class before)
    lost: type[SourceLost] = SourceLost

    def __init__(self, spec: str = "flaky") -> None:
        self.spec = spec
        self.opens = 0
        self.seq = 0

    def open(self) -> None:
        self.opens += 1

    def __iter__(self) -> Iterator[Frame]:
        for _ in range(3):
            yield Frame(np.zeros((4, 4, 3), np.uint8), now_ns(), self.seq, "camera", {})
            self.seq += 1
        if self.opens >= 3:
            return  # third connection: the stream ends normally
        while True:  # stalled: no frames, but it polls the watchdog's request like a real reader
            if self.stalled():
                raise self.lost("stalled")
            time.sleep(0.005)


def test_watchdog_counts_stalls_and_the_source_reconnects() -> None:
    src = FlakyLiveSource()
    sink = ListSink()
    s = Pipeline([src], EchoTask(), [sink], policy="block", stall_s=0.3).run()
    assert src.opens == 3 and s["counters"]["stalls"] == 2
    assert s["sources"]["flaky"]["reconnects"] == 2
    assert [r["cam"] for r in sink.records] == list(range(9))


class SilentLiveSource(Source):
    """A live sensor that loses its own stream (like a UDP LiDAR's silence limit) ``losses`` times in a row,
    then sends 3 frames and ends; ``open`` fails with the same reason ``bad_opens`` times first."""

    live = True
    reconnect = True
    period_s = 0.01

    def __init__(self, losses: int, bad_opens: int = 0) -> None:
        self.spec = "silent"
        self.losses = losses
        self.bad_opens = bad_opens
        self.opens = 0

    def open(self) -> None:
        self.opens += 1
        if 1 < self.opens <= 1 + self.bad_opens:
            raise OSError("device busy")

    def __iter__(self) -> Iterator[Frame]:
        if self.losses > 0:
            self.losses -= 1
            raise SourceLost("no packets for 0.0 s")
        for i in range(3):
            yield Frame(np.zeros((4, 4, 3), np.uint8), now_ns(), i, "camera", {})


def _source_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("silent")]


def test_one_loss_is_said_once_however_many_reconnects_it_takes(caplog: pytest.LogCaptureFixture) -> None:
    """Found in use: a silent UDP LiDAR said "no packets for 2.0 s; reconnecting" every 2.25 s for as long as it
    stayed silent. One line for the loss, one when frames come again; every reconnect still counted."""
    from edge.stream.sources import SourceThread

    src = SilentLiveSource(losses=5, bad_opens=3)
    got: list[Frame] = []
    th = SourceThread(src, lambda f: got.append(f) or True, threading.Event(), backoff_s=(0.001, 0.002))
    with caplog.at_level("WARNING"):
        th.run()
    lines = _source_lines(caplog)
    assert len(got) == 3 and th.reconnects == 5 + 3
    assert lines[0] == "silent: no packets for 0.0 s; reconnecting"
    assert [ln for ln in lines if "reopen failed" in ln] == [
        "silent: reopen failed (device busy); retrying every 0.002 s at most"]
    assert lines[-1].startswith("silent: first frame, ") and len(lines) == 3  # (no frame before the losses)


def test_a_stall_the_watchdog_said_is_not_said_again_by_the_source(caplog: pytest.LogCaptureFixture) -> None:
    """One watchdog stall was three lines: the watchdog's, the source's "stalled (watchdog)" and its own
    silence limit's. The watchdog's stays; a source giving up at the watchdog's request says nothing more."""
    from edge.stream.sources.base import Stalled

    src = FlakyLiveSource("silent")
    src.lost = Stalled
    with caplog.at_level("WARNING"):
        s = Pipeline([src], EchoTask(), [ListSink()], policy="block", stall_s=0.3).run()
    lines = _source_lines(caplog)
    assert s["counters"]["stalls"] == 2
    assert [ln for ln in lines if "reconnecting" in ln] == ["silent: no frame for 0.3 s (watchdog); reconnecting"] * 2
    assert not [ln for ln in lines if "stalled" in ln]


def test_a_source_that_reopens_and_then_hangs_is_asked_again(caplog: pytest.LogCaptureFixture) -> None:
    """Found by a review of the said-once change: a source that found its stream lost itself, reopened and then
    hung (no frames, no error) was never asked to reconnect, and the run hung with it. The watchdog's silence
    counts from the reopen too; the outage was said once already, so nothing more is said until frames come."""
    from edge.stream.sources.base import Stalled

    class Hangs(Source):
        live, reconnect, period_s = True, True, 0.01

        def __init__(self) -> None:
            self.spec, self.passes, self.asked = "silent", 0, 0

        def __iter__(self) -> Iterator[Frame]:
            self.passes += 1
            if self.passes == 2:  # reopened, but the stream hangs; polls the watchdog's request as readers do
                while not self.stalled():
                    time.sleep(0.005)
                self.asked += 1
                raise Stalled("watchdog: stream stalled")
            for i in range(3):
                yield Frame(np.zeros((4, 4, 3), np.uint8), now_ns(), i + 3 * self.passes, "camera", {})
            if self.passes == 1:
                raise SourceLost("read failed")

    src = Hangs()
    sink = ListSink()
    done: dict[str, Any] = {}
    with caplog.at_level("WARNING"):
        th = threading.Thread(target=lambda: done.setdefault(
            "s", Pipeline([src], EchoTask(), [sink], policy="block", stall_s=0.3).run()), daemon=True)
        th.start()
        th.join(20)
    assert not th.is_alive() and src.asked == 1 and len(sink.records) == 6
    assert done["s"]["counters"]["stalls"] == 1
    assert _source_lines(caplog)[0] == "silent: read failed; reconnecting"
    assert _source_lines(caplog)[1].startswith("silent: frames again, ") and len(_source_lines(caplog)) == 2


def test_a_loss_before_any_frame_is_not_called_frames_again(caplog: pytest.LogCaptureFixture) -> None:
    from edge.stream.sources import SourceThread

    th = SourceThread(SilentLiveSource(losses=1), lambda f: True, threading.Event(), backoff_s=(0.001, 0.002))
    with caplog.at_level("WARNING"):
        th.run()
    assert _source_lines(caplog)[-1].startswith("silent: first frame, ") and \
        _source_lines(caplog)[-1].endswith(" s after the start")


def test_open_failure_closes_what_was_opened() -> None:
    class Bad(Source):
        spec = "bad"

        def open(self) -> None:
            raise DataError("bad: cannot open")

    sink = ListSink()
    with pytest.raises(DataError, match="bad: cannot open"):
        Pipeline([Bad()], EchoTask(), [sink]).run()
    assert not sink.opened


def test_slot_policies() -> None:
    s = Slot("x", "latest", 2)
    for i in range(5):
        assert s.put(i)
    assert s.dropped == 3 and [s.get(0), s.get(0)] == [3, 4] and s.get(0.01) is EMPTY
    s.close()
    assert s.get(0) is CLOSED
    b = Slot("y", "block", 1)
    assert b.put(1)
    stop = threading.Event()
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(b.put(2, stop)))
    t.start()
    time.sleep(0.1)
    assert t.is_alive()  # waiting for room: block never drops
    assert b.get(0) == 1
    t.join(1)
    assert got == [True] and b.get(0) == 2 and b.dropped == 0
    assert b.put(3) and not (stop.set() or False)
    assert b.put(4, stop) is False  # a full block slot gives up when the pipeline stops
    with pytest.raises(DataError):
        Slot("z", "newest")


def test_live_opencv_stream_that_ends_is_reconnected(tmp_path: Any) -> None:
    """A real OpenCV capture treated as a live URL: when the stream ends it is reopened with backoff."""
    pytest.importorskip("cv2")
    from edge.stream.overlay import VideoWriter
    from edge.stream.sources import CameraSource

    video = tmp_path / "cam.mp4"
    with VideoWriter(video, 30) as w:
        for i in range(10):
            w.write(np.full((64, 96, 3), 20 * i, np.uint8))
    src = CameraSource("url:cam", "url", str(video), max_frames=25)
    assert src.frame_sizes() == {}  # not open: unknown
    src.open()
    assert src.frame_sizes() == {"camera": (64, 96)}  # what the capture reports, before any frame
    src.close()
    f = CameraSource(str(video), "file", str(video))
    f.open()
    assert f.frame_sizes() == {"camera": (64, 96)}  # the frame open() read to check the file
    f.close()
    sink = ListSink()
    s = Pipeline([src], EchoTask(), [sink], policy="block").run()
    assert [r["cam"] for r in sink.records] == list(range(25))
    assert s["sources"]["url:cam"]["reconnects"] == 2 and s["sources"]["url:cam"]["read_failures"] == 2


def test_recorder_window_is_fixed_memory_and_exact_counts() -> None:
    from edge.stream.stats import Recorder

    r = Recorder(window=100)
    buf = r._buf
    for i in range(250):
        r.add(float(i))
    assert r.count == 250 and r._buf is buf and r.samples.size == 100
    live = r.summary(recent=True)  # the live line's: the newest 100, 150..249
    assert live["count"] == 250 and live["max_ms"] == 249.0 and live["p50_ms"] == 199.5
    assert "percentiles_within_pct" not in live
    # the summary's: the whole run (it was the window's under the whole run's count: a review found the max 39.4 ms
    # of 25,000 frames reported as 26.7); mean and max exact, p50/p99 within half a percent of numpy's over all
    s = r.summary()
    every = np.arange(250, dtype=float)
    assert s["count"] == 250 and s["max_ms"] == 249.0 and s["mean_ms"] == 124.5 and s["percentiles_within_pct"] == 0.5
    for q in (50, 99):
        assert abs(s[f"p{q}_ms"] / np.percentile(every, q) - 1) < 0.005, (q, s)
    short = Recorder(window=100)
    for v in (3.0, 1.0, 2.0):
        short.add(v)
    assert short.summary() == {**short.summary(recent=True), "p50_ms": 2.0}  # exact within the window
    assert Recorder().summary() == {"count": 0}
    rng = np.random.default_rng(0)  # a long-tailed run past the window: every figure against numpy's over all
    lat = rng.lognormal(2.0, 0.6, 30_000)
    long = Recorder(window=1000)
    for v in lat:
        long.add(float(v))
    got = long.summary()
    assert got["max_ms"] == round(float(lat.max()), 3) and abs(got["mean_ms"] - lat.mean()) < 1e-3
    for q in (50, 99):
        assert abs(got[f"p{q}_ms"] / np.percentile(lat, q) - 1) < 0.005, (q, got)


def test_slow_secondary_frame_is_reused_for_several_primary_frames() -> None:
    """Camera every 33 ms, LiDAR every 100 ms, 50 ms tolerance: every camera frame gets the nearest rotation."""
    cam = StampedSource("camera", [33.3 * i for i in range(9)])
    lid = StampedSource("lidar", [100.0 * i for i in range(3)])
    sink = ListSink()
    Pipeline([cam, lid], EchoTask(), [sink], policy="block", sync_tolerance_ms=50).run()
    got = [r["lid"] for r in sink.records]
    assert got == [0, 0, 1, 1, 1, 2, 2, 2, None], got  # 266 ms is 66 ms from the last rotation


class RecordedSource(Source):
    """A file read without --realtime: ``n`` frames as fast as they are taken, ``period_s`` apart in its
    recording, or at ``stamps_ms`` (recorded times, as a pcap's packets give) when given."""

    def __init__(self, sensor: str, n: int, period_s: float, stamps_ms: list[float] | None = None) -> None:
        self.sensors, self.spec, self.live, self.period_s = (sensor,), f"{sensor}.rec", False, period_s
        self.n, self.stamps = n, stamps_ms
        self.read = 0

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self.n):
            meta = {} if self.stamps is None else {"t_recorded_ns": int(self.stamps[i] * 1e6)}
            self.read += 1
            yield Frame(np.zeros((4, 4, 3), np.uint8), now_ns(), i, self.sensors[0], meta)


def test_two_recordings_pair_on_their_own_clocks_not_on_when_they_were_read() -> None:
    """A 10 fps video and a 20 Hz LiDAR file, both read as fast as the loop takes them: frame k pairs with
    rotation 2k (arrival times pair them by read speed: most fell outside the tolerance, the rest at random)."""
    cam, lid = RecordedSource("camera", 12, 0.1), RecordedSource("lidar", 24, 0.05)
    sink = ListSink()
    s = Pipeline([cam, lid], EchoTask(delay=0.005), [sink], policy="block", sync_tolerance_ms=10).run()
    assert [(r["cam"], r["lid"]) for r in sink.records] == [(k, 2 * k) for k in range(12)]
    assert s["sync"] == {"lidar": "recording"}


def test_recorded_stamps_pair_within_tolerance_and_a_slow_model_keeps_the_files_in_step() -> None:
    cam = RecordedSource("camera", 5, 0.1)
    lid = RecordedSource("lidar", 3, 0.1, stamps_ms=[0.0, 95.0, 310.0])
    sink = ListSink()
    Pipeline([cam, lid], EchoTask(), [sink], policy="block", sync_tolerance_ms=20).run()
    assert {r["cam"]: r["lid"] for r in sink.records} == {0: 0, 1: 1, 2: None, 3: 2, 4: None}
    # a slow model: the LiDAR file is read no further ahead than its slot holds, not to its end
    cam, lid = RecordedSource("camera", 3, 0.1), RecordedSource("lidar", 200, 0.1)
    seen: list[int] = []

    class Watch(EchoTask):
        def infer(self, x: Frame) -> Any:
            time.sleep(0.02)
            seen.append(lid.read)
            return x.seq

    Pipeline([cam, lid], Watch(), [ListSink()], policy="block", sync_tolerance_ms=20).run()
    assert max(seen) <= 3 + 8 + 2, seen  # the frames up to the match + the slot's 8 + one in the source's hand


def test_live_sources_and_latest_policy_pair_on_arrival() -> None:
    live = StampedSource("lidar", [0.0])
    assert Pipeline([RecordedSource("camera", 1, 0.1), live], EchoTask(), policy="block").by_recording == set()
    assert Pipeline([RecordedSource("camera", 1, 0.1), RecordedSource("lidar", 1, 0.1)], EchoTask(),
                    policy="latest").by_recording == set()
    unpaced = RecordedSource("lidar", 1, 0.1)
    unpaced.period_s = None  # no frame period, no stamps: no recording clock to pair on
    assert Pipeline([RecordedSource("camera", 1, 0.1), unpaced], EchoTask(), policy="block").by_recording == set()


class StuckSource(Source):
    """A live camera whose read blocks forever after 3 frames (a GStreamer appsink with no timeout)."""

    live = True
    spec = "stuck"

    def __iter__(self) -> Iterator[Frame]:
        for i in range(3):
            yield Frame(np.zeros((4, 4, 3), np.uint8), now_ns(), i, "camera", {})
        threading.Event().wait()  # never returns


def test_stop_does_not_hang_on_a_source_stuck_in_a_read() -> None:
    sink = ListSink()
    p = Pipeline([StuckSource()], EchoTask(), [sink], policy="block", stall_s=60)
    threading.Timer(0.5, p.stop).start()
    t0 = time.monotonic()
    s = p.run()
    assert time.monotonic() - t0 < 0.5 + p.DRAIN_GRACE_S + 1.5
    assert [r["cam"] for r in sink.records] == [0, 1, 2] and sink.closed_with is True and s["frames"] == 3


class Breaks(Source):
    """A camera lost after ``n`` frames (a device unplugged)."""

    spec = "breaks"

    def __init__(self, n: int = 4) -> None:
        self.n = n

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self.n):
            yield Frame(np.zeros((4, 4, 3), np.uint8), now_ns(), i, "camera", {})
        raise OSError("device unplugged")


def test_source_failure_keeps_results_and_reports_one_line() -> None:
    sink = ListSink()
    with pytest.raises(EdgeError, match="breaks: OSError: device unplugged") as e:
        Pipeline([Breaks()], EchoTask(), [sink], policy="block").run()
    assert [r["cam"] for r in sink.records] == [0, 1, 2, 3] and sink.closed_with is True
    assert "the 4 frame(s) before it were processed and their outputs kept" in str(e.value)  # says what stayed
    assert e.value.summary["frames"] == 4  # what the caller writes beside the kept outputs


class _UserSource(Source):
    """A user's own source, without a spec: ``items`` are yielded as they are; ``open_error`` raised by open()."""

    def __init__(self, items: list[Any], open_error: Exception | None = None) -> None:
        self.items, self.open_error = items, open_error

    def open(self) -> None:
        if self.open_error is not None:
            raise self.open_error

    def __iter__(self) -> Iterator[Any]:
        for it in self.items:
            if isinstance(it, Exception):
                raise it
            yield it


def test_a_users_source_fails_in_one_line_naming_it() -> None:
    """A review: a user's source's open() error escaped raw (not an EdgeError), a bare array it yielded failed as
    "': AttributeError: ... has no attribute 'seq'", a None ended the run as if the source were done (reported as
    success), and a source without a spec was named ''."""
    frame = Frame(np.zeros((4, 4, 3), np.uint8), now_ns(), 0, "camera", {})
    with pytest.raises(EdgeError, match=r"^source camera: open failed: OSError: camera busy$"):
        Pipeline([_UserSource([], OSError("camera busy"))], EchoTask(), [ListSink()]).run(handle_signals=False)
    for item, says in ((np.zeros((4, 4, 3), np.uint8), "yielded ndarray"), (None, "yielded NoneType")):
        sink = ListSink()
        with pytest.raises(EdgeError, match=f"^source camera: {says}, not an edge.data.frame.Frame") as e:
            Pipeline([_UserSource([frame, item, frame])], EchoTask(), [sink], policy="block").run(
                handle_signals=False)
        assert e.value.summary["frames"] == 1 and [r["cam"] for r in sink.records] == [0]
    with pytest.raises(EdgeError, match=r"^camera: RuntimeError: device gone"):
        Pipeline([_UserSource([frame, RuntimeError("device gone")])], EchoTask(), [ListSink()],
                 policy="block").run(handle_signals=False)


class BatchEchoTask(EchoTask):
    """EchoTask that also decodes several results at once, recording each batch's size."""

    decodes_in_batches = True

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(delay)
        self.batches: list[int] = []

    def postprocess(self, out: int, frames: dict[str, Frame]) -> tuple[dict[str, Any], Any]:
        self.batches.append(1)
        return super().postprocess(out, frames)

    def postprocess_many(self, outs: list[int], frames: list[dict[str, Frame]]) -> list[tuple[dict[str, Any], Any]]:
        self.batches.append(len(outs))
        return [EchoTask.postprocess(self, o, f) for o, f in zip(outs, frames, strict=True)]


def test_block_mode_decodes_ready_results_together_and_keeps_order() -> None:
    """Inference at 2 ms a frame: the post stage takes the next results as they come (up to POST_BATCH),
    every frame once, in order, each with its own end-to-end time; the per-frame postprocess stat is the
    batch's time shared out."""
    sink, task = ListSink(), BatchEchoTask(delay=0.002)
    s = Pipeline([MemorySource(_images(5), count=60)], task, [sink], policy="block").run()
    assert [r["cam"] for r in sink.records] == list(range(60))
    assert [r["seq"] for r in sink.records] == list(range(60))
    assert max(task.batches) == Pipeline.POST_BATCH and sum(task.batches) == 60
    assert s["counters"]["decoded_in_batches"] == sum(b for b in task.batches if b > 1)
    assert s["stages"]["postprocess"]["count"] == 60
    assert all(r["e2e_ms"] > 0 for r in sink.records)


def test_results_an_abort_leaves_undelivered_in_a_batch_are_not_counted_as_decoded_together() -> None:
    """Found by a review: a second SIGINT in the middle of a batch left its undelivered results in
    decoded_in_batches (211 against 210 frames written), counted again as abandoned."""
    task = BatchEchoTask(delay=0.002)

    class AbortsInABatch(ListSink):
        def write(self, result: Any) -> None:
            super().write(result)
            if task.batches[-1] > 1:  # the first result of a batch of several: the rest are left undelivered
                p.abort()

    sink = AbortsInABatch()
    p = Pipeline([MemorySource(_images(5), count=400)], task, [sink], policy="block")
    s = p.run(handle_signals=False)
    assert max(task.batches) > 1 and s["frames"] == len(sink.records) < 400
    assert s["counters"]["decoded_in_batches"] == 1, s["counters"]


def test_latest_mode_and_tasks_without_batch_decoding_decode_one_at_a_time() -> None:
    task = BatchEchoTask(delay=0.002)
    sink = ListSink()
    Pipeline([MemorySource(_images(3), count=40, fps=400)], task, [sink], policy="latest").run()
    assert set(task.batches) == {1} and sum(task.batches) == len(sink.records)  # latest: one at a time
    plain = EchoTask(delay=0.002)
    sink2 = ListSink()
    Pipeline([MemorySource(_images(3), count=20)], plain, [sink2], policy="block").run()
    assert [r["cam"] for r in sink2.records] == list(range(20))


def _record_waits(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    decisions: list[bool] = []
    real = Pipeline._wait_for_more

    def spy(self: Pipeline, back_to_back: bool) -> bool:
        decisions.append(real(self, back_to_back))
        return decisions[-1]

    monkeypatch.setattr(Pipeline, "_wait_for_more", spy)
    return decisions


def test_a_slow_source_is_not_held_back_for_a_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames every 30 ms, inference 1 ms: results are not produced back to back, so the post stage
    never waits for a next one and each result goes out on its own."""
    decisions = _record_waits(monkeypatch)
    task, sink = BatchEchoTask(delay=0.001), ListSink()
    s = Pipeline([MemorySource(_images(2), count=12, fps=33)], task, [sink], policy="block").run()
    assert len(sink.records) == 12 == sum(task.batches)
    # on a loaded machine the source's thread can fall behind and hand over two frames at once: those two results
    # are then back to back, and waiting for the second is right. Not for most (a full suite's run saw one)
    assert decisions and sum(decisions) <= len(decisions) // 4, decisions
    assert s["end_to_end"]["p50_ms"] < 25, s["end_to_end"]  # a frame period is 30 ms


class SlowSink(ListSink):
    def write(self, result: Any) -> None:
        time.sleep(0.02)
        super().write(result)


def test_slow_sinks_are_not_kept_waiting_for_a_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sinks at 20 ms a result, inference 1 ms back to back: the post stage is the slowest stage, so
    after its first batch it never waits for more results (it takes what is queued), and nothing is lost
    or reordered. With a fast sink the same run does wait, to fill its batches."""
    decisions = _record_waits(monkeypatch)
    sink = SlowSink()
    Pipeline([MemorySource(_images(3), count=16)], BatchEchoTask(delay=0.001), [sink], policy="block").run()
    assert [r["cam"] for r in sink.records] == list(range(16))
    assert not any(decisions[1:]), decisions
    decisions.clear()
    Pipeline([MemorySource(_images(3), count=16)], BatchEchoTask(delay=0.001), [ListSink()], policy="block").run()
    assert any(decisions)
