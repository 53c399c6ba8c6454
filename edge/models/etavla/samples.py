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


#: frames per synthetic episode at most (each is rendered whole before its first frame is delivered)
MAX_EPISODE_FRAMES = 64


def synthetic(n: int, hw: tuple[int, int] | None = None, seed: int = 7, command: str | None = None,
              frames: int | str = 4) -> Iterator[dict[str, tuple[Any, dict[str, Any]]]]:
    """``n`` frame sets: consecutive episodes of ``frames`` frames (the shipped configs' T; ``synthetic:N,frames=6``
    for a model of another T), at 2x the default model input unless ``hw``. Each episode's front frames carry its
    number as ``meta["sequence"]``, so the loop starts the program's history afresh at each (it scored an episode's
    labelled frame on a history holding the previous episode's frames)."""
    if isinstance(frames, str):  # as the source spec's text
        if not (frames.isascii() and frames.isdigit()):
            raise DataError(f"frames={frames}: a whole number of frames per episode (1..{MAX_EPISODE_FRAMES})")
        frames = int(frames)
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= MAX_EPISODE_FRAMES:
        raise DataError(f"frames={frames!r}: a whole number of frames per episode (1..{MAX_EPISODE_FRAMES})")
    rng = _rng(seed, "synthetic")
    size = tuple(hw) if hw else (128, 256)
    done = episode = 0
    while done < n:
        for fs in episode_frames(rng, frames, size, command)[: n - done]:
            fs["front"][1]["sequence"] = episode
            yield fs
            done += 1
        episode += 1


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
