"""History: the ring buffer a video runner reads its last T frames from equals stacking them afresh."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.errors import SpecError
from edge.models.history import History, one_sample


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
    with pytest.raises(SpecError, match=r"a step of float32\[3\] after steps of float32\[2, 2\].*reset\(\)"):
        h.push(np.zeros(3, np.float32))
    with pytest.raises(SpecError, match=r"a step of float64\[2, 2\]"):
        h.push(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="length must be >= 1"):
        History(0)


@settings(max_examples=60, deadline=None)
@given(length=st.integers(1, 5), fails=st.lists(st.booleans(), min_size=1, max_size=16), seed=st.integers(0, 2**16))
def test_a_step_that_fails_leaves_the_history_as_it_was(length: int, fails: list[bool], seed: int) -> None:
    """``through``: a graph that refuses a step's array leaves no trace of it (the next step sees the history of the
    steps that ran), the first step included (its refusal must not fix the ring's dtype)."""
    rng = np.random.default_rng(seed)
    h, kept, seen = History(length), [], []

    def graph(fail: bool) -> object:
        def run(view: np.ndarray) -> np.ndarray:
            if fail:
                raise SpecError("refused")
            return view.copy()
        return run

    for fail in fails:
        item = rng.normal(size=3).astype(np.float64 if fail else np.float32)  # a refused step may differ in dtype
        if fail:
            with pytest.raises(SpecError):
                h.through(item, graph(True))
        else:
            kept.append(item)
            seen.append(h.through(item, graph(False)))
    for got, want in zip(seen, _reference(length, kept), strict=True):
        assert np.array_equal(got, want)


def test_one_sample_takes_a_batch_of_one() -> None:
    assert one_sample({"frame": np.zeros((1, 3))}, "frame").shape == (3,)
    for bad in (np.zeros((2, 3)), np.zeros((0, 3)), np.float32(1.0)):
        with pytest.raises(SpecError, match="dim 0 \\(the batch\\) must be 1"):
            one_sample({"frame": bad}, "frame")
