"""Colouring projected points: no point in the picture is a picture, not a crash (OpenCV's colormap
returns None for an empty array; a random tiny PULSAR-Net once put every point beyond its 60 m view)."""

from __future__ import annotations

import numpy as np

from edge.stream.overlay import draw_points, jet


def test_jet_colours_levels_and_an_empty_array() -> None:
    cols = jet(np.array([0, 128, 255], np.uint8))
    assert cols.shape == (3, 3) and cols.dtype == np.uint8
    assert cols[0, 0] > cols[0, 2] and cols[2, 2] > cols[2, 0]  # BGR: level 0 is blue, 255 red
    assert jet(np.zeros(0, np.uint8)).shape == (0, 3)


def test_points_all_outside_the_frame_draw_nothing() -> None:
    img = np.zeros((20, 30, 3), np.uint8)
    uv = np.array([[-5.0, 3.0], [40.0, 10.0], [3.0, 25.0]])
    assert draw_points(img, uv, np.array([5.0, 10.0, 20.0])) is img and not img.any()
    draw_points(img, np.array([[2.0, 3.0]]), np.array([1.0]))
    assert img[3, 2].any() and img.sum(axis=2).astype(bool).sum() == 1
