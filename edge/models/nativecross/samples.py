"""NativeCross data as the toolchain asks for it: a live stream of synthetic rigs with a wrong starting
extrinsic, seeded sample sets, and real KITTI frames under seeded perturbations.

Frames carry the starting guess as ``meta["rig"]`` (what ``edge run --calib`` would give) and the truth
as ``meta["rig_true"]``, so the card's postprocess scores any labelled frame the same way in
evaluation, in the INT8 gate and in a live ``edge run --source synthetic``. Seed streams: training
(0, worker), evaluation (1,), calibration (2,), KITTI perturbations (3,) never meet.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge.data.frame import Frame
from edge.data.rig import Rig, principal_point_problem
from edge.data.se3 import perturbation
from edge.errors import DataError
from edge.models.contract import LabelledData, LazySamples

#: the synthetic stream's camera size (KITTI's colour camera)
STREAM_HW = (375, 1242)


def perturbed(rig: Rig, rng: np.random.Generator, max_deg: float, max_m: float) -> Rig:
    """``rig`` with its extrinsic moved by a seeded random perturbation (applied in the camera frame)."""
    return moved(rig, perturbation(rng, max_deg, max_m), max_deg, max_m)


def moved(rig: Rig, delta: np.ndarray, max_deg: float, max_m: float) -> Rig:
    """``rig`` with its extrinsic moved by ``delta`` (4x4, camera frame), drawn within ``max_deg`` / ``max_m``."""
    return Rig(rig.P, delta @ rig.T_lidar_to_cam, rig.image_size,
               f"{rig.source} perturbed {max_deg:g} deg / {max_m * 100:g} cm")


def _frames(image: np.ndarray, points: np.ndarray, start: Rig, truth: Rig, i: int,
            extra: dict[str, Any] | None = None) -> dict[str, Frame]:
    meta = {"rig": start, "rig_true": truth, **(extra or {})}
    return {"camera": Frame(image, 0, i, "camera", dict(meta)), "lidar": Frame(points, 0, i, "lidar", dict(meta))}


def _float(name: str, value: Any, lo: float, hi: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name}={value}: not a number") from None
    if not lo <= v <= hi:
        raise DataError(f"{name}={value}: use {lo:g}..{hi:g}")
    return v


def synthetic(n: int, hw: tuple[int, int] | None = None, seed: int = 7, *, deg: Any = 10.0,
              cm: Any = 25.0) -> Iterator[dict[str, tuple[Any, dict]]]:
    """``n`` synthetic rigs (camera ``hw``, default KITTI's 375x1242) whose starting extrinsic is off by
    a random perturbation within ``deg`` degrees / ``cm`` centimetres per axis."""
    from edge.models.nativecross.rigsim import random_rig

    max_deg, max_m = _float("deg", deg, 0, 45), _float("cm", cm, 0, 200) / 100.0
    rng = np.random.default_rng(seed)
    for _ in range(n):
        s = random_rig(rng, hw or STREAM_HW)
        start = perturbed(s.rig, rng, max_deg, max_m)
        yield {"camera": (s.image, {"rig": start, "rig_true": s.rig}),
               "lidar": (s.points, {"rig": start, "rig_true": s.rig})}


def render_hw(cfg: dict[str, Any]) -> tuple[int, int]:
    """Evaluation rigs are rendered at twice the model's input (then resized, as a real camera's are)."""
    h, w = cfg["input_hw"]
    return 2 * h, 2 * w


def samples(cfg: dict[str, Any], role: str, n: int, seed: int = 0) -> list[list[dict[str, Frame]]]:
    """``n`` one-frame samples: synthetic rigs, perturbed within the config's evaluation range."""
    from edge.models.nativecross.rigsim import random_rig

    if role not in ("evaluation", "calibration"):
        raise DataError(f"unknown sample role {role!r} (evaluation or calibration)")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1 if role == "evaluation" else 2,)))
    out = []
    for i in range(n):
        s = random_rig(rng, render_hw(cfg))
        start = perturbed(s.rig, rng, float(cfg["eval_max_deg"]), float(cfg["eval_max_m"]))
        out.append([_frames(s.image, s.points, start, s.rig, i)])
    return out


def kitti_samples(folder: str | Path, index: str, n: int, max_deg: float, max_m: float, seed: int = 0
                  ) -> list[list[dict[str, Frame]]]:
    """A real KITTI frame (object layout or a raw drive's) under ``n`` seeded perturbations of its calib."""
    return list(kitti_lazy(folder, [index], n, max_deg, max_m, [seed]))


def kitti_lazy(folder: str | Path, indices: list[str], n: int, max_deg: float, max_m: float, seeds: list[int]
               ) -> LazySamples:
    """Each of ``indices`` under ``n`` seeded perturbations (frame k's from ``seeds[k]``), a frame's image, scan and
    calibration read when one of its samples is asked for (the last frame read is kept, so its ``n`` samples in
    turn read it once): the folder's layout and each index's files are checked up front, the perturbations drawn
    up front, so a sample is the same whenever it is loaded."""
    from edge.data.kitti import kitti_layout, read_bin, read_image

    layout = kitti_layout(folder)
    for index in indices:
        layout.indices(index)
    deltas = []
    for seed in seeds:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
        deltas.append([perturbation(rng, max_deg, max_m) for _ in range(n)])
    held: dict[str, Any] = {}

    def load(j: int) -> list[dict[str, Frame]]:
        k, i = divmod(j, n)
        index = indices[k]
        if held.get("index") != index:
            held.clear()
            image = read_image(layout.image_path(index))
            base = layout.rig(index)
            if base.image_size is not None and tuple(base.image_size) != image.shape[:2]:
                # the truth would pair this image with a projection for another size (edge run skips such a frame)
                h, w = base.image_size
                raise DataError(f"{layout.image_path(index)}: the image is {image.shape[1]}x{image.shape[0]} but "
                                f"the folder's calibration is for {w}x{h} images")
            problem = principal_point_problem(base.P, image.shape[:2], sized=base.image_size is not None)
            if problem:
                raise DataError(f"{layout.image_path(index)}: the folder's calibration: {problem}")
            held.update(index=index, image=image, points=read_bin(layout.scan_path(index)),
                        truth=Rig(base.P, base.T_lidar_to_cam, image.shape[:2], base.source))
        start = moved(held["truth"], deltas[k][i], max_deg, max_m)
        return [_frames(held["image"], held["points"], start, held["truth"], i,
                        {"file": str(layout.image_path(index))})]

    return LazySamples(len(indices) * n, load)


#: what ``edge val --data`` takes for this family (the card's LabelledData.formats)
LABELLED_FORMATS = ("a KITTI object or raw-drive folder whose own calibration is the truth, each frame started from "
                    "seeded perturbations of it: deg=10 (max rotation per axis), cm=25 (max translation per axis), "
                    "starts=10 (perturbations per frame), seed=0, index=NAME (one frame; default all)")


def read_labelled(path: str | Path, cfg: dict[str, Any], *, deg: Any = 10.0, cm: Any = 25.0, starts: Any = 10,
                  seed: Any = 0, index: str | None = None) -> LazySamples:
    """Real labelled rigs for ``edge val``: every frame of a KITTI folder (or ``index``) under ``starts`` seeded
    perturbations within ``deg`` / ``cm`` per axis (the paper's protocol; the folder's calibration is the truth).
    The k-th frame's perturbations come from seed ``seed + k``, so frames do not share their starts."""
    from edge.data.kitti import kitti_layout

    max_deg, max_m = _float("deg", deg, 0, 45), _float("cm", cm, 0, 200) / 100.0
    n, first = int(_float("starts", starts, 1, 10000)), int(_float("seed", seed, 0, 2**31 - 1))
    if float(starts) != n or float(seed) != first:
        raise DataError(f"starts={starts}, seed={seed}: whole numbers")
    layout = kitti_layout(path)
    indices = layout.indices(index)
    if index is None:  # frames without a scan or a calibration are not scored: said, as `edge run` says it
        import logging

        for n_left, line in layout.unpaired_lines(str(path), "scored").values():
            if n_left:
                logging.getLogger("edge.data").warning("%s", line)
    return kitti_lazy(path, indices, n, max_deg, max_m, [first + k for k in range(len(indices))])


#: the card's reader of real labelled data (``edge val --data PATH``)
LABELLED = LabelledData(LABELLED_FORMATS, read_labelled)
