"""Calibration and evaluation sets, always disjoint.

A set is a list of feed dicts (input name -> array with the graph's shape, batch 1), made from:

* ``synthetic``: the model card's generator; calibration and evaluation use different seed streams;
* a folder of images or a video file: frames sampled evenly, passed through the card's own
  preprocessing (the same code that runs on the car); items are split by index parity, so the
  calibration and evaluation halves never share a frame;
* ``.npz`` (arrays keyed by input name, first axis = samples) or ``.npy`` (single-input models).

Every problem (empty folder, unreadable file, wrong shape or dtype, fewer samples than asked) is a
DataError naming the source.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import DataError, first_line
from edge.spec import IOSpec

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXT = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"}


@dataclass
class FeedSet:
    """Feeds for one role ("calibration" or "evaluation") and where they came from."""

    feeds: list[dict[str, np.ndarray]]
    source: str
    role: str
    ids: list[str]

    def __len__(self) -> int:
        return len(self.feeds)


def _check(feeds: dict[str, np.ndarray], io: IOSpec, where: str) -> dict[str, np.ndarray]:
    try:
        io.validate_feeds(feeds)
    except Exception as e:
        raise DataError(f"{where}: {e}") from None
    return feeds


def _frames_to_feed(frames: list[np.ndarray], io: IOSpec, preprocess: Callable[[np.ndarray], np.ndarray],
                    where: str) -> dict[str, np.ndarray]:
    """Single-input clip/image models: stack preprocessed frames to the input's rank (batch 1)."""
    if len(io.inputs) != 1:
        raise DataError(f"{where}: image/video calibration needs a single-input model "
                        f"(inputs: {io.input_names}); use an .npz keyed by input name")
    spec = io.inputs[0]
    x = np.stack([preprocess(f) for f in frames])  # [T, C, H, W]
    x = x[None] if spec.rank == 5 else x[:1]  # clip [1, T, C, H, W] or image [1, C, H, W]
    return _check({spec.name: x.astype(spec.dtype)}, io, where)


def _split(items: list[Any], role: str) -> list[Any]:
    """Even indices calibrate, odd ones evaluate: disjoint and both spread over the whole source."""
    return items[0::2] if role == "calibration" else items[1::2]


def from_images(folder: str | os.PathLike[str], io: IOSpec, preprocess: Callable[[np.ndarray], np.ndarray], *,
                size: int, role: str = "calibration", frames_per_sample: int = 1, seed: int = 0) -> FeedSet:
    """Images in ``folder`` (sorted; shuffled with ``seed``), each repeated into a static clip if needed."""
    import cv2

    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: calibration folder does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXT)
    if not files:
        raise DataError(f"{root}: no images ({', '.join(sorted(IMAGE_EXT))}) in calibration folder")
    order = np.random.default_rng(seed).permutation(len(files))
    chosen = _split([files[i] for i in order], role)
    if len(chosen) < size:
        raise DataError(f"{root}: {len(chosen)} images available for {role} (half of {len(files)}), asked for {size}")
    feeds, ids = [], []
    for p in chosen[:size]:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(f"{p}: unreadable image")
        feeds.append(_frames_to_feed([img] * frames_per_sample, io, preprocess, str(p)))
        ids.append(str(p))
    return FeedSet(feeds, str(root), role, ids)


def from_video(path: str | os.PathLike[str], io: IOSpec, preprocess: Callable[[np.ndarray], np.ndarray], *,
               size: int, role: str = "calibration", frames_per_sample: int = 1) -> FeedSet:
    """``2 * size`` evenly spaced windows of ``frames_per_sample`` consecutive frames; halves alternate."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: calibration video not found")
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise DataError(f"{p}: OpenCV cannot open this video")
        frames = []
        while True:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(f)
    finally:
        cap.release()
    windows = len(frames) - frames_per_sample + 1
    if windows < 2 * size:
        raise DataError(f"{p}: {len(frames)} frames give {max(windows, 0)} windows of {frames_per_sample}; "
                        f"need {2 * size} ({size} calibration + {size} evaluation)")
    starts = np.linspace(0, windows - 1, 2 * size).round().astype(int)
    chosen = _split(list(starts), role)[:size]
    feeds = [_frames_to_feed(frames[s:s + frames_per_sample], io, preprocess, f"{p}@{s}") for s in chosen]
    return FeedSet(feeds, str(p), role, [f"{p}@{s}" for s in chosen])


def from_arrays(path: str | os.PathLike[str], io: IOSpec, *, size: int, role: str = "calibration") -> FeedSet:
    """``.npz`` keyed by input name or ``.npy`` for one input; first axis = samples (each fed as batch 1)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: calibration file not found")
    try:
        data = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{p}: not a readable .npy/.npz ({first_line(e, 120)})") from None
    if isinstance(data, np.ndarray):
        if len(io.inputs) != 1:
            raise DataError(f"{p}: a .npy holds one array but the model takes {io.input_names}; use .npz")
        arrays = {io.inputs[0].name: data}
    else:
        arrays = {k: data[k] for k in data.files}
        missing = [n for n in io.input_names if n not in arrays]
        if missing:
            raise DataError(f"{p}: missing arrays for inputs {missing} (has {sorted(arrays)})")
    n = {a.shape[0] if a.ndim else 0 for a in arrays.values()}
    if len(n) != 1:
        raise DataError(f"{p}: arrays have different sample counts {sorted(n)}")
    total = n.pop()
    idx = _split(list(range(total)), role)
    if len(idx) < size:
        raise DataError(f"{p}: {len(idx)} samples available for {role} (half of {total}), asked for {size}")
    feeds = [_check({k: arrays[k][i:i + 1] for k in io.input_names}, io, f"{p}[{i}]") for i in idx[:size]]
    return FeedSet(feeds, str(p), role, [f"{p}[{i}]" for i in idx[:size]])


def from_synthetic(make: Callable[[np.random.Generator], dict[str, np.ndarray]], io: IOSpec, *, size: int,
                   role: str = "calibration", seed: int = 0) -> FeedSet:
    """``make(rng)`` -> one feed; calibration and evaluation draw from different seed streams."""
    stream = 0 if role == "calibration" else 1
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7, stream)))
    feeds = [_check(make(rng), io, f"synthetic {role} sample {i}") for i in range(size)]
    return FeedSet(feeds, f"synthetic(seed={seed})", role, [f"synthetic/{role}/{seed}/{i}" for i in range(size)])


def load_set(src: str, io: IOSpec, *, size: int, role: str = "calibration", seed: int = 0,
             preprocess: Callable[[np.ndarray], np.ndarray] | None = None, frames_per_sample: int = 1,
             synthetic: Callable[[np.random.Generator], dict[str, np.ndarray]] | None = None) -> FeedSet:
    """Dispatch on ``src``: "synthetic", a folder of images, a video file, or .npz/.npy."""
    if size < 1:
        raise DataError(f"calibration size must be >= 1, got {size}")
    if src == "synthetic":
        if synthetic is None:
            raise DataError("this model has no synthetic generator; pass a folder, video or .npz")
        return from_synthetic(synthetic, io, size=size, role=role, seed=seed)
    p = Path(src)
    if p.is_dir():
        if preprocess is None:
            raise DataError(f"{p}: image calibration needs the model card's preprocessing")
        return from_images(p, io, preprocess, size=size, role=role, frames_per_sample=frames_per_sample, seed=seed)
    if p.suffix.lower() in (".npz", ".npy"):
        return from_arrays(p, io, size=size, role=role)
    if p.suffix.lower() in VIDEO_EXT:
        if preprocess is None:
            raise DataError(f"{p}: video calibration needs the model card's preprocessing")
        return from_video(p, io, preprocess, size=size, role=role, frames_per_sample=frames_per_sample)
    if not p.exists():
        raise DataError(f"{src}: calibration source not found (use synthetic, a folder, a video or .npz/.npy)")
    raise DataError(f"{src}: unsupported calibration source (use synthetic, a folder, a video or .npz/.npy)")
