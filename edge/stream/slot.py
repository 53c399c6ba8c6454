"""The bounded hand-off between a producer thread and a consumer, with an explicit policy.

``latest``: the producer never waits; when the slot is full the oldest item is dropped and counted, so
the consumer always gets the freshest frame and latency stays bounded under overload (real time).
``block``: the producer waits for room, so nothing is ever lost (offline processing, benchmarks).
A slot is closed by its producer at end of stream; ``get`` then drains what is left and returns
``CLOSED``.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from edge.errors import DataError
from edge.stream.stats import Depth

POLICIES = ("latest", "block")
CLOSED = object()
EMPTY = object()


class Slot:
    """A bounded queue with a drop policy (see the module docstring)."""

    def __init__(self, name: str, policy: str, capacity: int = 1, depth: Depth | None = None) -> None:
        if policy not in POLICIES:
            raise DataError(f"unknown policy '{policy}' (use one of: {', '.join(POLICIES)})")
        if capacity < 1:
            raise DataError(f"slot '{name}': capacity must be >= 1")
        self.name, self.policy, self.capacity = name, policy, capacity
        self._q: deque[Any] = deque()
        self._cv = threading.Condition()
        self.closed = False
        self.sealed = False  # takes nothing more (the loop counted what it holds: see seal)
        self.dropped = 0
        self.put_count = 0
        self.depth = depth

    def put(self, item: Any, stop: threading.Event | None = None) -> bool:
        """Add ``item``; returns False (item not added) when ``stop`` is set while waiting in block mode, or once the
        slot is sealed."""
        with self._cv:
            if self.sealed:
                return False
            if self.policy == "latest":
                while len(self._q) >= self.capacity:
                    self._q.popleft()
                    self.dropped += 1
            else:
                while len(self._q) >= self.capacity:
                    if stop is not None and stop.is_set():
                        return False
                    self._cv.wait(0.05)
                    if self.sealed:
                        return False
            self._q.append(item)
            self.put_count += 1
            if self.depth is not None:
                self.depth.add(len(self._q))
            self._cv.notify_all()
            return True

    def wait_space(self, stop: threading.Event | None = None) -> bool:
        """Block until the slot has room (False if ``stop`` is set first): lets a consumer-side stage
        pull its input as late as possible, so what it hands on is the freshest frame."""
        with self._cv:
            while len(self._q) >= self.capacity:
                if stop is not None and stop.is_set():
                    return False
                self._cv.wait(0.05)
            return True

    def get(self, timeout: float | None = None) -> Any:
        """Next item; ``CLOSED`` once closed and drained; ``EMPTY`` if ``timeout`` passed with nothing."""
        with self._cv:
            if not self._cv.wait_for(lambda: self._q or self.closed, timeout):
                return EMPTY
            if self._q:
                item = self._q.popleft()
                self._cv.notify_all()
                return item
            return CLOSED

    def get_nowait(self) -> Any:
        with self._cv:
            if self._q:
                item = self._q.popleft()
                self._cv.notify_all()
                return item
            return CLOSED if self.closed else EMPTY

    def seal(self) -> None:
        """Take nothing more: every later ``put`` returns False, so a producer still running when the loop counts
        what this slot holds (a source stuck in a read past the stop) cannot add a frame after the count."""
        with self._cv:
            self.sealed = True
            self._cv.notify_all()

    def close(self) -> None:
        with self._cv:
            self.closed = True
            self._cv.notify_all()

    def __len__(self) -> int:
        return len(self._q)
