"""interleaved_ms: every callable timed once per round after an untimed call, the order alternating."""

from __future__ import annotations

from edge.bench.interleave import interleaved_ms


def test_each_round_calls_each_twice_and_the_order_alternates() -> None:
    seen: list[str] = []
    calls = [lambda n=n: seen.append(n) for n in "abc"]
    times = interleaved_ms(calls, 3)
    assert [len(t) for t in times] == [3, 3, 3] and all(v >= 0 for t in times for v in t)
    assert "".join(seen) == "aabbcc" + "ccbbaa" + "aabbcc"
    assert interleaved_ms([], 4) == []


def test_speedup_interval_holds_the_ratio_and_narrows_with_agreeing_rounds() -> None:
    import numpy as np
    import pytest

    from edge.bench.interleave import speedup_interval

    # every round exactly 4x: the interval is the point, whatever the rounds' own spread
    ref = [20.0, 30.0, 10.0, 25.0, 40.0]
    assert speedup_interval(ref, [r / 4 for r in ref]) == pytest.approx((4.0, 4.0))
    # paired: a slow round slows both; unpaired resampling would mix a slow torch round with a fast one of the other
    rng = np.random.default_rng(1)
    drift = rng.uniform(1.0, 1.5, 60)  # the machine's speed per round
    torch_ms, ov_ms = 20 * drift * rng.uniform(0.98, 1.02, 60), 5 * drift * rng.uniform(0.98, 1.02, 60)
    lo, hi = speedup_interval(torch_ms, ov_ms)
    point = float(np.median(torch_ms) / np.median(ov_ms))
    assert lo <= point <= hi and hi - lo < 0.4 and lo > 3.6 and hi < 4.4
    # noisier rounds give a wider interval; the same samples the same interval (seeded)
    noisy = 5 * drift * rng.uniform(0.7, 1.3, 60)
    wide = speedup_interval(torch_ms, noisy)
    assert wide[1] - wide[0] > hi - lo and speedup_interval(torch_ms, noisy) == wide
    with pytest.raises(ValueError, match="paired rounds"):
        speedup_interval([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="level"):
        speedup_interval([1.0], [1.0], level=1.5)
