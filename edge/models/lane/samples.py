"""Lane data as the toolchain asks for it: the synthetic drive, seeded sample sets, real TuSimple frames.

Every frame carries its labels in ``meta["gt"]`` (``lanes`` at ``h_samples``, TuSimple format), so
the card's postprocess and metric score a synthetic stream, a held-out set and real frames the same
way. Sample sets are sequences of T frames (one clip): the runner is reset before each and the last
frame is scored. Evaluation clips are rendered at TuSimple's 1280x720 (the number a user of the bundle
gets after the card's own resize); calibration clips at the model's input size, from another seed stream.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge.data.frame import Frame
from edge.errors import DataError
from edge.models.contract import LabelledData, LazySamples
from edge.models.lane.synthetic import TUSIMPLE_H_SAMPLES, generate_clip

EVAL_HW = (720, 1280)
#: the most ego-relative lane slots the synthetic source draws (the shipped configs use 6)
MAX_SLOTS = 12
#: the seed the held-out evaluation stream started from when the shipped checkpoint was scored
EVAL_SEED = 1234


def eval_rng(seed: int) -> np.random.Generator:
    """The held-out stream; training draws from spawn key (0, worker), so the two never meet."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))


def calib_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7, 0)))


def _gt(lanes_px: np.ndarray, rows: np.ndarray) -> dict[str, Any]:
    return {"lanes": [[float(x) for x in lane] for lane in lanes_px if (lane >= 0).sum() >= 2],
            "h_samples": [int(r) for r in rows]}


def synthetic(n: int, hw: tuple[int, int] | None = None, seed: int = 7,
              slots: int | str = 6) -> Iterator[dict[str, tuple[Any, dict[str, Any]]]]:
    """One continuous synthetic drive of ``n`` camera frames with exact lane labels (TuSimple rows);
    ``slots`` (also as the source spec's text, ``synthetic:N,slots=4``) lanes at most."""
    if isinstance(slots, str):
        if not (slots.isascii() and slots.isdigit()):
            raise DataError(f"slots={slots}: a whole number of lanes (2..{MAX_SLOTS})")
        slots = int(slots)
    if not 2 <= slots <= MAX_SLOTS:
        raise DataError(f"slots={slots}: use 2..{MAX_SLOTS}")
    h, w = hw or EVAL_HW
    rng = np.random.default_rng(seed)
    rows = np.round(TUSIMPLE_H_SAMPLES * h / 720.0).astype(np.int64)
    done = 0
    while done < n:
        k = min(30, n - done)  # a new scene every 30 frames keeps variety in long runs
        clip = generate_clip(rng, height=h, width=w, frames=k, h_samples=rows, num_slots=slots)
        for t in range(k):
            yield {"camera": (clip.frames[t], {"gt": _gt(clip.lanes[t], rows)})}
        done += k


def _clip_sample(frames: np.ndarray, lanes: np.ndarray, rows: np.ndarray, name: str) -> list[dict[str, Frame]]:
    out = []
    for t in range(len(frames)):
        meta = {"gt": {**_gt(lanes[t], rows), "raw_file": f"{name}/{t}"}}
        out.append({"camera": Frame(frames[t], 0, t, "camera", meta)})
    return out


def samples(cfg: dict[str, Any], role: str, n: int, seed: int = 0) -> list[list[dict[str, Frame]]]:
    """``n`` clips of T frames: held-out evaluation clips at 1280x720, or calibration clips at input size."""
    t = int(cfg["frames"])
    if role == "evaluation":
        rng, (h, w) = eval_rng(EVAL_SEED + seed), EVAL_HW
        rows = TUSIMPLE_H_SAMPLES * h // 720
    elif role == "calibration":
        rng, (h, w) = calib_rng(seed), tuple(cfg["input_hw"])
        rows = np.round(np.asarray(cfg["row_anchors"]) * h).astype(np.int64)
    else:
        raise DataError(f"unknown sample role {role!r} (evaluation or calibration)")
    out = []
    for i in range(n):
        c = generate_clip(rng, height=h, width=w, frames=t, h_samples=rows, num_slots=cfg["slots"])
        out.append(_clip_sample(c.frames, c.lanes, rows, f"synthetic/{role}/{seed}/{i}"))
    return out


def realistic_samples(cfg: dict[str, Any], n: int, seed: int, *, vehicles: bool = True) -> list[list[dict[str, Frame]]]:
    """``n`` held-out clips of the realistic renderer (:mod:`edge.models.lane.realistic`) at 1280x720 from the
    evaluation stream ``eval_rng(seed)``: new renders of the training layouts (the validation clips' layouts stay
    excluded), to measure how well a checkpoint fits its training renderer; ``vehicles=False``: the same clips
    without their vehicles. Needs TuSimple's layout file, as training does."""
    from edge.models.lane.realistic import layouts_path, load_layouts, realistic_clip

    layouts, rng, (h, w) = load_layouts(str(layouts_path())), eval_rng(seed), EVAL_HW
    out = []
    for i in range(n):
        c = realistic_clip(rng, layouts, height=h, width=w, frames=int(cfg["frames"]), h_samples=TUSIMPLE_H_SAMPLES,
                           num_slots=int(cfg["slots"]), vehicles=vehicles)
        out.append(_clip_sample(c.frames, c.lanes, TUSIMPLE_H_SAMPLES, f"realistic/{seed}/{i}"))
    return out


def tusimple_samples(gt_path: str | os.PathLike[str], image_root: str | os.PathLike[str]
                     ) -> list[list[dict[str, Frame]]]:
    """Real labelled frames (a TuSimple label file + the images it names), each a one-frame sample, all loaded.

    A one-frame sample is a static clip: the runners repeat the first frame until T frames arrived.
    """
    return list(tusimple_lazy(gt_path, image_root))


def tusimple_lazy(gt_path: str | os.PathLike[str], image_root: str | os.PathLike[str]) -> LazySamples:
    """:func:`tusimple_samples` with each image read when its sample is asked for: the label file is parsed and
    every image it names checked (under the image folder, a file) up front, so a bad set fails before any work,
    and a full dataset's thousands of frames are never all held."""
    from edge.models.lane.tusimple import read_tusimple

    gts = read_tusimple(gt_path)
    root = os.path.abspath(image_root)
    real_root = os.path.realpath(root)
    paths: list[str] = []
    first: dict[Any, int] = {}
    for k, gt in enumerate(gts):
        path = os.path.normpath(os.path.join(root, gt.raw_file))  # an absolute raw_file stays itself
        real = os.path.realpath(path)
        try:  # one image file however it is reached: spelled otherwise (./clips/x.jpg), a symlink or a hard link
            st = os.stat(path)
            same: Any = (st.st_dev, st.st_ino)
        except OSError:  # missing: said below, naming the file
            same = real
        if same in first:  # scored (or calibrated on) twice, the count and the accuracy moved without a word
            j = first[same]
            how = ("is listed twice" if gts[j].raw_file == gt.raw_file else
                   f"is the same image file as entry {j + 1}'s {gts[j].raw_file!r}")
            raise DataError(f"{gt_path}: raw_file {gt.raw_file!r} {how} (entries {j + 1} and {k + 1}); each frame "
                            "once")
        first[same] = k
        # under the folder as written (a symlinked image folder inside it) or as resolved (the folder reached
        # through a symlink, the raw_file naming the real path)
        if os.path.commonpath([root, path]) != root and os.path.commonpath([real_root, real]) != real_root:
            # a label file names its images under its dataset's folder; one naming any file on the machine is not read
            raise DataError(f"{gt_path}: raw_file {gt.raw_file!r} is not under the image folder {image_root}")
        if not os.path.isfile(path):  # (isfile is False for a folder this user may not enter: said as such)
            try:
                os.stat(path)
                why = "not a file"
            except PermissionError as e:
                why = f"cannot read ({e.strerror})"
            except OSError:
                why = "no such image"
            raise DataError(f"{path}: {why}, listed in {gt_path}")
        paths.append(path)

    def load(i: int) -> list[dict[str, Frame]]:
        from edge.data.images import read_image

        gt = gts[i]
        img, why = read_image(paths[i])
        if img is None:
            raise DataError(f"{paths[i]}: {why}, listed in {gt_path}")
        if max(gt.h_samples) >= img.shape[0]:  # scored at rows the image does not have, without a word
            raise DataError(f"{gt_path}: {gt.raw_file}: h_samples reach row {max(gt.h_samples)}, past the image's "
                            f"{img.shape[0]} rows")
        meta = {"gt": {"lanes": gt.lanes, "h_samples": gt.h_samples, "raw_file": gt.raw_file}}
        return [{"camera": Frame(img, 0, 0, "camera", meta)}]

    return LazySamples(len(gts), load)


#: what ``edge val --data`` takes for this family (the card's LabelledData.formats)
LABELLED_FORMATS = ("a TuSimple label file (JSON lines: lanes, h_samples, raw_file), each raw_file read under "
                    "the label file's folder, or under images=DIR")


def read_labelled(path: str | os.PathLike[str], cfg: dict[str, Any], images: str | None = None) -> LazySamples:
    """Real labelled frames for ``edge val``: a TuSimple label file, each frame a one-frame sample (a static clip,
    as :func:`tusimple_samples`); its images under ``images`` (default: the label file's folder, where the
    official dataset keeps ``clips/``)."""
    if images is not None and not str(images).strip():  # "images=" read the working folder, without a word
        raise DataError(f"{path}: images= is empty; name the folder the raw_file paths are under (or leave it out: "
                        "the label file's folder)")
    root = Path(images) if images is not None else Path(path).parent
    if not root.is_dir():
        raise DataError(f"{root}: no such image folder (images=)")
    return tusimple_lazy(path, root)


#: the card's reader of real labelled data (``edge val --data PATH``)
LABELLED = LabelledData(LABELLED_FORMATS, read_labelled)
