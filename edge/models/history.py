"""The last T per-frame arrays of a stream, for runners whose model reads a short history.

A video model's runner encodes each new frame once and keeps the encoder outputs of the last T frames;
until T frames have arrived the first one stands in for the missing ones (a stream that just started
looks like a car that stood still), so the first output comes with the first frame.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class History:
    """A ring of the last ``length`` arrays; :meth:`push` returns them stacked, oldest first."""

    def __init__(self, length: int) -> None:
        self.length = int(length)
        self._buf: deque[np.ndarray] = deque(maxlen=self.length)

    def clear(self) -> None:
        self._buf.clear()

    def push(self, item: np.ndarray) -> np.ndarray:
        if not self._buf:
            self._buf.extend([item] * (self.length - 1))
        self._buf.append(item)
        return np.stack(self._buf)
