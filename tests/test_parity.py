"""The two error measures of edge/parity.py on hand-made outputs (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.parity import compare, finite_rel


def test_compare_calls_a_non_finite_output_infinitely_wrong() -> None:
    ref = {"y": np.array([1.0, 2.0, np.nan], np.float32)}
    got = {"y": np.array([1.0, 2.5, np.nan], np.float32)}
    assert compare(ref, got)["y"]["rel"] == float("inf")
    assert compare({"y": ref["y"][:2]}, {"y": got["y"][:2]})["y"] == {"max_abs": 0.5, "rel": 0.25}


def test_finite_rel_measures_the_elements_finite_on_both_sides() -> None:
    ref = {"y": np.array([4.0, -2.0, np.nan, 1.0]), "ids": np.array([1, 2])}
    # NaN on both sides where the reference has one: not an error; 0.5 off on a scale of 4
    assert finite_rel(ref, {"y": np.array([4.5, -2.0, np.nan, 1.0]), "ids": np.array([9, 9])}) == (0.125, False)
    # the engine's NaN where the reference is finite is reported, and the rest still measured
    assert finite_rel(ref, {"y": np.array([4.0, np.nan, 0.0, 2.0]), "ids": np.array([1, 2])}) == (0.25, True)
    # an infinity counts as not finite too; integer outputs are not compared
    assert finite_rel(ref, {"y": np.array([np.inf, -2.0, 0.0, 1.0]), "ids": np.array([0, 0])})[1] is True


def test_fp16_parity_helpers_on_hand_made_outputs() -> None:
    from edge.parity import changed_share, fp16_rel

    ref = {"w": np.array([1.0, -2.0], np.float32), "kept": np.array([5, 6, 7, 8])}
    got = {"w": np.array([1.1, -2.0], np.float32), "kept": np.array([5, 6, 9, 8])}
    assert fp16_rel(ref, got) == pytest.approx(0.05, rel=1e-5)  # 0.1 of the largest magnitude 2
    assert changed_share(ref, got) == 0.25
    assert fp16_rel(ref, {**got, "w": np.array([np.inf, -2.0], np.float32)}) == float("inf")
    assert changed_share(ref, {**got, "kept": np.array([5, 6])}) == 1.0  # a shape change is all changed
    assert changed_share({"w": ref["w"]}, {"w": got["w"]}) == 0.0
    assert fp16_rel({"w": ref["w"]}, {"w": np.zeros(3, np.float32)}) == float("inf")  # another length: broken

