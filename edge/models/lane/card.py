"""Lane model card: configs, IOSpecs, numpy pre/post-processing and the task metric.

Everything here is numpy (+cv2 for resizing) so the exact same code runs in tests, in ``edge run``
and on a Jetson without torch; the torch module lives in :mod:`edge.models.lane.net`.

Output convention (UFLD-style row anchors): ``loc`` [B, S, R, G] logits over G grid cells across the
width for each of S ego-relative lane slots and R row anchors; ``exist`` [B, S, R] logits. Row anchors
are fractions of the image height (TuSimple's rows 160..710 of 720), so decoding maps to any
original resolution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge.models.registry import Graph, ModelCard
from edge.spec import IOSpec, TensorSpec

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
WEIGHTS = Path(__file__).parent / "weights"


def _anchors(n: int) -> list[float]:
    return [float(v) for v in np.linspace(160, 710, n) / 720.0]


def _cfg(hw: tuple[int, int], frames: int, channels: list[int], dim: int, heads: int, blocks: int,
         head_dim: int, row_heads: int, rows: int) -> dict[str, Any]:
    return {"input_hw": list(hw), "frames": frames, "channels": channels, "dim": dim, "heads": heads,
            "blocks": blocks, "head_dim": head_dim, "row_heads": row_heads, "slots": 6,
            "row_anchors": _anchors(rows), "grid": hw[1] // 8}


CONFIGS: dict[str, dict[str, Any]] = {
    # seconds to build and export on 2 CPU cores; for tests
    "tiny": _cfg((64, 128), 3, [8, 12, 16, 24], 32, 2, 1, 16, 2, 14),
    # the demo/shipped model: 256x512, one encoder pass per new frame in a stream
    "default": _cfg((256, 512), 3, [16, 24, 32, 64], 96, 4, 2, 48, 4, 56),
    # paper scale (UFLD TuSimple input 288x800, 100 grid cells, T=5)
    "large": _cfg((288, 800), 5, [32, 64, 128, 192], 256, 8, 4, 128, 8, 56),
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


def card() -> ModelCard:
    """The lane ModelCard (the shipped checkpoint is attached when present)."""
    ckpt = WEIGHTS / "default.pt"
    return ModelCard(
        name="lane",
        description="spatiotemporal lane detection: per-frame CNN + attention over T frames + row anchors",
        configs=CONFIGS,
        default_config="default",
        build=build,
        graphs={
            "full": Graph("full", io_full, lambda m: m, example_full),
            "encoder": Graph("encoder", io_encoder, lambda m: m.encoder, example_encoder),
            "temporal": Graph("temporal", io_temporal, lambda m: m.head, example_temporal),
        },
        default_checkpoint=ckpt if ckpt.is_file() else None,
        extras={"preprocess": preprocess_frame, "decode": decode, "preprocess_params": preprocess_params,
                "synthetic_feeds": synthetic_feeds, "synthetic_feed": synthetic_feed, "score_onnx": score_onnx,
                "score_runtime": score_runtime,
                "metric_name": "TuSimple accuracy (%)"},
    )


# ---------------------------------------------------------------------------------------------
# pre-processing


def preprocess_params(cfg: dict[str, Any]) -> dict[str, Any]:
    """What a runtime on the car needs to reproduce the input: recorded in the manifest."""
    h, w = cfg["input_hw"]
    return {"input": "clip", "frames": cfg["frames"], "size_hw": [h, w], "color": "RGB", "scale": 1 / 255,
            "mean": MEAN.tolist(), "std": STD.tolist(), "resize": "area", "layout": "T,C,H,W",
            "row_anchors": cfg["row_anchors"], "grid": cfg["grid"], "slots": cfg["slots"]}


def synthetic_feed(cfg: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """One batch-1 ``clip`` feed rendered with ``rng`` (calibration / evaluation sets)."""
    from edge.models.lane.synthetic import generate_clip

    h, w = cfg["input_hw"]
    return {"clip": preprocess_clip(generate_clip(rng, height=h, width=w, frames=cfg["frames"]).frames, cfg)}


def score_runtime(rt: Any, cfg: dict[str, Any], n: int, seed: int = 0) -> float:
    """TuSimple accuracy (percent) of any Runtime on ``n`` held-out synthetic clips at 1280x720."""
    from edge.models.lane.train import eval_set, evaluate_predictor

    clips, gts = eval_set(cfg, n, seed=1234 + seed)
    m = evaluate_predictor(lambda clip: tuple(rt.infer({"clip": clip}).values()), cfg, clips, gts)
    return 100.0 * float(m["accuracy"])


def score_onnx(path: str, io: IOSpec, cfg: dict[str, Any], n: int, seed: int = 0) -> float:
    """:func:`score_runtime` of an ONNX file in ONNX Runtime."""
    from edge.runtimes.onnxruntime import OrtRuntime

    rt = OrtRuntime(path, io)
    try:
        return score_runtime(rt, cfg, n, seed)
    finally:
        rt.close()


def synthetic_feeds(cfg: dict[str, Any], graph: str, module: Any, batch: int, seed: int) -> dict[str, Any]:
    """Realistic feeds (rendered roads through the real preprocessing) for parity checks."""
    from edge.models.lane.synthetic import generate_clip

    rng = np.random.default_rng(seed + 7)
    h, w = cfg["input_hw"]
    clip = np.concatenate([preprocess_clip(generate_clip(rng, height=h, width=w, frames=cfg["frames"]).frames, cfg)
                           for _ in range(batch)])
    if graph == "full":
        return {"clip": clip}
    if graph == "encoder":
        return {"frame": clip[:, -1]}
    import torch

    with torch.no_grad():
        tok, skip = module.encoder(torch.from_numpy(clip.reshape(-1, 3, h, w)))
    return {"tokens": tok.reshape(batch, cfg["frames"], *tok.shape[1:]).numpy(),
            "skip": skip.reshape(batch, cfg["frames"], *skip.shape[1:])[:, -1].numpy()}


def preprocess_frame(img_bgr: np.ndarray, cfg: dict[str, Any]) -> np.ndarray:
    """One HxWx3 uint8 BGR frame -> [3, h, w] float32 normalized RGB at the model's input size."""
    import cv2

    if img_bgr.ndim != 3 or img_bgr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {img_bgr.shape}")
    h, w = cfg["input_hw"]
    if img_bgr.shape[:2] != (h, w):
        img_bgr = cv2.resize(img_bgr, (w, h), interpolation=cv2.INTER_AREA)
    # Per channel, in place: the same float32 operations as ((bgr[..., ::-1] / 255 - MEAN) / STD) in
    # HWC then transposed (bitwise equal, tested), at ~1/10 of the time: this runs on every frame.
    f = img_bgr.astype(np.float32)
    out = np.empty((3, *img_bgr.shape[:2]), np.float32)
    for c in range(3):
        np.multiply(f[..., 2 - c], np.float32(1.0 / 255.0), out=out[c])
        out[c] -= MEAN[c]
        out[c] /= STD[c]
    return out


def preprocess_clip(frames: np.ndarray | list[np.ndarray], cfg: dict[str, Any]) -> np.ndarray:
    """T frames (oldest first) -> the ``clip`` input [1, T, 3, h, w]."""
    return np.stack([preprocess_frame(f, cfg) for f in frames])[None]


# ---------------------------------------------------------------------------------------------
# targets and decoding


def targets(lanes_px: np.ndarray, cfg: dict[str, Any], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels [.., S, R] (x pixels at the row anchors, -2 absent) -> (grid index, exist) targets."""
    g = cfg["grid"]
    exist = lanes_px >= 0
    cell = np.clip(np.floor(lanes_px / width * g), 0, g - 1).astype(np.int64)
    return np.where(exist, cell, -100), exist.astype(np.float32)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def decode(loc: np.ndarray, exist: np.ndarray, cfg: dict[str, Any], orig_hw: tuple[int, int],
           h_samples: np.ndarray | None = None, *, threshold: float = 0.5,
           min_points: int = 3) -> dict[str, Any]:
    """Decode one sample's outputs (loc [S, R, G], exist [S, R]) to lanes in original pixels.

    x is the softmax expectation over the grid (sub-cell precision). A slot is a lane when at least
    ``min_points`` rows exist. Returns ``points`` (list of [K, 2] arrays, x/y), their ``slots``, and
    ``lanes``: x at ``h_samples`` (TuSimple format, -2 absent; linear interpolation between anchors).
    """
    oh, ow = orig_hw
    g = loc.shape[-1]
    prob = _softmax(loc.astype(np.float64), axis=-1)
    x = ((prob * np.arange(g)).sum(-1) + 0.5) / g * ow  # [S, R]
    on = 1.0 / (1.0 + np.exp(-exist.astype(np.float64))) > threshold
    ys = np.asarray(cfg["row_anchors"], np.float64) * oh
    hs = np.asarray(h_samples if h_samples is not None else np.round(ys), np.float64)
    # Vectorized over h_samples (this runs per frame in the stream loop): inside a segment between two
    # consecutive existing anchors x is interpolated linearly; an h_sample within 0.5 px of an existing
    # anchor takes that anchor's x (the highest such anchor wins, as in a loop over anchors in order).
    seg = np.clip(np.searchsorted(ys, hs, side="right") - 1, 0, len(ys) - 2)
    inside = (hs >= ys[0]) & (hs <= ys[-1])
    near = np.abs(hs[:, None] - ys[None, :]) <= 0.5 + 1e-5 * np.abs(ys[None, :])  # np.isclose(atol=0.5)
    anchor_ids = np.arange(len(ys))
    points, slots, lanes = [], [], []
    for s in range(loc.shape[0]):
        idx = np.flatnonzero(on[s])
        if idx.size < min_points:
            continue
        points.append(np.stack([x[s, idx], ys[idx]], 1))
        slots.append(s)
        ok = inside & on[s][seg] & on[s][seg + 1]
        row = np.where(ok, np.interp(hs, ys, x[s]), -2.0)
        best = np.where(near & on[s][None, :], anchor_ids[None, :], -1).max(1)
        row = np.where(best >= 0, x[s][np.maximum(best, 0)], row)
        lanes.append([float(round(v, 1)) if v >= 0 else -2.0 for v in row.tolist()])
    return {"points": points, "slots": slots, "lanes": lanes, "h_samples": [int(h) for h in hs]}
