"""The export's speed column (`PrecisionJob.step_ms`): n timed steps, or as many as fit in the budget (>= 3)."""

from __future__ import annotations

import contextlib
import time
from types import SimpleNamespace
from typing import Any

from edge.calibration.precision import PrecisionJob


class _Prog:
    def __init__(self, sleep_s: float) -> None:
        self.sleep_s, self.steps = sleep_s, 0

    def step(self, feeds: Any) -> None:
        self.steps += 1
        time.sleep(self.sleep_s)

    def preprocess(self, card: Any, frames: Any) -> Any:  # as edge.program.Program: the card's, for this program
        return card.preprocess(frames, {})


def _job(prog: _Prog) -> Any:
    return SimpleNamespace(eval_samples=lambda: [["f0", "f1"]], cfg={},
                           card=SimpleNamespace(preprocess=lambda f, cfg: f),
                           program=lambda *a, **kw: contextlib.nullcontext(prog))


def test_fast_steps_are_timed_n_times() -> None:
    prog = _Prog(0.0)
    assert PrecisionJob.step_ms(_job(prog), "p", {}, n=15) >= 0
    assert prog.steps == 2 + 1 + 15  # the sample, one warm step, n timed


def test_slow_steps_stop_at_the_budget_but_time_at_least_three() -> None:
    prog = _Prog(0.05)
    ms = PrecisionJob.step_ms(_job(prog), "p", {}, n=15, budget_s=0.0)
    assert prog.steps == 2 + 1 + 3 and ms >= 50
