"""Training and evaluation for the lane family on synthetic clips.

Deterministic for a given seed: clips come from a seeded generator in one background worker (so
rendering overlaps the training step on a 2-core machine) and torch's RNG is seeded. Evaluation uses
its own seed stream, disjoint from training, renders clips at TuSimple's 1280x720 geometry and scores
the last frame with the official TuSimple metric after the card's own pre/post-processing, i.e. the
number a user of the bundle would get.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from edge.models.lane import card as lane
from edge.models.lane.synthetic import TUSIMPLE_H_SAMPLES, generate_clip
from edge.models.lane.tusimple import TuSimpleSample, evaluate

EVAL_HW = (720, 1280)


def _train_rng(seed: int, worker: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, worker)))


def eval_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))


def batch_stream(cfg: dict[str, Any], batch: int, seed: int, worker: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Endless batches: clip [B, T, 3, h, w], cell [B, S, R] (grid index or -100), exist [B, S, R]."""
    rng = _train_rng(seed, worker)
    h, w = cfg["input_hw"]
    rows = np.asarray(cfg["row_anchors"]) * h
    while True:
        clips, cells, exists = [], [], []
        for _ in range(batch):
            c = generate_clip(rng, height=h, width=w, frames=cfg["frames"], h_samples=rows,
                              num_slots=cfg["slots"])
            clips.append(lane.preprocess_clip(c.frames, cfg)[0])
            cell, ex = lane.targets(c.lanes[-1], cfg, w)
            cells.append(cell)
            exists.append(ex)
        yield {"clip": np.stack(clips), "cell": np.stack(cells), "exist": np.stack(exists)}


def lane_loss(loc: Any, exist: Any, cell: Any, ex: Any) -> tuple[Any, dict[str, float]]:
    """Cross-entropy over grid cells + existence BCE + soft-argmax L1 (sharpens sub-cell x)."""
    import torch
    import torch.nn.functional as F

    g = loc.shape[-1]
    ce = F.cross_entropy(loc.permute(0, 3, 1, 2), cell, ignore_index=-100)
    bce = F.binary_cross_entropy_with_logits(exist, ex)
    prob = loc.softmax(-1)
    x = (prob * torch.arange(g, dtype=loc.dtype)).sum(-1)
    valid = cell >= 0
    l1 = F.smooth_l1_loss(x[valid], cell[valid].to(loc.dtype)) if valid.any() else loc.sum() * 0
    total = ce + bce + 0.2 * l1
    return total, {"ce": float(ce.detach()), "bce": float(bce.detach()), "l1": float(l1.detach())}


def train(cfg: dict[str, Any], *, steps: int, batch: int = 8, lr: float = 2e-3, seed: int = 0,
          init_state: dict | None = None, progress: Callable[[int, float], None] | None = None,
          threads: int | None = None) -> tuple[Any, list[float]]:
    """Train a LaneNet for ``steps`` AdamW steps (one-cycle LR); returns (module, loss history)."""
    import torch

    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    model = lane.build(cfg)
    if init_state is not None:
        model.load_state_dict(init_state)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    losses: list[float] = []
    for step, b in zip(range(steps), _prefetch(batch_stream(cfg, batch, seed))):
        loc, exist = model(torch.from_numpy(b["clip"]))
        loss, _ = lane_loss(loc, exist, torch.from_numpy(b["cell"]), torch.from_numpy(b["exist"]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if progress:
            progress(step + 1, losses[-1])
    model.eval()
    return model, losses


def _prefetch(it: Iterator[dict[str, np.ndarray]], depth: int = 4) -> Iterator[dict[str, np.ndarray]]:
    """Render batches in a background thread (OpenCV releases the GIL while drawing)."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in it:
                if not put(item):
                    return
        except BaseException as e:  # hand the renderer's error to the consumer instead of hanging it
            put(e)

    th = threading.Thread(target=work, daemon=True)
    th.start()
    try:
        while True:
            item = q.get()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def eval_set(cfg: dict[str, Any], n: int, seed: int = 1234,
             hw: tuple[int, int] = EVAL_HW) -> tuple[list[np.ndarray], list[TuSimpleSample]]:
    """Held-out synthetic clips at TuSimple geometry and their last-frame GT in TuSimple format."""
    rng = eval_rng(seed)
    clips, gts = [], []
    for i in range(n):
        c = generate_clip(rng, height=hw[0], width=hw[1], frames=cfg["frames"],
                          h_samples=TUSIMPLE_H_SAMPLES * hw[0] // 720, num_slots=cfg["slots"])
        clips.append(c.frames)
        gt = [[float(x) for x in lane_x] for lane_x in c.lanes[-1] if (lane_x >= 0).sum() >= 2]
        gts.append(TuSimpleSample(f"synthetic/{seed}/{i}.jpg", gt, [int(v) for v in c.h_samples]))
    return clips, gts


def evaluate_predictor(predict: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], cfg: dict[str, Any],
                       clips: list[np.ndarray], gts: list[TuSimpleSample]) -> dict[str, float]:
    """TuSimple accuracy/FP/FN of ``predict(clip[1,T,3,h,w]) -> (loc, exist)`` on clips with GT."""
    preds = []
    for frames, gt in zip(clips, gts):
        loc, ex = predict(lane.preprocess_clip(frames, cfg))
        d = lane.decode(loc[0], ex[0], cfg, frames.shape[1:3], np.asarray(gt.h_samples))
        preds.append(TuSimpleSample(gt.raw_file, d["lanes"], gt.h_samples, 0.0))
    return evaluate(preds, gts)


def torch_predictor(module: Any) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    import torch

    def predict(clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            loc, ex = module(torch.from_numpy(clip))
        return loc.numpy(), ex.numpy()

    return predict


def evaluate_tusimple_folder(predict: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], cfg: dict[str, Any],
                             gt_path: str, image_root: str) -> tuple[dict[str, float], list[TuSimpleSample]]:
    """Score single real frames (each repeated T times as a static clip) against TuSimple GT lines.

    ``image_root`` is joined with each GT line's ``raw_file``. Returns the metric and the predictions.
    """
    import os

    import cv2

    from edge.errors import DataError
    from edge.models.lane.tusimple import read_tusimple

    gts = read_tusimple(gt_path)
    preds = []
    for gt in gts:
        path = os.path.join(image_root, gt.raw_file)
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(f"{path}: cannot read image listed in {gt_path}")
        loc, ex = predict(lane.preprocess_clip([img] * cfg["frames"], cfg))
        d = lane.decode(loc[0], ex[0], cfg, img.shape[:2], np.asarray(gt.h_samples))
        preds.append(TuSimpleSample(gt.raw_file, d["lanes"], gt.h_samples, 0.0))
    return evaluate(preds, gts), preds
