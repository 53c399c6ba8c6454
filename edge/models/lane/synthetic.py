"""Synthetic lane clips: a perspective road rendered with OpenCV, with exact lane labels.

Why synthetic: the lane family must train and be validated on a 2-core CPU without any dataset
download. The road is a flat plane seen by a pinhole camera; lane lines are curves X(Z) in road
coordinates, projected analytically, so labels are exact at any row and any resolution. Each clip
has 2-5 lane lines (solid or dashed, straight or curved), ego motion along the road, optional lane
changes across the clip, shadows, occluding vehicles, brightness/contrast jitter and sensor noise.

Labels are *ego-relative slots* (UFLD style): slot ``num_slots//2 - 1`` is the first line left of the
camera, ``num_slots//2`` the first line right of it, and so on outwards. A lane change moves lines
between slots over the clip, which is exactly what the temporal model has to follow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ABSENT = -2.0
TUSIMPLE_H_SAMPLES = np.arange(160, 720, 10)  # 56 rows of the 1280x720 benchmark


@dataclass
class LaneClip:
    """One clip: ``frames`` [T, H, W, 3] uint8 BGR; ``lanes`` [T, S, R] x in pixels (-2 = absent)."""

    frames: np.ndarray
    lanes: np.ndarray
    h_samples: np.ndarray


@dataclass
class _Scene:
    width_m: float
    n_lines: int
    ego_lane: int
    dashed: list[bool]
    curv: float
    curv_rate: float
    heading: float
    cam_h: float
    f_rel: float
    horizon: float
    speed: float
    lat0: float
    lat_rate: float
    z_far: float
    shadows: list[tuple[float, float, float, float, float]]
    vehicles: list[tuple[float, float, float, tuple[int, int, int]]]
    road_gray: int
    line_color: list[tuple[int, int, int]]
    bright: list[float]
    contrast: float
    noise: float


def _sample_scene(rng: np.random.Generator, frames: int) -> _Scene:
    n_lines = int(rng.integers(2, 6))
    n_lanes = n_lines - 1
    ego = int(rng.integers(0, n_lanes)) if n_lanes > 0 else 0
    width = float(rng.uniform(3.2, 4.0))
    change = rng.random() < 0.3 and n_lanes > 1
    if change:  # drift about one lane width over the clip, towards a lane that exists
        direction = 1.0 if ego < n_lanes - 1 and (ego == 0 or rng.random() < 0.5) else -1.0
        lat_rate = direction * width * float(rng.uniform(0.25, 0.5)) / max(frames - 1, 1)
    else:
        lat_rate = float(rng.normal(0.0, 0.05))
    dashed = [bool(rng.random() < 0.6) if 0 < i < n_lines - 1 else bool(rng.random() < 0.15)
              for i in range(n_lines)]
    shadows = []
    for _ in range(int(rng.integers(0, 4))):
        shadows.append((float(rng.uniform(-12, 12)), float(rng.uniform(6, 45)), float(rng.uniform(1.5, 8)),
                        float(rng.uniform(1.0, 8.0)), float(rng.uniform(0.35, 0.7))))
    vehicles = []
    for _ in range(int(rng.integers(0, 3))):
        lane = int(rng.integers(0, max(n_lanes, 1)))
        vehicles.append((float(lane - ego + 0.5) * width + float(rng.normal(0, 0.3)),
                         float(rng.uniform(8, 45)), float(rng.uniform(1.6, 2.2)),
                         tuple(int(c) for c in rng.integers(20, 230, 3))))
    gray = int(rng.integers(70, 140))
    return _Scene(
        width_m=width, n_lines=n_lines, ego_lane=ego, dashed=dashed,
        curv=float(rng.choice([0.0, 1.0]) * rng.normal(0, 1.2e-3)), curv_rate=float(rng.normal(0, 5e-5)),
        heading=float(rng.normal(0, 0.02)), cam_h=float(rng.uniform(1.3, 1.8)),
        f_rel=float(rng.uniform(0.75, 1.0)), horizon=float(rng.uniform(0.30, 0.40)),
        speed=float(rng.uniform(1.0, 3.0)), lat0=float(rng.uniform(-0.35, 0.35)) * width,
        lat_rate=lat_rate, z_far=float(rng.uniform(60, 110)), shadows=shadows, vehicles=vehicles,
        road_gray=gray,
        line_color=[(int(rng.integers(200, 256)),) * 3 if rng.random() < 0.8 else
                    (int(rng.integers(20, 80)), int(rng.integers(180, 230)), int(rng.integers(200, 250)))
                    for _ in range(n_lines)],
        bright=[float(v) for v in rng.normal(0, 12, frames) + rng.normal(0, 25)],
        contrast=float(rng.uniform(0.7, 1.25)), noise=float(rng.uniform(0, 10)),
    )


def _line_x_road(sc: _Scene, i: int, z: np.ndarray, t: int) -> np.ndarray:
    """Lateral position (m) of line i at distance z, relative to the camera, at frame t."""
    base = (i - sc.ego_lane) * sc.width_m - 0.5 * sc.width_m  # ego lane spans lines ego..ego+1
    lat = sc.lat0 + sc.lat_rate * t
    c = sc.curv + sc.curv_rate * t
    return base - lat + sc.heading * z + 0.5 * c * z**2


def _project(sc: _Scene, xr: np.ndarray, z: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    f = sc.f_rel * w
    return w / 2.0 + f * xr / z, sc.horizon * h + f * sc.cam_h / z


def _z_of_row(sc: _Scene, y: np.ndarray, h: int, w: int) -> np.ndarray:
    f = sc.f_rel * w
    dy = y - sc.horizon * h
    with np.errstate(divide="ignore"):
        return np.where(dy > 0, f * sc.cam_h / np.maximum(dy, 1e-6), np.inf)


def lane_labels(sc: _Scene, t: int, h: int, w: int, rows: np.ndarray, num_slots: int) -> np.ndarray:
    """x (pixels) of each slot's line at each row; -2 where absent, off-image or beyond z_far."""
    z = _z_of_row(sc, rows.astype(np.float64), h, w)
    valid_row = np.isfinite(z) & (z <= sc.z_far)
    out = np.full((num_slots, rows.size), ABSENT, dtype=np.float32)
    z_ref = np.array([6.0])
    near = [float(_line_x_road(sc, i, z_ref, t)[0]) for i in range(sc.n_lines)]
    left = sorted([i for i in range(sc.n_lines) if near[i] < 0], key=lambda i: -near[i])
    right = sorted([i for i in range(sc.n_lines) if near[i] >= 0], key=lambda i: near[i])
    half = num_slots // 2
    slots = {half - 1 - k: i for k, i in enumerate(left[:half])}
    slots.update({half + k: i for k, i in enumerate(right[: num_slots - half])})
    zz = np.where(valid_row, z, 1.0)
    for s, i in slots.items():
        x, _ = _project(sc, _line_x_road(sc, i, zz, t), zz, h, w)
        ok = valid_row & (x >= 0) & (x < w)
        out[s, ok] = x[ok]
    return out


def _render(sc: _Scene, t: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

    img = np.empty((h, w, 3), np.float32)
    hz = round(sc.horizon * h)
    sky = np.linspace(200, 140, max(hz, 1))[:, None, None] * np.array([1.0, 0.95, 0.85])
    img[:hz] = sky[:hz]
    # ground: grass/shoulder everywhere, then the road polygon between the outer lines (+ margin)
    img[hz:] = np.array([60, 95, 80]) * (0.8 + 0.4 * sc.contrast / 1.25)
    z = np.geomspace(1.0, sc.z_far * 1.5, 80)
    left = _line_x_road(sc, 0, z, t) - 1.0
    right = _line_x_road(sc, sc.n_lines - 1, z, t) + 1.0
    lx, ly = _project(sc, left, z, h, w)
    rx, ry = _project(sc, right, z, h, w)
    poly = np.concatenate([np.stack([lx, ly], 1), np.stack([rx, ry], 1)[::-1]]).astype(np.int32)
    road = np.zeros((h, w), np.uint8)
    cv2.fillPoly(road, [np.clip(poly, -10 * w, 10 * w)], 255)
    tex = rng.normal(0, 6, (h // 4 + 1, w // 4 + 1)).astype(np.float32)
    tex = cv2.resize(tex, (w, h), interpolation=cv2.INTER_LINEAR)
    img[road > 0] = (sc.road_gray + tex[road > 0])[:, None]
    # lane markings: quads between consecutive z samples; dashes 3 m on, 9 m off, moving with ego
    travel = sc.speed * t
    zs = np.geomspace(1.5, sc.z_far, 160)
    for i in range(sc.n_lines):
        xc = _line_x_road(sc, i, zs, t)
        x0, y0 = _project(sc, xc - 0.07, zs, h, w)
        x1, _ = _project(sc, xc + 0.07, zs, h, w)
        on = ((zs + travel) % 12.0) < 3.0 if sc.dashed[i] else np.ones_like(zs, bool)
        color = sc.line_color[i]
        for j in range(len(zs) - 1):
            if not on[j]:
                continue
            quad = np.array([[x0[j], y0[j]], [x1[j], y0[j]], [x1[j + 1], y0[j + 1]], [x0[j + 1], y0[j + 1]]])
            cv2.fillConvexPoly(img, np.round(quad * 4).astype(np.int32), color, lineType=cv2.LINE_AA, shift=2)
    # shadows: dark patches fixed to the road (they slide towards the camera as the car moves)
    for xs, zs0, wd, ln, strength in sc.shadows:
        zz0 = zs0 - travel
        if zz0 + ln < 1.5:
            continue
        corners_z = np.array([max(zz0, 1.5), max(zz0, 1.5), zz0 + ln, zz0 + ln])
        corners_x = np.array([xs, xs + wd, xs + wd, xs])
        px, py = _project(sc, corners_x, corners_z, h, w)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(mask, np.stack([px, py], 1).astype(np.int32), 255)
        mask = cv2.GaussianBlur(mask, (0, 0), 2.0)
        img *= (1.0 - strength * (mask.astype(np.float32) / 255.0))[..., None]
    # occluding vehicles: boxes standing on the road, far to near so the near ones cover the far ones
    for xv, zv, wv, col in sorted(sc.vehicles, key=lambda v: -v[1]):
        zv = zv - 0.3 * travel
        if zv < 4:
            continue
        xr = xv + sc.heading * zv + 0.5 * sc.curv * zv**2 - sc.lat0 - sc.lat_rate * t
        (xa, xb), (yb, _) = _project(sc, np.array([xr - wv / 2, xr + wv / 2]), np.array([zv, zv]), h, w)
        f = sc.f_rel * w
        ht = f * 1.5 / zv
        p0 = (int(xa), int(yb - ht))
        p1 = (int(xb), int(yb))
        cv2.rectangle(img, p0, p1, col, -1)
        cv2.rectangle(img, (p0[0], int(yb - 0.25 * ht)), p1, (25, 25, 25), -1)
        cv2.rectangle(img, (int(xa + 0.15 * (xb - xa)), int(yb - 0.9 * ht)),
                      (int(xb - 0.15 * (xb - xa)), int(yb - 0.6 * ht)), (60, 50, 40), -1)
    img = (img - 128.0) * sc.contrast + 128.0 + sc.bright[t]
    if sc.noise > 0:
        img += rng.normal(0, sc.noise, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def generate_clip(rng: np.random.Generator, *, height: int = 256, width: int = 512, frames: int = 3,
                  h_samples: np.ndarray | None = None, num_slots: int = 6) -> LaneClip:
    """Render one clip and its labels at ``h_samples`` (default: TuSimple's rows scaled to ``height``)."""
    if h_samples is None:
        h_samples = np.round(TUSIMPLE_H_SAMPLES * (height / 720.0)).astype(np.int64)
    rows = np.asarray(h_samples)
    sc = _sample_scene(rng, frames)
    imgs = np.stack([_render(sc, t, height, width, rng) for t in range(frames)])
    labels = np.stack([lane_labels(sc, t, height, width, rows, num_slots) for t in range(frames)])
    return LaneClip(imgs, labels, rows)
