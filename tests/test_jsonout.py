"""Files and lines for other programs never hold NaN/Infinity (strict JSON parsers reject them)."""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from edge import jsonout


def _strict(text: str) -> object:
    def refuse(word: str) -> None:
        raise ValueError(f"non-standard JSON constant {word}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_become_null() -> None:
    """A PULSAR run on a file without echo bins wrote "iou": {"echo": NaN}, which JSON.parse refuses."""
    doc = {"iou": {"echo": float("nan"), "jam": 0.5}, "p": [np.float32("inf"), -math.inf, 1], "t": (np.float64(2.0),)}
    assert _strict(jsonout.dumps(doc)) == {"iou": {"echo": None, "jam": 0.5}, "p": [None, None, 1], "t": [2.0]}
    assert jsonout.dumps({"a": 1.5}, indent=1) == json.dumps({"a": 1.5}, indent=1)  # finite: unchanged


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=4), kids, max_size=4),
                    max_leaves=20))
def test_any_document_round_trips_through_a_strict_parser(doc: object) -> None:
    back = _strict(jsonout.dumps(doc))
    assert back == _strict(json.dumps(jsonout.finite(doc), allow_nan=False))


def test_the_benchmark_scripts_write_json_every_parser_reads() -> None:
    """A review: benchmarks/pulsar_eval.py wrote a bare NaN (json.dumps) once a metric could be NaN, which strict
    parsers refuse; every script writes through edge.jsonout."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "benchmarks"
    scripts = [*root.rglob("*.py"), *root.rglob("*.sh")]  # gpu_check.sh holds a Python program too
    raw = [str(p.relative_to(root)) for p in sorted(scripts) if "json.dumps(" in p.read_text()]
    assert raw == []
