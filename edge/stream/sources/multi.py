"""Several sources read in lockstep as one: ``multi:NAME=SPEC,NAME=SPEC,...`` (a family with several
cameras fed from videos, folders or devices, e.g. ``multi:front=a.mp4,left=b.mp4,right=c.mp4``).

Each step reads one frame from every part and publishes them with one capture time and one frame number,
so the stream's sync matches them exactly (recorded files have no common clock the loop could match
on). The run ends when the shortest part ends. NAME is one of the model family's sensors, or the end
or start of exactly one of them (``left`` -> ``front_left``); SPEC is any single-source spec, with its own
``,key=value`` options (``multi:front=run1/,fps=10,left=run2/,fps=10``). Other ``,key=value`` text inside
a part (a GStreamer caps string such as ``video/x-raw,width=640``) would read as a new part: such a source
cannot be a part (give that camera its own device or a pipeline without commas).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from edge.data.frame import Frame, now_ns
from edge.errors import DataError
from edge.stream.sources.base import Source, point_sensors

#: option keys of single-source specs: a ``,key=value`` with one of these belongs to the part before it
PART_OPTIONS = frozenset({"fps", "loop", "index", "meta", "frames"})

log = logging.getLogger("edge.stream")


def split_parts(body: str, spec: str) -> list[tuple[str, str]]:
    """``NAME=SPEC,NAME=SPEC`` -> [(name, spec)]; ``,fps=10`` and the like stay with their part."""
    parts: list[tuple[str, str]] = []
    for chunk in re.split(r",(?=\s*[A-Za-z_]\w*\s*=)", body):
        key, eq, value = chunk.partition("=")
        key = key.strip()
        if parts and key in PART_OPTIONS:
            name, sub = parts[-1]
            parts[-1] = (name, f"{sub},{key}={value.strip()}")
            continue
        if not eq or not re.fullmatch(r"[A-Za-z_]\w*", key) or not value.strip():
            raise DataError(f"bad source '{spec}' (use multi:NAME=SPEC,NAME=SPEC,..., e.g. "
                            "multi:front=a.mp4,left=b.mp4,right=c.mp4)")
        parts.append((key, value.strip()))
    if len(parts) < 2:
        raise DataError(f"bad source '{spec}': a multi source needs two or more NAME=SPEC parts")
    return parts


def resolve_name(name: str, wanted: tuple[str, ...], spec: str) -> str:
    """A part's NAME -> the family's sensor it feeds (exact, or the end/start of exactly one sensor name)."""
    if not wanted or name in wanted:
        return name
    hits = [w for w in wanted if w.endswith(f"_{name}") or w.startswith(f"{name}_")]
    if len(hits) == 1:
        return hits[0]
    why = f"matches {', '.join(hits)}" if hits else "is not one of its sensors"
    raise DataError(f"bad source '{spec}': '{name}' {why} (the model reads {', '.join(wanted)}; a ',{name}=...' "
                    "inside a part's own spec, as in GStreamer caps, splits it)")


class MultiSource(Source):
    """Parts read in lockstep; every step's frames share ``t_capture_ns`` and ``seq``; primary last."""

    def __init__(self, spec: str, parts: list[tuple[str, Source]], primary: str | None = None) -> None:
        names = [n for n, _ in parts]
        if len(set(names)) != len(names):
            raise DataError(f"bad source '{spec}': two parts feed the same sensor ({', '.join(names)})")
        # the primary's frame goes out last: when the loop takes it, its partners are already there
        self.parts = sorted(parts, key=lambda p: p[0] == primary)
        self.spec = spec
        self.sensors = tuple(names)
        self.primary = primary if primary in names else names[0]
        self.live = any(s.live for _, s in parts)
        self.reconnect = any(s.reconnect for _, s in parts)
        self.fps, self.period_s = 30.0, None
        self.ended: str | None = None  # the part whose end ended the run
        self.steps = 0  # frame sets delivered

    def open(self) -> None:
        opened: list[Source] = []
        try:
            for _, src in self.parts:
                src.open()
                opened.append(src)
        except BaseException:
            for src in opened:
                src.close()
            raise
        lead = dict(self.parts)[self.primary]
        self.fps = float(getattr(lead, "fps", 30.0) or 30.0)
        self.period_s = lead.period_s
        self._warn_rates()

    def _warn_rates(self) -> None:
        """Say so when the parts' own frame rates differ: one frame of each is read a step, so a 60 fps video
        beside 10 fps folders plays at the lead's rate, six of its frames per second of the others' (a part's
        frames are not resampled; an image folder's rate is its ``fps=`` option)."""
        rates = {name: 1.0 / src.period_s for name, src in self.parts if src.period_s}
        if len(rates) > 1 and max(rates.values()) > 1.01 * min(rates.values()):
            listed = ", ".join(f"{name} {fps:g} fps" for name, fps in rates.items())
            if any(getattr(src, "realtime", False) for _, src in self.parts):
                # --realtime: each part waits for its own frame times, so a set is whole only at the slowest's pace
                # (the warning said the lead's rate, and the lead then played four times slower than recorded)
                slowest = min(rates, key=rates.__getitem__)
                log.warning("%s: its parts' frame rates differ (%s); they are read in lockstep, one frame of each a "
                            "step, and each part keeps its own pace, so the sets come at %s's %g fps and the faster "
                            "parts play slower than recorded (give image folders the videos' rate with ,fps=N)",
                            self.spec, listed, slowest, rates[slowest])
                return
            log.warning("%s: its parts' frame rates differ (%s); they are read in lockstep, one frame of each a "
                        "step, at %s's %g fps, so the others play faster or slower than recorded (give image "
                        "folders the videos' rate with ,fps=N)", self.spec, listed, self.primary, self.fps)

    @property
    def recorded(self) -> bool:
        """Every part replays a recording (known before ``open``, when the lead's period is not yet)."""
        return not self.live and all(src.recorded for _, src in self.parts)

    def reads(self) -> tuple[Path, ...]:
        return tuple(p for _, src in self.parts for p in src.reads())

    @property
    def frames_total(self) -> int | None:
        """The shortest part's length, when every part knows its own (files do once open)."""
        totals = [getattr(s, "frames_total", None) for _, s in self.parts]
        if not all(t is not None for t in totals):
            return None
        return min([*totals, self.max_frames]) if self.max_frames else min(totals)

    def request_reconnect(self) -> None:
        super().request_reconnect()
        for _, src in self.parts:  # a part blocked in a read polls its own flag
            src.request_reconnect()

    #: frame sets left out because a part lacked its frame (an unreadable image skipped by its folder)
    incomplete_sets = 0
    #: stop after this many frame sets (0: when a part ends); the parts themselves are not capped
    max_frames = 0

    def __iter__(self) -> Iterator[Frame]:
        iters = [(name, iter(src)) for name, src in self.parts]
        by_name = dict(iters)
        seq, expected = 0, 0
        while not (self.max_frames and seq >= self.max_frames):
            got = []
            for name, it in iters:
                f = next(it, None)
                if f is None:
                    self.ended, self.steps = name, seq
                    return
                got.append((name, f))
            got = self._aligned(got, by_name, seq)
            if got is None:
                return
            at = got[0][1].meta.get("position")
            if at is not None:  # the positions no set was delivered at: some part lacked its frame there
                self.incomplete_sets += at - expected
                expected = at + 1
            t = now_ns()
            for name, f in got:
                yield replace(f, sensor=name, t_capture_ns=t, seq=seq, meta={**f.meta, "part_seq": f.seq})
            seq += 1

    def _aligned(self, got: list[tuple[str, Frame]], iters: dict[str, Iterator[Frame]], seq: int
                 ) -> list[tuple[str, Frame]] | None:
        """One frame of each part at the same position in its recording, where every part says its frame's
        (``meta["position"]``: an image folder's file index, a video's frame number): a part that skipped an
        unreadable image is ahead of the others, which read on to its position (it fed frame i + 1 beside the
        others' frame i for the rest of the run before). Parts without positions (live cameras) stay in the
        lockstep of their reads. None when a part ended on the way."""
        while True:
            pos = [f.meta.get("position") for _, f in got]
            if any(p is None for p in pos) or len(set(pos)) == 1:
                return got
            top = max(pos)
            for k, (name, f) in enumerate(got):
                while f.meta["position"] < top:
                    nxt = next(iters[name], None)
                    if nxt is None:
                        self.ended, self.steps = name, seq
                        return None
                    f = nxt
                got[k] = (name, f)

    def close(self) -> None:
        for _, src in self.parts:
            src.close()

    def note(self, max_frames: int = 0) -> str | None:
        """Which part ended the run, when another part had frames left (read in lockstep, the shortest part ends it:
        a 300-frame video beside a 40-image folder stops at 40 without a word otherwise). None when the run's
        ``max_frames`` ended it (every part stops there; a video's own length is not capped by it)."""
        if self.ended is None or (max_frames and self.steps >= max_frames):
            return None
        read = self.steps + self.incomplete_sets  # the positions a set was delivered or left out at
        longer = {n: t for n, s in self.parts if n != self.ended
                  and (t := getattr(s, "frames_total", None)) is not None and t > read}
        if not longer:
            return None
        return (f"{self.spec}: part '{self.ended}' ended the run after {self.steps} frame set(s); "
                + ", ".join(f"'{n}' has {t}" for n, t in longer.items()) + " (parts are read in lockstep)")

    def counters(self) -> dict[str, int]:
        return {**{f"{name}.{k}": v for name, src in self.parts for k, v in src.counters().items()},
                **({"incomplete_sets": self.incomplete_sets} if self.incomplete_sets else {})}


def multi_source(spec: str, build: Callable[[str], Source], card: Any = None) -> MultiSource:
    """Build (not open) ``multi:...``: each part's spec through ``build`` (``open_source``)."""
    wanted = (*card.sensors.required, *card.sensors.optional) if card is not None else ()
    points = point_sensors(card.sensors) if card is not None else set()
    parts = []
    for name, sub in split_parts(spec[len("multi:"):], spec):
        if sub.startswith("multi:"):
            raise DataError(f"bad source '{spec}': a multi source cannot hold another")
        src = build(sub)
        if len(src.sensors) != 1:
            raise DataError(f"bad source '{spec}': part '{name}={sub}' gives {len(src.sensors)} sensors "
                            f"({', '.join(src.sensors)}); each part must be one camera")
        sensor = resolve_name(name, wanted, spec)
        if sensor in points:  # a folder of images in a LiDAR's slot ran without a word
            raise DataError(f"bad source '{spec}': '{sensor}' takes point clouds (give the LiDAR with --lidar); "
                            "each multi: part is a camera")
        parts.append((sensor, src))
    return MultiSource(spec, parts, card.sensors.primary if card is not None else None)
