"""Pacing a replay at its recording's own rate: the one clock every source that replays a recording in real
time (a pcap's packets, a video's frames, an image folder, a KITTI drive, a waveform file, the synthetic
stream) sleeps by, so they all keep the same schedule: frame i at its recorded time from the first frame,
a late frame followed at once by the next ones that are due (as the sensor that recorded them would have
delivered them), never a sleep through a gap in the recording."""

from __future__ import annotations

import threading
import time


class Pacer:
    """Replays recorded timestamps at their own rate (divided by ``speed``): :meth:`wait` sleeps until a
    record's time, the clock started at the first one. A jump between two consecutive records (more than
    ``max_gap_s`` forward, or any step back) restarts the clock at that record instead of sleeping for it:
    a capture paused for hours, a first record stamped 0 or a clock set back asked for sleeps of hours to
    decades, or stopped the pacing for the rest of the file. ``jumps`` counts them. ``max_gap_s=None`` is a
    schedule with no jumps (frame i of a fixed-rate source at ``i * period``, however slow the rate)."""

    MAX_GAP_S = 2.0

    def __init__(self, speed: float = 1.0, stop: threading.Event | None = None,
                 max_gap_s: float | None = MAX_GAP_S) -> None:
        self.speed, self.stop, self.max_gap_s = speed, stop, max_gap_s
        self.jumps = 0
        self._t0_file: int | None = None
        self._t0_wall = 0.0
        self._last = 0

    def wait(self, t_ns: int) -> None:
        """Return when the record stamped ``t_ns`` is due (at once after a jump, or when ``stop`` is set)."""
        gap = self.max_gap_s is not None and (t_ns < self._last or t_ns - self._last > self.max_gap_s * 1e9)
        if self._t0_file is None or gap:
            if self._t0_file is not None:
                self.jumps += 1
            self._t0_file, self._t0_wall = t_ns, time.monotonic()
        self._last = t_ns
        delay = self._t0_wall + (t_ns - self._t0_file) / 1e9 / self.speed - time.monotonic()
        if delay > 0:
            if self.stop is not None:
                self.stop.wait(delay)
            else:
                time.sleep(delay)


def frame_ns(i: int, period_s: float) -> int:
    """The time of frame ``i`` of a source at a fixed period, for :meth:`Pacer.wait`."""
    return round(i * period_s * 1e9)
