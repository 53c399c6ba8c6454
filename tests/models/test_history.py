"""History: the ring buffer a video runner reads its last T frames from equals stacking them afresh."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.models.history import History


def _reference(length: int, items: list[np.ndarray]) -> list[np.ndarray]:
    """What the runners were specified to see: the first item stands in for missing ones, oldest first."""
    buf: deque[np.ndarray] = deque(maxlen=length)
    out = []
    for it in items:
        if not buf:
            buf.extend([it] * (length - 1))
        buf.append(it)
        out.append(np.stack(buf))
    return out


@settings(max_examples=60, deadline=None)
@given(length=st.integers(1, 6), n=st.integers(1, 20), clears=st.sets(st.integers(0, 19), max_size=3),
       seed=st.integers(0, 2**16))
def test_equals_stacking_the_last_items(length: int, n: int, clears: set[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    items = [rng.normal(size=(2, 3)).astype(np.float32) for _ in range(n)]
    h = History(length)
    segments, cur = [], []
    for i, it in enumerate(items):  # a clear() starts a new stream: the reference restarts too
        if i in clears and cur:
            segments.append(cur)
            cur = []
        cur.append(it)
    segments.append(cur)
    for seg in segments:
        h.clear()
        for got, want in zip([h.push(it).copy() for it in seg], _reference(length, seg), strict=True):
            assert got.shape == (length, 2, 3) and got.dtype == np.float32
            assert np.array_equal(got, want)


def test_the_stack_is_contiguous_and_a_view_until_the_next_push() -> None:
    h = History(3)
    a = h.push(np.zeros(4))
    assert a.flags["C_CONTIGUOUS"]
    h.push(np.ones(4))
    b = h.push(np.full(4, 2.0))
    assert b.flags["C_CONTIGUOUS"] and b[:, 0].tolist() == [0.0, 1.0, 2.0]


def test_an_item_of_another_shape_or_dtype_is_one_line() -> None:
    h = History(2)
    h.push(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match=r"history of float32\[2, 2\] arrays got a float32\[3\] one"):
        h.push(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"got a float64\[2, 2\]"):
        h.push(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="length must be >= 1"):
        History(0)
