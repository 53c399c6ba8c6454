"""Interleaved timing: several callables compared in one process, so machine drift hits them alike."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def interleaved_ms(calls: Sequence[Callable[[], object]], rounds: int) -> list[list[float]]:
    """Per callable, the ms of one call in each of ``rounds`` rounds; the order alternates per round.

    Each timed call follows an untimed one of the same callable: the previous one's runtime leaves its
    worker threads spinning for a while (torch's OpenMP pool) and this one's own pool has gone to sleep
    meanwhile; timed cold, an OpenVINO step right after torch's took 8.8 ms against 5.0 back to back on
    2 cores, a bias of the interleaving, not of the runtime (``edge run`` calls one runtime back to back).
    """
    times: list[list[float]] = [[] for _ in calls]
    order = list(range(len(calls)))
    for r in range(rounds):
        for i in order if r % 2 == 0 else order[::-1]:
            calls[i]()
            t0 = time.perf_counter()
            calls[i]()
            times[i].append((time.perf_counter() - t0) * 1e3)
    return times


def speedup_interval(ref_ms: Sequence[float], ms: Sequence[float], *, level: float = 0.95, resamples: int = 2000,
                     seed: int = 0) -> tuple[float, float]:
    """A ``level`` bootstrap interval of ``median(ref_ms) / median(ms)``, the speed-up a report states, from rounds of
    :func:`interleaved_ms` resampled in pairs (round i of both, together): a round the machine ran slow slows every
    configuration in it, so the pairs keep what the interleaving cancels. Why: the ratio of medians alone does not
    say whether 3.97x is distinguishable from a 4x goal in that run. Seeded: the same samples give the same
    interval. The scatter between runs minutes apart (a VM's speed moving) is not in it: compare runs for that."""
    a, b = np.asarray(ref_ms, np.float64), np.asarray(ms, np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired rounds of equal, non-zero length needed, got {a.shape} and {b.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level {level}: a fraction in (0, 1)")
    from edge.intervals import resample_rows

    idx = resample_rows(len(a), resamples, seed)
    ratio = np.median(a[idx], axis=1) / np.median(b[idx], axis=1)
    lo, hi = np.quantile(ratio, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def median_ms_each(opens: Sequence[Callable[[], Any]], call: Callable[[Any], object],
                   rounds: int) -> list[float | Exception]:
    """Median ms of ``call(runtime)`` for each runtime ``opens[i]()`` makes, in interleaved rounds
    (:func:`interleaved_ms`); one that cannot be opened or called once gives its exception instead, so one
    refused candidate among several is reported, not raised. Every runtime opened is closed."""
    out: list[float | Exception] = []
    live: dict[int, Any] = {}
    try:
        for i, make in enumerate(opens):
            rt = None
            try:
                rt = make()
                call(rt)
                live[i] = rt
                out.append(0.0)
            except Exception as e:
                if rt is not None:
                    rt.close()
                out.append(e)
        per = interleaved_ms([lambda rt=rt: call(rt) for rt in live.values()], rounds)
        for i, t in zip(live, per, strict=True):
            out[i] = float(np.median(t))
    finally:
        for rt in live.values():
            rt.close()
    return out
