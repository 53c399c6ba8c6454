"""What the shared training loop needs from the lane family: seeded synthetic batches and the loss.

Batches come from a seeded generator (spawn key (0, worker)), disjoint from the held-out evaluation
stream of :mod:`edge.models.lane.samples`; the loop (:mod:`edge.models.training`) renders them in a
background thread so rendering overlaps the training step on a 2-core machine. A config's
``realistic_mix`` is the share of clips drawn on real lane layouts with domain randomisation
(:mod:`edge.models.lane.realistic`; it needs TuSimple's label file, one line when it is missing).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from edge.models.lane import card as lane
from edge.models.lane.realistic import layouts_path, load_layouts, realistic_clip
from edge.models.lane.synthetic import generate_clip


def _train_rng(seed: int, worker: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, worker)))


def check(cfg: dict[str, Any]) -> None:
    """``realistic_mix`` is a share: 2 trained as 1 and was recorded as 2 (a review). Checked for training only, so a
    checkpoint trained with such a value still loads and exports."""
    if not 0 <= float(cfg["realistic_mix"]) <= 1:
        raise ValueError(f"realistic_mix {cfg['realistic_mix']} is the share of clips drawn on real layouts: from 0 "
                         "to 1")


def data_files(cfg: dict[str, Any]) -> dict[str, Any]:
    """The real lane layouts the realistic clips are drawn on (``$EDGE_LANE_LAYOUTS`` or the real-data folder's),
    when the config draws any: recorded with the checkpoint. Read here (cached for the batches): ``edge train`` asks
    before its first step, so a missing or malformed file is one line, not a progress bar and then the line."""
    if float(cfg["realistic_mix"]) <= 0:
        return {}
    load_layouts(str(layouts_path()))
    return {"layouts": layouts_path()}


def batch_stream(cfg: dict[str, Any], batch: int, seed: int, worker: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Endless batches: clip [B, T, 3, h, w], cell [B, S, R] (grid index or -100), exist [B, S, R]."""
    rng = _train_rng(seed, worker)
    h, w = cfg["input_hw"]
    rows = np.asarray(cfg["row_anchors"]) * h
    mix = float(cfg["realistic_mix"])
    layouts = load_layouts(str(layouts_path())) if mix > 0 else None
    while True:
        clips, cells, exists = [], [], []
        for _ in range(batch):
            size = {"height": h, "width": w, "frames": cfg["frames"], "h_samples": rows, "num_slots": cfg["slots"]}
            if layouts is not None and rng.random() < mix:
                c = realistic_clip(rng, layouts, **size)
            else:
                c = generate_clip(rng, **size)
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
    x = (prob * torch.arange(g, dtype=loc.dtype, device=loc.device)).sum(-1)
    valid = cell >= 0
    l1 = F.smooth_l1_loss(x[valid], cell[valid].to(loc.dtype)) if valid.any() else loc.sum() * 0
    total = ce + bce + 0.2 * l1
    return total, {"ce": float(ce.detach()), "bce": float(bce.detach()), "l1": float(l1.detach())}


def loss(model: Any, batch: dict[str, np.ndarray]) -> tuple[Any, dict[str, float]]:
    """The whole-clip model on a batch, scored with :func:`lane_loss`."""
    from edge.models.training import batch_tensor

    loc, exist = model(batch_tensor(batch["clip"], model))
    return lane_loss(loc, exist, batch_tensor(batch["cell"], model), batch_tensor(batch["exist"], model))
