"""`edge-export --precision fp32,fp16,int8`: artifacts, manifest records, the gate's exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import edge

EXPORT = [sys.executable, "-c", "from edge.cli.main import export_main; export_main()"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXPORT, *args], capture_output=True, text=True, timeout=600)


def test_fp16_and_int8_artifacts(tmp_path: Path) -> None:
    out = tmp_path / "b"
    r = _run("lane", "--config", "tiny", "--programs", "clip", "--precision", "fp32,fp16,int8", "--calib-size", "6",
             "--eval-size", "6", "--max-drop", "100", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {row["precision"]: row for row in json.loads(r.stdout)["precisions"]}
    assert set(rows) == {"fp32", "fp16", "int8"}
    b = edge.Bundle.load(out)
    arts = {a.get("precision"): a for a in b.artifacts if a["format"] == "onnx"}
    assert arts["fp16"]["parity"]["max_rel"] < 1e-2
    q = arts["int8"]["quantization"]
    assert q["format"] == "qdq" and q["calibration_samples"] == 6 and q["tries"]
    assert arts["int8"]["metric"]["fp32"] == rows["fp32"]["metric"]
    feeds = {"clip": __import__("numpy").zeros(b.io.inputs[0].concrete(batch=1), "float32")}
    for prec in ("fp16", "int8"):
        out_ = edge.load(b, backend="onnxruntime", precision=prec).infer(feeds)
        assert set(out_) == {"loc", "exist"}


def test_gate_failure_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "b"
    r = _run("lane", "--config", "tiny", "--programs", "clip", "--precision", "int8", "--calib-size", "4",
             "--eval-size", "4", "--max-drop", "-1", "--out", str(out))
    assert r.returncode == 2
    assert "no int8 artifact written" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_unknown_precision(tmp_path: Path) -> None:
    r = _run("lane", "--config", "tiny", "--programs", "clip", "--precision", "int4", "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and "int4" in r.stderr
