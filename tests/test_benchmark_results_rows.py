"""The lane benchmark scripts' results files (benchmarks/results_rows.py): a measured row replaces only the row
of the same key; hand-recorded rows and keys stay; a file of another kind is refused before any measuring."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "results_rows", Path(__file__).resolve().parents[1] / "benchmarks" / "results_rows.py")
assert _SPEC and _SPEC.loader
rr = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(rr)


def test_a_row_replaces_only_its_own_key(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    out.write_text(json.dumps({"rows": [{"checkpoint": "a", "decode": "x", "v": 1},
                                        {"checkpoint": "a", "decode": "hand", "v": 2},
                                        {"checkpoint": "b", "decode": "x", "v": 3}],
                               "experiments": [{"note": "kept"}]}))
    kept = rr.read_results(out)
    rr.write_rows(out, kept, [{"checkpoint": "a", "decode": "x", "v": 9}, {"checkpoint": "c", "decode": "x", "v": 4}],
                  lambda r: (r.get("checkpoint"), r.get("decode")))
    got = json.loads(out.read_text())
    assert got["experiments"] == [{"note": "kept"}]
    assert sorted((r["checkpoint"], r["decode"], r["v"]) for r in got["rows"]) == [
        ("a", "hand", 2), ("a", "x", 9), ("b", "x", 3), ("c", "x", 4)]


def test_absent_file_is_empty_and_a_foreign_file_is_refused(tmp_path: Path) -> None:
    assert rr.read_results(tmp_path / "none.json") == {}
    for text in ("[1, 2]", '{"rows": {"a": 1}}'):
        (tmp_path / "f.json").write_text(text)
        with pytest.raises(SystemExit, match=r"f\.json: not a results file"):
            rr.read_results(tmp_path / "f.json")


def test_checkpoints_inside_the_repository_are_named_relative_to_it(tmp_path: Path) -> None:
    assert rr.checkpoint_name(str(rr.ROOT / "edge" / "x.pt")) == "edge/x.pt"
    assert rr.checkpoint_name(str(tmp_path / "x.pt")) == str(tmp_path / "x.pt")


def test_measure_reads_first_then_merges_each_checkpoints_row(tmp_path: Path) -> None:
    """``measure`` refuses a foreign file before measuring anything, and merges one row per checkpoint."""
    out = tmp_path / "r.json"
    out.write_text("[1]")
    measured: list[str] = []
    with pytest.raises(SystemExit, match="not a results file"):
        rr.measure(out, ["a"], lambda c: measured.append(c) or {"checkpoint": c}, lambda r: (r["checkpoint"],))
    assert measured == []
    out.write_text(json.dumps({"rows": [{"checkpoint": "a", "v": 1}, {"checkpoint": "b", "v": 2}]}))
    rr.measure(out, ["a", "c"], lambda c: {"checkpoint": c, "v": 9}, lambda r: (r["checkpoint"],))
    assert sorted((r["checkpoint"], r["v"]) for r in json.loads(out.read_text())["rows"]) == [
        ("a", 9), ("b", 2), ("c", 9)]


def test_rounded_metric() -> None:
    m = {"value": 89.243861, "fp": 0.1937512, "fn": 0.18751, "num": 16}
    assert rr.rounded_metric(m) == {"value": 89.2439, "fp": 0.1938, "fn": 0.1875}
    assert rr.rounded_metric(m, 2)["value"] == 89.24
