"""``--max-drop``: metric units or a percentage of the fp32 metric; anything else is one line."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from edge.calibration.precision import PrecisionJob, parse_max_drop
from edge.errors import ExportError


def test_parse_and_budget() -> None:
    assert parse_max_drop(1.0) == (1.0, None) and parse_max_drop("0.25") == (0.25, None)
    assert parse_max_drop("-101") == (-101.0, None)  # "int8 must beat fp32 by 101": a test's way to force a miss
    inf, rel = parse_max_drop(" 5% ")
    assert rel == pytest.approx(0.05) and inf == float("inf")
    for bad in ("x", "5 %%", "inf", "nan", "-3%", "nan%", ""):
        with pytest.raises(ExportError, match="--max-drop"):
            parse_max_drop(bad)
    job = PrecisionJob(card=SimpleNamespace(), cfg={}, module=None, jobs=[], programs=[], precisions=["int8"],
                       max_drop=inf, max_drop_rel=rel)
    assert job.budget(3.4) == pytest.approx(0.17) and job.budget(-2.0) == pytest.approx(0.1)
    assert PrecisionJob(card=None, cfg={}, module=None, jobs=[], programs=[], precisions=[]).budget(90.0) == 1.0
