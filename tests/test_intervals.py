"""Bootstrap intervals of a family's metric over samples (edge.intervals), checked on hand-made items."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edge.intervals import drop_interval, metric_interval
from edge.models.contract import Metric


def _mean(items: list[Any]) -> dict[str, Any]:
    return {"value": float(np.mean(items)) if items else float("nan")}


MEAN = Metric("mean", lambda r, f, c: None, _mean)
ERROR = Metric("error", lambda r, f, c: None, _mean, higher_is_better=False)


def test_a_score_every_sample_agrees_on_has_no_width() -> None:
    assert metric_interval(MEAN, [0.7] * 12) == pytest.approx((0.7, 0.7))


def test_a_pass_rate_interval_holds_the_rate_and_narrows_with_more_samples() -> None:
    few = [1.0] * 7 + [0.0] * 3  # 70 % of 10
    many = few * 40  # 70 % of 400
    lo, hi = metric_interval(MEAN, few)
    lo_m, hi_m = metric_interval(MEAN, many)
    assert lo < 0.7 < hi and lo_m < 0.7 < hi_m
    assert hi - lo > 3 * (hi_m - lo_m)  # ~1/sqrt(n): 0.5 wide at 10, ~0.09 at 400
    assert 0.35 < hi - lo < 0.7 and 0.06 < hi_m - lo_m < 0.12
    assert metric_interval(MEAN, few) == (lo, hi)  # seeded


def test_unlabelled_samples_are_left_out_and_too_few_give_none() -> None:
    assert metric_interval(MEAN, [None, 1.0, None, 0.0, 1.0]) == metric_interval(MEAN, [1.0, 0.0, 1.0])
    assert metric_interval(MEAN, [None, 0.5]) is None and metric_interval(MEAN, []) is None


def test_a_drop_is_resampled_in_pairs() -> None:
    """Two forms that differ on one sample of 20 by a whole point: unpaired, each score's own spread (0 or 1 per
    sample) would make the drop's interval span about +-0.3; paired, the drop is 0 or 0.05 per resample."""
    ref = [1.0] * 10 + [0.0] * 10
    worse = [*ref[:-11], 0.0, *ref[-10:]]  # sample 9 passes in ref, fails here
    lo, hi = drop_interval(MEAN, ref, worse)
    # never negative (this form is never better on any sample); the top: that sample drawn 3 times of 20
    assert 0.0 <= lo <= 0.05 <= hi < 0.16
    assert drop_interval(MEAN, ref, ref) == (0.0, 0.0)
    # the sense of the metric: a lower error is better, so the drop of a form with larger errors is positive
    lo_e, hi_e = drop_interval(ERROR, [0.1] * 10, [0.2] * 10)
    assert lo_e == pytest.approx(0.1) and hi_e == pytest.approx(0.1)


def test_a_drop_takes_the_samples_both_forms_labelled() -> None:
    ref = [1.0, None, 0.0, 1.0, 1.0]
    other = [1.0, 1.0, None, 1.0, 1.0]  # sample 1 and 2 each labelled only once: left out
    assert drop_interval(MEAN, ref, other) == (0.0, 0.0)
    assert drop_interval(MEAN, [1.0, 0.0], [1.0]) is None  # not the same samples
    assert drop_interval(MEAN, [1.0, None], [1.0, 0.0]) is None  # one sample in common


def test_a_metric_without_a_number_on_most_resamples_gives_none() -> None:
    nan_unless_all = Metric("strict", lambda r, f, c: None,
                            lambda items: {"value": 1.0 if len(set(map(id, items))) == len(items) else float("nan")})
    assert metric_interval(nan_unless_all, [object() for _ in range(8)]) is None
