"""Lane card: configs, graphs and programs, numpy pre/post-processing, the metric, drawing.

Everything here is numpy (+cv2 for resizing and drawing) so the exact same code runs in tests, in
``edge run`` and on a Jetson without torch; the torch modules live in :mod:`edge.models.lane.net`,
training in :mod:`edge.models.lane.train`, data in :mod:`edge.models.lane.samples`.

Output convention (UFLD-style row anchors): ``loc`` [B, S, R, G] logits over G grid cells across the
width for each of S ego-relative lane slots and R row anchors; ``exist`` [B, S, R] logits. Row anchors
are fractions of the image height (TuSimple's rows 160..710 of 720), so decoding maps to any
original resolution.

Programs: ``stream`` (the encoder once per new frame, a ring buffer of the last T frames' tokens, the
temporal head: what ``edge run`` executes) and ``clip`` (the last T frames through the whole-clip
graph). Both give the same numbers (tested); both start with the first frame repeated until T arrived.
"""

from __future__ import annotations

import functools
import itertools
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge.models.contract import FamilyData, Graph, ImageInput, Metric, ModelCard, ProgramSpec, Sensors, Trainer
from edge.models.history import History, one_sample
from edge.spec import IOSpec, TensorSpec

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
WEIGHTS = Path(__file__).parent / "weights"
COLORS = [(255, 80, 80), (80, 255, 80), (80, 80, 255), (0, 220, 255), (255, 0, 255), (255, 255, 0)]


def _anchors(n: int) -> list[float]:
    return [float(v) for v in np.linspace(160, 710, n) / 720.0]


def _cfg(hw: tuple[int, int], frames: int, channels: list[int], dim: int, heads: int, blocks: int,
         head_dim: int, row_heads: int, rows: int, realistic_mix: float = 0.0) -> dict[str, Any]:
    return {"input_hw": list(hw), "frames": frames, "channels": channels, "dim": dim, "heads": heads,
            "blocks": blocks, "head_dim": head_dim, "row_heads": row_heads, "slots": 6,
            "row_anchors": _anchors(rows), "grid": hw[1] // 8, "realistic_mix": realistic_mix}


CONFIGS: dict[str, dict[str, Any]] = {
    # seconds to build and export on 2 CPU cores; for tests
    "tiny": _cfg((64, 128), 3, [8, 12, 16, 24], 32, 2, 1, 16, 2, 14),
    # the demo/shipped model: 256x512, one encoder pass per new frame in a stream; half of its training
    # clips drawn on real lane layouts with domain randomisation (edge.models.lane.realistic)
    "default": _cfg((256, 512), 3, [16, 24, 32, 64], 96, 4, 2, 48, 4, 56, realistic_mix=0.5),
    # paper scale (UFLD TuSimple input 288x800, 100 grid cells, T=5)
    "large": _cfg((288, 800), 5, [32, 64, 128, 192], 256, 8, 4, 128, 8, 56, realistic_mix=0.5),
}


def build(cfg: dict[str, Any]) -> Any:
    """The torch module for ``cfg`` (imports torch)."""
    from edge.models.lane.net import LaneNet

    return LaneNet(cfg)


def io_full(cfg: dict[str, Any]) -> IOSpec:
    """Whole-clip graph: clip -> loc, exist."""
    h, w = cfg["input_hw"]
    s, r, g = cfg["slots"], len(cfg["row_anchors"]), cfg["grid"]
    return IOSpec(
        (TensorSpec("clip", "float32", ("batch", cfg["frames"], 3, h, w), "T frames, oldest first, normalized RGB"),),
        (TensorSpec("loc", "float32", ("batch", s, r, g), "row-anchor logits over grid cells"),
         TensorSpec("exist", "float32", ("batch", s, r), "lane-point existence logits")),
    )


def io_encoder(cfg: dict[str, Any]) -> IOSpec:
    """Streaming part 1: one frame -> tokens (stride 32) and the stride-8 skip map."""
    h, w = cfg["input_hw"]
    return IOSpec(
        (TensorSpec("frame", "float32", ("batch", 3, h, w)),),
        (TensorSpec("tokens", "float32", ("batch", (h // 32) * (w // 32), cfg["dim"])),
         TensorSpec("skip", "float32", ("batch", cfg["channels"][2], h // 8, w // 8))),
    )


def io_temporal(cfg: dict[str, Any]) -> IOSpec:
    """Streaming part 2: T frames' tokens (ring buffer) + newest skip -> loc, exist."""
    enc = io_encoder(cfg)
    tok = enc.outputs[0]
    return IOSpec(
        (TensorSpec("tokens", "float32", ("batch", cfg["frames"], *tok.shape[1:]), "ring buffer, oldest first"),
         enc.outputs[1]),
        io_full(cfg).outputs,
    )


def _rand(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def example_full(cfg: dict[str, Any], batch: int, seed: int) -> dict[str, Any]:
    return {"clip": _rand(io_full(cfg).inputs[0].concrete(batch=batch), seed)}


def example_encoder(cfg: dict[str, Any], batch: int, seed: int) -> dict[str, Any]:
    return {"frame": _rand(io_encoder(cfg).inputs[0].concrete(batch=batch), seed)}


def example_temporal(cfg: dict[str, Any], batch: int, seed: int) -> dict[str, Any]:
    spec = io_temporal(cfg)
    return {t.name: _rand(t.concrete(batch=batch), seed + i) for i, t in enumerate(spec.inputs)}


# ---------------------------------------------------------------------------------------------
# programs: how the graphs run per frame


class StreamRunner:
    """Encoder once per frame, a ring buffer of the last T frames' tokens, the temporal head."""

    def __init__(self, graphs: Mapping[str, Any], cfg: dict[str, Any]) -> None:
        self.encoder, self.temporal = graphs["encoder"], graphs["temporal"]
        self._tok = History(int(cfg["frames"]))

    def reset(self) -> None:
        self._tok.clear()

    def step(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        enc = self.encoder({"frame": feeds["frame"]})
        return self._tok.through(enc["tokens"][0],
                                 lambda tok: self.temporal({"tokens": tok[None], "skip": enc["skip"]}))


class ClipRunner:
    """The last T preprocessed frames through the whole-clip graph."""

    def __init__(self, graphs: Mapping[str, Any], cfg: dict[str, Any]) -> None:
        self.full = graphs["full"]
        self._buf = History(int(cfg["frames"]))

    def reset(self) -> None:
        self._buf.clear()

    def step(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._buf.through(one_sample(feeds, "frame"), lambda clip: self.full({"clip": clip[None]}))


def card() -> ModelCard:
    """The lane ModelCard."""
    from edge.models.lane import samples, train

    return ModelCard(
        name="lane",
        description="spatiotemporal lane detection: per-frame CNN + attention over T frames + row anchors",
        configs=CONFIGS,
        default_config="default",
        build=build,
        graphs={
            "full": Graph("full", io_full, lambda m: m, example_full, "whole clip -> lanes", file="model"),
            "encoder": Graph("encoder", io_encoder, lambda m: m.encoder, example_encoder, "one frame -> tokens"),
            "temporal": Graph("temporal", io_temporal, lambda m: m.head, example_temporal,
                              "T frames' tokens + newest skip -> lanes"),
        },
        programs=(
            ProgramSpec("stream", ("encoder", "temporal"), StreamRunner,
                        "encoder once per frame + ring buffer of T frames' tokens + temporal head"),
            ProgramSpec("clip", ("full",), ClipRunner, "the last T frames through the whole-clip graph"),
        ),
        sensors=Sensors(("camera",), ("lidar",), points=("lidar",)),
        preprocess=preprocess,
        postprocess=postprocess,
        postprocess_many=postprocess_many,
        draw=draw,
        preprocess_params=preprocess_params,
        metric=Metric("TuSimple accuracy", metric_item, metric_reduce, unit="%", bounds=(0.0, 100.0),
                      fold=metric_fold),
        data=FamilyData(samples.synthetic, samples.samples, lambda cfg: int(cfg["frames"]),
                        samples.LABELLED),
        trainer=Trainer(train.batch_stream, train.loss, data_files=train.data_files, check=train.check),
        checkpoints={"default": WEIGHTS / "default.pt"},
        results_name="lanes",
        image_inputs=lambda cfg: (image_input(cfg),),
        # training data only (the weights do not depend on it at run time); checkpoints from before it
        # were trained on the plain renderer alone
        config_added={"realistic_mix": 0.0},
        config_rules=check_rules,
    )


def check_rules(cfg: dict[str, Any]) -> None:
    """What a config must hold beyond types and bounds (``edge train --set`` took these, then torch failed in the
    first step or the export's shape check did): ValueError saying which."""
    for width, heads, what in ((cfg["dim"], cfg["heads"], "dim"), (cfg["head_dim"], cfg["row_heads"], "head_dim")):
        if width % heads:  # the encoder's and the row attention's heads split their widths
            raise ValueError(f"{what} {width} is not divisible by {'heads' if what == 'dim' else 'row_heads'} {heads}")
    h, w = cfg["input_hw"]
    if h % 32 or w % 32:  # the encoder's tokens are [h/32, w/32], its position table too
        raise ValueError(f"input_hw {[h, w]}: height and width must be multiples of 32")
    rows = [float(a) for a in cfg["row_anchors"]]
    if not all(0.0 < a < 1.0 for a in rows) or any(b <= a for a, b in itertools.pairwise(rows)):
        # rows past the image made a NaN loss before any update (blamed on the learning rate), or scored 0 %
        raise ValueError(f"row_anchors {rows}: the rows are fractions of the image height, top to bottom: each in "
                         "(0, 1) and increasing")
    if cfg["grid"] != w // 8:  # the row attention scores one cell per column of the stride-8 features
        raise ValueError(f"grid {cfg['grid']}: the locations are scored over the stride-8 features' columns, "
                         f"input width / 8 = {w // 8}")


# ---------------------------------------------------------------------------------------------
# pre-processing


def preprocess_params(cfg: dict[str, Any]) -> dict[str, Any]:
    """What a runtime on the car needs to reproduce the input: recorded in the manifest."""
    h, w = cfg["input_hw"]
    return {"input": "frame", "frames": cfg["frames"], "size_hw": [h, w], "color": "RGB", "scale": 1 / 255,
            "mean": MEAN.tolist(), "std": STD.tolist(), "resize": "area; bilinear where the frame grows",
            "layout": "C,H,W",
            "row_anchors": cfg["row_anchors"], "grid": cfg["grid"], "slots": cfg["slots"]}


def preprocess(frames: Mapping[str, Any], cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """The camera frame -> the runners' step feed ``frame`` [1, 3, h, w]."""
    return {"frame": preprocess_frame(frames["camera"].data, cfg)[None]}


def image_input(cfg: dict[str, Any]) -> ImageInput:
    """The encoder's ``frame`` is one normalised camera image (so an engine can take the camera's bytes)."""
    h, w = cfg["input_hw"]
    return ImageInput("encoder", "frame", (h, w), tuple(float(v) for v in MEAN), tuple(float(v) for v in STD))


def preprocess_frame(img_bgr: np.ndarray, cfg: dict[str, Any]) -> np.ndarray:
    """One HxWx3 uint8 BGR frame -> [3, h, w] float32 normalized RGB at the model's input size (or, under
    ``edge.data.images.raw_images``, the frame itself for the engine's own preprocessing)."""
    from edge.data.images import image_feed

    return image_feed(img_bgr, image_input(cfg))


def preprocess_clip(frames: np.ndarray | list[np.ndarray], cfg: dict[str, Any]) -> np.ndarray:
    """T frames (oldest first) -> the ``clip`` input [1, T, 3, h, w]."""
    return np.stack([preprocess_frame(f, cfg) for f in frames])[None]


# ---------------------------------------------------------------------------------------------
# post-processing, metric, drawing


def _rounded_lists(points: list[np.ndarray]) -> list[list[list[float]]]:
    """Each lane's [K, 2] points rounded to 0.1 px as nested lists, with one rounding and one ``tolist``
    for all lanes (per lane they were a quarter of the stream loop's decoding time)."""
    if not points:
        return []
    flat = np.round(np.concatenate(points), 1).tolist()
    ends = np.cumsum([len(p) for p in points]).tolist()
    return [flat[a:b] for a, b in zip([0, *ends[:-1]], ends)]


#: how far above a rig's horizon a lane may still rise (deg): a road climbing ahead of the car, or the car pitching
#: on its springs, lifts the far road over the flat ground's horizon (a grade 3.5 % steeper than the car's is 2 deg)
HORIZON_SLACK_DEG = 2.0


def sky_line(cam: Any, slack_deg: float = HORIZON_SLACK_DEG) -> tuple[float, float, float] | None:
    """The line above which no lane is drawn in this camera frame, from the rig in its ``meta["rig"]`` (``edge
    run --calib``, or a KITTI source's own): the rig's horizon raised by ``fy tan(slack_deg)`` pixels (``slack_deg``
    at the principal point of a level camera, a little less towards the image's sides), as ``(a, b, c)`` with
    ``a x + b y + c > 0`` beyond it; None without a rig (or without a horizon in view)."""
    from edge.data.rig import Rig

    rig = cam.meta.get("rig")
    if not isinstance(rig, Rig):
        return None
    line = rig.horizon(cam.data.shape[:2], raised_deg=slack_deg)
    return None if line is None else (float(line[0]), float(line[1]), float(line[2]))


def postprocess(out: Mapping[str, np.ndarray], frames: Mapping[str, Any],
                cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Outputs -> the JSON record (lane points per slot; TuSimple rows when the frame has labels). With a rig in
    the frame's meta, no lane rises above its horizon (:func:`sky_line`)."""
    cam = frames["camera"]
    gt = cam.meta.get("gt")
    hs = np.asarray(gt["h_samples"]) if gt else None
    d = decode(out["loc"][0], out["exist"][0], cfg, cam.data.shape[:2], hs, sky=sky_line(cam))
    return _record(d, bool(gt)), d


def _record(d: dict[str, Any], labelled: bool, lanes: list[list[list[float]]] | None = None) -> dict[str, Any]:
    """The JSON record of one decode result (``lanes``: its points already rounded to lists, when the
    caller rounded several results' points at once)."""
    rec: dict[str, Any] = {"slots": d["slots"], "lanes": _rounded_lists(d["points"]) if lanes is None else lanes,
                           "confidence": [round(c, 3) for c in d["confidence"]]}
    if labelled:
        rec["tusimple"] = {"lanes": d["lanes"], "h_samples": d["h_samples"]}
    return rec


def postprocess_many(outs: list[Mapping[str, np.ndarray]], frames: list[Mapping[str, Any]],
                     cfg: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``postprocess`` of several steps in one :func:`decode`: their slots are stacked (step k's slot s is
    row k * slots + s) and every part of decoding works lane by lane, so each step's lanes come out as
    its own decode gives them (to float64 rounding of the batched products, ~1e-13 px). When the steps'
    image sizes or labelled rows are not all the same, each step is decoded on its own."""
    keys = []
    for f in frames:
        gt = f["camera"].meta.get("gt")
        keys.append((f["camera"].data.shape[:2], None if not gt else tuple(gt["h_samples"]), sky_line(f["camera"])))
    if len(set(keys)) != 1:
        return [postprocess(o, f, cfg) for o, f in zip(outs, frames, strict=True)]
    hw, hs, sky = keys[0]
    slots = int(outs[0]["loc"].shape[1])
    d = decode(np.concatenate([o["loc"][0] for o in outs]), np.concatenate([o["exist"][0] for o in outs]), cfg,
               hw, None if hs is None else np.asarray(hs), sky=sky, frame_slots=slots)
    rounded = _rounded_lists(d["points"])  # one rounding and one tolist for every lane of every step
    per: list[dict[str, Any]] = [{"points": [], "slots": [], "lanes": [], "confidence": [],
                                  "h_samples": list(d["h_samples"])} for _ in outs]
    rounded_by_step: list[list[Any]] = [[] for _ in outs]  # each step's points, rounded (not TuSimple lanes)
    for i, slot in enumerate(d["slots"]):
        k = slot // slots
        e = per[k]
        e["points"].append(d["points"][i])
        e["slots"].append(slot - k * slots)
        e["confidence"].append(d["confidence"][i])
        rounded_by_step[k].append(rounded[i])
        if hs is not None:
            e["lanes"].append(d["lanes"][i])
    return [(_record(e, hs is not None, rounded_k), e) for e, rounded_k in zip(per, rounded_by_step, strict=True)]


def metric_item(rec: dict[str, Any], frames: Mapping[str, Any], cfg: dict[str, Any]) -> Any:
    """A labelled frame's official TuSimple score, ``(accuracy, fp, fn, 1 frame)``; None for a frame without labels.
    Scored as the frame passes (``lane_bench`` against the label's ``h_samples``, as ``bench_one_submit`` scores
    each frame), so an item is four numbers, not the frame's lanes: a labelled live run keeps its items."""
    from edge.models.lane.tusimple import lane_bench

    gt = frames["camera"].meta.get("gt")
    if not gt or "tusimple" not in rec:
        return None
    return (*lane_bench(rec["tusimple"]["lanes"], gt["lanes"], gt["h_samples"]), 1)


def metric_fold(items: list[Any]) -> tuple[float, float, float, int]:
    """Items (frames' scores, or folds of them) as one: their sums."""
    if not items:
        return 0.0, 0.0, 0.0, 0
    a, fp, fn, num = (sum(col) for col in zip(*items, strict=True))
    return float(a), float(fp), float(fn), int(num)


def metric_reduce(items: list[Any]) -> dict[str, Any]:
    """The official TuSimple metric over the items: sums over frames divided by the number of frames (run_time 0:
    latency is the stats' job)."""
    a, fp, fn, num = metric_fold(items)
    if not num:
        return {"value": float("nan"), "num": 0}
    return {"value": 100.0 * (a / num), "accuracy": a / num, "fp": fp / num, "fn": fn / num, "num": num}


def draw(payload: dict[str, Any], frames: Mapping[str, Any], cfg: dict[str, Any]) -> np.ndarray | None:
    """The camera frame with each lane drawn in its slot's colour."""
    cam = frames.get("camera")
    if cam is None:
        return None
    return draw_lanes(cam.data, payload["points"], payload["slots"])


def draw_lanes(img: np.ndarray, points: list[np.ndarray], slots: list[int]) -> np.ndarray:
    """A copy of ``img`` with each lane as a polyline + points in its slot's colour."""
    import cv2

    out = img.copy()
    scale = max(1, img.shape[1] // 640)
    for pts, s in zip(points, slots):
        p = np.round(pts).astype(np.int32)
        cv2.polylines(out, [p.reshape(-1, 1, 2)], False, COLORS[s % len(COLORS)], 2 * scale, cv2.LINE_AA)
        for x, y in p:
            cv2.circle(out, (int(x), int(y)), 2 * scale, COLORS[s % len(COLORS)], -1, cv2.LINE_AA)
    return out


# ---------------------------------------------------------------------------------------------
# targets and decoding


def targets(lanes_px: np.ndarray, cfg: dict[str, Any], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels [.., S, R] (x pixels at the row anchors, -2 absent) -> (grid index, exist) targets."""
    g = cfg["grid"]
    exist = lanes_px >= 0
    cell = np.clip(np.floor(lanes_px / width * g), 0, g - 1).astype(np.int64)
    return np.where(exist, cell, -100), exist.astype(np.float32)


def grid_expectation(loc: np.ndarray, width: int) -> np.ndarray:
    """x in pixels of an image ``width`` wide: the softmax expectation of the cell index over the grid
    (last axis) + half a cell. In float64, shifted by the largest logit of all rows (a row's softmax does
    not depend on the shift, and float64 keeps every row within ~700 of the top exact; a row further
    down, or any non-finite logit, takes its own maximum), then one matrix product for both sums: the
    per-row maximum and sum over 64 cells were two thirds of this function, which decodes every frame
    in the stream loop."""
    g = loc.shape[-1]
    z = loc.astype(np.float64)
    top = z.max() if z.size else 0.0
    if not np.isfinite(top):
        s = _softmax_sums(z, z.max(-1, keepdims=True))
    else:
        s = _softmax_sums(z, top)
        low = s[..., 1] < 1e-280  # the whole row underflowed: shift it by its own maximum
        if low.any():
            zl = loc[low].astype(np.float64)
            s[low] = _softmax_sums(zl, zl.max(-1, keepdims=True))
    return (s[..., 0] / s[..., 1] + 0.5) * (width / g)


def _softmax_sums(z: np.ndarray, shift: Any) -> np.ndarray:
    """[..., 2]: sum of i * exp(z_i - shift) and of exp(z_i - shift) over the last axis (``z`` is consumed)."""
    z -= shift
    np.exp(z, out=z)
    return z @ _expectation_weights(z.shape[-1])


@functools.lru_cache(maxsize=8)
def _expectation_weights(g: int) -> np.ndarray:
    """[g, 2]: the cell indices and ones (the softmax numerator and denominator in one product)."""
    w = np.stack([np.arange(g, dtype=np.float64), np.ones(g)], 1)
    w.setflags(write=False)
    return w


@functools.lru_cache(maxsize=32)
def _sampling(anchors: tuple[float, ...], oh: int, h_samples: bytes | None) -> tuple[np.ndarray, ...]:
    """What decoding needs that depends only on the anchors, the image height and the h_samples (cached:
    this runs per frame in the stream loop): anchor rows ``ys``, ``hs``, each h_sample's anchor segment,
    whether it lies between the first and last anchor, and which anchors it is within 0.5 px of.

    Inside a segment between two consecutive existing anchors x is interpolated linearly; an h_sample
    within 0.5 px of an existing anchor takes that anchor's x (the highest such anchor wins, as in a loop
    over anchors in order).
    """
    ys = np.asarray(anchors, np.float64) * oh
    hs = np.frombuffer(h_samples, np.float64) if h_samples is not None else np.round(ys)
    seg = np.clip(np.searchsorted(ys, hs, side="right") - 1, 0, len(ys) - 2)
    inside = (hs >= ys[0]) & (hs <= ys[-1])
    near = np.abs(hs[:, None] - ys[None, :]) <= 0.5 + 1e-5 * np.abs(ys[None, :])  # np.isclose(atol=0.5)
    for a in (ys, hs, seg, inside, near):
        a.setflags(write=False)
    return ys, hs, seg, inside, near


#: rows farther than this (a fraction of the image width) from their lane's robust quadratic fit are off
OUTLIER_TOL = 0.02


#: the normal matrix of a quadratic fit from the moments of y: [i, j] = sum w y^(4 - i - j)
_MOMENT = 4 - np.add.outer(np.arange(3), np.arange(3))


@functools.lru_cache(maxsize=32)
def _powers(yn: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The rows' powers [R, 5] (1, y, .., y^4) and the fit's basis [R, 3] (y^2, y, 1), cached per anchor set."""
    y = np.frombuffer(yn, np.float64)
    powers = y[:, None] ** np.arange(5)
    powers.setflags(write=False)
    return powers, powers[:, 2::-1]


def _robust_quadratic(xs: np.ndarray, yn: np.ndarray, ons: np.ndarray, tol: float, iters: int = 3) -> np.ndarray:
    """Which rows of each lane (xs [L, R] at rows yn [R], normalised) lie within ``tol`` of the lane's
    quadratic x(y), fitted by least squares on its rows and refitted without the rows beyond ``tol``
    (up to ``iters`` times, fewer when the rows stop changing; all lanes at once through batched 3x3 normal
    equations built from the weighted moments of y, a few small matrix products per refit: this runs per
    frame in the stream loop). A lane with too few rows for a first fit keeps them all; one left with too few by a
    refit keeps those."""
    powers, v = _powers(yn.tobytes())
    keep = ons.copy()
    for _ in range(iters):
        w = keep.astype(np.float64)
        fit = w.sum(1) > 3
        if not fit.any():
            break
        a = (w @ powers)[:, _MOMENT]
        if not fit.all():
            a[~fit] = np.eye(3)
        c = np.linalg.solve(a, ((w * xs) @ v)[..., None])[..., 0]
        near = np.abs(xs - c @ v.T) <= tol
        # a lane whose rows became too few to refit keeps what the last fit kept (never its rejected rows)
        new = ons & near if fit.all() else np.where(fit[:, None], ons & near, keep)
        if np.array_equal(new, keep):  # a fixed point: another refit would give the same rows
            break
        keep = new
    return keep


#: rows (anchors) at the bottom of a lane whose straight line continues it down (:func:`_complete`)
TAIL_ROWS = 6
#: how far below its last row a lane is continued, as a fraction of the image height (:func:`_complete`)
TAIL_REACH = 0.045


def _complete(xs: np.ndarray, ons: np.ndarray, ys: np.ndarray, height: float, width: float,
              tail: int = TAIL_ROWS, reach: float = TAIL_REACH) -> tuple[np.ndarray, np.ndarray]:
    """Each lane (xs/ons [L, R] at anchor rows ``ys``) made continuous: rows turned off between its first
    and last row are interpolated, and below its last row it continues along the straight line through its
    ``tail`` lowest rows for up to ``reach`` x ``height`` pixels (while inside the image).

    Why: a painted line does not stop and restart, and the shipped model's existence turns off a little
    before a lane really ends near the car. On the 16 real labelled TuSimple frames its lanes had on
    average 2.0 rows missing at the bottom and 0.6 in the middle; with the official metric's 85 % rule
    that made near-misses (0.80-0.84 of a lane's rows right) a false positive *and* a false negative.
    Measured there (benchmarks/results/lane_real_checks.json): gaps only 87.97 %, + a reach of 2 / 3 / 4 /
    6 anchors (10 px each at 720) 89.02 / 89.24 / 89.11 / 88.95 %, to the bottom of the image 88.85 %
    (shipped decode before: 87.08 %, FP 0.342). A long reach extrapolates the lane's angle, so its
    bottom jumps more between frames (stability on the real sequences 6.0 px before, 7.2 at this reach,
    10.2 to the bottom). Upward it never extends: where a lane starts is the model's call (no points
    above the road's end).
    """
    if not len(xs):
        return xs, ons
    r = np.arange(len(ys))
    idx = np.where(ons, r, -1)
    prev = np.maximum.accumulate(idx, 1)  # the last row on at or above each row (-1: none)
    nxt = np.minimum.accumulate(np.where(ons, r, len(ys))[:, ::-1], 1)[:, ::-1]  # the first at or below
    gap = ~ons & (prev >= 0) & (nxt < len(ys))
    p, q = np.maximum(prev, 0), np.minimum(nxt, len(ys) - 1)
    lane = np.arange(len(xs))[:, None]
    xp, xq = xs[lane, p], xs[lane, q]
    span = np.where(gap, ys[q] - ys[p], 1.0)
    filled = np.where(gap, xp + (xq - xp) * (ys[None] - ys[p]) / span, xs)  # np.interp between the two
    # the straight line through each lane's ``tail`` lowest rows (weighted least squares, all lanes at once)
    w = (ons & (np.cumsum(ons[:, ::-1], 1)[:, ::-1] <= tail)).astype(np.float64)
    n = np.maximum(w.sum(1, keepdims=True), 1.0)
    my, mx = (w @ ys)[:, None] / n, (w * xs).sum(1, keepdims=True) / n
    dy = (ys[None] - my) * w
    den = (dy * dy).sum(1, keepdims=True)
    slope = (dy * (xs - mx)).sum(1, keepdims=True) / np.where(den > 0, den, 1.0)
    line = mx + slope * (ys[None] - my)
    hi = prev[:, -1:]  # the last row on
    below = (r[None] > hi) & (ys[None] <= ys[np.maximum(hi, 0)] + reach * height + 1e-9) & (ons.sum(1) >= 2)[:, None]
    inside = (line >= 0) & (line < width)
    below &= np.cumsum(below & ~inside, 1) == 0  # up to where it leaves the image
    return np.where(below, line, filled), ons | gap | below


def _at_h_samples(xs: np.ndarray, ons: np.ndarray, ys: np.ndarray, hs: np.ndarray, seg: np.ndarray,
                  inside: np.ndarray, near: np.ndarray) -> list[list[float]]:
    """The lanes (x ``xs`` / on ``ons`` [L, R] at anchor rows ``ys``) at the h_samples ``hs``, TuSimple style (0.1 px,
    -2 absent), from :func:`_sampling`'s ``seg`` / ``inside`` / ``near``: all lanes at once, with np.interp's own
    arithmetic (slope * (h - ys[j]) + x[j]), so the values are its."""
    slope = (xs[:, seg + 1] - xs[:, seg]) / (ys[seg + 1] - ys[seg])
    rows = np.where(inside & ons[:, seg] & ons[:, seg + 1], slope * (hs - ys[seg]) + xs[:, seg], -2.0)
    best = np.where(near[None] & ons[:, None, :], np.arange(len(ys)), -1).max(-1)  # [L, H]
    rows = np.where(best >= 0, np.take_along_axis(xs, np.maximum(best, 0), 1), rows)
    return [[float(round(v, 1)) if v >= 0 else -2.0 for v in row] for row in rows.tolist()]


#: how far a lane may rise above the row where its frame's lanes converge, as a fraction of the image height
#: (:func:`_converge_rows`): on the 2,858 real labelled TuSimple layouts the lanes' tops rose at most 0.021 of the
#: height (15 px at 720) above where the near halves of their lines meet (median: 0.031 below it)
CONVERGE_SLACK = 0.04
#: the share of a lane's rows (its lowest, nearest the car) whose straight line :func:`_converge_rows` intersects
CONVERGE_PART = 0.5


def _converge_rows(xs: np.ndarray, ons: np.ndarray, ys: np.ndarray, frame: np.ndarray,
                   part: float = CONVERGE_PART, least: int = 3) -> np.ndarray:
    """[L]: for each lane (x ``xs`` / on ``ons`` [L, R] at rows ``ys``), the row where the lanes of its frame
    (``frame`` [L], the frame each lane belongs to) converge, -inf where that is unknown (fewer than two lanes).

    Why: lanes on a road are parallel, so in the image they meet only at the vanishing point, on the horizon; a lane
    drawn above that row runs into the sky or up a wall. The failure this catches was seen on real frames decoded
    without a calibrated camera (a KITTI street, nuScenes rear cameras): two lanes crossing and running on past each
    other into the sky. The straight line through each lane's lowest ``part`` of its rows (at least ``least``; the
    part nearest the car, the model's surest) is intersected with every other lane's of the same frame; the
    intersections above both lanes' lowest rows (a crossing within the lanes counts: their rows above it are past the
    vanishing point) are the candidates, their median the frame's row; lines that meet below the lanes spread apart
    going up and say nothing. Curves keep their vanishing points on the same horizon on a flat road, so the row holds
    for them too; a road climbing ahead, and the straight fit's error, are what the slack
    (:data:`CONVERGE_SLACK`) is for."""
    cs = np.cumsum(ons, 1)
    n = cs[:, -1:]
    w = (ons & (n - cs + ons <= np.maximum(np.ceil(part * n), least))).astype(np.float64)  # rows on at or below
    p = _powers(ys.tobytes())[0]  # 1, y, y^2, ... of the anchor rows (cached)
    # the weighted moments of y, then of x: a straight line x = m y + q per lane
    s0, sy, syy = (w @ p[:, :3]).T.tolist()
    sx, sxy = ((w * xs) @ p[:, :2]).T.tolist()
    low = (w * ys).max(1).tolist()  # each lane's lowest row (the lowest row on is always in its line's part)
    lines = []  # (frame, m, q, lowest row) of each lane with a line; a few lanes a frame: plain Python is faster
    for f, a, b, c, d, e, lo in zip(frame.tolist(), s0, sy, syy, sx, sxy, low, strict=True):
        den = a * c - b * b
        if a >= 2 and den > 1e-9 * max(a * c, 1.0):
            m = (a * e - b * d) / den
            lines.append((f, m, (d - m * b) / a, lo))
    found: dict[int, list[float]] = {}
    for u, (f1, m1, q1, lo1) in enumerate(lines):
        for f2, m2, q2, lo2 in lines[u + 1:]:
            if f2 == f1 and abs(m1 - m2) > 1e-6:
                y = (q2 - q1) / (m1 - m2)  # where the two lines meet
                if y < min(lo1, lo2):
                    found.setdefault(f1, []).append(y)
    out = np.full(len(xs), -np.inf)
    for f, ys_met in found.items():
        out[frame == f] = statistics.median(ys_met)
    return out


def _long_enough(lanes_at: np.ndarray, xs: np.ndarray, ons: np.ndarray, min_points: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lanes (slots ``lanes_at``, x ``xs`` / on ``ons`` [L, R]) that still have ``min_points`` rows on: each rule
    that turns rows off in :func:`decode` drops the lanes it left too short."""
    still = ons.sum(-1) >= min_points
    return lanes_at[still], xs[still], ons[still]


def _beyond(sky: tuple[float, float, float], xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """[L, R]: which rows of the lanes (x ``xs`` [L, R] at rows ``ys`` [R]) lie beyond the line ``sky``."""
    a, b, c = sky
    return a * xs + b * ys[None, :] + c > 0


def decode(loc: np.ndarray, exist: np.ndarray, cfg: dict[str, Any], orig_hw: tuple[int, int],
           h_samples: np.ndarray | None = None, *, threshold: float = 0.5,
           min_points: int = 3, outlier_tol: float | None = OUTLIER_TOL, complete: bool = True,
           sky: tuple[float, float, float] | None = None,
           converge_slack: float | None = CONVERGE_SLACK, frame_slots: int | None = None) -> dict[str, Any]:
    """Decode one sample's outputs (loc [S, R, G], exist [S, R]) to lanes in original pixels.

    x is the softmax expectation over the grid (sub-cell precision). A slot is a lane when at least
    ``min_points`` rows exist. Rows farther than ``outlier_tol`` x the image width from the lane's robust
    quadratic fit are turned off (real lanes are near-parabolic in the image; the rows that are not were
    spurs into the sky and jumps onto cars: on the 16 real labelled frames this took the points above the
    road's end from 4 to 0; None keeps every row). ``sky`` (a line ``a x + b y + c = 0`` in original pixels): rows
    with ``a x + b y + c > 0`` are off before anything else (the camera's horizon, :func:`sky_line`; a lane left
    with fewer than ``min_points`` rows is dropped). ``converge_slack`` (a fraction of the image height; None: off):
    after the fit, rows more than that above the row where the frame's lanes converge are off (no calibration
    needed, :func:`_converge_rows`, per frame when several frames' slots are stacked, ``frame_slots`` each; lanes
    left too short are dropped). With ``complete`` the lanes are then made
    continuous and continued a little below their last row (:func:`_complete`). Returns ``points`` (list of [K, 2]
    arrays, x/y), their ``slots``, ``confidence``: per lane, the mean existence probability of the rows the
    model turned on (so a consumer can threshold), and, only when ``h_samples`` are given, ``lanes``: x at
    ``h_samples`` (TuSimple format, -2 absent; linear interpolation between anchors; without them ``lanes``
    and ``h_samples`` are empty: the stream loop has no labels to score, and those rows were two thirds of
    its decoding time).
    """
    oh, ow = orig_hw
    p_exist = 1.0 / (1.0 + np.exp(-exist.astype(np.float64)))
    on = p_exist > threshold
    lanes_at = np.flatnonzero(on.sum(-1) >= min_points)  # only these slots' softmax is needed (row-wise: same x)
    ons = on[lanes_at]  # [L, R]
    li, ri = np.nonzero(ons)
    xs = np.zeros(ons.shape)  # only the rows turned on are ever read: the softmax of the others is skipped
    xs[li, ri] = grid_expectation(loc[lanes_at[li], ri], ow)
    ys, hs, seg, inside, near = _sampling(tuple(cfg["row_anchors"]), oh,
                                          None if h_samples is None else np.asarray(h_samples, np.float64).tobytes())
    if sky is not None and lanes_at.size:  # before the fit: rows in the sky are not evidence of the lane's shape
        ons = ons & ~_beyond(sky, xs, ys)
        lanes_at, xs, ons = _long_enough(lanes_at, xs, ons, min_points)
    if outlier_tol is not None and lanes_at.size:
        ons = _robust_quadratic(xs, ys / oh, ons, outlier_tol * ow)
        lanes_at, xs, ons = _long_enough(lanes_at, xs, ons, min_points)
    if converge_slack is not None and lanes_at.size > 1:
        vp = _converge_rows(xs, ons, ys, lanes_at // (frame_slots or len(loc)))
        above = ons & (ys[None, :] < vp[:, None] - converge_slack * oh)
        if above.any():  # most frames: nothing to cut
            ons = ons & ~above
            lanes_at, xs, ons = _long_enough(lanes_at, xs, ons, min_points)
    h_out = [] if h_samples is None else [int(h) for h in hs]
    if not lanes_at.size:
        return {"points": [], "slots": [], "lanes": [], "confidence": [], "h_samples": h_out}
    conf = ((p_exist[lanes_at] * ons).sum(1) / ons.sum(1)).tolist()  # over the rows the model kept
    if complete:
        xs, ons = _complete(xs, ons, ys, oh, ow)
        if sky is not None:
            # the continuation runs towards the image's bottom, the sky side of a camera mounted upside down (gaps are
            # filled between kept rows, so on the kept side of a straight line: only a continued tail can cross it)
            ons = ons & ~_beyond(sky, xs, ys)
    lanes = [] if h_samples is None else _at_h_samples(xs, ons, ys, hs, seg, inside, near)
    li, ri = np.nonzero(ons)  # every lane's points in one array, each lane a view of it (row-major: lane order)
    allp = np.empty((len(li), 2))
    allp[:, 0], allp[:, 1] = xs[li, ri], ys[ri]
    ends = np.cumsum(ons.sum(1)).tolist()
    points = [allp[a:b] for a, b in zip([0, *ends[:-1]], ends)]
    slots = lanes_at.tolist()
    return {"points": points, "slots": slots, "lanes": lanes, "confidence": conf, "h_samples": h_out}
