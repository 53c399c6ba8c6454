"""INT8 calibration samples, and the per-graph feed sets recorded from them.

A calibration *sample* is what a family's program takes for one input: a short sequence of step feeds
(what ``card.preprocess`` makes of one set of frames). Calibrating a program means running its fp32
runtimes over the samples and recording what every graph receives (:class:`FeedSet` per graph); inner
graphs (a temporal head's ring buffer, an iteration step's current estimate) get realistic inputs that
no image folder could provide directly. Samples come from:

* ``synthetic``: the family's seeded generator (``card.data.samples(cfg, "calibration", ...)``), a seed
  stream disjoint from the held-out evaluation stream;
* a folder of images (each a one-step sample: a static scene) or a video (windows of
  ``card.data.sequence_length(cfg)`` consecutive frames), through the card's own preprocessing, for
  families whose only required sensor is the one the frames come from; items are split by index
  parity, so the calibration and evaluation halves of one source never share a frame;
* ``.npz`` keyed by step-feed name (``.npy`` for a single one), first axis = samples, an optional
  second axis = steps of a sequence.

Every problem (empty folder, unreadable file, wrong shape or dtype, fewer samples than asked) is a
DataError naming the source.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.data.frame import Frame
from edge.errors import DataError, first_line

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXT = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"}

Feeds = dict[str, np.ndarray]


@dataclass
class FeedSet:
    """Feeds of one graph for one role ("calibration" or "evaluation") and where they came from."""

    feeds: list[Feeds]
    source: str
    role: str
    ids: list[str]

    def __len__(self) -> int:
        return len(self.feeds)


@dataclass
class SampleSet:
    """Calibration samples: each a sequence of step feeds for the program's runner."""

    sequences: list[list[Feeds]]
    source: str
    role: str
    ids: list[str]

    def __len__(self) -> int:
        return len(self.sequences)


def _split(items: list[Any], role: str) -> list[Any]:
    """Even indices calibrate, odd ones evaluate: disjoint and both spread over the whole source."""
    return items[0::2] if role == "calibration" else items[1::2]


def _check_step(feeds: Mapping[str, np.ndarray], ref: Mapping[str, np.ndarray] | None, where: str) -> Feeds:
    """Step feeds must match what the card's preprocessing makes (names, dtype, shape)."""
    if ref is None:
        return dict(feeds)
    missing = [k for k in ref if k not in feeds]
    if missing:
        raise DataError(f"{where}: missing step feeds {missing} (has {sorted(feeds)})")
    for k, r in ref.items():
        a = feeds[k]
        if a.dtype != r.dtype:
            raise DataError(f"{where}: '{k}' is {a.dtype}, the model takes {r.dtype}")
        if a.shape != r.shape:
            raise DataError(f"{where}: '{k}' has shape {list(a.shape)}, the model takes {list(r.shape)}")
    return {k: feeds[k] for k in ref}


def _primary(card: Any, where: str) -> str:
    extra = [s for s in card.sensors.required[1:]]
    if extra:
        raise DataError(f"{where}: model '{card.name}' needs sensors {list(card.sensors.required)}; images or "
                        "a video give only one: calibrate with synthetic or an .npz of step feeds")
    return card.sensors.primary


def _preprocess(card: Any, cfg: dict[str, Any], images: list[np.ndarray], where: str) -> list[Feeds]:
    sensor = _primary(card, where)
    try:
        return [card.preprocess({sensor: Frame(img, 0, i, sensor, {})}, cfg) for i, img in enumerate(images)]
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{where}: preprocessing failed ({type(e).__name__}: {first_line(e)})") from None


def from_synthetic(card: Any, cfg: dict[str, Any], *, size: int, role: str = "calibration",
                   seed: int = 0) -> SampleSet:
    """The family's own seeded samples (calibration and evaluation streams never meet)."""
    if card.data is None:
        raise DataError(f"model '{card.name}' has no synthetic data; pass a folder, video or .npz")
    seqs = [[card.preprocess(frames, cfg) for frames in sample]
            for sample in card.data.samples(cfg, role, size, seed)]
    return SampleSet(seqs, f"synthetic(seed={seed})", role, [f"synthetic/{role}/{seed}/{i}" for i in range(size)])


def from_images(folder: str | os.PathLike[str], card: Any, cfg: dict[str, Any], *, size: int,
                role: str = "calibration", seed: int = 0) -> SampleSet:
    """Images in ``folder`` (sorted, shuffled with ``seed``), each a one-step sample."""
    import cv2

    root = Path(folder)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXT)
    if not files:
        raise DataError(f"{root}: no images ({', '.join(sorted(IMAGE_EXT))}) in calibration folder")
    order = np.random.default_rng(seed).permutation(len(files))
    chosen = _split([files[i] for i in order], role)
    if len(chosen) < size:
        raise DataError(f"{root}: {len(chosen)} images available for {role} (half of {len(files)}), asked for {size}")
    seqs, ids = [], []
    for p in chosen[:size]:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(f"{p}: unreadable image")
        seqs.append(_preprocess(card, cfg, [img], str(p)))
        ids.append(str(p))
    return SampleSet(seqs, str(root), role, ids)


def from_video(path: str | os.PathLike[str], card: Any, cfg: dict[str, Any], *, size: int,
               role: str = "calibration") -> SampleSet:
    """``2 * size`` evenly spaced windows of consecutive frames; the halves alternate."""
    import cv2

    p = Path(path)
    steps = card.data.sequence_length(cfg) if card.data is not None else 1
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
    windows = len(frames) - steps + 1
    if windows < 2 * size:
        raise DataError(f"{p}: {len(frames)} frames give {max(windows, 0)} windows of {steps}; "
                        f"need {2 * size} ({size} calibration + {size} evaluation)")
    starts = np.linspace(0, windows - 1, 2 * size).round().astype(int)
    chosen = _split(list(starts), role)[:size]
    seqs = [_preprocess(card, cfg, frames[s:s + steps], f"{p}@{s}") for s in chosen]
    return SampleSet(seqs, str(p), role, [f"{p}@{s}" for s in chosen])


def from_arrays(path: str | os.PathLike[str], ref: Mapping[str, np.ndarray] | None, *, size: int,
                role: str = "calibration") -> SampleSet:
    """``.npz`` keyed by step-feed name or ``.npy`` for one; [samples, ...] or [samples, steps, ...]."""
    p = Path(path)
    try:
        data = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{p}: not a readable .npy/.npz ({first_line(e, 120)})") from None
    names = list(ref) if ref is not None else None
    if isinstance(data, np.ndarray):
        if names is not None and len(names) != 1:
            raise DataError(f"{p}: a .npy holds one array but the model's steps take {names}; use .npz")
        arrays = {(names or ["input"])[0]: data}
    else:
        try:
            arrays = {k: data[k] for k in data.files}
        except ValueError as e:  # an object array needs pickle, which we never allow
            raise DataError(f"{p}: {first_line(e, 120)}") from None
        if names is not None:
            missing = [n for n in names if n not in arrays]
            if missing:
                raise DataError(f"{p}: missing arrays for step feeds {missing} (has {sorted(arrays)})")
            arrays = {n: arrays[n] for n in names}
    n = {a.shape[0] if a.ndim else 0 for a in arrays.values()}
    if len(n) != 1:
        raise DataError(f"{p}: arrays have different sample counts {sorted(n)}")
    total = n.pop()
    idx = _split(list(range(total)), role)
    if len(idx) < size:
        raise DataError(f"{p}: {len(idx)} samples available for {role} (half of {total}), asked for {size}")

    def steps_of(i: int) -> list[Feeds]:
        # one step: [samples, *step shape without batch]; a sequence: [samples, steps, *...]
        seq = ref is not None and all(arrays[k].ndim == r.ndim + 1 for k, r in ref.items())
        if seq:
            count = arrays[next(iter(arrays))].shape[1]
            return [_check_step({k: a[i, s][None] for k, a in arrays.items()}, ref, f"{p}[{i}, {s}]")
                    for s in range(count)]
        return [_check_step({k: a[i:i + 1] for k, a in arrays.items()}, ref, f"{p}[{i}]")]

    seqs = [steps_of(i) for i in idx[:size]]
    return SampleSet(seqs, str(p), role, [f"{p}[{i}]" for i in idx[:size]])


def load_samples(src: str, card: Any, cfg: dict[str, Any], *, size: int, role: str = "calibration",
                 seed: int = 0) -> SampleSet:
    """Dispatch on ``src``: "synthetic", a folder of images, a video file, or .npz/.npy."""
    if size < 1:
        raise DataError(f"calibration size must be >= 1, got {size}")
    if src == "synthetic":
        return from_synthetic(card, cfg, size=size, role=role, seed=seed)
    p = Path(src)
    if p.is_dir():
        return from_images(p, card, cfg, size=size, role=role, seed=seed)
    if not p.exists():
        raise DataError(f"{src}: calibration source not found (use synthetic, a folder, a video or .npz/.npy)")
    if p.suffix.lower() in (".npz", ".npy"):
        ref = None
        if card.data is not None:
            ref = card.preprocess(card.data.samples(cfg, "calibration", 1, seed)[0][0], cfg)
        return from_arrays(p, ref, size=size, role=role)
    if p.suffix.lower() in VIDEO_EXT:
        if not p.is_file():
            raise DataError(f"{p}: calibration video is not a file")
        return from_video(p, card, cfg, size=size, role=role)
    raise DataError(f"{src}: unsupported calibration source (use synthetic, a folder, a video or .npz/.npy)")


def check_source(src: str) -> None:
    """Refuse a calibration source that cannot work before any export work starts."""
    if src == "synthetic":
        return
    p = Path(src)
    if not p.exists():
        raise DataError(f"{src}: calibration source not found (use synthetic, a folder, a video or .npz/.npy)")
    if p.is_file() and p.suffix.lower() not in (".npz", ".npy", *VIDEO_EXT):
        raise DataError(f"{src}: unsupported calibration source (use synthetic, a folder, a video or .npz/.npy)")
