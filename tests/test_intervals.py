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


RATE = Metric("rate", lambda r, f, c: None, lambda items: {"value": 100.0 * float(np.mean(items)) if items else 0.0},
              quantum=lambda n: 100.0 / n)


def test_a_pass_fail_rate_gets_a_wilson_interval_not_a_point() -> None:
    """Every one of 40 samples passing: each bootstrap resample passes too, and its "95 %" interval was the point
    100-100, which 40 samples cannot pin down. A metric with a quantum (pass or fail per sample) gets Wilson's."""
    lo, hi = metric_interval(RATE, [1.0] * 40)
    assert lo == pytest.approx(91.238, abs=1e-3) and hi == pytest.approx(100.0)
    lo, hi = metric_interval(RATE, [1.0] * 7 + [0.0] * 3)  # 7 of 10: Wilson 39.7-89.2 %
    assert (lo, hi) == pytest.approx((39.678, 89.221), abs=1e-3)
    # items a quantum metric scores other than pass or fail (its reduce is not a rate of them): the bootstrap
    assert metric_interval(RATE, [0.5] * 10) == pytest.approx((50.0, 50.0))


def test_a_paired_rate_drop_covers_the_truth_about_95_percent_of_the_time() -> None:
    """Newcombe's interval for two rates on the same samples, on simulated pairs of 40 frames, 600 runs each: where
    many frames change (fp32 passes 80 %, the form fails 30 % of those and passes 10 % of the others; true drop 22
    points) it holds the true drop in about 95 % of runs; where few do (90 %, 4 %, 1 %: 3.5 points) in all of them,
    never as the point 0-0 that the bootstrap gave whenever no changed frame was drawn (36 % of its intervals)."""
    def cover(p_ref: float, lose: float, gain: float) -> tuple[float, int]:
        rng = np.random.default_rng(7)
        truth = 100 * (p_ref * lose - (1 - p_ref) * gain)
        held, zero = 0, 0
        for _ in range(600):
            ref = rng.random(40) < p_ref
            got = ref ^ np.where(ref, rng.random(40) < lose, rng.random(40) < gain)
            lo, hi = drop_interval(RATE, [float(x) for x in ref], [float(x) for x in got])
            held += lo <= truth <= hi
            zero += lo == hi
        return held / 600, zero

    many, rare = cover(0.8, 0.3, 0.1), cover(0.9, 0.04, 0.01)
    assert 0.92 <= many[0] <= 0.98 and rare[0] >= 0.95 and many[1] == rare[1] == 0
    # the sense: for a rate where lower is better (a failure rate), a form failing more has a positive drop
    fails = Metric("failures", RATE.item, RATE.reduce, higher_is_better=False, quantum=RATE.quantum)
    lo, hi = drop_interval(fails, [0.0] * 30 + [1.0] * 10, [0.0] * 20 + [1.0] * 20)
    assert 0 < lo < 25.0 < hi


def test_an_export_row_never_takes_another_forms_interval() -> None:
    """The gate scores its tries under temporary names, so a row finds its scoring by value: two scorings of one
    program on one backend with the same value but different samples passing (a fallback try reaching the refused
    form's rate) leave the row without an interval rather than with the other's."""
    from types import SimpleNamespace

    from edge.calibration.precision import PrecisionJob, _scoring_key

    job = object.__new__(PrecisionJob)
    key = _scoring_key("openvino", {"inference_precision": "f32"})
    fp32 = [1.0] * 34 + [0.0] * 6
    form = [0.0] * 12 + [1.0] * 28  # 70 %
    later = [1.0] * 28 + [0.0] * 12  # 70 % too, other samples failing
    job.card = SimpleNamespace(metric=RATE)
    job._fp32_items = {"p": fp32}
    job._scorings = {"p": [(_scoring_key("onnxruntime", {}), 85.0, fp32), (key, 70.0, form)]}
    alone = job.drop_interval("p", 70.0, "openvino", inference_precision="f32")
    assert alone == pytest.approx(list(drop_interval(RATE, fp32, form)))
    job._scorings["p"].append((key, 70.0, later))
    assert job.drop_interval("p", 70.0, "openvino", inference_precision="f32") is None
    job._scorings["p"][-1] = (key, 70.0, list(form))  # the same form scored again: the same samples, kept
    assert job.drop_interval("p", 70.0, "openvino", inference_precision="f32") == alone
    assert job.drop_interval("p", 70.0, "onnxruntime") is None  # no scoring of that value there
    # a form that ties with fp32 on fp32's own backend (the commonest result for a rate): its own interval, not none
    # because fp32's scoring has the same value, nor fp32 against itself
    tie = [1.0] * 33 + [0.0, 1.0] + [0.0] * 5  # 34 of 40 as fp32, but sample 33 and 34 swapped
    job._scorings["p"].append((_scoring_key("onnxruntime", {}), 85.0, tie))
    assert job.drop_interval("p", 85.0, "onnxruntime") == pytest.approx(list(drop_interval(RATE, fp32, tie)))
    assert drop_interval(RATE, fp32, tie) != drop_interval(RATE, fp32, fp32)


@pytest.mark.parametrize("n", [1, 7, 20, 100, 1000])
def test_a_wilson_interval_holds_its_own_rate_at_the_ends(n: int) -> None:
    """A review: 0 passes of 20 gave a lower end of 1.2e-15 in the JSON, above the 0 % value it is the interval of;
    all passes ended below 1 the same way."""
    from edge.intervals import wilson

    assert wilson(0, n)[0] == 0.0 and wilson(n, n)[1] == 1.0
    for k in range(0, n + 1, max(1, n // 10)):
        lo, hi = wilson(k, n)
        assert 0.0 <= lo <= k / n <= hi <= 1.0
