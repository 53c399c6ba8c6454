"""Rig.horizon: the image of the ground plane's line at infinity, as a signed pixel distance positive on the sky
side, checked by projecting points far away on the ground (on the line) and in the sky (positive)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.data.rig import Rig

#: a z-up frame (x forward, y left) into a camera frame (x right, y down, z forward), camera level
LEVEL = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


def _rot(axis: int, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def _rig(K: np.ndarray, R: np.ndarray, image_size: tuple[int, int] | None = None) -> Rig:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = [0.1, -0.2, 0.3]  # a translation moves nothing at infinity
    return Rig(np.hstack([K, np.zeros((3, 1))]), T, image_size)


def test_a_level_camera_sees_the_horizon_at_its_principal_row() -> None:
    a, b, c = _rig(np.array([[700.0, 0, 600], [0, 710.0, 180], [0, 0, 1]]), LEVEL).horizon()
    assert a == pytest.approx(0.0, abs=1e-12) and b == pytest.approx(-1.0)  # unit normal, the sky at smaller rows
    assert -c / b == pytest.approx(180.0)


@pytest.mark.parametrize("pitch, roll, yaw", [(0.0, 0.0, 0.0), (4.0, 0.0, 0.0), (-3.0, 2.5, 0.0), (2.0, -5.0, 30.0),
                                              (0.0, 180.0, 0.0)])
def test_far_ground_points_lie_on_the_line_and_the_sky_beyond_it(pitch: float, roll: float, yaw: float) -> None:
    """Pitched, rolled (up to upside down) and yawed cameras: a point a million metres away on the ground is on the
    line (to 0.01 px), one 2 m above the camera at 100 m is on the positive side, and its distance is the
    angle's tangent times the focal length (a unit normal: the value is pixels)."""
    K = np.array([[1266.0, 0, 816], [0, 1266.0, 491], [0, 0, 1]])
    R = _rot(2, roll) @ _rot(0, pitch) @ LEVEL @ _rot(2, yaw)
    line = _rig(K, R).horizon()
    ahead = np.array([np.cos(np.radians(-yaw)), np.sin(np.radians(-yaw)), 0.0])  # the camera's heading, level
    side = np.array([-ahead[1], ahead[0], 0.0])

    def pixel(p_world: np.ndarray) -> np.ndarray:
        q = K @ (R @ p_world)
        return np.array([q[0] / q[2], q[1] / q[2], 1.0])

    for s in (-0.3, 0.0, 0.3):
        far = 1.0e6 * (ahead + s * side)
        assert abs(line @ pixel(far + np.array([0.0, 0.0, -1.5]))) < 0.01
    if roll == 0.0 and yaw == 0.0:
        up = line @ pixel(100.0 * ahead + np.array([0.0, 0.0, 2.0]))
        # on the optical axis' column, the distance is fy * (tan(pitch + angle) - tan(pitch))-ish; near: fy tan
        assert up > 0 and up == pytest.approx(1266.0 * np.tan(np.arctan(0.02)), rel=0.01)
    else:
        assert line @ pixel(100.0 * ahead + 30.0 * np.array([0.0, 0.0, 1.0])) > 0


def test_the_line_scales_to_another_image_size() -> None:
    K = np.array([[700.0, 0, 620], [0, 700.0, 190], [0, 0, 1]])
    R = _rot(0, 3.0) @ LEVEL
    full = _rig(K, R, image_size=(375, 1242)).horizon()
    half = _rig(K, R, image_size=(375, 1242)).horizon((187, 621))
    u = np.array([0.0, 300.0, 1241.0])
    v_full = -(full[0] * u + full[2]) / full[1]
    v_half = -(half[0] * u / 2 + half[2]) / half[1]
    np.testing.assert_allclose(v_half, v_full * 187 / 375, rtol=1e-9)


def test_points_and_the_horizon_scale_together_to_a_resized_frame() -> None:
    """A frame of another size than the rig's is the same camera resized: far ground points land on the
    horizon in that frame too, and every pixel scales per axis (with and without lens distortion)."""
    K = np.array([[700.0, 0, 620], [0, 700.0, 190], [0, 0, 1]])
    R = _rot(0, 3.0) @ _rot(2, 1.5) @ LEVEL
    rig = _rig(K, R, image_size=(375, 1242))
    small = (188, 621)
    far = np.array([[1.0e6, y, -1.7] for y in (-2.0e5, 0.0, 3.0e5)])
    uv, mask = rig.project(far, image_size=small)
    line = rig.horizon(small)
    assert mask.all() and np.abs(uv.astype(np.float64) @ line[:2] + line[2]).max() < 0.05
    pts = np.array([[12.0, 3.0, -1.0], [30.0, -5.0, 0.5], [8.0, 0.0, -1.6]])
    full, _ = rig.project(pts)
    got, _ = rig.project(pts, image_size=small)
    np.testing.assert_allclose(got, full * [621 / 1242, 188 / 375], rtol=1e-5)
    bent = Rig(rig.P, rig.T_lidar_to_cam, rig.image_size, distortion=(-0.2, 0.05, 0.001, -0.001, 0.0))
    np.testing.assert_allclose(bent.project(pts, image_size=small)[0], bent.project(pts)[0] * [621 / 1242, 188 / 375],
                               rtol=1e-5)
    same, _ = rig.project(pts, image_size=(375, 1242))  # the rig's own size: nothing scales
    np.testing.assert_array_equal(same, full)


def test_a_camera_looking_straight_down_has_no_horizon() -> None:
    assert _rig(np.array([[700.0, 0, 600], [0, 700.0, 180], [0, 0, 1]]), _rot(0, 90.0) @ LEVEL).horizon() is None


def test_a_singular_camera_matrix_has_no_horizon() -> None:
    """A hand-built rig (the loaders refuse such a matrix) gives None rather than raising in the lane decoder."""
    assert Rig(np.zeros((3, 4)), np.eye(4)).horizon() is None
