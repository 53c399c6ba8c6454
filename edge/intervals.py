"""How well a score measured on a few samples pins the metric down: 95 % intervals over the samples.

Why: a labelled set is often small (16 real frames, 40 held-out samples in a gate), and a score or a drop
between two precisions moves by more than a point from one sample more or less: a table of 89.24 % against a
95 % goal, or a drop of 0.04 against a 1.0 budget, says nothing of that alone.

Two kinds of metric, two methods:

* A metric that scores each sample pass or fail (its card gives a ``quantum``: a rate of samples within a
  tolerance): the Wilson score interval of the rate, and Newcombe's hybrid score interval (method 10, 1998) for the
  difference of two rates on the same samples. Why not the bootstrap: where every sample passes (40 of 40) every
  resample does too, and the bootstrap's "95 %" interval is the single point 100-100 %, which 40 samples cannot
  pin down (Wilson: 91.2-100 %); in simulation it held the true rate in a third of the runs.
* Any other metric (an accuracy over points, an error in metres): the percentile bootstrap, each resample scored
  with the family's own ``reduce``; a drop resamples the same samples for both forms (*in pairs*), because the two
  were scored on the same samples and their difference, not each score, is what a budget judges. Seeded: the same
  items give the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: resamples per bootstrap interval: its ends move by well under a tenth of its width between seeds at this count
RESAMPLES = 1000
LEVEL = 0.95


def _ends(values: Sequence[float], level: float) -> tuple[float, float] | None:
    """The ``level`` percentile interval of bootstrap ``values`` (one per resample); None when under 99 % of them are
    finite (a metric not defined on many resamples)."""
    vals = np.asarray([v for v in values if math.isfinite(v)], np.float64)
    if len(vals) < len(values) * 0.99 or len(vals) == 0:  # a metric not defined on many resamples: no interval
        return None
    lo, hi = np.quantile(vals, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def resample_rows(n: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, n] indices of ``n`` samples drawn with replacement, seeded: each row one bootstrap resample (the
    same rows index every paired series, so a pair is drawn together)."""
    return np.random.default_rng(seed).integers(0, n, (resamples, n))


def _z(level: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf((1 + level) / 2)


def wilson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``k`` of ``n`` (fractions)."""
    z, p = _z(level), k / n
    mid, half = (p + z * z / (2 * n)), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    den = 1 + z * z / n
    # exactly 0 at k = 0 and 1 at k = n: the formula's rounding gave 1e-15 there, an interval above its own 0 % value
    lo = 0.0 if k <= 0 else max(0.0, min(p, (mid - half) / den))
    hi = 1.0 if k >= n else min(1.0, max(p, (mid + half) / den))
    return lo, hi


def newcombe_paired(a: int, b: int, c: int, d: int, level: float = LEVEL) -> tuple[float, float]:
    """Newcombe's interval (method 10) for ``p1 - p2`` of two proportions on the same ``n`` samples: ``a`` passed
    both, ``b`` the first only, ``c`` the second only, ``d`` neither (fractions)."""
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, level)
    l2, u2 = wilson(a + c, n, level)
    den = (a + b) * (c + d) * (a + c) * (b + d)
    # the correlation of the pairs, with Newcombe's adjustment: a positive AD - BC shrunk by N/2 (not below 0)
    cross = a * d - b * c
    cross = max(cross - n / 2, 0.0) if cross > 0 else cross
    phi = cross / math.sqrt(den) if den > 0 else 0.0
    dl = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    du = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return p1 - p2 - dl, p1 - p2 + du


def _passes(metric: Any, items: Sequence[Any]) -> tuple[list[bool], float] | None:
    """Each item's pass (its own score at the top of the metric's step) and the value a pass is worth over all of
    them, for a metric that says it scores samples pass or fail (``quantum``); None when it has no quantum or its
    scores do not behave so (one item scoring neither 0 nor a whole step, or the rate not the share that passed)."""
    if getattr(metric, "quantum", None) is None or not items:
        return None
    n = len(items)
    full = metric.quantum(n) * n  # the value of a rate every sample passed (100 for a percentage)
    one = [metric.score([it])["value"] for it in items]
    if not all(math.isclose(v, 0.0, abs_tol=1e-9 * full) or math.isclose(v, full, rel_tol=1e-9) for v in one):
        return None
    ok = [v > full / 2 for v in one]
    if not math.isclose(metric.score(list(items))["value"], full * sum(ok) / n, rel_tol=1e-9, abs_tol=1e-9 * full):
        return None
    return ok, full


def metric_interval(metric: Any, items: Sequence[Any], *, level: float = LEVEL, resamples: int = RESAMPLES,
                    seed: int = 0) -> tuple[float, float] | None:
    """A ``level`` interval of ``metric.score(items)["value"]`` over the labelled items (None items, frame sets
    without a label, left out); None with fewer than 2 labelled items or when most bootstrap resamples score no
    number. A pass/fail metric (``quantum``) gets the Wilson interval of its rate."""
    got = [it for it in items if it is not None]
    if len(got) < 2:
        return None
    passed = _passes(metric, got)
    if passed is not None:
        ok, full = passed
        lo, hi = wilson(sum(ok), len(ok), level)
        return full * lo, full * hi
    rows = resample_rows(len(got), resamples, seed)
    return _ends([metric.score([got[i] for i in row])["value"] for row in rows], level)


def drop_interval(metric: Any, reference: Sequence[Any], items: Sequence[Any], *, level: float = LEVEL,
                  resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float] | None:
    """A ``level`` interval of ``metric.drop(score(reference), score(items))``, the two item lists being the same
    samples in the same order (None where a sample has no label), over the samples both labelled: Newcombe's for a
    pass/fail metric, else a bootstrap resampling them in pairs. None with fewer than 2 such samples, when the lists
    differ in length, or when most resamples score no number."""
    if len(reference) != len(items):
        return None
    both = [k for k, (a, b) in enumerate(zip(reference, items, strict=True)) if a is not None and b is not None]
    if len(both) < 2:
        return None
    ref, got = [reference[k] for k in both], [items[k] for k in both]
    p_ref, p_got = _passes(metric, ref), _passes(metric, got)
    if p_ref is not None and p_got is not None:
        full = p_ref[1]
        pairs = list(zip(p_ref[0], p_got[0], strict=True))
        a, b, c = pairs.count((True, True)), pairs.count((True, False)), pairs.count((False, True))
        lo, hi = newcombe_paired(a, b, c, len(pairs) - a - b - c, level)  # reference's rate minus this one's
        if metric.higher_is_better:
            return full * lo, full * hi
        return -full * hi, -full * lo
    drops = []
    for row in resample_rows(len(both), resamples, seed):
        drops.append(metric.drop(metric.score([ref[i] for i in row])["value"],
                                 metric.score([got[i] for i in row])["value"]))
    return _ends(drops, level)
