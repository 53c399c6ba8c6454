"""edge.bench.interleave.median_ms_each: the export-time timers' shared "open, try once, time interleaved"."""

from __future__ import annotations

import pytest

from edge.bench.interleave import median_ms_each


class _Rt:
    def __init__(self, log: list[str], name: str, fail_call: bool = False) -> None:
        self.log, self.name, self.fail_call = log, name, fail_call

    def close(self) -> None:
        self.log.append(f"close {self.name}")


def _call(rt: _Rt) -> None:
    if rt.fail_call:
        raise RuntimeError(f"{rt.name} refused")


def _refuse_open() -> _Rt:
    raise ValueError("cannot open")


def test_a_refused_candidate_gives_its_exception_and_every_runtime_is_closed() -> None:
    log: list[str] = []
    out = median_ms_each([lambda: _Rt(log, "a"), _refuse_open, lambda: _Rt(log, "c", fail_call=True),
                          lambda: _Rt(log, "d")], _call, rounds=3)
    assert isinstance(out[0], float) and out[0] >= 0 and isinstance(out[3], float)
    assert isinstance(out[1], ValueError) and isinstance(out[2], RuntimeError) and "c refused" in str(out[2])
    assert sorted(log) == ["close a", "close c", "close d"]  # the one that failed its first call, at once


def test_a_failure_while_timing_still_closes_the_runtimes() -> None:
    log: list[str] = []
    calls = {"n": 0}

    def flaky(rt: _Rt) -> None:
        calls["n"] += 1
        if calls["n"] > 2:  # each runtime's first call passes; the timing rounds then fail
            raise RuntimeError("mid-run")

    with pytest.raises(RuntimeError, match="mid-run"):
        median_ms_each([lambda: _Rt(log, "a"), lambda: _Rt(log, "b")], flaky, rounds=2)
    assert sorted(log) == ["close a", "close b"]
