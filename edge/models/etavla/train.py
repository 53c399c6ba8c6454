"""What the shared training loop needs from ETA-VLA: seeded batches of rendered episodes and the loss.

Rendering an episode (T x 3 views) costs ~0.05-0.1 s, so episodes live in a pool (64) with two renewed per
batch; every draw re-phrases the instruction with another template of the same command (free variety in
the words, never in the meaning). Loss: smooth L1 on the waypoints (m) and the planned speed (m/s). With
``keep_mix`` p, a batch runs with pruning on (keep 0.5, 0.25 or 0.15) with probability p: the full model
first, then a fine-tune with the pruning layer on, as ETA-VLA trains.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

POOL = 64
RENEW = 2
#: keep ratios a batch may be pruned to when ``keep_mix`` > 0: the later layers learn to work from the
#: tokens the rule keeps (the weights serve every keep ratio a bundle is exported at)
TRAIN_KEEPS = (0.5, 0.25, 0.15)


def _episode(rng: np.random.Generator, cfg: dict[str, Any]) -> dict[str, Any]:
    from edge.models.etavla.card import view_feed
    from edge.models.etavla.world import render_episode, sample_episode

    ep = sample_episode(rng, waypoints=int(cfg["waypoints"]))
    imgs = render_episode(ep, rng, frames=int(cfg["frames"]), views=int(cfg["views"]), hw=tuple(cfg["image_hw"]))
    views = np.stack([[view_feed(v, cfg) for v in frame] for frame in imgs])  # [T, V, 3, h, w]
    return {"images": views.astype(np.float32), "command": ep.command,
            "waypoints": ep.waypoints.astype(np.float32), "speed": np.float32(ep.plan_speed)}


def batch_stream(cfg: dict[str, Any], batch: int, seed: int, worker: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Endless batches: images [B, T, V, 3, h, w], instruction [B, L], waypoints [B, W, 2], speed [B, 1]."""
    from edge.models.etavla.tokens import TEMPLATES, tokenize

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, worker)))
    pool = [_episode(rng, cfg) for _ in range(min(POOL, max(batch, 8)))]
    while True:
        for _ in range(RENEW):
            ep = _episode(rng, cfg)
            if len(pool) < POOL:
                pool.append(ep)
            else:
                pool[int(rng.integers(len(pool)))] = ep
        pick = [pool[int(i)] for i in rng.integers(len(pool), size=batch)]
        texts = [TEMPLATES[e["command"]][int(rng.integers(len(TEMPLATES[e["command"]])))] for e in pick]
        yield {"images": np.stack([e["images"] for e in pick]),
               "instruction": np.stack([tokenize(e["command"], t, cfg["vocab"], int(cfg["text_len"]))
                                        for e, t in zip(pick, texts, strict=True)]),
               "waypoints": np.stack([e["waypoints"] for e in pick]),
               "speed": np.stack([e["speed"] for e in pick])[:, None]}


def loss(model: Any, batch: dict[str, np.ndarray]) -> tuple[Any, dict[str, float]]:
    import torch
    import torch.nn.functional as F

    from edge.models.etavla.card import kept
    from edge.models.training import batch_tensor

    policy = model.policy
    k_cfg = policy.k
    if torch.rand(()) < float(model.cfg["keep_mix"]):  # this batch runs pruned, at one of the exported ratios
        policy.k = kept({**model.cfg, "keep": TRAIN_KEEPS[int(torch.randint(len(TRAIN_KEEPS), ()))]})
    try:
        wp, speed, _ = model(batch_tensor(batch["images"], model), batch_tensor(batch["instruction"], model))
    finally:
        policy.k = k_cfg
    lw = F.smooth_l1_loss(wp, batch_tensor(batch["waypoints"], model), beta=0.5)
    ls = F.smooth_l1_loss(speed, batch_tensor(batch["speed"], model), beta=0.5)
    return lw + 0.2 * ls, {"waypoints": float(lw.detach()), "speed": float(ls.detach())}
