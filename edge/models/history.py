"""The last T per-frame arrays of a stream, for runners whose model reads a short history.

A video model's runner encodes each new frame once and keeps the encoder outputs of the last T frames;
until T frames have arrived the first one stands in for the missing ones (a stream that just started
looks like a car that stood still), so the first output comes with the first frame.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import numpy as np

from edge.errors import SpecError

T = TypeVar("T")


class History:
    """A ring of the last ``length`` arrays; :meth:`push` returns them stacked, oldest first.

    The stack is a view into a preallocated buffer of ``2 * length`` slots: each new array is written twice
    (at ``i`` and ``i + length``), so the last ``length`` are always contiguous, in order, at
    ``[i + 1, i + 1 + length)``. Stacking them afresh per push (``np.stack``) allocated a new array each
    time (a 3-frame 256x512 clip: 4.7 MB of freshly mapped pages per step, ~0.3 ms of a 6 ms OpenVINO INT8
    step on 2 cores); here a push costs two copies of one array. The returned view is valid until the
    next push (the graph call it feeds is synchronous; copy it to keep it).
    """

    def __init__(self, length: int) -> None:
        self.length = int(length)
        if self.length < 1:
            raise ValueError(f"history length must be >= 1, got {length}")
        self._ring: np.ndarray | None = None
        self._next = 0

    def clear(self) -> None:
        self._ring = None

    def push(self, item: np.ndarray) -> np.ndarray:
        item = np.asarray(item)
        t = self.length
        if self._ring is None:
            # a stream that just started: the first array stands in for the missing ones
            self._ring = np.empty((2 * t, *item.shape), item.dtype)
            self._ring[:] = item
            self._next = 0
        elif self._ring.shape[1:] != item.shape or self._ring.dtype != item.dtype:
            raise SpecError(f"a step of {item.dtype}{list(item.shape)} after steps of {self._ring.dtype}"
                            f"{list(self._ring.shape[1:])}: the program keeps a history of those; reset() it first")
        i = self._next
        self._ring[i] = item
        self._ring[i + t] = item
        self._next = (i + 1) % t
        return self._ring[i + 1:i + 1 + t]

    def through(self, item: np.ndarray, fn: Callable[[np.ndarray], T]) -> T:
        """``fn(push(item))``, the push undone when ``fn`` raises. Why: a runner pushes a step's array and then runs
        a graph that may refuse it (a float64 frame, another size); the history kept the refused array, and the
        next, valid, step was refused too ("history of float64 arrays got a float32 one") until ``reset()``. Undone,
        the slots the push wrote lie outside the window the next push returns, so resetting ``_next`` suffices."""
        created, i = self._ring is None, self._next
        view = self.push(item)
        try:
            return fn(view)
        except BaseException:
            if created:
                self._ring = None
            self._next = i
            raise


def one_sample(feeds: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """``feeds[name]``'s one sample, for a runner that keeps a history and so steps one frame set at a time: a batch of
    another size is refused (a clip program given two frames returned the first one's result, without an error)."""
    a = np.asarray(feeds[name])
    if a.ndim < 1 or a.shape[0] != 1:
        raise SpecError(f"step feed '{name}' {a.dtype}{list(a.shape)}: this program keeps a history and steps one "
                        "frame set at a time, so dim 0 (the batch) must be 1")
    return a[0]
