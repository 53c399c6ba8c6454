"""``--source synthetic[:N[:HxW]]``: a family's own synthetic stream, or a moving test pattern.

A model family's card provides its synthetic data (``card.data.synthetic``: frame sets by sensor,
labels in ``meta``); a bundle without a family (a plain ``edge.export`` module) gets a seeded moving
pattern so the loop can still be tried without a camera. ``realtime`` paces frames at ``fps``;
otherwise they come as fast as the pipeline takes them (``block`` then measures the model). Frames are
rendered in ``open()``, before the loop's clock starts (up to :data:`PRERENDER_BYTES` / ``PRERENDER_S``): a family's
renderer is Python and slow (one 1280x720 frame of ours takes 42-75 ms on one core), and a loop that waits for
it measures the renderer, not the model.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from edge.data.frame import Frame, is_image, now_ns
from edge.data.pacing import Pacer, frame_ns
from edge.errors import DataError
from edge.stream.sources.base import Source

#: frame sets rendered before the run up to this many bytes of sensor data or this many seconds of
#: rendering (a long synthetic run should not wait minutes for its first frame); the rest render as read
PRERENDER_BYTES = 512 * 2**20
#: the largest side a synthetic frame may have (8K; a typo such as 100000x100000 would ask for 28 GB a frame)
MAX_SIDE = 8192
PRERENDER_S = 10.0

#: (n, (h, w) or None, seed) -> n frame sets {sensor: (data, meta)}
Generator = Callable[[int, tuple[int, int] | None, int], Iterator[dict[str, tuple[Any, dict[str, Any]]]]]


def pattern_frames(n: int, hw: tuple[int, int] | None = None, seed: int = 7
                   ) -> Iterator[dict[str, tuple[Any, dict[str, Any]]]]:
    """A seeded colour gradient with a moving bar: BGR uint8 camera frames with no labels."""
    h, w = hw or (720, 1280)
    rng = np.random.default_rng(seed)
    base = np.zeros((h, w, 3), np.uint8)
    base[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    base[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    base[..., 2] = rng.integers(0, 256)
    bar = max(2, w // 16)
    for i in range(n):
        img = base.copy()
        x = (i * max(1, w // 60)) % max(1, w - bar)
        img[:, x:x + bar] = 255 - img[:, x:x + bar]
        yield {"camera": (img, {})}


def parse_synthetic(spec: str) -> tuple[int, tuple[int, int] | None]:
    """'synthetic', 'synthetic:N' or 'synthetic:N:HxW' -> (frames, (h, w) or None for the default)."""
    parts = spec.split(":")
    if parts[0] != "synthetic" or len(parts) > 3:  # 'synthetic,junk' and 'synthetic:10:64x64:junk' were accepted
        raise DataError(f"bad synthetic source '{spec}' (use synthetic[:FRAMES[:HxW]][,key=value...])")
    # ASCII digits only, and a FRAMES that is there when its ':' is: int() took '1_0', '٣' and '' (as 60) (a review)
    if (len(parts) > 1 and not re.fullmatch(r"[0-9]+", parts[1])) or \
            (len(parts) > 2 and not re.fullmatch(r"[0-9]+[xX][0-9]+", parts[2])):
        raise DataError(f"bad synthetic source '{spec}' (use synthetic[:FRAMES[:HxW]], FRAMES and the size in digits)")
    n = int(parts[1]) if len(parts) > 1 else 60
    hw = tuple(int(v) for v in parts[2].lower().split("x")) if len(parts) > 2 else None
    if n < 1 or (hw is not None and (len(hw) != 2 or min(hw) < 32 or max(hw) > MAX_SIDE)):
        raise DataError(f"bad synthetic source '{spec}' (frames >= 1, size from 32x32 to {MAX_SIDE}x{MAX_SIDE})")
    return n, (hw[0], hw[1]) if hw is not None else None


class SyntheticSource(Source):
    """Frames from a generator; every frame set of one tick shares ``t_capture_ns`` and ``seq``. Its sensors are the
    ones the first tick delivers (a later tick may leave an optional one out, not add one)."""

    ticked = True

    def __init__(self, spec: str, n: int, hw: tuple[int, int] | None, *, generator: Generator = pattern_frames,
                 realtime: bool = False, fps: float = 30.0, seed: int = 7) -> None:
        self.spec, self.n, self.hw = spec, n, hw
        self.generator = generator
        self.brings_rigs = generator is not pattern_frames  # a family's own synthetic frames carry what it reads
        self.realtime = self.live = realtime
        self.fps, self.period_s = fps, 1.0 / fps
        self.seed = seed
        self.frames_total = n
        # the sensors are whatever the generator delivers: look at its first frame set now
        try:
            self._ticks = generator(n, hw, seed)
            self._first: dict[str, Any] | None = next(self._ticks)
        except StopIteration:
            raise DataError(f"{spec}: the synthetic generator delivered no frames") from None
        except TypeError as e:  # an option the family's generator does not take
            raise DataError(f"bad source '{spec}': {e}") from None
        self.sensors = tuple(self._first)
        if hw is not None and not any(is_image(d) for d, _ in self._first.values()):
            # the size was taken and ignored, without a word, for a family whose frames are waveforms (a review)
            raise DataError(f"bad synthetic source '{spec}': HxW sizes camera frames, and these synthetic frames have "
                            f"none (sensors: {', '.join(self.sensors)}); leave the size out")
        self._ready: list[dict[str, Any]] = []
        self._rest: Iterator[dict[str, Any]] | None = None
        self.render_ms = 0.0

    def first_tick(self) -> dict[str, Any]:
        """The first frame set ({sensor: (data, meta)}), rendered to learn the sensors; {} once delivered."""
        return self._first if self._first is not None else {}

    def open(self) -> None:
        """Render the frame sets ahead (up to PRERENDER_BYTES), before the loop's clock starts."""
        if self._rest is not None:
            return
        stream, size, t0 = self._stream(), 0, time.perf_counter()
        for tick in stream:
            self._ready.append(tick)
            size += sum(int(getattr(d, "nbytes", 0)) for d, _ in tick.values())
            if size >= PRERENDER_BYTES or time.perf_counter() - t0 >= PRERENDER_S or self.stop_asked():
                break
        self.render_ms = (time.perf_counter() - t0) * 1e3 / max(1, len(self._ready))
        self.prerendered = len(self._ready)
        self._rest = stream

    prerendered = 0
    rendered_live = 0  # frame sets rendered as they were read, past what fitted ahead, and the time that took
    rendered_live_s = 0.0  # (``live`` is the Source's flag: paced like a sensor)

    def counters(self) -> dict[str, Any]:
        out: dict[str, Any] = {"prerendered": self.prerendered, "render_ms_per_frame": round(self.render_ms)}
        if self.rendered_live:
            out["rendered_live"] = self.rendered_live
            out["live_fps"] = (round(self.rendered_live / self.rendered_live_s, 1) if self.rendered_live_s > 0
                               else None)
        return out

    def _ticks_ahead(self) -> Iterator[dict[str, Any]]:
        if self._rest is None:  # iterated without open(): render as it goes
            yield from self._stream()
            return
        ready, self._ready = deque(self._ready), []
        while ready:  # each set is let go once delivered
            yield ready.popleft()
        while True:  # past what fitted ahead: rendered in the loop, timed (the summary's live rate)
            t0 = time.perf_counter()
            tick = next(self._rest, None)
            if tick is None:
                return
            self.rendered_live_s += time.perf_counter() - t0
            self.rendered_live += 1
            yield tick

    def _stream(self) -> Iterator[dict[str, Any]]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
            yield from self._ticks
        else:
            yield from self.generator(self.n, self.hw, self.seed)

    def __iter__(self) -> Iterator[Frame]:
        pacer = Pacer(max_gap_s=None)  # its clock starts when the first frame exists, as a camera's would
        for i, tick in enumerate(self._ticks_ahead()):
            if self.realtime:
                pacer.wait(frame_ns(i, self.period_s))
            t = now_ns()
            for sensor, (data, meta) in tick.items():
                yield Frame(data, t, i, sensor, {**meta, "fps": self.fps})
