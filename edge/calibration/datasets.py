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
  families whose only required sensor is the one the frames come from; every item calibrates (the
  gate evaluates on the family's labelled samples, never on these);
* ``.npz`` keyed by step-feed name (``.npy`` for a single one), first axis = samples, an optional
  second axis = steps of a sequence;
* labelled data in the family's own format, ``PATH[,key=value...]`` as ``edge val --data`` takes it (the card's
  ``data.labelled`` reader: a dataset's label file, a folder of camera + LiDAR pairs): the only real source for a
  family that needs several sensors at once, since an image folder or a video feeds one. Its labels are not read.

Every problem (empty folder, unreadable file, wrong shape or dtype, fewer samples than asked) is a
DataError naming the source.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.data.frame import Frame
from edge.data.images import IMAGE_EXT
from edge.errors import DataError, first_line

log = logging.getLogger("edge.calibration")
VIDEO_EXT = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"}

Feeds = dict[str, np.ndarray]


@dataclass
class FeedSet:
    """Feeds of one graph for one role ("calibration" or "evaluation") and where they came from."""

    feeds: list[Feeds]
    source: str
    role: str
    ids: list[str]
    samples: int | None = None  # how many samples made these feeds (a program's runner gives a graph several)

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


def _split(items: list[Any], role: str, where: Any = "calibration source") -> list[Any]:
    """Every item of a user's source calibrates. Evaluation (the accuracy gate) runs on the family's own
    labelled samples, which an image folder, video or .npz cannot be (no labels), so nothing of it is held
    back: an even/odd split used to set half of it aside for an evaluation that never read it."""
    if role != "calibration":
        raise DataError(f"{where}: images, videos and .npz files only calibrate; the gate evaluates on the "
                        "family's labelled samples")
    return list(items)


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
        own = card.data is not None and card.data.labelled is not None
        raise DataError(f"{where}: model '{card.name}' needs sensors {list(card.sensors.required)}; images or "
                        "a video give only one: calibrate with synthetic"
                        + (", labelled data in its format (edge models shows it)," if own else "")
                        + " or an .npz of step feeds")
    return card.sensors.primary


def _preprocess(card: Any, cfg: dict[str, Any], images: list[np.ndarray], where: str) -> list[Feeds]:
    sensor = _primary(card, where)
    try:
        return [card.preprocess({sensor: Frame(img, 0, i, sensor, {})}, cfg) for i, img in enumerate(images)]
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{where}: preprocessing failed ({type(e).__name__}: {first_line(e)})") from None


def held_bytes(obj: Any, _seen: set[int] | None = None) -> int:
    """Bytes of the arrays in ``obj`` (a sample: frames by sensor, feeds, lists of them; a Frame's data), each
    buffer once: a feed that is a view of its frame (``w[None]``) holds no memory of its own."""
    seen = set() if _seen is None else _seen
    if isinstance(obj, np.ndarray):
        root = obj
        while isinstance(root.base, np.ndarray):
            root = root.base
        if id(root) in seen:
            return 0
        seen.add(id(root))
        return int(root.nbytes)
    if isinstance(obj, Frame):
        return held_bytes(obj.data, seen)
    if isinstance(obj, dict):
        return sum(held_bytes(v, seen) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(held_bytes(v, seen) for v in obj)
    return 0


#: the share of the memory available now that samples held at once may take
HELD_SHARE = 0.5


def check_fits(one: int, n: int, what: str) -> None:
    """DataError when ``n`` samples of ``one`` bytes each, held at once, would take more than :data:`HELD_SHARE` of
    the memory available now: ``--calib-size 100000`` rendered a video model's clips until the machine ran out of
    memory, minutes into the export, where one line before any work says it. Unchecked where the free memory is
    unknown."""
    from edge.bench.machine import available_memory_bytes

    free = available_memory_bytes()
    if free is None or n * one <= HELD_SHARE * free:
        return
    most = max(1, int(HELD_SHARE * free // max(one, 1)))
    raise DataError(f"{what} {n}: {n * one / 2**30:.1f} GiB held at once ({one / 2**20:.1f} MiB a sample), more "
                    f"than half of the {free / 2**30:.1f} GiB free here; at most {most} on this machine")


def from_synthetic(card: Any, cfg: dict[str, Any], *, size: int, role: str = "calibration",
                   seed: int = 0) -> SampleSet:
    """The family's own seeded samples (calibration and evaluation streams never meet)."""
    if card.data is None:
        raise DataError(f"model '{card.name}' has no synthetic data; pass a folder, video or .npz")
    first = card.data.samples(cfg, role, 1, seed)  # one, to size them all before rendering them
    check_fits(held_bytes([first, [card.preprocess(f, cfg) for s in first for f in s]]), size,
               "--calib-size" if role == "calibration" else f"{role} size")
    seqs = [[card.preprocess(frames, cfg) for frames in sample]
            for sample in card.data.samples(cfg, role, size, seed)]
    return SampleSet(seqs, f"synthetic(seed={seed})", role, [f"synthetic/{role}/{seed}/{i}" for i in range(size)])


def from_images(folder: str | os.PathLike[str], card: Any, cfg: dict[str, Any], *, size: int,
                role: str = "calibration", seed: int = 0) -> SampleSet:
    """Images in ``folder`` (sorted, shuffled with ``seed``), each a one-step sample.

    A truncated or undecodable image is skipped with a warning naming it (OpenCV would decode a
    JPEG cut short into a half-grey frame without a word); too few whole images is a DataError.
    """
    from edge.data.images import list_images, read_image

    root = Path(folder)
    _primary(card, str(root))  # a model of several sensors first: told "too few images", then that images cannot do
    files = list_images(root, recursive=True)
    if not files:
        raise DataError(f"{root}: no images ({', '.join(IMAGE_EXT)}) in calibration folder")
    order = np.random.default_rng(seed).permutation(len(files))
    chosen = _split([files[i] for i in order], role, root)
    if len(chosen) < size:
        raise DataError(f"{root}: {len(chosen)} images available for {role}, asked for {size}")
    seqs, ids, skipped = [], [], 0
    for p in chosen:
        if len(seqs) == size:
            break
        img, problem = read_image(p)
        if img is None:
            log.warning("%s: %s; skipped", p, problem)
            skipped += 1
            continue
        seqs.append(_preprocess(card, cfg, [img], str(p)))
        ids.append(str(p))
    if len(seqs) < size:
        raise DataError(f"{root}: {len(seqs)} whole images for {role} ({skipped} truncated or unreadable skipped), "
                        f"asked for {size}")
    return SampleSet(seqs, str(root), role, ids)


def from_video(path: str | os.PathLike[str], card: Any, cfg: dict[str, Any], *, size: int,
               role: str = "calibration") -> SampleSet:
    """``size`` evenly spaced windows of consecutive frames.

    Frames are streamed: only the frames of the window being assembled are held, each window is
    preprocessed as soon as it is complete, and decoding stops after the last one, so a long video
    costs what ``size`` samples cost, not what the video holds.
    """
    import cv2

    p = Path(path)
    _primary(card, str(p))  # before counting its frames, as for a folder
    steps = card.data.sequence_length(cfg) if card.data is not None else 1

    def opened() -> Any:
        from edge.files import media_path, read_problem

        if (why := read_problem(p)) is not None:  # OpenCV called it one it cannot open
            raise DataError(f"{p}: {why}")
        cap = cv2.VideoCapture(media_path(p))
        if not cap.isOpened():
            cap.release()
            raise DataError(f"{p}: OpenCV cannot open this video")
        return cap

    cap = opened()
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if total <= 0:  # a container without a frame count: count by demuxing (nothing is kept)
            total = 0
            while cap.grab():
                total += 1
            cap.release()
            cap = opened()
        windows = total - steps + 1
        if windows < size:
            raise DataError(f"{p}: {total} frames give {max(windows, 0)} windows of {steps}; need {size}")
        starts = np.linspace(0, windows - 1, size).round().astype(int)
        chosen = [int(c) for c in _split(starts.tolist(), role, p)]  # distinct: windows >= size, spacing >= 1
        held: dict[int, np.ndarray] = {}
        done: dict[int, list[Feeds]] = {}
        pending = sorted(set(chosen))
        i = 0
        while pending:
            if not cap.grab():
                raise DataError(f"{p}: the video ends after {i} frames, its header says {total}")
            if any(s <= i < s + steps for s in pending):
                ok, f = cap.retrieve()
                if not ok:
                    raise DataError(f"{p}: frame {i} cannot be decoded")
                held[i] = f
            while pending and pending[0] + steps - 1 == i:  # a window is complete: preprocess, then let go
                s0 = pending.pop(0)
                done[s0] = _preprocess(card, cfg, [held[k] for k in range(s0, s0 + steps)], f"{p}@{s0}")
            for k in [k for k in held if not pending or k < pending[0]]:
                del held[k]
            i += 1
    finally:
        cap.release()
    seqs = [done[s] for s in chosen]
    return SampleSet(seqs, str(p), role, [f"{p}@{s}" for s in chosen])


def from_arrays(path: str | os.PathLike[str], ref: Mapping[str, np.ndarray] | None, *, size: int,
                role: str = "calibration", known: Callable[[], set[str]] | None = None) -> SampleSet:
    """``.npz`` keyed by step-feed name or ``.npy`` for one; [samples, ...] or [samples, steps, ...].

    An array no step reads is named in a warning (a feed misnamed beside one of the right name), unless ``known``
    (every feed of the model's programs) has it: a program calibrated with another's gates, or one whose feeds only
    its host stage reads, takes it.

    Headers are checked against the model's step feeds before any data is read, and only the
    ``size`` samples used are read (streamed): a file's declared size never becomes memory.
    """
    from edge.data.arrays import npy_header, npz_headers, read_rows

    p = Path(path)
    names = list(ref) if ref is not None else None
    if p.suffix.lower() == ".npy":
        if names is not None and len(names) != 1:
            raise DataError(f"{p}: a .npy holds one array but the model's steps take {names}; use .npz")
        heads = {(names or ["input"])[0]: npy_header(p)}
        members: dict[str, str | None] = {k: None for k in heads}
    else:
        heads = npz_headers(p, what="calibration set")
        if names is not None:
            missing = [n for n in names if n not in heads]
            if missing:
                raise DataError(f"{p}: missing arrays for step feeds {missing} (has {sorted(heads)})")
            unused = set(heads) - set(names)
            if unused and known is not None:
                unused -= known()
            if unused:  # a feed misnamed beside one of the right name was calibrated without, silently
                log.warning("warning: %s: arrays %s feed no step of this model's programs (the programs calibrated "
                            "take %s); not used", p, sorted(unused), names)
            heads = {n: heads[n] for n in names}
        members = {k: k for k in heads}
    if not heads:
        raise DataError(f"{p}: holds no arrays")
    scalar = [k for k, h in heads.items() if not h.shape]
    if scalar:
        raise DataError(f"{p}: '{scalar[0]}' is a scalar, not [samples, ...]")
    n = {h.shape[0] for h in heads.values()}
    if len(n) != 1:
        shapes = ", ".join(f"'{k}' {list(h.shape)}" for k, h in heads.items())
        raise DataError(f"{p}: arrays have different sample counts {sorted(n)} ({shapes})")
    total = n.pop()
    # one step: [samples, *step shape without batch]; a sequence: [samples, steps, *...]
    seq = ref is not None and all(len(heads[k].shape) == r.ndim + 1 for k, r in ref.items())
    if ref is not None:
        for k, r in ref.items():
            h = heads[k]
            got = h.shape[2:] if seq else h.shape[1:]
            if h.dtype != r.dtype or tuple(got) != tuple(r.shape[1:]):
                raise DataError(f"{p}: '{k}' is {h.dtype} {list(h.shape)}, the model takes {r.dtype} "
                                f"[samples{', steps' if seq else ''}, {', '.join(map(str, r.shape[1:]))}]")
    if seq and len({heads[k].shape[1] for k in heads}) != 1:
        # steps_of takes the step count of one array: a shorter one was an IndexError, a longer one cut short
        shapes = ", ".join(f"'{k}' {list(h.shape)}" for k, h in heads.items())
        raise DataError(f"{p}: sequence arrays have different numbers of steps ({shapes}); every array needs "
                        "the same [samples, steps, ...]")
    idx = _split(list(range(total)), role, p)
    if len(idx) < size:
        raise DataError(f"{p}: {len(idx)} samples available for {role}, asked for {size}")
    if seq and any(heads[k].shape[1] == 0 for k in heads):
        raise DataError(f"{p}: sequences of 0 steps ({', '.join(f'{k} {list(h.shape)}' for k, h in heads.items())})")
    chosen = idx[:size]
    arrays = {k: read_rows(p, members[k], chosen) for k in heads}
    for k, a in arrays.items():  # a NaN/inf calibrates nothing and breaks the quantizer's scales far from here
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            raise DataError(f"{p}: '{k}' holds NaN or infinite values (in the samples used)")

    def steps_of(j: int, i: int) -> list[Feeds]:
        if seq:
            count = arrays[next(iter(arrays))].shape[1]
            return [_check_step({k: a[j, s][None] for k, a in arrays.items()}, ref, f"{p}[{i}, {s}]")
                    for s in range(count)]
        return [_check_step({k: a[j:j + 1] for k, a in arrays.items()}, ref, f"{p}[{i}]")]

    seqs = [steps_of(j, i) for j, i in enumerate(chosen)]
    return SampleSet(seqs, str(p), role, [f"{p}[{i}]" for i in chosen])


def from_labelled(spec: str, card: Any, cfg: dict[str, Any], *, size: int, role: str = "calibration",
                  seed: int = 0) -> SampleSet:
    """``size`` of the samples the family's labelled-data reader gives for ``spec`` (shuffled with ``seed``), each
    through the card's preprocessing as a live frame set would go; the labels stay unread."""
    from edge.val import _split as split_spec
    from edge.val import labelled_samples

    check_source(spec)  # edge val's synthetic[:N] is the held-out evaluation stream: never calibrate on it
    head = split_spec(spec)[0]
    if card.data is None or card.data.labelled is None:
        raise DataError(f"{head}: unsupported calibration source for model '{card.name}', which reads no labelled "
                        f"data of its own (use {_kinds(card, cfg)})")
    try:
        samples, _what = labelled_samples(card, cfg, spec, "--calib")
    except DataError as e:  # say how it was read: a stray file (an image, a pcap) was taken for a label file
        msg = str(e)
        raise DataError(msg if msg.startswith("--calib") else
                        f"--calib {spec}: read as model '{card.name}' labelled data: {msg}") from None
    order = [int(i) for i in np.random.default_rng(seed).permutation(len(samples))]
    chosen = _split(order, role, spec)
    if len(chosen) < size:
        raise DataError(f"--calib {spec}: {len(chosen)} samples available for {role}, asked for {size}")
    chosen = sorted(chosen[:size])  # only these are loaded (a lazy reader's), in its order: a frame's starts together
    seqs = []
    for i in chosen:
        try:
            seqs.append([card.preprocess(frames, cfg) for frames in samples[i]])
        except DataError:
            raise
        except Exception as e:
            raise DataError(f"--calib {spec}: sample {i}: preprocessing failed ({type(e).__name__}: "
                            f"{first_line(e)})") from None
    return SampleSet(seqs, spec, role, [f"{spec}[{i}]" for i in chosen])


def _labelled_spec(src: str, card: Any | None) -> bool:
    """Whether ``src`` is read by the family's labelled-data reader rather than as images, a video or arrays:
    ``key=value`` options; a file of no calibration kind (a label file); a folder for a family that needs more
    than one sensor at once, which images cannot feed, and that has such a reader. Without a card (before one is
    loaded) only the first two are known."""
    from edge.val import _split as split_spec

    head, opts = split_spec(src)
    if opts:
        return True
    p = Path(head)
    if p.is_file():
        return p.suffix.lower() not in (".npz", ".npy", *VIDEO_EXT)
    return (p.is_dir() and card is not None and len(card.sensors.required) > 1 and card.data is not None
            and card.data.labelled is not None)


def load_samples(src: str, card: Any, cfg: dict[str, Any], *, size: int, role: str = "calibration",
                 seed: int = 0) -> SampleSet:
    """Dispatch on ``src``: "synthetic", labelled data in the family's format (:func:`_labelled_spec`), a folder
    of images, a video file, or .npz/.npy."""
    if size < 1:
        raise DataError(f"calibration size must be >= 1, got {size}")
    src = os.fspath(src)
    if src == "synthetic":
        return from_synthetic(card, cfg, size=size, role=role, seed=seed)
    if src.startswith(SOURCE_PREFIXES):
        return from_source(src, card, cfg, size=size, role=role)
    check_source(src)
    if _labelled_spec(src, card):
        return from_labelled(src, card, cfg, size=size, role=role, seed=seed)
    p = Path(src)
    if p.is_dir():
        return from_images(p, card, cfg, size=size, role=role, seed=seed)
    if not p.exists():
        raise DataError(f"{src}: calibration source not found (use synthetic, a folder, a video, .npz/.npy, or "
                        "labelled data as edge val --data takes it)")
    from edge.data.waveform import is_waveform_file

    if p.suffix.lower() == ".npz" and p.is_file() and is_waveform_file(p):  # a recording, not step feeds
        return from_source(f"waveform:{p}", card, cfg, size=size, role=role, given=src)
    if p.suffix.lower() in (".npz", ".npy"):
        ref, known = None, None
        if card.data is not None:
            sample = card.data.samples(cfg, "calibration", 1, seed)[0][0]
            ref = card.preprocess(sample, cfg)  # the feeds of the programs calibrated (their feeds_for block)

            def known() -> set[str]:  # every program's, asked only when the set holds more than ``ref``
                from edge.models.contract import feeds_for

                specs = card.programs_for(cfg)
                with feeds_for({x for s in specs for x in (*s.graphs, *s.host_stages)}):
                    return set(card.preprocess(sample, cfg))
        return from_arrays(p, ref, size=size, role=role, known=known)
    if p.suffix.lower() in VIDEO_EXT:
        if not p.is_file():
            raise DataError(f"{p}: calibration video is not a file")
        return from_video(p, card, cfg, size=size, role=role)
    raise DataError(f"{src}: unsupported calibration source (use {_kinds(card, cfg)})")


#: the prefixes of the recorded sources `edge run --source` takes that calibrate through :func:`from_source`
SOURCE_PREFIXES = ("waveform:", "multi:")


def _kinds(card: Any, cfg: dict[str, Any]) -> str:
    """What a calibration set may be for ``card``: camera frames only where it reads camera images (waveform-only
    families were told to give images, which they then refused); a recording only where the model reads nothing
    beside its frames (one reading a command was told to give a recording, then refused for it: a review)."""
    images = bool(card is not None and card.image_inputs(cfg))
    recordings = card is None or card.command is None
    return ", ".join(["synthetic", *(["a folder of images", "a video"] if images else []),
                      *(["a recording edge run --source takes (waveform:FILE, multi:...)"] if recordings else []),
                      ".npz/.npy of step feeds"])


def from_source(spec: str, card: Any, cfg: dict[str, Any], *, size: int, role: str = "calibration",
                given: str | None = None) -> SampleSet:
    """The first ``size`` windows of the family's sequence length from a recorded source `edge run --source` reads
    (frame sets by their ``seq``), each frame set through the card's preprocess as the stream's own: a waveform
    model calibrates on a recorded waveform file. Frame sets are preprocessed as they are read; only feeds are kept.
    Errors name ``--calib`` and the spec as the user gave it (``given``: a bare .npz read as ``waveform:FILE``)."""
    from edge.stream.sources import open_source

    where = f"--calib {given or spec}"
    _split([], role, where)
    if card.command is not None:  # a recording carries no text command, which every frame set needs here
        raise DataError(f"{where}: model '{card.name}' reads its {card.command.key} beside its frames (edge run "
                        "--command), which a recording does not carry; calibrate with synthetic or an .npz of step "
                        "feeds")
    steps = card.data.sequence_length(cfg) if card.data is not None else 1
    try:
        src = open_source(spec, card=card)
        src.open()
    except DataError as e:
        raise DataError(f"{where}: {e}") from None
    seqs: list[list[Feeds]] = []
    window: list[Feeds] = []
    frames: dict[str, Frame] = {}
    seq: int | None = None

    def close_set() -> None:
        try:
            window.append(card.preprocessed(frames, cfg))
        except DataError as e:
            raise DataError(f"{where}: frame set {seq}: {e}") from None
        if len(window) == steps:
            seqs.append(list(window))
            window.clear()

    try:
        for f in src:
            if seq is not None and f.seq != seq:
                close_set()
                frames = {}
                if len(seqs) == size:
                    break
            seq = f.seq
            frames[f.sensor] = f
        else:
            if frames:
                close_set()
    finally:
        src.close()
    if len(seqs) < size:
        raise DataError(f"{where}: {len(seqs)} windows of {steps} frame sets for {role}, asked for {size}")
    return SampleSet(seqs, spec, role, [f"{spec}#{i}" for i in range(len(seqs))])


def check_source(src: str) -> None:
    """Refuse a calibration source that cannot work before any export work starts (what the source holds, and
    whether the family reads a labelled spec, is checked once the card is loaded)."""
    src = os.fspath(src)
    if src == "synthetic":
        return
    if src == "":  # Path('') is '.': it calibrated on whatever images the current folder held, unsaid
        raise DataError("--calib '': an empty calibration source (use synthetic, a folder, a video, .npz/.npy, or "
                        "labelled data as edge val --data takes it)")
    if src.startswith(SOURCE_PREFIXES):  # a recording: its file is checked as edge run checks it, when it opens
        from edge.stream.sources import spec_options

        head = spec_options(src[len("waveform:"):])[0] if src.startswith("waveform:") else None
        if head == "sim" and not Path(head).exists():  # edge run's simulated stream: it said "no such file"
            raise DataError(f"--calib {src}: the family's simulated waveforms calibrate as --calib synthetic "
                            "(waveform:sim is edge run's simulated stream)")
        if head is not None and not Path(head).exists():
            raise DataError(f"--calib {src}: no such waveform file")  # split as edge run splits it
        return
    from edge.val import _split as split_spec
    from edge.val import _synthetic

    head = split_spec(src)[0]
    if _synthetic(head) and not Path(head).exists():  # edge val's synthetic:N is the evaluation stream
        raise DataError(f"--calib {src}: synthetic takes no count or options here (--calib-size sets the count; the "
                        "samples are the family's calibration stream, disjoint from the gate's evaluation samples)")
    if not Path(head).exists():
        raise DataError(f"{head}: calibration source not found (use synthetic, a folder, a video, .npz/.npy, or "
                        "labelled data as edge val --data takes it)")
