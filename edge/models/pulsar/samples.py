"""PULSAR data as the toolchain asks for it: a live jammed stream, seeded frame sets, training crops.

Frames carry their truths in ``meta`` (``range_m``, ``labels``, ``attack``, ``attacked``) and their
``layout``, so the card's postprocess can score any labelled frame the same way in evaluation, in the
gate and in a live ``edge run --source waveform:sim``. Seed streams: training (0, worker), evaluation
(1,), calibration (2,) never meet.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from edge.data.frame import Frame
from edge.data.waveform import Layout, layout
from edge.errors import DataError
from edge.models.pulsar.simulate import Attack, SimFrame, simulate_points, simulate_scene, synthesize


def cfg_layout(cfg: dict[str, Any], sensor: str | None = None) -> Layout:
    """The config's sensor layout (``azimuths``/``bins`` override the sensor's own, e.g. small test frames)."""
    from dataclasses import replace

    lay = layout(sensor or cfg["sensor"])
    return replace(lay, azimuths=int(cfg.get("azimuths", lay.azimuths)), bins=int(cfg.get("bins", lay.bins)))


def frame_meta(f: SimFrame, lay: Layout) -> dict[str, Any]:
    return {"layout": lay, "range_m": f.range_m, "surface_m": f.surface_m, "labels": f.labels,
            "attacked": f.attacked, "attack": f.attack.to_dict(), "intensity": f.intensity}


def _attack(rng: np.random.Generator, mode: str) -> Attack:
    if mode == "off":
        return Attack(on=False)
    if mode == "on":
        return Attack(azimuth_deg=float(rng.uniform(0, 360)))
    return Attack.random(rng)


def synthetic(n: int, hw: tuple[int, int] | None = None, seed: int = 7, *, sensor: str = "VLP16",
              attack: str = "random", azimuths: str | int | None = None) -> Iterator[dict[str, tuple[Any, dict]]]:
    """``n`` jammed frames of random streets: ``attack`` random (the issue's ranges), on (the defaults at a
    random azimuth) or off; ``sensor`` VLP16, HDL32E or HDL64E; ``azimuths`` steps per revolution
    instead of the sensor's. ``hw`` is not used (waveforms have none)."""
    from dataclasses import replace

    if attack not in ("random", "on", "off"):
        raise DataError(f"attack={attack}: use random, on or off")
    lay = layout(sensor)
    if azimuths is not None:
        if not str(azimuths).isdigit() or not 32 <= int(azimuths) <= 8192:
            raise DataError(f"azimuths={azimuths}: a whole number of steps per revolution in 32..8192")
        lay = replace(lay, azimuths=int(azimuths))
    rng = np.random.default_rng(seed)
    for _ in range(n):
        f = simulate_scene(lay, rng, _attack(rng, attack))
        yield {"waveform": (f.waveform, frame_meta(f, lay))}


def samples(cfg: dict[str, Any], role: str, n: int, seed: int = 0) -> list[list[dict[str, Frame]]]:
    """``n`` one-frame samples of jammed random streets at the config's layout."""
    if role not in ("evaluation", "calibration"):
        raise DataError(f"unknown sample role {role!r} (evaluation or calibration)")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1 if role == "evaluation" else 2,)))
    lay = cfg_layout(cfg)
    out = []
    for i in range(n):
        f = simulate_scene(lay, rng, Attack.random(rng))
        out.append([{"waveform": Frame(f.waveform, 0, i, "waveform", frame_meta(f, lay))}])
    return out


def points_samples(cfg: dict[str, Any], xyz: np.ndarray, intensity: np.ndarray, n: int, seed: int = 0,
                   **attack: Any) -> list[list[dict[str, Frame]]]:
    """A real point cloud (KITTI) under ``n`` seeded random attacks (``attack`` fixes some parameters)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
    lay = cfg_layout(cfg)
    out = []
    for i in range(n):
        f = simulate_points(lay, xyz, intensity, Attack.random(rng, **attack), rng)
        out.append([{"waveform": Frame(f.waveform, 0, i, "waveform", frame_meta(f, lay))}])
    return out


def crop(rng: np.random.Generator, lay: Layout, crop_az: int) -> SimFrame:
    """A training crop: ``crop_az`` consecutive azimuth steps of a random street, jammed 3 times in 4 by
    a random jammer whose cone covers (part of) the crop."""
    from edge.models.pulsar.simulate import random_scene, scene_ranges

    a0 = int(rng.integers(0, lay.azimuths))
    steps = (a0 + np.arange(crop_az)) % lay.azimuths
    scene = random_scene(rng)
    rng_m, inten = scene_ranges(scene, lay, steps)
    if rng.random() < 0.75:
        centre = (a0 + crop_az / 2) * 360.0 / lay.azimuths
        att = Attack.random(rng)
        att = Attack(**{**att.__dict__, "azimuth_deg": (centre + rng.uniform(-0.6, 0.6) * att.cone_deg) % 360})
    else:
        att = Attack(on=False)
    return synthesize(lay, rng_m, inten, att, rng, steps)
