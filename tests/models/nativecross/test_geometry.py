"""se(3) maths, robust combination, rig files, grouping and the synthetic rig's geometric consistency."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.data import se3
from edge.data.rig import Rig
from edge.errors import DataError
from edge.models.nativecross.grouping import farthest_points, group_scan, knn

finite = st.floats(-1.0, 1.0, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(st.tuples(finite, finite, finite), st.floats(0.0, 3.1), st.tuples(finite, finite, finite))
def test_exp_log_round_trip(axis: tuple, angle: float, v: tuple) -> None:
    a = np.array(axis)
    if np.linalg.norm(a) < 1e-3:
        a = np.array([0.0, 0.0, 1.0])
    xi = np.concatenate([a / np.linalg.norm(a) * angle, np.array(v) * 5])
    T = se3.exp_se3(xi)
    assert np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-12) and np.linalg.det(T[:3, :3]) > 0
    assert np.allclose(se3.log_se3(T), xi, atol=1e-8)
    assert np.allclose(se3.inverse(T) @ T, np.eye(4), atol=1e-12)


def test_exp_matches_torch_twin() -> None:
    torch = pytest.importorskip("torch")
    from edge.models.nativecross.net import exp_se3

    xi = np.random.default_rng(0).normal(0, 0.5, (16, 6))
    xi[0] = 0  # the series branch
    assert np.allclose(exp_se3(torch.from_numpy(xi)).numpy(), se3.exp_se3(xi), atol=1e-12)


def test_errors_and_perturbation_ranges() -> None:
    D = se3.perturbation(np.random.default_rng(3), 10, 0.25, 500)
    assert np.abs(D[:, :3, 3]).max() <= 0.25 and se3.rotation_error_deg(D, np.eye(4)).max() <= 10 * np.sqrt(3) + 1e-9
    R = se3.exp_so3(np.array([0, 0, np.deg2rad(7.0)]))
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, (0.03, 0.04, 0)
    assert se3.rotation_error_deg(T, np.eye(4)) == pytest.approx(7.0)
    assert se3.translation_error_m(T, np.eye(4)) == pytest.approx(0.05)


def test_robust_mean_rejects_outliers() -> None:
    rng = np.random.default_rng(0)
    truth = se3.exp_se3(np.array([0.1, -0.2, 0.05, 0.3, -0.1, 0.2]))
    good = se3.exp_se3(rng.normal(0, [0.002] * 3 + [0.005] * 3, (20, 6))) @ truth
    bad = se3.perturbation(rng, 20, 0.5, 6) @ truth
    T, inl, spread = se3.robust_mean(np.concatenate([good, bad]), np.eye(4))
    assert inl[:20].all() and not inl[20:].any()
    assert se3.rotation_error_deg(T, truth) < 0.3 and se3.translation_error_m(T, truth) < 0.005
    assert 0.05 < spread["rot_rms_deg"] < 0.5 and 0.2 < spread["trans_rms_cm"] < 2


def test_check_rigid_says_what_is_wrong() -> None:
    T = np.eye(4)
    se3.check_rigid(T, "x")
    for bad, why in ((np.eye(3), "4x4"), (np.diag([1, 1, -1, 1.0]), "reflection"),
                     (np.diag([1, 2, 1, 1.0]), "not orthonormal"), (np.diag([1, 0, 1, 1.0]), r"not a rotation \(det 0"),
                     (np.full((4, 4), np.nan), "non-finite"),
                     (np.diag([1e200, 1, 1, 1.0]), "an entry of 1e\\+200"),
                     (np.diag([1, 1, 1, 1e306]), r"0 0 0 1, got \[0\.0, 0\.0, 0\.0, 1e\+306\]")):
        with pytest.raises(DataError, match=why), warnings.catch_warnings():
            warnings.simplefilter("error")  # no overflow on the way to the message
            se3.check_rigid(bad, "rig.json")
    with warnings.catch_warnings():  # huge entries: refused before a product overflows (a RuntimeWarning)
        warnings.simplefilter("error")
        with pytest.raises(DataError, match="within \\+-1"):
            se3.check_rigid(np.diag([1e200, 1e200, 1, 1.0]), "rig.json")


def test_rig_json_round_trip_distortion_and_bad_files(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    K = np.array([[800.0, 0, 640], [0, 810, 360], [0, 0, 1]])
    T = se3.exp_se3(np.array([1.2, -1.2, 1.2, 0.1, -0.2, 0.3]))
    rig = Rig(np.hstack([K, np.zeros((3, 1))]), T, (720, 1280), "t", (-0.3, 0.1, 0.001, -0.002, 0.01))
    p = tmp_path / "rig.json"
    p.write_text(json.dumps(rig.to_json()))
    back = Rig.load(p)
    assert np.allclose(back.T_lidar_to_cam, T) and back.distortion == rig.distortion and back.image_size == (720, 1280)
    pts = np.random.default_rng(0).uniform([-10, -10, -3], [10, 10, 3], (200, 3))
    uv, mask = back.project(pts)
    cam = pts @ T[:3, :3].T + T[:3, 3]
    front = mask & (cam[:, 2] > 0.5)
    assert front.sum() > 20
    want, _ = cv2.projectPoints(cam[front], np.zeros(3), np.zeros(3), K, np.array(rig.distortion))
    assert np.abs(uv[front] - want[:, 0]).max() < 1e-3
    for doc, why in (({**rig.to_json(), "T_lidar_to_cam": (np.diag([1, 1, 1, 1.0]) * 2).tolist()}, "last row|rigid"),
                     ({**rig.to_json(), "T_lidar_to_cam": np.diag([1, 1, -1, 1.0]).tolist()}, "reflection"),
                     ({**rig.to_json(), "D": ["a"]}, "'D'"), ({**rig.to_json(), "T_lidar_to_cam": [1, 2]}, "4x4"),
                     ({**rig.to_json(), "P": [[0, 0, 640, 0], [0, 810, 360, 0], [0, 0, 1, 0]]}, "fx > 0"),
                     ({**rig.to_json(), "P": [[800, 0, 640, 44], [0, 810, 360, 0], [0, 0, 1, 0]]}, "4th column"),
                     ({**rig.to_json(), "image_size": [True, 1242]}, "image_size")):  # a bool is no pixel count
        p.write_text(json.dumps(doc))
        with pytest.raises(DataError, match=why) as e:
            Rig.load(p)
        assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_farthest_points_and_knn() -> None:
    rng = np.random.default_rng(1)
    pts = rng.uniform(-1, 1, (500, 3)).astype(np.float32)
    corners = np.array([[5, 5, 5], [-5, -5, -5], [5, -5, 5]], np.float32)
    idx = farthest_points(np.concatenate([pts, corners]), 3)
    assert set(idx.tolist()) == {500, 501, 502}  # the outliers are the farthest
    nb = knn(pts, pts[:7], 5)
    d = ((pts[:7, None] - pts[None]) ** 2).sum(-1)
    assert np.array_equal(nb, np.argsort(d, 1, kind="stable")[:, :5])


def _fps_reference(pts: np.ndarray, k: int) -> np.ndarray:
    """Farthest point sampling as first written (a broadcast per step): what the fast form must equal."""
    d = np.full(len(pts), np.inf, np.float32)
    out = [int(np.argmax(((pts - pts.mean(0)) ** 2).sum(1)))]
    for _ in range(1, k):
        d = np.minimum(d, ((pts - pts[out[-1]]) ** 2).sum(1))
        out.append(int(np.argmax(d)))
    return np.array(out)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(70, 3000), dims=st.sampled_from([3, 4]),
       scale=st.sampled_from([0.01, 1.0, 40.0]))
def test_fast_grouping_picks_exactly_what_the_plain_formulation_picks(seed: int, n: int, dims: int,
                                                                     scale: float) -> None:
    """Column-wise squared distances give the same float32 values in the same order, so the same centres
    and neighbours as a stable sort of the plain distances, ties included (coordinates on a coarse grid make
    ties common), whether knn's prefilter takes a row or not."""
    rng = np.random.default_rng(seed)
    pts = (rng.normal(size=(n, dims)) * scale).astype(np.float32)
    pts[: n // 3] = np.round(pts[: n // 3] * 4 / scale) * scale / 4
    k = min(32, n)
    idx = farthest_points(pts, k)
    assert np.array_equal(idx, _fps_reference(pts, k))
    c = pts[idx, :3]
    d = ((c[:, None] - pts[None, :, :3]) ** 2).sum(-1)
    for kk in (1, 16, 64):  # with k = 64 and fewer than ~1,000 points no row is prefiltered (sorted whole)
        if kk <= n:
            assert np.array_equal(knn(pts[:, :3], c, kk), np.argsort(d, 1, kind="stable")[:, :kk])


def test_view_space_centres_cover_near_and_far_alike() -> None:
    """A near patch and a far wall over the same directions: in metres the wide far wall takes most
    centres; over viewing directions they split about evenly (translation shows on the near ones)."""
    from edge.models.nativecross.grouping import group

    rng = np.random.default_rng(2)
    az, el = rng.uniform(-0.35, 0.35, (2, 2000)), rng.uniform(-0.15, 0.15, (2, 2000))

    def shell(r: float, a: np.ndarray, e: np.ndarray) -> np.ndarray:
        return np.stack([r * np.cos(e) * np.cos(a), r * np.cos(e) * np.sin(a), r * np.sin(e)], 1)

    xyz = np.concatenate([shell(5.0, az[0], el[0]), shell(50.0, az[1], el[1])])
    near = {}
    for space in ("xyz", "view"):
        _, c = group(xyz, 4000, 32, 16, space=space)
        near[space] = float((np.linalg.norm(c, axis=1) < 10).mean())
    assert near["xyz"] <= 0.15 and 0.35 <= near["view"] <= 0.65, near
    with pytest.raises(DataError, match="group_space 'polar'"):
        group(xyz, 4000, 32, 16, space="polar")


def test_group_scan_is_deterministic_and_refuses_an_empty_view() -> None:
    from edge.models.nativecross.card import CONFIGS
    from edge.models.nativecross.rigsim import random_rig

    cfg = CONFIGS["tiny"]
    s = random_rig(np.random.default_rng(0), (64, 192))
    xyz = np.stack([s.points["x"], s.points["y"], s.points["z"]], 1)
    a = group_scan(xyz, s.rig.T_lidar_to_cam, s.rig.P, (64, 192), cfg)
    b = group_scan(xyz, s.rig.T_lidar_to_cam, s.rig.P, (64, 192), cfg)
    assert a[0].shape == (cfg["groups"], cfg["group_size"], 3) and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert np.median(np.abs(a[0])) < 0.1 * np.median(np.abs(a[1]))  # offsets from the centre, not positions
    behind = xyz * np.array([-1, 1, 1])  # the scan turned around: nothing in front of the camera
    with pytest.raises(DataError, match=r"only \d+ LiDAR points are in the camera's view"):
        group_scan(behind, s.rig.T_lidar_to_cam, s.rig.P, (64, 192), cfg, where="scan.bin")


def test_synthetic_rig_image_and_scan_agree() -> None:
    """A LiDAR point and the camera ray through its projected pixel hit the same surface: the camera's
    depth there equals the point's depth (where the pixel is not an occluding edge)."""
    from edge.data.scene import random_scene
    from edge.models.nativecross.rigsim import _forward_street, random_camera, scan

    rng = np.random.default_rng(4)
    scene = _forward_street(random_scene(rng), rng)
    P, T = random_camera(rng, (120, 360))
    pts = scan(scene, rng, noise_m=0.0)
    xyz = np.stack([pts["x"], pts["y"], pts["z"]], 1).astype(np.float64)
    rig = Rig(P, T, (120, 360))
    uv, m = rig.project(xyz)
    cam = xyz[m] @ T[:3, :3].T + T[:3, 3]
    K = P[:, :3]
    rays = np.stack([uv[m, 0], uv[m, 1], np.ones(m.sum())], 1) @ np.linalg.inv(K).T
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    origin = -T[:3, :3].T @ T[:3, 3]
    hits = scene.cast(rays @ T[:3, :3], origin)
    dist = np.linalg.norm(cam, axis=1)
    ok = np.isfinite(hits.t)
    agree = np.abs(hits.t[ok] - dist[ok]) < 0.05 * dist[ok]
    assert m.sum() > 1000 and agree.mean() > 0.9  # the rest: points the camera sees occluded (parallax)


@pytest.mark.parametrize("deg", [0.0, 1e-4, 0.5, 90.0, 179.0])
def test_rotation_error_is_exact_near_zero_and_at_any_angle(deg: float) -> None:
    """arccos of the trace read a KITTI rotation's rounding (orthonormal to ~1e-8) as 0.012 deg against itself."""
    R = se3.exp_se3(np.array([0.3, -0.2, 0.9, 0, 0, 0]))
    R_kitti = R.copy()
    R_kitti[:3, :3] *= 1 - 2e-8  # what 9-digit calib files give
    assert se3.rotation_error_deg(R_kitti, R_kitti) == 0.0
    D = se3.exp_se3(np.array([0.0, np.deg2rad(deg), 0.0, 0, 0, 0]))
    assert se3.rotation_error_deg(D @ R, R) == pytest.approx(deg, abs=1e-9)


def test_knn_sorts_whole_the_rows_its_prefilter_cannot_bound() -> None:
    """Every 16th point sits at one centre and the rest far off: the stride-16 subsample then bounds fewer than
    k points of that centre's row, which must be sorted whole, while the other centres' rows are prefiltered."""
    rng = np.random.default_rng(3)
    pts = rng.uniform(-50, 50, (4096, 3)).astype(np.float32)
    pts[::16] = rng.normal(0, 0.01, (256, 3)).astype(np.float32)
    c = np.concatenate([np.zeros((1, 3), np.float32), pts[1:400:37]])
    d = ((c[:, None] - pts[None]) ** 2).sum(-1)
    for k in (8, 64, 300):
        assert np.array_equal(knn(pts, c, k), np.argsort(d, 1, kind="stable")[:, :k])
