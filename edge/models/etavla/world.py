"""Synthetic driving episodes for ETA-VLA: a junction ahead, other vehicles, an instruction, several cameras.

Why its own world: a policy must see the road branch it is told to take and the car it must stop behind,
from more than one camera, over several frames; nothing here needs a dataset. Everything is analytic, so
labels are exact and every episode is reproducible from its seed.

World frame (metres): x along the ego's road (road A), y to the left, z up; right-hand traffic. Road A is
14 m wide (two lanes each way, 3.5 m, centre line at y = 0; the ego drives at y = -1.75 "inner" or
y = -5.25 "outer"); a crossing road B (x = J +- 7) leaves to the left, the right or both. At t = 0 the ego
is at (0, y0) heading +x; its past frames are behind it on the same lane.

Commands and their paths (all along arc length s, then timed by a speed profile):
- ``straight``: keep the lane; ``lane_left`` / ``lane_right``: a 25 m smooth shift by one lane;
- ``left`` / ``right``: along the lane to B's near edge, a quarter circle into B's lane of the same side
  (radius 8.75 m left, 5.25 m right from the inner lane), then along B, slowing to turn speed;
- ``stop``: keep the lane and brake evenly to stop 6 m behind a stopped car.
Labels: ``waypoints`` [W, 2] at 0.5 s steps in the ego frame at t = 0, ``speed`` = the planned speed 1 s
ahead, and the waypoints of every *other* command feasible in this episode (``alternatives``), so
instruction-following is measured as "closest to the commanded path".

Rendering: each camera pixel's ray meets the ground plane (asphalt, markings, grass) or the sky; vehicles
are shaded boxes drawn far to near. Rendered at 2x and area-downsampled, then brightness and noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.models.etavla.tokens import TEMPLATES

LANE_W = 3.5
HALF = 2 * LANE_W  # half-width of a road: two lanes each way
DT_FRAME = 0.25  # s between camera frames
DT_WAYPOINT = 0.5  # s between future waypoints
#: the fewest waypoints an episode can be drawn with: the slowest speed (6 m/s) over 0.6 of the horizon must reach
#: the nearest junction, 6 m past the crossing road's half-width (0.6 * 6 * DT_WAYPOINT * n >= 6)
MIN_WAYPOINTS = 4
CAR = (4.5, 1.8, 1.5)  # length, width, height
CAM_HEIGHT = 1.4
VIEW_YAWS = {1: (0.0,), 3: (0.9, 0.0, -0.9), 5: (1.6, 0.9, 0.0, -0.9, -1.6)}  # rad, left positive
HFOV = math.radians(70.0)


@dataclass
class Vehicle:
    x: float
    y: float
    heading: float  # rad
    speed: float  # m/s along heading
    color: tuple[float, float, float]

    def at(self, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (self.x + np.cos(self.heading) * self.speed * np.asarray(t),
                self.y + np.sin(self.heading) * self.speed * np.asarray(t))


@dataclass
class Episode:
    junction: float  # J, x of road B's centre line
    branches: tuple[bool, bool]  # (left, right) arms of road B
    lane_y: float  # the ego's lane centre
    speed: float  # ego speed at t = 0
    command: str
    text: str
    vehicles: list[Vehicle]
    waypoints: np.ndarray  # [W, 2] ego frame
    plan_speed: float
    alternatives: dict[str, np.ndarray] = field(default_factory=dict)
    look: dict[str, float] = field(default_factory=dict)  # rendering randomisation


def _smoothstep(a: np.ndarray) -> np.ndarray:
    a = np.clip(a, 0.0, 1.0)
    return a * a * (3 - 2 * a)


def path_xy(command: str, s: np.ndarray, lane_y: float, junction: float) -> tuple[np.ndarray, np.ndarray]:
    """Points of the command's path at arc lengths ``s`` (m from the ego at t = 0), world frame."""
    s = np.asarray(s, dtype=np.float64)
    if command in ("straight", "stop"):
        return s, np.full_like(s, lane_y)
    if command in ("lane_left", "lane_right"):
        d = LANE_W if command == "lane_left" else -LANE_W
        return s, lane_y + d * _smoothstep((s - 3.0) / 25.0)
    x_a = junction - HALF  # the ego reaches B's near edge here and starts turning
    sign = 1.0 if command == "left" else -1.0
    target_x = junction + LANE_W / 2 if command == "left" else junction - LANE_W / 2
    r = target_x - x_a
    arc = r * math.pi / 2
    a = np.clip((s - x_a) / r, 0.0, math.pi / 2)  # turned angle
    x = np.where(s < x_a, s, x_a + r * np.sin(a))
    y = np.where(s < x_a, lane_y, lane_y + sign * r * (1 - np.cos(a)))
    after = s - x_a - arc
    x = np.where(after > 0, target_x, x)
    y = np.where(after > 0, lane_y + sign * (r + after), y)
    return x, y


def travelled(command: str, speed: float, t: np.ndarray, junction: float, stop_at: float | None) -> np.ndarray:
    """Arc length covered by time ``t`` under the command's speed profile."""
    t = np.asarray(t, dtype=np.float64)
    if command == "stop" and stop_at is not None:
        dist = max(stop_at, 0.5)
        a = speed * speed / (2 * dist)
        t_stop = speed / a
        tt = np.minimum(t, t_stop)
        return speed * tt - 0.5 * a * tt * tt
    if command in ("left", "right"):
        v_turn = min(speed, 6.0 if command == "left" else 5.0)
        brake = 2.5  # m/s^2, down to the turn speed, then constant
        t_b = (speed - v_turn) / brake
        tt = np.minimum(t, t_b)
        return speed * tt - 0.5 * brake * tt * tt + v_turn * np.maximum(t - t_b, 0.0)
    return speed * t


def _trajectory(command: str, ep_speed: float, lane_y: float, junction: float, stop_at: float | None,
                n: int) -> tuple[np.ndarray, float]:
    t = DT_WAYPOINT * np.arange(1, n + 1)
    x, y = path_xy(command, travelled(command, ep_speed, t, junction, stop_at), lane_y, junction)
    s1 = travelled(command, ep_speed, np.array([0.95, 1.05]), junction, stop_at)
    return np.stack([x, y - lane_y], 1), float((s1[1] - s1[0]) / 0.1)


def feasible(branches: tuple[bool, bool], lane_y: float, stop_car: bool) -> list[str]:
    """The commands this road allows: with a stopped car ahead in the lane only stopping or leaving the lane."""
    change = "lane_left" if lane_y < -LANE_W else "lane_right"
    if stop_car:
        return ["stop", change]
    return ["straight", *(["left"] if branches[0] else []), *(["right"] if branches[1] else []), change]


def _color(rng: np.random.Generator) -> tuple[float, float, float]:
    palette = np.array([[40, 40, 200], [200, 200, 200], [30, 30, 30], [180, 60, 40], [60, 140, 200],
                        [50, 110, 60], [220, 220, 230], [90, 90, 100]], np.float64)  # BGR
    c = palette[rng.integers(len(palette))] * rng.uniform(0.8, 1.15)
    return tuple(float(v) for v in np.clip(c, 0, 255))


def sample_episode(rng: np.random.Generator, *, waypoints: int = 8, command: str | None = None) -> Episode:
    """One seeded episode; ``command`` forces the instruction (when feasible; else a feasible one)."""
    kind = rng.integers(3)
    branches = (kind != 2, kind != 1)  # both, left only, right only
    lane_y = -LANE_W / 2 if rng.random() < 0.5 else -1.5 * LANE_W
    speed = float(rng.uniform(6.0, 13.0))
    # near enough that a turn begins within the horizon (else "turn left" and "keep lane" are one path)
    junction = float(rng.uniform(HALF + 6.0, HALF + 0.6 * speed * DT_WAYPOINT * waypoints))
    stop_car = rng.random() < 0.5
    options = feasible(branches, lane_y, stop_car)
    cmd = command if command in options else options[int(rng.integers(len(options)))]
    vehicles: list[Vehicle] = []
    stop_at = None
    if stop_car:  # a stopped car ahead in the ego lane, before the junction, near enough to brake for now
        stop_at = float(rng.uniform(0.25, 0.45)) * speed * DT_WAYPOINT * waypoints
        d = stop_at + 6.0
        junction = max(junction, d + CAR[0] + HALF + 3.0)
        vehicles.append(Vehicle(d + CAR[0] / 2, lane_y, 0.0, 0.0, _color(rng)))
    elif rng.random() < 0.5:  # a lead car pulling away
        vehicles.append(Vehicle(float(rng.uniform(25, 50)), lane_y, 0.0, speed + float(rng.uniform(1, 4)), _color(rng)))
    other_y = -1.5 * LANE_W if lane_y > -LANE_W else -LANE_W / 2
    for _ in range(int(rng.integers(0, 3))):  # the neighbouring lane: clear near the ego (a lane change must fit)
        vehicles.append(Vehicle(float(rng.choice([-1, 1]) * rng.uniform(30, 60)), other_y, 0.0,
                                speed + float(rng.uniform(-1, 1)), _color(rng)))
    for _ in range(int(rng.integers(1, 4))):  # oncoming traffic
        vehicles.append(Vehicle(float(rng.uniform(5, 80)), float(rng.choice([LANE_W / 2, 1.5 * LANE_W])), math.pi,
                                float(rng.uniform(6, 13)), _color(rng)))
    for side, present in zip((1.0, -1.0), branches, strict=True):  # cars waiting on road B
        if present and rng.random() < 0.6:
            vehicles.append(Vehicle(junction - side * LANE_W / 2, side * float(rng.uniform(10, 25)),
                                    -side * math.pi / 2, 0.0, _color(rng)))
    wp, plan = _trajectory(cmd, speed, lane_y, junction, stop_at, waypoints)
    alts = {c: _trajectory(c, speed, lane_y, junction, stop_at, waypoints)[0] for c in options if c != cmd}
    texts = TEMPLATES[cmd]
    look = {"sun": float(rng.uniform(0.3, 1.0)), "bright": float(rng.uniform(-25, 25)),
            "contrast": float(rng.uniform(0.8, 1.2)), "grass": float(rng.uniform(0, 1)),
            "asphalt": float(rng.uniform(70, 120)), "noise": float(rng.uniform(0, 6)),
            "pitch": float(rng.uniform(0.02, 0.08)), "dash_phase": float(rng.uniform(0, 12))}
    ep = Episode(junction, branches, lane_y, speed, cmd, texts[int(rng.integers(len(texts)))], vehicles, wp, plan,
                 alts, look)
    from edge.models.etavla.metrics import clear_path

    return clear_path(ep)


def labels(ep: Episode) -> dict[str, Any]:
    """What a frame's meta carries as ``gt`` (plain JSON): the truth and what scoring needs."""
    return {"command": ep.command, "instruction": ep.text, "waypoints": np.round(ep.waypoints, 4).tolist(),
            "speed": round(ep.plan_speed, 4), "lane_y": ep.lane_y,
            "alternatives": {k: np.round(v, 4).tolist() for k, v in ep.alternatives.items()},
            "vehicles": [[v.x, v.y, v.heading, v.speed] for v in ep.vehicles]}


def ego_pose(ep: Episode, t: float) -> tuple[float, float, float]:
    """(x, y, heading) of the ego at past time t <= 0 (straight on its lane)."""
    return ep.speed * t, ep.lane_y, 0.0


def _on_road(ep: Episode, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    in_b = np.abs(x - ep.junction) <= HALF
    arm = ((y > 0) & ep.branches[0]) | ((y < 0) & ep.branches[1])
    return (np.abs(y) <= HALF) | (in_b & arm)


def _marking(ep: Episode, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(white, yellow) masks of the painted lines at ground points."""
    w = 0.15
    phase = ep.look["dash_phase"]
    off_box_a = np.abs(x - ep.junction) > HALF  # road A's lines stop at the junction box
    dash_a = ((x + phase) % 12.0) < 3.0
    white = off_box_a & ((np.abs(np.abs(y) - HALF) < w) | ((np.abs(np.abs(y) - LANE_W) < w / 2) & dash_a))
    yellow = off_box_a & (np.abs(y) < w)
    arm = (((y > HALF) & ep.branches[0]) | ((y < -HALF) & ep.branches[1]))
    dx = x - ep.junction
    dash_b = ((y + phase) % 12.0) < 3.0
    white |= arm & ((np.abs(np.abs(dx) - HALF) < w) | ((np.abs(np.abs(dx) - LANE_W) < w / 2) & dash_b))
    yellow |= arm & (np.abs(dx) < w)
    stop_line = (np.abs(x - (ep.junction - HALF - 0.6)) < 0.25) & (y < 0) & (y > -HALF)
    return white | stop_line, yellow


def camera(yaw: float, pitch: float, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(K [3, 3], R_cam_to_ego [3, 3]) for a camera yawed left by ``yaw`` and pitched down by ``pitch``."""
    f = (w / 2) / math.tan(HFOV / 2)
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    base = np.array([[0, 0, 1.0], [-1.0, 0, 0], [0, -1.0, 0]])  # cam (x right, y down, z fwd) -> ego axes
    cp, sp = math.cos(pitch), math.sin(pitch)
    pitch_m = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])  # about ego y: forward dips down
    cy, sy = math.cos(yaw), math.sin(yaw)
    yaw_m = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1.0]])
    return K, yaw_m @ pitch_m @ base


def render_view(ep: Episode, t: float, yaw: float, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 BGR [h, w, 3]: the camera yawed by ``yaw`` on the ego at time ``t``."""
    import cv2

    H, W = 2 * h, 2 * w
    K, R = camera(yaw, ep.look["pitch"], H, W)
    ex, ey, eh = ego_pose(ep, t)
    ce, se = math.cos(eh), math.sin(eh)
    R = np.array([[ce, -se, 0], [se, ce, 0], [0, 0, 1.0]]) @ R  # camera -> world
    c = np.array([ex, ey, CAM_HEIGHT])
    v, u = np.mgrid[0:H, 0:W].astype(np.float64) + 0.5
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) @ R.T
    ground = rays[..., 2] < -1e-3
    dist = np.where(ground, -CAM_HEIGHT / np.minimum(rays[..., 2], -1e-3), 0.0)
    gx, gy = c[0] + dist * rays[..., 0], c[1] + dist * rays[..., 1]
    look = ep.look
    grass = np.array([50, 110, 70]) * (0.7 + 0.5 * look["grass"]) + np.array([0, 0, 40]) * look["grass"]
    img = np.empty((H, W, 3), np.float64)
    img[:] = grass
    road = ground & _on_road(ep, gx, gy)
    img[road] = look["asphalt"] + rng.normal(0, 4, (int(road.sum()), 1))
    white, yellow = _marking(ep, gx, gy)
    img[ground & road & white] = (215, 215, 215)
    img[ground & road & yellow] = (60, 190, 220)
    img *= 0.75 + 0.35 * look["sun"]
    sky = np.array([235, 200, 160]) * (0.8 + 0.2 * look["sun"])
    fog = np.clip(dist / 120.0, 0, 1)[..., None]
    img = np.where(ground[..., None], img * (1 - fog) + sky * fog, sky * (1 - 0.3 * (v / H))[..., None])
    # vehicles: far to near, each a box of 5 visible-candidate faces shaded by their normal
    to_cam = R.T
    order = sorted(ep.vehicles, key=lambda vh: -float(np.hypot(*(np.array(vh.at(t)) - c[:2]))))
    L, Wd, Hc = CAR
    for vh in order:
        px, py = (float(a) for a in vh.at(t))
        ch, sh = math.cos(vh.heading), math.sin(vh.heading)
        fwd, left = np.array([ch, sh, 0.0]), np.array([-sh, ch, 0.0])
        corners = np.array([[px, py, 0.0] + a * L / 2 * fwd + b * Wd / 2 * left + np.array([0, 0, z])
                            for a in (-1, 1) for b in (-1, 1) for z in (0.0, Hc)])
        cam = (corners - c) @ to_cam.T
        if (cam[:, 2] < 0.5).any():
            continue
        pix = cam @ K.T
        pix = pix[:, :2] / pix[:, 2:3]
        faces = {"top": ([1, 3, 7, 5], np.array([0, 0, 1.0])), "front": ([4, 5, 7, 6], fwd),
                 "back": ([0, 1, 3, 2], -fwd), "left": ([2, 3, 7, 6], left), "right": ([0, 1, 5, 4], -left)}
        for name, (idx, n) in faces.items():
            if np.dot(n, c - corners[idx].mean(0)) <= 0:  # facing away
                continue
            shade = 0.55 + 0.45 * max(0.0, float(np.dot(n, np.array([0.3, 0.2, 0.93])))) * look["sun"]
            col = np.array(vh.color) * shade * (0.8 if name in ("front", "back") else 1.0)
            cv2.fillConvexPoly(img, np.round(pix[idx] * 4).astype(np.int32), tuple(float(x) for x in col),
                               lineType=cv2.LINE_AA, shift=2)
    img = cv2.resize(img.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    img = (img - 128.0) * look["contrast"] + 128.0 + look["bright"]
    img += rng.normal(0, look["noise"], img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def render_episode(ep: Episode, rng: np.random.Generator, *, frames: int, views: int,
                   hw: tuple[int, int]) -> np.ndarray:
    """uint8 [T, V, h, w, 3]: the last ``frames`` frames (the newest last) of every view."""
    yaws = VIEW_YAWS.get(views)
    if yaws is None:
        raise ValueError(f"views={views}: use one of {sorted(VIEW_YAWS)}")
    return np.stack([np.stack([render_view(ep, -DT_FRAME * (frames - 1 - k), yaw, hw[0], hw[1], rng) for yaw in yaws])
                     for k in range(frames)])
