"""Mirror test-time augmentation for lane checkpoints (not adopted as a change; README, lane section): each frame
is also run mirrored, and the mirrored outputs, flipped back, are combined with the plain ones.

Slots are ego-relative (``num_slots // 2 - 1`` the first line left of the camera, ``num_slots // 2`` the first
right), so a mirrored frame's slot ``s`` is the plain frame's slot ``S - 1 - s`` and its grid cell ``g`` is cell
``G - 1 - g``. Combined as: the mirrored outputs alone; the mean of the two logits (``loc`` and ``exist``); the
mean of the two probabilities (softmax over the grid, sigmoid of existence), back to logits. The 16 real
labelled frames and held-out realistic clips (the held-out stream, seed 99), the card's default decoding. Each
combination costs a second pass of the network per frame. Prints accuracy, FP and FN of each (recorded in
benchmarks/results/lane_real_checks.json, ``flip_tta_2026_12_04``).

    python benchmarks/experiments/lane_flip_tta.py [CHECKPOINT] [--clips 150]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from lane_args import checkpoint_and_clips  # beside this script (a script's folder is on sys.path)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def combine(plain: dict[str, np.ndarray], mirrored: dict[str, np.ndarray], how: str) -> dict[str, np.ndarray]:
    """One sample's outputs (loc [1, S, R, G], exist [1, S, R]) from the plain and the mirrored frame's."""
    loc_m = np.ascontiguousarray(mirrored["loc"][:, ::-1, :, ::-1])  # slot s <-> S-1-s, cell g <-> G-1-g
    exist_m = np.ascontiguousarray(mirrored["exist"][:, ::-1])
    if how == "plain":
        return dict(plain)
    if how == "mirrored":
        return {"loc": loc_m, "exist": exist_m}
    if how == "logit mean":
        return {"loc": (plain["loc"] + loc_m) / 2, "exist": (plain["exist"] + exist_m) / 2}
    p = (_softmax(plain["loc"].astype(np.float64)) + _softmax(loc_m.astype(np.float64))) / 2
    e = (1 / (1 + np.exp(-plain["exist"].astype(np.float64))) + 1 / (1 + np.exp(-exist_m.astype(np.float64)))) / 2
    e = np.clip(e, 1e-12, 1 - 1e-12)
    return {"loc": np.log(p + 1e-300), "exist": np.log(e / (1 - e))}


HOWS = ("plain", "mirrored", "logit mean", "probability mean")


def score(card: Any, module: Any, cfg: dict[str, Any], samples: list) -> dict[str, str]:
    """Each combination's metric over ``samples`` (two programs: the plain and the mirrored stream)."""
    from edge.data.frame import Frame
    from edge.program import torch_program

    items: dict[str, list] = {h: [] for h in HOWS}
    with torch_program(card, module, cfg) as a, torch_program(card, module, cfg) as b:
        for sample in samples:
            a.reset()
            b.reset()
            for fr in sample:
                out = a.step(a.preprocess(card, fr))
                flipped = {"camera": Frame(np.ascontiguousarray(fr["camera"].data[:, ::-1]), 0, 0, "camera", {})}
                out_m = b.step(b.preprocess(card, flipped))
            for h in HOWS:
                rec, _ = card.postprocess(combine(out, out_m, h), sample[-1], cfg)
                items[h].append(card.metric.item(rec, sample[-1], cfg))
    res = {}
    for h, it in items.items():
        m = card.metric.score(it)
        res[h] = f"{m['value']:.2f} % (FP {m['fp']:.3f}, FN {m['fn']:.3f})"
    return res


def main() -> None:
    args, card, module, cfg = checkpoint_and_clips(__doc__)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from lane_real_tusimple import REAL, SETS  # the real labelled sets (a script one folder up)

    from edge.models.lane.samples import realistic_samples, tusimple_samples

    every = []
    for gt, root in SETS.values():
        every += tusimple_samples(REAL / gt, REAL / root)
    print("16 real labelled frames:", score(card, module, cfg, every), flush=True)
    print(f"{args.clips} held-out realistic clips:", score(card, module, cfg, realistic_samples(cfg, args.clips, 99)),
          flush=True)


if __name__ == "__main__":
    main()
