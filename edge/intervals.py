"""How well a score measured on a few samples pins the metric down: bootstrap intervals over the samples.

Why: a labelled set is often small (16 real frames, 40 held-out samples in a gate), and a score or a drop
between two precisions moves by more than a point from one sample more or less: a table of 89.24 % against a
95 % goal, or a drop of 0.04 against a 1.0 budget, says nothing of that alone. Each interval resamples the
samples with replacement and scores each resample with the family's own ``reduce`` (so any metric works: an
accuracy over points, a rate of samples passed, a median error); a drop resamples both configurations' items
*in pairs* (the same samples for both), because the two were scored on the same samples and their difference,
not each score, is what a budget judges. Seeded: the same items give the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: resamples per interval: a 95 % interval's ends move by well under a tenth of its width between seeds at this count
RESAMPLES = 1000
LEVEL = 0.95


def _ends(values: list[float], level: float) -> tuple[float, float] | None:
    vals = np.asarray([v for v in values if math.isfinite(v)], np.float64)
    if len(vals) < len(values) * 0.99 or len(vals) == 0:  # a metric not defined on many resamples: no interval
        return None
    lo, hi = np.quantile(vals, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, (resamples, n))


def metric_interval(metric: Any, items: Sequence[Any], *, level: float = LEVEL, resamples: int = RESAMPLES,
                    seed: int = 0) -> tuple[float, float] | None:
    """A ``level`` bootstrap interval of ``metric.score(items)["value"]`` over the labelled items (None items, frame
    sets without a label, left out); None with fewer than 2 labelled items or when most resamples score no
    number."""
    got = [it for it in items if it is not None]
    if len(got) < 2:
        return None
    return _ends([metric.score([got[i] for i in row])["value"] for row in _indices(len(got), resamples, seed)], level)


def drop_interval(metric: Any, reference: Sequence[Any], items: Sequence[Any], *, level: float = LEVEL,
                  resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float] | None:
    """A ``level`` bootstrap interval of ``metric.drop(score(reference), score(items))``, the two item lists being the
    same samples in the same order (None where a sample has no label); resampled in pairs over the samples both
    labelled. None with fewer than 2 such samples, when the lists differ in length, or when most resamples score
    no number."""
    if len(reference) != len(items):
        return None
    both = [k for k, (a, b) in enumerate(zip(reference, items, strict=True)) if a is not None and b is not None]
    if len(both) < 2:
        return None
    drops = []
    for row in _indices(len(both), resamples, seed):
        pick = [both[i] for i in row]
        drops.append(metric.drop(metric.score([reference[k] for k in pick])["value"],
                                 metric.score([items[k] for k in pick])["value"]))
    return _ends(drops, level)
