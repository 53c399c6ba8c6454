"""NativeCross's edge alignment on the host: depth edges of a hand-made scan (where, which kind, placed between
the beams), rings found from a file's order, the packed feed, the score peaking at the extrinsic that drew the
image, the search bringing a perturbed guess back on a seeded synthetic rig and on real KITTI 000114, and the
``refine_edges`` program's record and feeds."""

from __future__ import annotations

import numpy as np
import pytest

from edge.data import se3
from edge.models.contract import feeds_for
from edge.models.nativecross import card as C
from edge.models.nativecross import edges as E
from edge.models.nativecross.metrics import pose_errors

CFG = C.CONFIGS["tiny"]


def _scan(az_step_deg: float = 0.5, rings: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A round wall 20 m away and a box 8 m ahead between azimuths -5 and +5 deg, elevations 0..7 deg (rings
    stored one after another, azimuth rising within each through a whole turn, as KITTI's files are)."""
    xyz, ring = [], []
    for k in range(rings):
        el = np.deg2rad(k * 1.0)
        for a in np.arange(-180, 180, az_step_deg):
            r = 8.0 if abs(a) < 5 and k < 5 else 20.0  # the box is 5 beams tall
            az = np.deg2rad(a)
            xyz.append([r * np.cos(el) * np.cos(az), r * np.cos(el) * np.sin(az), r * np.sin(el)])
            ring.append(k)
    return np.array(xyz), np.array(ring)


def test_scan_edges_finds_the_box_sides_and_top_between_the_beams() -> None:
    xyz, ring = _scan()
    e = E.scan_edges(xyz, ring)
    r = np.linalg.norm(e.xyz, axis=1)
    assert np.allclose(r, 8.0)  # only the box's returns are on an edge's foreground side
    az = np.rad2deg(np.arctan2(e.xyz[:, 1], e.xyz[:, 0]))
    el = np.rad2deg(np.arcsin(e.xyz[:, 2] / r))
    side = e.vertical
    # the sides sit halfway between the box's last beam (-4.5 / +4.5 deg) and the wall's first (-5 / +5 deg)
    assert sorted(set(np.round(np.abs(az[side]), 3))) == [4.75]
    assert side.sum() == 2 * 5  # both sides, every ring the box covers
    # the top: halfway between the box's top beam (4 deg) and the beam above (5 deg), over the box's 19 columns
    assert np.allclose(el[~side], 4.5, atol=1e-6) and (~side).sum() == 19
    assert np.all(e.weight > 0)


def _wall(lo_deg: float, hi_deg: float, phase: float, jitter: float, step_deg: float = 0.5
          ) -> tuple[np.ndarray, np.ndarray]:
    """Six rings of a flat wall 10 m to the left (y = 10 m) between azimuths ``lo_deg`` and ``hi_deg``: seen
    obliquely its range grows a little more with every step, with no depth edge anywhere on it. Returns sit at
    ``phase`` of a cell off the azimuth grid, each moved by up to ``jitter`` of a cell (seeded)."""
    rng = np.random.default_rng(0)
    xyz, ring = [], []
    for k in range(6):
        idx = np.arange(np.ceil(lo_deg / step_deg), hi_deg / step_deg)
        a = np.deg2rad((idx + phase + rng.uniform(-jitter, jitter, len(idx))) * step_deg)
        flat = 10.0 / np.sin(a)
        xyz.append(np.stack([flat * np.cos(a), flat * np.sin(a), flat * np.tan(np.deg2rad(-2.0 + 0.5 * k))], 1))
        ring += [k] * len(a)
    return np.concatenate(xyz), np.array(ring)


@pytest.mark.parametrize(("lo", "hi", "phase", "jitter"), [
    (12.0, 40.0, 0.0, 0.0),  # 16-48 m, each step 0.3-1.6 m further: a plain threshold made 216 "edges" of it
    (31.0, 45.0, 0.5, 1e-3),  # steps of 0.12-0.3 m, but half a cell off the grid: two returns shared a cell and
])                            # the gaps left two-step "jumps" (15 "edges" before the rings kept their own phase)
def test_an_oblique_wall_has_no_depth_edge(lo: float, hi: float, phase: float, jitter: float) -> None:
    xyz, ring = _wall(lo, hi, phase, jitter)
    assert len(E.scan_edges(xyz, ring)) == 0


def test_flat_ground_towards_the_horizon_has_no_top_edge() -> None:
    """Ground 1.73 m below the sensor, rings at -4..-0.5 deg: from beam to beam its range grows 1.1-2x (more than
    the 1.5x a top is found at, near the horizon), yet nothing there is an edge (before: a ring of 120 "tops")."""
    xyz, ring = [], []
    for k, el in enumerate(np.arange(-4.0, -0.25, 0.5)):
        flat = 1.73 / np.tan(np.deg2rad(-el))
        a = np.deg2rad(np.arange(-30.0, 30.0, 0.5))
        xyz.append(np.stack([flat * np.cos(a), flat * np.sin(a), np.full(len(a), -1.73)], 1))
        ring += [k] * len(a)
    xyz, ring = np.concatenate(xyz), np.array(ring)
    assert len(E.scan_edges(xyz, ring)) == 0


def test_rings_found_from_the_files_order_equal_the_given_ones() -> None:
    xyz, ring = _scan()
    a, b = E.scan_edges(xyz, ring), E.scan_edges(xyz, None)
    assert np.array_equal(a.xyz, b.xyz) and np.array_equal(a.vertical, b.vertical)
    shuffled = np.random.default_rng(0).permutation(len(xyz))  # no order left: elevation quantiles still ring it
    c = E.scan_edges(xyz[shuffled], None, rows=8)
    assert len(c) == len(a)


def test_packed_edges_keep_the_heaviest_and_round_trip() -> None:
    e = E.ScanEdges(np.arange(9.0).reshape(3, 3), np.array([0.5, 2.0, 1.0]), np.array([True, False, True]))
    p = e.packed(5)
    assert p.shape == (5, 5) and p.dtype == np.float32
    assert p[:3, 3].tolist() == [2.0, 1.0, 0.5] and np.all(p[3:] == 0)
    back = E.ScanEdges.unpack(p)
    assert len(back) == 3 and back.vertical.tolist() == [False, True, True]
    assert np.allclose(back.xyz[0], [3, 4, 5])
    assert len(E.ScanEdges.unpack(e.packed(2))) == 2


def _drawn(T: np.ndarray, P: np.ndarray, e: E.ScanEdges, hw: tuple[int, int]) -> np.ndarray:
    """The box as the camera under ``T`` sees it: grey from its sides' and top's projections down."""
    from edge.data.rig import pinhole

    _, pix = pinhole(e.xyz, T, P)
    u, v = pix[:, 0] / pix[:, 2], pix[:, 1] / pix[:, 2]
    img = np.zeros((*hw, 3), np.uint8)
    img[round(v[~e.vertical].mean()):, round(u[e.vertical].min()):round(u[e.vertical].max())] = 120
    return img


def test_score_peaks_at_the_extrinsic_that_drew_the_edges() -> None:
    from edge.models.nativecross.rigsim import LIDAR_TO_CAM_AXES

    xyz, ring = _scan(0.25)
    e = E.scan_edges(xyz, ring)
    T = np.eye(4)
    T[:3, :3] = LIDAR_TO_CAM_AXES
    P = np.array([[400.0, 0, 320, 0], [0, 400.0, 200, 0], [0, 0, 1, 0]])
    maps = E.image_maps(_drawn(T, P, e, (400, 640)), 2.0)
    at = E.score(maps, e, T, P)
    for k in range(6):
        xi = np.zeros(6)
        xi[k] = np.deg2rad(0.5) if k < 3 else 0.1
        assert E.score(maps, e, se3.exp_se3(xi) @ T, P) < at
    assert E.score(maps, E.ScanEdges(np.zeros((0, 3)), np.zeros(0), np.zeros(0, bool)), T, P) == 0.0


@pytest.fixture(scope="module")
def rig() -> object:
    from edge.models.nativecross.rigsim import random_rig

    return random_rig(np.random.default_rng(3), (256, 768))


def test_align_brings_a_perturbed_synthetic_guess_back(rig: object) -> None:
    T_true, P = rig.rig.T_lidar_to_cam, rig.rig.P
    e = E.scan_edges(np.stack([rig.points[k] for k in "xyz"], 1), rig.points["ring"])
    start = se3.perturbation(np.random.default_rng(5), 1.5, 0.15) @ T_true
    T, rec = E.align(rig.image, e, [start], P)
    r0, t0 = pose_errors(start, T_true)
    r1, t1 = pose_errors(T, T_true)
    assert r0 > 1.0 and t0 > 10.0
    assert r1 < 0.5 * r0 and t1 < 0.7 * t0, (r0, t0, r1, t1)
    assert rec["score"] > rec["score_before"] and E.FROM[rec["start"]] and rec["edges"] == len(e)
    # two starts: the best-scoring result is kept, whichever chain it came from
    starts = [se3.perturbation(np.random.default_rng(6), 8, 0.3) @ T_true, start]
    T2, rec2 = E.align(rig.image, e, starts, P)
    fine = E.image_maps(rig.image, E.BLURS[-1] * 768 / E.REF_WIDTH)
    assert rec2["score"] == pytest.approx(E.score(fine, e, T2, P), abs=1e-5)
    assert all(rec2["score"] >= E.score(fine, e, t, P) for t in starts)  # no chain ends below where it began


def test_a_held_chain_keeps_its_starts_pitch_and_roll(rig: object) -> None:
    """A start with the true pitch and roll and yaw and translation off: the held chain moves only yaw and
    translation (its rotation differs from the start's about the camera's y axis alone) and brings those back;
    align keeps a result at least as good as the held chain's."""
    T_true, P = rig.rig.T_lidar_to_cam, rig.rig.P
    e = E.scan_edges(np.stack([rig.points[k] for k in "xyz"], 1), rig.points["ring"])
    start = se3.exp_se3(np.array([0.0, np.deg2rad(2.5), 0.0, 0.0, 0.06, 0.1])) @ T_true  # yaw, height, forward
    scale = 768 / E.REF_WIDTH
    maps = {b: E.image_maps(rig.image, b * scale) for b in E.BLURS}
    trust = (np.deg2rad(E.TRUST_DEG), E.TRUST_M)
    held = E._chain(maps, e, start, P, start, E.BLURS, trust, E.ROTATION_ONLY_ABOVE, E.HELD_DOFS)
    turn = se3.log_se3(held @ se3.inverse(start))[:3]
    assert abs(turn[1]) > np.deg2rad(1.0) and abs(turn[0]) < 1e-9 and abs(turn[2]) < 1e-9, np.rad2deg(turn)
    r0, t0 = pose_errors(start, T_true)
    r1, t1 = pose_errors(held, T_true)
    assert r1 < 0.5 * r0 and t1 < 0.5 * t0, (r0, t0, r1, t1)
    T, rec = E.align(rig.image, e, [start], P)
    fine = maps[E.BLURS[-1]]
    assert rec["score"] == pytest.approx(E.score(fine, e, T, P), abs=1e-5)
    assert rec["score"] >= E.score(fine, e, held, P) - 1e-5 and E.FROM[4] == "held"


def test_grid_keeps_the_best_scoring_turns_of_each_start(rig: object) -> None:
    """The grid's poses are grid rotations of the starts, best first, and each names the start it turns: a start
    turned 10 deg about the camera's vertical axis has the turn back (the truth) as its best grid pose."""
    T_true, P = rig.rig.T_lidar_to_cam, rig.rig.P
    e = E.scan_edges(np.stack([rig.points[k] for k in "xyz"], 1), rig.points["ring"])
    maps = E.image_maps(rig.image, E.BLURS[0] * 768 / E.REF_WIDTH)
    far = se3.exp_se3(np.array([0.3, 0.3, 0.0, 0.0, 0.0, 0.0])) @ T_true  # off the grid of either start
    turned = se3.exp_se3(np.deg2rad([0.0, 10.0, 0.0, 0.0, 0.0, 0.0])) @ T_true
    got = E._grid(maps, e, [far, turned], P)
    assert len(got) == E.GRID_KEEP
    scores = [E.score(maps, e, T, P) for T, _ in got]
    assert scores == sorted(scores, reverse=True)
    assert got[0][1] == 1 and np.abs(got[0][0] - T_true).max() < 1e-9
    for T, k in got:  # each is a grid rotation of the start it names
        d = np.rad2deg(se3.log_se3(T @ se3.inverse([far, turned][k]))[:3])
        assert np.abs(d - np.round(d / 5) * 5).max() < 1e-6 and np.abs(d).max() <= 10 + 1e-6


@pytest.mark.parametrize("index", [40, 8])
def test_align_escapes_the_local_optima_seen_on_kitti(real_data: object, index: int) -> None:
    """KITTI 000114 perturbations (10 deg / 25 cm, seed 0) where the search from the raw start alone ended in a
    wrong optimum before the grid and the restarts: #40 at 23 deg / 40 cm (a wrong rotation), #8 at 0.3 deg /
    27 cm (translation off, rotation compensating). Measured now: 0.16 deg / 4.5 cm and 0.18 deg / 2.0 cm."""
    from edge.models.nativecross.samples import kitti_samples

    s = kitti_samples(real_data / "kitti" / "object" / "training", "000114", index + 1, 10.0, 0.25, seed=0)[index][0]
    cam, lid = s["camera"], s["lidar"]
    truth, start = cam.meta["rig_true"], cam.meta["rig"]
    feeds = C.edge_feeds(cam.data, lid.data, start, CFG)
    T, _ = E.align(feeds["edge_image"][0], E.ScanEdges.unpack(feeds["edge_points"][0]), [start.T_lidar_to_cam],
                   feeds["edge_P"][0])
    r1, t1 = pose_errors(T, truth.T_lidar_to_cam)
    assert r1 < 1.0 and t1 < 10.0, (r1, t1)


def test_align_on_real_kitti_000114(real_data: object) -> None:
    """Real camera and Velodyne scan, its calib perturbed by a seeded 2 deg / 20 cm: the edges alone, from that
    start, bring it back (100 starts at 10 deg / 25 cm after the steps: 0.17 deg / 2.9 cm RMSE, README)."""
    from edge.models.nativecross.samples import kitti_samples

    s = kitti_samples(real_data / "kitti" / "object" / "training", "000114", 1, 2.0, 0.2, seed=0)[0][0]
    cam, lid = s["camera"], s["lidar"]
    truth, start = cam.meta["rig_true"], cam.meta["rig"]
    feeds = C.edge_feeds(cam.data, lid.data, start, CFG)
    T, _ = E.align(feeds["edge_image"][0], E.ScanEdges.unpack(feeds["edge_points"][0]), [start.T_lidar_to_cam],
                   feeds["edge_P"][0])
    r0, t0 = pose_errors(start.T_lidar_to_cam, truth.T_lidar_to_cam)
    r1, t1 = pose_errors(T, truth.T_lidar_to_cam)
    assert r1 < 0.5 and r1 < 0.5 * r0 and t1 < t0, (r0, t0, r1, t1)


def test_refine_edges_program_records_the_alignment() -> None:
    from edge.models.nativecross.samples import samples

    frames = samples({**CFG, "eval_max_deg": 3.0, "eval_max_m": 0.1}, "evaluation", 1, 0)[0][0]
    truth = frames["camera"].meta["rig_true"].T_lidar_to_cam
    with feeds_for(("encode", "step")):
        assert "edge_points" not in C.preprocess(frames, CFG)  # refine does not pay for the edges
    with feeds_for(("encode", "step", "edges")):
        feeds = C.preprocess(frames, CFG)
    assert feeds["edge_points"].shape == (1, E.POINTS, 5) and feeds["edge_image"].dtype == np.uint8

    def step(f: dict) -> dict:  # a step that moves nothing: what the alignment does is all there is
        return {"xi": np.zeros((1, 6), np.float32)}

    runner = C.AlignRunner({"encode": lambda f: {"img_tokens": 0, "pt_tokens": 0}, "step": step}, CFG)
    out = runner.step(feeds)
    assert out["T_iters"].shape == (1, CFG["iterations"] + 2, 4, 4)
    rec, _ = C.postprocess(out, frames, CFG)
    assert rec["iterations"] == CFG["iterations"] and rec["edge_alignment"]["from"] in E.FROM
    assert rec["edge_alignment"]["score"] >= rec["edge_alignment"]["score_before"]
    assert rec["eval"]["rot_deg"] == pytest.approx(pose_errors(out["T"][0], truth)[0], abs=1e-3)
    assert "refine_edges" in [p.name for p in C.card().programs_for(CFG)]
