"""The one training loop every family uses (``edge train``): seeded, AdamW + one-cycle, prefetching.

A family provides only its :class:`~edge.models.contract.Trainer` (seeded numpy batches and a loss);
the loop owns what must not differ between families: torch seeding (same seed, same checkpoint), the
optimizer and schedule, gradient clipping, rendering batches in a background thread (OpenCV and numpy
release the GIL, so data generation overlaps the step on 2 cores) and passing a renderer's error to
the caller instead of hanging.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from edge.errors import ModelError
from edge.models.contract import Config, ModelCard


def train(card: ModelCard, cfg: Config, *, steps: int, batch: int = 8, lr: float | None = None, seed: int = 0,
          init_state: dict[str, Any] | None = None, progress: Callable[[int, float], None] | None = None,
          threads: int | None = None, init_partial: bool = False) -> tuple[Any, list[float]]:
    """Train ``card``'s model for ``steps`` optimizer steps; returns (module in eval mode, loss per step).

    ``init_partial``: ``init_state`` may lack layers (a checkpoint from before a config option added
    them); those keep their fresh initialisation."""
    import torch

    if card.trainer is None:
        raise ModelError(f"model '{card.name}' declares no trainer")
    tr = card.trainer
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    model = card.build(cfg)
    if init_state is not None:
        missing, unexpected = model.load_state_dict(init_state, strict=False)
        if unexpected or (missing and not init_partial):
            raise ModelError(f"model '{card.name}': the initial weights do not fit the config (missing "
                             f"{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    model.train()
    peak = tr.lr if lr is None else lr
    opt = torch.optim.AdamW(model.parameters(), lr=peak, weight_decay=tr.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=peak, total_steps=max(steps, 1), pct_start=0.1)
    losses: list[float] = []
    done = 0
    for step, b in zip(range(steps), prefetch(tr.batches(cfg, batch, seed))):
        loss, _ = tr.loss(model, b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tr.clip_grad:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tr.clip_grad)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        done = step + 1
        if progress:
            progress(done, losses[-1])
    if done < steps:
        raise ModelError(f"model '{card.name}': its trainer's batches ended after {done} of {steps} steps "
                         "(Trainer.batches must be endless)")
    model.eval()
    return model, losses


def prefetch(it: Iterator[dict[str, np.ndarray]], depth: int = 4) -> Iterator[dict[str, np.ndarray]]:
    """Draw items of ``it`` in a background thread; its exceptions are raised here, in the consumer, and
    its end ends this iterator too."""
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

    end = object()

    def work() -> None:
        try:
            for item in it:
                if not put(item):
                    return
            put(end)
        except BaseException as e:  # hand the generator's error to the consumer instead of hanging it
            put(e)

    th = threading.Thread(target=work, daemon=True)
    th.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
