"""The ray caster against a brute-force reference: every ray tested against every box's slabs and every
cylinder, no culling. The caster skips rays outside a box's bounding sphere and takes the slabs one axis
at a time; both must change nothing, bit for bit (training data and evaluation sets are seeded on it)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.data.scene import BOX0, GROUND, NONE, Scene, random_scene


def _reference(sc: Scene, directions: np.ndarray, origin: np.ndarray) -> tuple[np.ndarray, ...]:
    d, o = directions.astype(np.float64), origin.astype(np.float64)
    n = len(d)
    best, ids, normal = np.full(n, np.inf), np.full(n, NONE), np.zeros((n, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        tg = np.where(d[:, 2] * np.sign(sc.ground_z - o[2]) > 1e-6, (sc.ground_z - o[2]) / d[:, 2], np.inf)
        best[tg < np.inf], ids[tg < np.inf], normal[tg < np.inf] = tg[tg < np.inf], GROUND, (0.0, 0.0, 1.0)
        for i, (cx, cy, cz, ln, wd, ht, yaw, _it) in enumerate(sc.boxes):
            c, s = np.cos(-yaw), np.sin(-yaw)
            ob = np.array([c * (o[0] - cx) - s * (o[1] - cy), s * (o[0] - cx) + c * (o[1] - cy), o[2] - cz])
            dd = np.stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1], d[:, 2]], 1)
            t1, t2 = (np.array([-ln / 2, -wd / 2, 0.0]) - ob) / dd, (np.array([ln / 2, wd / 2, ht]) - ob) / dd
            near = np.minimum(t1, t2)
            tn, tf = np.nanmax(near, 1), np.nanmin(np.maximum(t1, t2), 1)
            t = np.where((tn <= tf) & (tf > 0), np.maximum(tn, 0), np.inf)
            hit = t < best
            best[hit], ids[hit] = t[hit], BOX0 + i
            axis = np.nanargmax(near[hit], 1)
            nb = np.zeros((int(hit.sum()), 3))
            nb[np.arange(len(axis)), axis] = -np.sign(dd[hit, axis])
            normal[hit] = np.stack([np.cos(yaw) * nb[:, 0] - np.sin(yaw) * nb[:, 1],
                                    np.sin(yaw) * nb[:, 0] + np.cos(yaw) * nb[:, 1], nb[:, 2]], 1)
    return best, ids, normal


def _check(sc: Scene, d: np.ndarray, o: np.ndarray) -> None:
    got = sc.cast(d, o)
    t, ids, normal = _reference(Scene(sc.boxes, np.zeros((0, 5)), sc.ground_z, sc.ground_intensity), d, o)
    boxes_only = Scene(sc.boxes, np.zeros((0, 5)), sc.ground_z, sc.ground_intensity).cast(d, o)
    t[~np.isfinite(t)] = np.nan
    assert np.array_equal(boxes_only.t, t, equal_nan=True) and np.array_equal(np.signbit(boxes_only.t), np.signbit(t))
    assert np.array_equal(boxes_only.ids, ids) and np.array_equal(boxes_only.normal, normal)
    assert got.t.shape == d.shape[:-1] and got.normal.shape == d.shape


@pytest.mark.parametrize("seed", range(6))
def test_cast_equals_the_reference_on_street_scenes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sc = random_scene(rng)
    d = rng.standard_normal((20000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    d[:40, 2] = 0.0  # rays parallel to a slab pair
    d[40:80, :2] = 0.0
    origins = [np.zeros(3), rng.uniform(-1, 1, 3), sc.boxes[0, :3] + (0.0, 0.0, 0.5)]  # the last inside a box
    for o in origins:
        _check(sc, d, o)
        _check(sc, d * rng.uniform(0.2, 4.0, (len(d), 1)), o)  # directions need not be unit


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(-3.0, 3.0), st.floats(0.1, 30.0))
def test_cast_equals_the_reference_near_one_box(seed: int, yaw: float, dist: float) -> None:
    """One box seen from close to far, rays aimed at it (many grazing an edge: where a culling test that
    is not conservative would drop a hit)."""
    rng = np.random.default_rng(seed)
    box = np.array([[dist, 0.5, -1.7, 4.2, 1.8, 1.5, yaw, 0.5]])
    sc = Scene(box, np.zeros((0, 5)), -1.7, 0.1)
    c, s = np.cos(yaw), np.sin(yaw)
    corners = np.array([[dist + c * sx * 2.1 - s * sy * 0.9, 0.5 + s * sx * 2.1 + c * sy * 0.9, -1.7 + sz]
                        for sx in (-1, 1) for sy in (-1, 1) for sz in (0.0, 1.5)])
    aim = corners[rng.integers(0, 8, 3000)] + rng.normal(0, 0.05, (3000, 3))
    _check(sc, aim / np.linalg.norm(aim, axis=1, keepdims=True), np.zeros(3))
