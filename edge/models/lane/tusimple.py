"""TuSimple lane labels: read/write the JSON-lines format and score predictions with the official metric.

Why this module exists: lane models are compared by the number TuSimple's own ``evaluate/lane.py``
prints, so a re-implementation that differs in any rule (the angle-adjusted pixel threshold, the
``len(gt) > 4`` forgiveness, the ``len(gt) + 2`` cap on predicted lanes, the FN denominator) would
report numbers nobody can compare with published ones. :func:`lane_bench` is a faithful port of
``LaneEval.bench`` from the latest TuSimple benchmark, and :func:`evaluate` of ``bench_one_submit``;
the only change is that the least-squares slope comes from numpy instead of sklearn (same estimator:
ordinary least squares with an intercept), so the deploy toolkit needs no sklearn.

File format (one JSON object per line, blank lines ignored)::

    {"lanes": [[x, ...], ...], "h_samples": [y, ...], "raw_file": "clips/.../20.jpg", "run_time": 10}

``lanes[i][j]`` is the x of lane ``i`` at row ``h_samples[j]``; ``-2`` (any negative value) means the
lane is absent on that row. ``run_time`` (milliseconds) appears in predictions only.

Every malformed input raises :class:`edge.errors.DataError` with one line naming the file, the line
number and what is wrong, never a ``json``/``KeyError`` traceback.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import DataError
from edge.files import atomic_write_text

__all__ = [
    "PIXEL_THRESH",
    "PT_THRESH",
    "TuSimpleSample",
    "evaluate",
    "evaluate_files",
    "lane_angle",
    "lane_bench",
    "line_accuracy",
    "read_tusimple",
    "write_tusimple",
]

#: A predicted point counts as correct when it is within this many pixels (angle-adjusted) of the GT.
PIXEL_THRESH = 20
#: A GT lane counts as matched (not a false negative) when at least this fraction of its rows is correct.
PT_THRESH = 0.85
#: Official rule: a prediction slower than this (ms) scores (0, 0, 1).
MAX_RUN_TIME_MS = 200

_REQUIRED_KEYS = ("lanes", "h_samples", "raw_file")


@dataclass
class TuSimpleSample:
    """One labelled (or predicted) frame.

    ``lanes[i][j]`` is the x of lane ``i`` at row ``h_samples[j]``; ``-2`` where the lane is absent.
    ``run_time`` is the prediction's latency in ms (the official tool zeroes any frame over 200 ms);
    ``None`` for ground truth.
    """

    raw_file: str
    lanes: list[list[float]]
    h_samples: list[int]
    run_time: float | None = None


# --------------------------------------------------------------------------------------------- reading


def _is_number(v: Any) -> bool:
    # bool is an int subclass in Python; `true` in a label file is a mistake, not the value 1.
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite_number(v: Any, what: str) -> float:
    if not _is_number(v):
        raise ValueError(f"{what} is {type(v).__name__} {_short(v)}, expected a number")
    try:
        f = float(v)
    except OverflowError:  # an integer literal past the float range (JSON allows any)
        raise ValueError(f"{what} is {_short(v)}, too large for a float") from None
    if not math.isfinite(f):
        raise ValueError(f"{what} is {v!r}, expected a finite number")
    return f


#: the most rows a label samples and lanes it holds (TuSimple: 48-56 rows, up to 5 lanes): past them a small file
#: made the scoring take gigabytes
MAX_ROWS, MAX_LANES = 8192, 64


def _short(v: Any, limit: int = 40) -> str:
    r = repr(v)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def _parse_sample(obj: Any) -> TuSimpleSample:
    """Validate one decoded JSON value; raises ValueError with what is wrong (no file/line context)."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__} (a label file holds one JSON object per "
                         "line, TuSimple's JSON lines)")
    missing = [k for k in _REQUIRED_KEYS if k not in obj]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(repr(k) for k in missing)}")
    raw_file = obj["raw_file"]
    if not isinstance(raw_file, str):
        raise ValueError(f"'raw_file' is {type(raw_file).__name__}, expected a string")
    if not raw_file or "\x00" in raw_file:  # no file has such a name (os calls raise on a NUL)
        raise ValueError(f"'raw_file' is {raw_file!r}, expected a file name")
    h_raw = obj["h_samples"]
    if not isinstance(h_raw, list):
        raise ValueError(f"'h_samples' is {type(h_raw).__name__}, expected a list of integers")
    if not h_raw:
        raise ValueError("'h_samples' is empty")
    if len(h_raw) > MAX_ROWS:  # a 10 MB line of 2.5 M rows took 1.9 GB to score
        raise ValueError(f"'h_samples' has {len(h_raw)} rows; a label samples at most {MAX_ROWS} (TuSimple's 48-56)")
    h_samples: list[int] = []
    for j, v in enumerate(h_raw):
        f = _finite_number(v, f"h_samples[{j}]")
        if not f.is_integer() or f < 0:
            raise ValueError(f"h_samples[{j}] is {_short(v)}, expected an image row (an integer >= 0)")
        h_samples.append(int(f))
    if len(set(h_samples)) != len(h_samples):
        row = next(r for i, r in enumerate(h_samples) if r in h_samples[:i])
        raise ValueError(f"'h_samples' gives row {row} twice (each row is sampled once)")
    lanes_raw = obj["lanes"]
    if not isinstance(lanes_raw, list):
        raise ValueError(f"'lanes' is {type(lanes_raw).__name__}, expected a list of lists")
    if len(lanes_raw) > MAX_LANES:  # a million one-point lanes took 109 s
        raise ValueError(f"'lanes' has {len(lanes_raw)} lanes; a label holds at most {MAX_LANES} (TuSimple's 5)")
    lanes: list[list[float]] = []
    for i, lane in enumerate(lanes_raw):
        if not isinstance(lane, list):
            raise ValueError(f"lanes[{i}] is {type(lane).__name__}, expected a list of numbers")
        if len(lane) != len(h_samples):
            raise ValueError(f"lanes[{i}] has {len(lane)} points but h_samples has {len(h_samples)}")
        lanes.append([_finite_number(v, f"lanes[{i}][{j}]") for j, v in enumerate(lane)])
    run_time: float | None = None
    if obj.get("run_time") is not None:
        run_time = _finite_number(obj["run_time"], "'run_time'")
    return TuSimpleSample(raw_file=raw_file, lanes=lanes, h_samples=h_samples, run_time=run_time)


def read_tusimple(path: str | os.PathLike[str]) -> list[TuSimpleSample]:
    """Read a TuSimple JSON-lines file (labels or predictions).

    Each non-blank line must be an object with ``lanes``, ``h_samples`` and ``raw_file``; every lane
    must have one x per ``h_samples`` row; all values must be finite numbers. A ``run_time`` key is
    kept when present. Lines are split on ``\\n`` only (what the official tool's ``readlines`` does for
    these ASCII files), so odd Unicode line separators inside a line cannot shift line numbers.

    Raises :class:`DataError` ``"<path>: line <n>: <what is wrong>"`` on the first bad line, or
    ``"<path>: <what>"`` when the file itself cannot be read.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file")
    if not p.is_file():
        raise DataError(f"{p}: not a file")
    try:
        return _read_lines(p)
    except OSError as e:
        raise DataError(f"{p}: cannot read ({e.strerror or e})") from None


#: the longest line read: a TuSimple frame's is about 1-3 KB (a few lanes of 56 points)
MAX_LINE_BYTES = 16 << 20


def _read_lines(p: Path) -> list[TuSimpleSample]:
    """The samples of ``p``, a line at a time: the file read whole and split was 9x its size in memory (a pointer
    per line; a 300 MB file of newlines took 2.7 GB: a review), a line past :data:`MAX_LINE_BYTES` is refused."""
    samples: list[TuSimpleSample] = []
    with open(p, "rb") as f:
        for lineno in itertools.count(1):
            raw = f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            if len(raw) > MAX_LINE_BYTES:
                raise DataError(f"{p}: line {lineno}: longer than {MAX_LINE_BYTES >> 20} MiB; not a label line")
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a byte-order mark (a Windows editor's save),
                raw = raw[3:]  # read as a rig file's is
            # without its "\n" (a "\r" stays, as the split kept it): JSON's error columns count in the line, not after
            raw = raw.removesuffix(b"\n")  # it (they said column 1 past its end, a review)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{p}: line {lineno}: not UTF-8 text (byte {e.start})") from None
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(f"{p}: line {lineno}: invalid JSON ({e.msg}: column {e.colno})") from None
            except (ValueError, RecursionError) as e:  # e.g. integer too long, nesting too deep
                raise DataError(f"{p}: line {lineno}: invalid JSON ({type(e).__name__})") from None
            try:
                samples.append(_parse_sample(obj))
            except ValueError as e:
                raise DataError(f"{p}: line {lineno}: {e}") from None
    return samples


# --------------------------------------------------------------------------------------------- writing


def _num_out(v: float, what: str) -> int | float:
    """Whole numbers become JSON ints (as in official files); others keep full precision.

    Floats are not rounded: ``repr`` round-trips exactly, so a written prediction scores the same
    after reading it back even when an x lies right at the angle-adjusted threshold.
    """
    try:
        f = float(v)
    except OverflowError:  # an integer past the float range: a finite number no JSON lane file holds either
        raise DataError(f"{what} is {_short(v)}; JSON lane files hold finite numbers only") from None
    if not math.isfinite(f):
        raise DataError(f"{what} is {v!r}; JSON lane files hold finite numbers only")
    return int(f) if f.is_integer() else f


def write_tusimple(path: str | os.PathLike[str], samples: Sequence[TuSimpleSample]) -> None:
    """Write samples as TuSimple JSON-lines, atomically (a crash never leaves a half-written file).

    Key order follows the official files (``lanes``, ``h_samples``, ``raw_file``, then ``run_time`` only
    when it is not ``None``). Whole-valued x and ``run_time`` values are written as ints, other floats
    unrounded. Samples are validated like :func:`read_tusimple` so what is written can be read back.
    """
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise DataError(f"{p}: output folder {parent} does not exist")
    lines: list[str] = []
    for n, s in enumerate(samples):
        where = f"{p}: sample {n} ({s.raw_file!r})"
        if not s.h_samples:
            raise DataError(f"{where}: h_samples is empty")
        h = [_num_out(y, f"{where}: h_samples") for y in s.h_samples]
        if any(not isinstance(y, int) for y in h):
            raise DataError(f"{where}: h_samples must be integer rows")
        lanes = []
        for i, lane in enumerate(s.lanes):
            if len(lane) != len(h):
                raise DataError(f"{where}: lanes[{i}] has {len(lane)} points but h_samples has {len(h)}")
            lanes.append([_num_out(x, f"{where}: lanes[{i}]") for x in lane])
        obj: dict[str, Any] = {"lanes": lanes, "h_samples": h, "raw_file": str(s.raw_file)}
        if s.run_time is not None:
            obj["run_time"] = _num_out(s.run_time, f"{where}: run_time")
        line = json.dumps(obj, allow_nan=False)
        try:  # the reader's own rules on the line as written (rows >= 0, a file name): what it refuses is not written
            _parse_sample(json.loads(line))
        except ValueError as e:
            raise DataError(f"{where}: {e}") from None
        lines.append(line)
    atomic_write_text(p, "".join(line + "\n" for line in lines))


# ---------------------------------------------------------------------------------------------- metric


def lane_angle(xs: Sequence[float] | np.ndarray, y_samples: Sequence[float] | np.ndarray) -> float:
    """Angle (rad) of a GT lane from vertical, as ``LaneEval.get_angle`` computes it.

    Fits ``x = k*y + b`` by ordinary least squares over the rows where the lane is present (``x >= 0``)
    and returns ``arctan(k)``; 0 with fewer than two points. The official code uses sklearn's
    ``LinearRegression``, which centres x and y (that is the intercept) and solves least squares on
    the centred data; doing the same with numpy gives the same ``k`` (and ``k = 0`` when all rows
    coincide, where sklearn's minimum-norm solution is also 0).
    """
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(y_samples, dtype=np.float64)
    keep = xs >= 0
    xs, ys = xs[keep], ys[keep]
    if len(xs) <= 1:
        return 0.0
    yc = ys - ys.mean()
    xc = xs - xs.mean()
    k = np.linalg.lstsq(yc[:, None], xc, rcond=None)[0][0]
    return float(np.arctan(k))


def line_accuracy(
    pred: Sequence[float] | np.ndarray, gt: Sequence[float] | np.ndarray, thresh: float
) -> float:
    """Fraction of rows where pred and GT agree within ``thresh`` (``LaneEval.line_accuracy``).

    Absent points (negative x) become -100 on both sides first, so rows where both lanes are absent
    count as correct and a point present on one side only counts as wrong. The denominator is every
    row of the GT lane, present or not.
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    p = np.where(p >= 0, p, -100.0)
    g = np.where(g >= 0, g, -100.0)
    return float(np.sum(np.where(np.abs(p - g) < thresh, 1.0, 0.0)) / len(g))


def lane_bench(
    pred_lanes: Sequence[Sequence[float]],
    gt_lanes: Sequence[Sequence[float]],
    y_samples: Sequence[float],
    running_time: float = 0.0,
) -> tuple[float, float, float]:
    """Score one frame: ``(accuracy, fp, fn)``, a port of ``LaneEval.bench`` with every official rule.

    - A predicted lane whose length is not ``len(y_samples)`` is a format error (``DataError``).
    - ``running_time > 200`` ms, or more than ``len(gt) + 2`` predicted lanes, scores ``(0, 0, 1)``.
    - Each GT lane takes the best :func:`line_accuracy` over all predictions, with threshold
      ``20 / cos(angle)`` (so slanted lanes, whose horizontal error is larger for the same normal
      error, are not penalised); below 0.85 it is a false negative, else matched.
    - ``fp = len(pred) - matched`` (so one prediction matching two GT lanes can make fp negative,
      exactly as in the official tool).
    - With more than 4 GT lanes one miss is forgiven and the worst line accuracy is dropped, since
      TuSimple scores at most 4 lanes.
    - accuracy and fn are divided by ``max(min(len(gt), 4), 1)``, fp by ``len(pred)`` (0 with none).
    """
    n_rows = len(y_samples)
    for i, p in enumerate(pred_lanes):
        if len(p) != n_rows:
            raise DataError(f"predicted lane {i} has {len(p)} points but there are {n_rows} h_samples")
    for i, g in enumerate(gt_lanes):
        if len(g) != n_rows:
            raise DataError(f"ground-truth lane {i} has {len(g)} points but there are {n_rows} h_samples")
    if running_time > MAX_RUN_TIME_MS or len(gt_lanes) + 2 < len(pred_lanes):
        return 0.0, 0.0, 1.0
    ys = np.asarray(y_samples, dtype=np.float64)
    preds = [np.asarray(p, dtype=np.float64) for p in pred_lanes]
    line_accs: list[float] = []
    fn = 0.0
    matched = 0.0
    for g in gt_lanes:
        x_gts = np.asarray(g, dtype=np.float64)
        thresh = PIXEL_THRESH / np.cos(lane_angle(x_gts, ys))
        accs = [line_accuracy(x_preds, x_gts, thresh) for x_preds in preds]
        max_acc = max(accs) if accs else 0.0
        if max_acc < PT_THRESH:
            fn += 1
        else:
            matched += 1
        line_accs.append(max_acc)
    fp = len(pred_lanes) - matched
    if len(gt_lanes) > 4 and fn > 0:
        fn -= 1
    s = sum(line_accs)
    if len(gt_lanes) > 4:
        s -= min(line_accs)
    n_gt = len(gt_lanes)
    return (
        float(s / max(min(4.0, n_gt), 1.0)),
        float(fp / len(pred_lanes)) if len(pred_lanes) > 0 else 0.0,
        float(fn / max(min(n_gt, 4.0), 1.0)),
    )


def _by_raw_file(samples: Sequence[TuSimpleSample], what: str) -> dict[str, TuSimpleSample]:
    out: dict[str, TuSimpleSample] = {}
    for s in samples:
        if s.raw_file in out:
            raise DataError(f"{what}: raw_file {s.raw_file!r} appears more than once")
        out[s.raw_file] = s
    return out


def evaluate(preds: Sequence[TuSimpleSample], gts: Sequence[TuSimpleSample]) -> dict[str, float | int]:
    """Score a whole submission like ``LaneEval.bench_one_submit``.

    Predictions are matched to GT frames by ``raw_file``; each frame is scored by :func:`lane_bench`
    against the GT's ``h_samples`` (a prediction's own ``h_samples`` are not used, as in the official
    tool) with the prediction's ``run_time`` (0 when absent). Sums are divided by the number of GT
    frames. As in the official tool, every GT frame needs exactly one prediction and no prediction may
    name an unknown frame: either is a ``DataError`` naming the ``raw_file`` (a silent skip would
    inflate or deflate the score). Duplicate ``raw_file`` entries are also an error.

    Returns ``{"accuracy": [0, 1], "fp": ..., "fn": ..., "num": number of GT frames}``.
    """
    gt_map = _by_raw_file(gts, "ground truth")
    pred_map = _by_raw_file(preds, "predictions")
    if not gt_map:
        raise DataError("ground truth has no samples; nothing to evaluate")
    for raw_file in pred_map:
        if raw_file not in gt_map:
            raise DataError(f"prediction for {raw_file!r}, which is not in the ground truth")
    for raw_file in gt_map:
        if raw_file not in pred_map:
            raise DataError(f"no prediction for ground-truth frame {raw_file!r}")
    accuracy, fp, fn = 0.0, 0.0, 0.0
    for raw_file, pred in pred_map.items():
        gt = gt_map[raw_file]
        run_time = 0.0 if pred.run_time is None else pred.run_time
        try:
            a, p, n = lane_bench(pred.lanes, gt.lanes, gt.h_samples, run_time)
        except DataError as e:
            raise DataError(f"{raw_file!r}: {e}") from None
        accuracy += a
        fp += p
        fn += n
    num = len(gt_map)
    return {"accuracy": accuracy / num, "fp": fp / num, "fn": fn / num, "num": num}


def evaluate_files(
    pred_path: str | os.PathLike[str], gt_path: str | os.PathLike[str]
) -> dict[str, float | int]:
    """:func:`evaluate` on two JSON-lines files (prediction file first, as in ``bench_one_submit``)."""
    return evaluate(read_tusimple(pred_path), read_tusimple(gt_path))
