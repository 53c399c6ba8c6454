"""What the shared training loop needs from PULSAR-Net: seeded jammed crops and the loss.

Crops are simulated street blocks (the config's channel x azimuth crop, every time bin), jammed 3 times
in 4. Loss = class-weighted cross-entropy over every bin (background is ~97 % of them) + soft Dice on
the echo and attack classes (scale-free, so the rare classes count however few their bins are).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

#: cross-entropy weights for background, real echo, attack
CLASS_WEIGHTS = (0.2, 4.0, 1.0)


def batch_stream(cfg: dict[str, Any], batch: int, seed: int, worker: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Endless batches: waveform [B, 1, C, A, T] float32, labels [B, C, A, T] int64."""
    from edge.models.pulsar.samples import cfg_layout, crop

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, worker)))
    lay = cfg_layout(cfg)
    cc, ca = cfg["crop"]
    while True:
        waves, labels = [], []
        for _ in range(batch):
            f = crop(rng, lay, ca)
            c0 = int(rng.integers(0, lay.channels // cc)) * cc
            waves.append(f.waveform[c0:c0 + cc].astype(np.float32))
            labels.append(f.labels[c0:c0 + cc].astype(np.int64))
        yield {"waveform": np.stack(waves)[:, None], "labels": np.stack(labels)}


def loss(model: Any, batch: dict[str, np.ndarray]) -> tuple[Any, dict[str, float]]:
    import torch
    import torch.nn.functional as F

    from edge.models.training import batch_tensor

    logits = model(batch_tensor(batch["waveform"], model))
    target = batch_tensor(batch["labels"], model)
    ce = F.cross_entropy(logits, target, weight=torch.tensor(CLASS_WEIGHTS, dtype=logits.dtype, device=logits.device))
    prob = logits.softmax(1)
    onehot = F.one_hot(target, 3).permute(0, 4, 1, 2, 3).to(prob.dtype)
    dims = (0, 2, 3, 4)
    inter = (prob * onehot).sum(dims)[1:]
    denom = (prob + onehot).sum(dims)[1:]
    dice = 1.0 - ((2 * inter + 1.0) / (denom + 1.0)).mean()
    total = ce + dice
    return total, {"ce": float(ce.detach()), "dice": float(dice.detach())}
