"""Synthetic camera-LiDAR rigs (numpy, seeded): one street scene, a pinhole image rendered from it and a
LiDAR scan ray-cast against the same scene with a real sensor's beam pattern, and the rig's truth.

The scene is :func:`edge.data.scene.random_scene` (the one PULSAR-Net's waveforms come from), in the
LiDAR frame. The camera sits near the LiDAR (offsets and a small mounting rotation drawn per rig, as
on real vehicles: KITTI's camera is ~0.27 m ahead of and 0.08 m below its Velodyne) and its
intrinsics are drawn around a KITTI-like field of view. The image is what the extrinsic must be
recovered from, so it carries what real images carry at the places the scan measures: object
silhouettes against sky and road, shading by surface normal and sun, textures fixed to the surfaces
(facade windows, road patches) so they move with the geometry, distance haze, blur and sensor noise.
Colours are drawn per object, so nothing but geometry is shared between image and scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.data.frame import POINT_DTYPE
from edge.data.rig import Rig
from edge.data.scene import GROUND, NONE, Scene, random_scene
from edge.data.se3 import euler_xyz
from edge.data.waveform import layout

#: LiDAR axes (x forward, y left, z up) -> camera axes (x right, y down, z forward)
LIDAR_TO_CAM_AXES = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


@dataclass(frozen=True)
class RigSample:
    """A rendered image (BGR uint8), its scan (POINT_DTYPE, LiDAR frame) and the true rig."""

    image: np.ndarray
    points: np.ndarray
    rig: Rig


def random_camera(rng: np.random.Generator, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(P [3, 4], T_lidar_to_cam [4, 4]) of a forward camera near the LiDAR."""
    h, w = hw
    fx = w * rng.uniform(0.45, 0.75)
    fy = fx * rng.uniform(0.9, 1.2)
    cx, cy = w * rng.uniform(0.47, 0.53), h * rng.uniform(0.42, 0.55)
    P = np.array([[fx, 0, cx, 0], [0, fy, cy, 0], [0, 0, 1, 0]], np.float64)
    mount = euler_xyz(np.deg2rad([rng.uniform(-3, 3), rng.uniform(-5, 5), rng.uniform(-10, 10)]))  # in LiDAR axes
    R = LIDAR_TO_CAM_AXES @ mount.T  # camera looks along the mounted forward axis
    centre = np.array([rng.uniform(-0.3, 0.6), rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.2)])
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = -R @ centre
    return P, T


def render(scene: Scene, P: np.ndarray, T: np.ndarray, hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """The camera's BGR image of ``scene``."""
    import cv2

    h, w = hw
    K = P[:, :3]
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    R = T[:3, :3]
    origin = -R.T @ T[:3, 3]
    d = rays @ R  # camera -> LiDAR frame (R^T d)
    hits = scene.cast(d, origin)
    pos = origin + d * np.nan_to_num(hits.t)[..., None]
    n_prim = scene.primitives
    colours = rng.uniform(40, 230, (n_prim, 3))
    colours[GROUND] = rng.uniform(60, 120) * rng.uniform(0.9, 1.1, 3)
    sun = np.array([np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a), rng.uniform(0.4, 2.5)])
    sun /= np.linalg.norm(sun)
    ambient = rng.uniform(0.35, 0.6)
    shade = ambient + (1 - ambient) * np.clip(hits.normal @ sun, 0, None)
    ids = hits.ids
    base = colours[np.clip(ids, 0, n_prim - 1)]
    # surface textures fixed to the geometry: facade windows on tall boxes, patches on the road
    tex = np.ones((h, w))
    tall = np.zeros(n_prim, bool)
    tall[1:1 + len(scene.boxes)] = scene.boxes[:, 5] > 2.5
    fac = tall[np.clip(ids, 0, n_prim - 1)] & (ids != NONE)
    win = (np.sin(pos[..., 0] * 2.1 + pos[..., 1] * 2.1) > 0.3) & (np.sin((pos[..., 2] - scene.ground_z) * 2.4) > 0.2)
    tex[fac & win] = rng.uniform(0.45, 0.7)
    road = ids == GROUND
    cell = (np.floor(pos[..., 0] * 1.3).astype(np.int64) * 73856093) ^ (np.floor(pos[..., 1] * 1.3).astype(np.int64)
                                                                       * 19349663)
    tex[road] *= 0.85 + 0.3 * ((cell[road] % 1000) / 1000.0)
    img = base * (shade * tex)[..., None]
    sky_top, sky_bottom = rng.uniform(150, 255, 3), rng.uniform(170, 255, 3)
    frac = (np.arange(h)[:, None, None] / max(h - 1, 1))
    sky = sky_top * (1 - frac) + sky_bottom * frac
    none = ids == NONE
    img[none] = np.broadcast_to(sky, img.shape)[none]
    haze = np.exp(-np.nan_to_num(hits.t, nan=1e9) / rng.uniform(80, 250))[..., None]
    img = img * haze + sky * (1 - haze)
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), rng.uniform(0.3, 1.0))
    img += rng.normal(0, rng.uniform(1, 6), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def scan(scene: Scene, rng: np.random.Generator, sensor: str = "HDL64E", azimuths: int = 2048,
         sector_deg: float = 150.0, max_range: float = 80.0, noise_m: float = 0.02) -> np.ndarray:
    """A LiDAR scan of ``scene`` (POINT_DTYPE): the sensor's beams over ``sector_deg`` around forward
    (the part a forward camera can see, with room for a wrong extrinsic), range noise ``noise_m``."""
    from dataclasses import replace

    lay = replace(layout(sensor), azimuths=azimuths)
    az = lay.azimuth_deg()
    keep = np.flatnonzero(np.abs(((az + 180) % 360) - 180) <= sector_deg / 2)
    dirs = lay.directions()[:, keep]
    hits = scene.cast(dirs)
    r = hits.t + rng.normal(0, noise_m, hits.t.shape)
    ok = np.isfinite(r) & (r < max_range) & (r > 1.0)
    xyz = dirs[ok] * r[ok][:, None]
    pts = np.zeros(len(xyz), POINT_DTYPE)
    pts["x"], pts["y"], pts["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    pts["intensity"] = hits.intensity[ok]
    pts["ring"] = np.broadcast_to(np.arange(lay.channels)[:, None], hits.t.shape)[ok]
    return pts


def _forward_street(scene: Scene, rng: np.random.Generator) -> Scene:
    """``scene`` with more of it where a forward camera looks (cars, boxes, poles 4-45 m ahead) and
    nothing within a few metres of the sensors (the camera is never inside an object)."""
    h = -scene.ground_z
    extra_b, extra_c = [], []
    for _ in range(int(rng.integers(3, 9))):
        x = rng.uniform(5, 45)
        y = rng.uniform(-0.7, 0.7) * x
        if rng.random() < 0.7:  # a car
            extra_b.append([x, y, -h, rng.uniform(3.8, 4.9), rng.uniform(1.6, 2.0), rng.uniform(1.35, 1.8),
                            rng.uniform(0, np.pi), rng.uniform(0.2, 0.9)])
        else:  # a box / kiosk / barrier
            extra_b.append([x, y, -h, rng.uniform(0.5, 3), rng.uniform(0.5, 3), rng.uniform(0.5, 3),
                            rng.uniform(0, np.pi), rng.uniform(0.2, 0.9)])
    for _ in range(int(rng.integers(2, 8))):
        x = rng.uniform(4, 40)
        extra_c.append([x, rng.uniform(-0.8, 0.8) * x, rng.uniform(0.05, 0.35), rng.uniform(2.5, 9),
                        rng.uniform(0.3, 0.9)])
    b = np.concatenate([scene.boxes, np.array(extra_b).reshape(-1, 8)])
    c = np.concatenate([scene.cylinders, np.array(extra_c).reshape(-1, 5)])
    clear = ~((np.abs(b[:, 0]) < 6) & (np.abs(b[:, 1]) < 3))
    return Scene(b[clear], c[np.hypot(c[:, 0], c[:, 1]) > 3], scene.ground_z, scene.ground_intensity)


def random_rig(rng: np.random.Generator, hw: tuple[int, int], sensor: str | None = None,
               azimuths: int = 2048) -> RigSample:
    """One synthetic rig: a random street, camera and sensor (HDL-64E 3 times in 4, else HDL-32E)."""
    scene = _forward_street(random_scene(rng), rng)
    P, T = random_camera(rng, hw)
    sensor = sensor or ("HDL64E" if rng.random() < 0.75 else "HDL32E")
    image = render(scene, P, T, hw, rng)
    points = scan(scene, rng, sensor, azimuths)
    return RigSample(image, points, Rig(P, T, tuple(hw), "synthetic"))
