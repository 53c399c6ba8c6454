"""The synthetic driving world: paths that are what their command says, reproducible rendering, and a
camera model that puts a vehicle where its geometry says."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.models.etavla import world
from edge.models.etavla.world import CAR, HALF, LANE_W, Episode, Vehicle, feasible, path_xy, sample_episode

pytest.importorskip("cv2")


@pytest.mark.parametrize("command", ["straight", "stop", "lane_left", "lane_right", "left", "right"])
def test_paths_start_at_the_ego_and_move_one_metre_per_metre(command: str) -> None:
    lane_y = -LANE_W / 2 if command != "lane_left" else -1.5 * LANE_W
    s = np.linspace(0, 60, 6001)
    x, y = path_xy(command, s, lane_y, 30.0)
    assert (x[0], y[0]) == (0.0, lane_y)
    step = np.hypot(np.diff(x), np.diff(y)) / np.diff(s)
    assert np.all(step > 0.99) and np.all(step < 1.03), (step.min(), step.max())


def test_turns_end_in_the_crossing_roads_lane_on_the_right_hand_side() -> None:
    j = 30.0
    x, y = path_xy("left", np.array([80.0, 81.0]), -LANE_W / 2, j)
    assert np.allclose(x, j + LANE_W / 2) and y[1] - y[0] == pytest.approx(1.0)  # heading +y, right of B's centre
    x, y = path_xy("right", np.array([80.0, 81.0]), -LANE_W / 2, j)
    assert np.allclose(x, j - LANE_W / 2) and y[1] - y[0] == pytest.approx(-1.0)
    x, y = path_xy("lane_left", np.array([60.0]), -1.5 * LANE_W, j)
    assert y[0] == pytest.approx(-LANE_W / 2)


def test_commands_are_only_what_the_road_allows() -> None:
    assert feasible((True, False), -LANE_W / 2, False) == ["straight", "left", "lane_right"]
    assert feasible((True, True), -1.5 * LANE_W, False) == ["straight", "left", "right", "lane_left"]
    assert feasible((False, True), -1.5 * LANE_W, True) == ["stop", "lane_left"]  # a stopped car blocks the lane


def test_episodes_label_their_command_and_its_alternatives() -> None:
    seen = set()
    for seed in range(40):
        ep = sample_episode(np.random.default_rng(seed))
        seen.add(ep.command)
        assert ep.waypoints.shape == (8, 2) and ep.command not in ep.alternatives
        assert ep.command in feasible(ep.branches, ep.lane_y, any(v.speed == 0 and v.y == ep.lane_y for v in
                                                                  ep.vehicles))
        for other in ep.alternatives.values():  # the commands are told apart by where they go
            assert np.abs(other - ep.waypoints).mean() > 0.3
        if ep.command == "stop":
            car = min(v.x for v in ep.vehicles if v.speed == 0 and v.y == ep.lane_y) - CAR[0] / 2
            assert ep.waypoints[-1, 0] <= car - 5.9 and ep.plan_speed < ep.speed
    assert seen == {"straight", "stop", "lane_left", "lane_right", "left", "right"}


def test_rendering_is_reproducible() -> None:
    a = world.render_episode(sample_episode(np.random.default_rng(3)), np.random.default_rng(9), frames=2, views=3,
                       hw=(32, 64))
    b = world.render_episode(sample_episode(np.random.default_rng(3)), np.random.default_rng(9), frames=2, views=3,
                       hw=(32, 64))
    assert a.shape == (2, 3, 32, 64, 3) and a.dtype == np.uint8 and np.array_equal(a, b)


def test_a_vehicle_is_drawn_where_the_camera_model_projects_it() -> None:
    ep = sample_episode(np.random.default_rng(0))
    look = {**ep.look, "noise": 0.0, "bright": 0.0, "contrast": 1.0, "sun": 1.0}
    car = Vehicle(25.0, -HALF / 2 + 2.0, 0.0, 0.0, (250.0, 20.0, 20.0))  # blue (BGR), 25 m ahead
    ep = Episode(60.0, (False, False), -LANE_W / 2, 8.0, "straight", "keep lane", [car], ep.waypoints, 8.0, {},
                 look)
    h, w = 64, 128
    img = world.render_view(ep, 0.0, 0.0, h, w, np.random.default_rng(0))
    K, R = world.camera(0.0, look["pitch"], h, w)
    ex, ey, _ = world.ego_pose(ep, 0.0)
    p = np.array([car.x - CAR[0] / 2, car.y, CAR[2] / 2]) - np.array([ex, ey, 1.4])  # the centre of its back
    cam = R.T @ p
    u, v = (K @ cam)[:2] / cam[2]
    px = img[int(v), int(u)].astype(int)
    assert px[0] > 80 and px[0] > 3 * px[2], px  # blue dominates where the box should be
    left_of_it = img[int(v), max(0, int(u) - 12)].astype(int)
    assert not (left_of_it[0] > 80 and left_of_it[0] > 3 * left_of_it[2])
    assert math.isfinite(u) and 0 <= u < w and 0 <= v < h
