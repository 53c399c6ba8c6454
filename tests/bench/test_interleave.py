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
