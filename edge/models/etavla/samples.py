"""ETA-VLA data as the toolchain asks for it: a synthetic stream of camera frame sets and seeded episodes.

An episode is T frames of three views (the newest last); its instruction rides in the front camera's meta
on every frame, its labels (:func:`~edge.models.etavla.world.labels`) on the newest frame only, so the
metric scores the step that saw the whole history. Evaluation and calibration draw from disjoint seed
streams; training from a third (``train.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from edge.data.frame import Frame
from edge.errors import DataError
from edge.models.etavla.card import VIEWS
from edge.models.etavla.world import DT_FRAME, labels, render_episode, sample_episode


def _rng(seed: int, role: str) -> np.random.Generator:
    key = {"evaluation": 1, "calibration": 7, "synthetic": 3}[role]
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key,)))


def episode_frames(rng: np.random.Generator, frames: int, hw: tuple[int, int],
                   command: str | None = None) -> list[dict[str, tuple[np.ndarray, dict[str, Any]]]]:
    """One episode as ``frames`` frame sets {sensor: (image, meta)}, the newest last and labelled."""
    ep = sample_episode(rng, command=command)
    imgs = render_episode(ep, rng, frames=frames, views=len(VIEWS), hw=hw)
    ins = {"command": ep.command, "text": ep.text}
    out = []
    for t in range(frames):
        meta: dict[str, Any] = {"instruction": ins}
        if t == frames - 1:
            meta["gt"] = labels(ep)
        out.append({s: (imgs[t, v], meta if s == "front" else {}) for v, s in enumerate(VIEWS)})
    return out


def synthetic(n: int, hw: tuple[int, int] | None = None, seed: int = 7,
              command: str | None = None) -> Iterator[dict[str, tuple[Any, dict[str, Any]]]]:
    """``n`` frame sets: consecutive episodes of 4 frames (at 2x the default model input unless ``hw``)."""
    rng = _rng(seed, "synthetic")
    size = tuple(hw) if hw else (128, 256)
    done = 0
    while done < n:
        for fs in episode_frames(rng, 4, size, command)[: n - done]:
            yield fs
            done += 1


def samples(cfg: dict[str, Any], role: str, n: int, seed: int) -> list[list[dict[str, Frame]]]:
    """``n`` episodes of T frame sets, rendered at the model's input size."""
    if role not in ("evaluation", "calibration"):
        raise DataError(f"sample role '{role}': use evaluation or calibration")
    rng = _rng(seed, role)
    hw = tuple(cfg["image_hw"])
    out = []
    for i in range(n):
        ep = episode_frames(rng, int(cfg["frames"]), hw)
        out.append([{s: Frame(img, int(t * DT_FRAME * 1e9), t, s, dict(meta)) for s, (img, meta) in fs.items()}
                    for t, fs in enumerate(ep)])
        del i
    return out
