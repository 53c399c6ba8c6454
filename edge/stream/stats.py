"""Where the time goes: per-stage and end-to-end latency, fps, drops and queue depths.

Recorders keep a bounded window of samples (the newest ``WINDOW``) so a 10-hour run's memory stays
flat, and the whole run's count, sum, max and a histogram of 0.5 %-wide bins. The summary is the whole
run's: exact up to ``WINDOW`` samples (the percentiles equal those of the JSONL's), past that mean and max
exact and p50/p99 from the bins, within 0.5 % (said as ``percentiles_within_pct``); it gave the last
20,000 frames' figures under the whole run's count (a review: the true max 39.4 ms reported as 26.7). The
live line reads the window: at 30 fps the last ~11 minutes, what an operator watches.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np

WINDOW = 20_000
#: the histogram past the window: bins 0.5 % wide from 1 us to 10^7 ms (values outside go to the end bins)
_BIN_RATIO, _BIN_LO_MS = 1.005, 1e-3
_BINS = math.ceil(math.log(1e7 / _BIN_LO_MS) / math.log(_BIN_RATIO))


def drops_by_sensor(counters: dict[str, Any]) -> dict[str, int]:
    """Frames the ``latest`` policy dropped, per sensor (the ``dropped_<sensor>`` counters that are not 0)."""
    return {k[len("dropped_"):]: int(v) for k, v in counters.items()
            if k.startswith("dropped_") and isinstance(v, int | float) and v}


def drops_text(counters: dict[str, Any]) -> str:
    """The drops of a run in words: ``"23 dropped"`` for one sensor, else per sensor (``"dropped front 23,
    front_left 3"``). Why: one sum over a 3-camera ``multi:`` run said 29 dropped of 60 frame sets read, 37 processed
    (23 sets, and 3 frames of each side camera): frames of different sensors are not one count."""
    by = drops_by_sensor(counters)
    if len(by) <= 1:
        return f"{sum(by.values())} dropped"
    return "dropped " + per_sensor(by)


def per_sensor(by: dict[str, int]) -> str:
    """``{"front": 23, "front_left": 3}`` as ``"front 23, front_left 3"``."""
    return ", ".join(f"{s} {n}" for s, n in by.items())


class Recorder:
    """Latency samples (ms) of one stage, plus a count and the wall-time span for fps.

    The window is a numpy ring buffer allocated up front, so memory does not grow at all while a run
    goes on (a deque of Python floats grew by ~4 MB per recorder until it filled, which looked like a
    leak in soak tests).
    """

    def __init__(self, window: int = WINDOW) -> None:
        self._buf = np.zeros(window, np.float64)
        self._bins = np.zeros(_BINS, np.int64)  # the whole run's, for its percentiles past the window
        self.count = 0
        self.total_ms = 0.0
        self.max_ms = -math.inf
        self.t_first: float | None = None
        self.t_last: float | None = None

    @property
    def samples(self) -> np.ndarray:
        """The samples in the window (oldest first is not guaranteed; percentiles do not care)."""
        return self._buf[: min(self.count, len(self._buf))]

    def add(self, ms: float) -> None:
        now = time.perf_counter()
        if self.t_first is None:
            self.t_first = now
        self.t_last = now
        self._buf[self.count % len(self._buf)] = ms
        self.count += 1
        self.total_ms += ms
        self.max_ms = max(self.max_ms, ms)
        at = int(math.log(ms / _BIN_LO_MS) / math.log(_BIN_RATIO)) if ms > _BIN_LO_MS else 0
        self._bins[min(at, _BINS - 1)] += 1

    def fps(self) -> float:
        if self.count < 2 or self.t_first is None or self.t_last is None or self.t_last <= self.t_first:
            return 0.0
        return (self.count - 1) / (self.t_last - self.t_first)

    def summary(self, recent: bool = False) -> dict[str, float | int]:
        """The whole run's figures (``recent``: the window's, for a live line); see the module docstring."""
        s = self.samples.copy()
        if s.size == 0:
            return {"count": self.count}
        if recent or self.count <= len(self._buf):
            return {"count": self.count, "p50_ms": round(float(np.percentile(s, 50)), 3),
                    "p99_ms": round(float(np.percentile(s, 99)), 3), "mean_ms": round(float(s.mean()), 3),
                    "max_ms": round(float(s.max()), 3), "fps": round(self.fps(), 2)}
        return {"count": self.count, "p50_ms": round(self._binned(50), 3), "p99_ms": round(self._binned(99), 3),
                "mean_ms": round(self.total_ms / self.count, 3), "max_ms": round(self.max_ms, 3),
                "fps": round(self.fps(), 2), "percentiles_within_pct": round((_BIN_RATIO - 1) * 100, 2)}

    def _binned(self, q: float) -> float:
        """The whole run's ``q``-th percentile from the bins: the middle of the bin holding it (never above the max)."""
        at = int(np.searchsorted(np.cumsum(self._bins), q / 100 * (self.count - 1), side="right"))
        return min(_BIN_LO_MS * _BIN_RATIO ** (at + 0.5), self.max_ms)


class Depth:
    """Queue depth sampled at every put: max and mean (how close the loop runs to its bounds)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.max = 0
        self.total = 0
        self.n = 0

    def add(self, depth: int) -> None:
        self.max = max(self.max, depth)
        self.total += depth
        self.n += 1

    def summary(self) -> dict[str, float | int]:
        return {"capacity": self.capacity, "max": self.max, "mean": round(self.total / self.n, 3) if self.n else 0.0}


class Stats:
    """All of a pipeline's numbers; ``summary()`` is the JSON written at exit, ``line()`` the live line."""

    STAGES = ("preprocess", "infer", "postprocess", "sinks")
    WARMUP_S = 30.0

    def __init__(self) -> None:
        self.stages = {s: Recorder() for s in self.STAGES}
        self.e2e = Recorder()  # capture of the primary frame -> result ready (after postprocess)
        # per frame: end-to-end minus its own preprocess + infer + postprocess time, i.e. what the loop
        # itself adds (time in slots and queues, thread hand-offs): the number to watch under overload
        self.waiting = Recorder()
        self.counters: dict[str, int] = {}
        self.depths: dict[str, Depth] = {}
        self.sources: dict[str, dict[str, Any]] = {}
        self.rss_mb: list[tuple[float, float]] = []  # (seconds since start, RSS MB), sampled by the monitor
        self.t0 = time.perf_counter()
        self.cpu0 = time.process_time()
        self._cpu_end: tuple[float, float] | None = None  # (wall, CPU) when the loop's threads ended
        self.threads_cpu_s: dict[str, float] = {}  # the loop's own threads' CPU time, by thread name
        self._lock = threading.Lock()

    def start(self) -> None:
        """The loop starts now: wall time and this process's CPU time count from here, not from the opening
        of the devices and engines."""
        self.t0 = time.perf_counter()
        self.cpu0 = time.process_time()
        self._cpu_end = None

    def stop(self) -> None:
        """The loop's threads have ended: CPU time counts up to here (committing the outputs afterwards, e.g.
        reading a saved video back, is not the loop's work)."""
        self._cpu_end = (time.perf_counter(), time.process_time())

    def thread_cpu(self, name: str, seconds: float) -> None:
        """A loop thread's CPU time when it ended (threads of one name add up)."""
        with self._lock:
            self.threads_cpu_s[name] = self.threads_cpu_s.get(name, 0.0) + seconds

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counters[key] = self.counters.get(key, 0) + n

    def _counters_sorted(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.counters.items()))

    def set_count(self, key: str, n: int) -> None:
        with self._lock:
            self.counters[key] = n

    def depth(self, name: str, capacity: int) -> Depth:
        return self.depths.setdefault(name, Depth(capacity))

    def sample_rss(self) -> None:
        mb = rss_mb()
        if mb is not None:
            self.rss_mb.append((round(time.perf_counter() - self.t0, 2), round(mb, 1)))
            if len(self.rss_mb) > 2 * 3600:  # thin out in very long runs: keep every other sample
                self.rss_mb[:] = self.rss_mb[::2]

    def line(self) -> str:
        e2e = self.e2e.summary(recent=True)
        inf = self.stages["infer"].summary(recent=True)
        with self._lock:
            counters = dict(self.counters)
        depth = " ".join(f"{k}={d.max}" for k, d in self.depths.items())
        cores = cpu_use(time.process_time() - self.cpu0, time.perf_counter() - self.t0, 0)["cores"] or 0.0
        return (f"{e2e.get('count', 0)} frames  {e2e.get('fps', 0):.1f} fps  e2e p50 {e2e.get('p50_ms', 0):.1f} / "
                f"p99 {e2e.get('p99_ms', 0):.1f} ms  infer p50 {inf.get('p50_ms', 0):.1f} ms  {drops_text(counters)}  "
                f"depth max {depth}  CPU {cores:.2f} cores")

    def summary(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.t0
        wall_end, cpu_end = self._cpu_end or (time.perf_counter(), time.process_time())
        out: dict[str, Any] = {
            "frames": self.e2e.count, "wall_s": round(wall, 3),
            "fps": round(self.e2e.count / wall, 2) if wall > 0 else 0.0,
            "end_to_end": self.e2e.summary(),
            "stages": {k: r.summary() for k, r in self.stages.items()},
            "waiting": self.waiting.summary(),
            "queues": {k: d.summary() for k, d in self.depths.items()},
            "counters": self._counters_sorted(),
            "sources": self.sources,
            "cpu": cpu_use(cpu_end - self.cpu0, wall_end - self.t0, self.e2e.count, dict(self.threads_cpu_s)),
        }
        if self.rss_mb:
            first, last = self.rss_mb[0][1], self.rss_mb[-1][1]
            # growth after a warm-up (allocator arenas, the runtime's first calls) is the leak signal
            warm = next((v for t, v in self.rss_mb if t >= self.WARMUP_S), None)
            out["rss_mb"] = {"start": first, "end": last, "max": max(v for _, v in self.rss_mb),
                             "growth_pct": round(100.0 * (last - first) / first, 2) if first else 0.0}
            if warm:
                out["rss_mb"].update({"after_warmup": warm, "growth_after_warmup_pct":
                                      round(100.0 * (last - warm) / warm, 2)})
        return out


def cpu_use(cpu_s: float, wall_s: float, frames: int, threads: dict[str, float] | None = None) -> dict[str, Any]:
    """This process's CPU time over the loop (every thread: sources, stages, the runtime's own pool), per
    frame and as cores kept busy; with ``threads`` (the loop threads' own CPU seconds) also per frame by
    thread, ``rest`` being the threads the loop did not start (a runtime's worker pool, the main thread).
    Why: whether a loop keeps its rate while other work shares the cores (a car's computer) depends on its
    CPU time per frame, not its latency; at 25 fps beside one busy core of two, a frame's CPU time must fit
    in what is left of the cores, however well the stages overlap, and the split says where to cut."""
    out: dict[str, Any] = {"seconds": round(cpu_s, 3),
                           "ms_per_frame": round(1e3 * cpu_s / frames, 2) if frames else None,
                           "cores": round(cpu_s / wall_s, 2) if wall_s > 0 else None}
    if threads and frames:
        split = {k: round(1e3 * v / frames, 2) for k, v in sorted(threads.items())}
        split["rest"] = round(max(0.0, 1e3 * (cpu_s - sum(threads.values())) / frames), 2)
        out["by_thread_ms_per_frame"] = split
    return out


def rss_mb() -> float | None:
    """Resident memory of this process in MB (Linux /proc; psutil elsewhere; None when neither works)."""
    try:
        with open("/proc/self/statm") as f:
            import os

            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        try:
            import psutil

            return psutil.Process().memory_info().rss / 2**20
        except Exception:  # psutil missing or refused: memory is just not reported
            return None
