"""`edge-export --triton-repo` and `edge doctor --require` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli.main", *args], capture_output=True, text=True, timeout=300)


def test_export_writes_a_triton_repo(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    r = subprocess.run([sys.executable, "-c", "from edge.cli.main import export_main; export_main()", "lane",
                        "--config", "tiny", "--dynamic-batch", "--programs", "clip", "--out", str(tmp_path / "b"),
                        "--triton-repo", str(tmp_path / "repo"), "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["triton_repo"] == str(tmp_path / "repo") and doc["triton_precision"] == "fp32"
    cfg = (tmp_path / "repo" / "lane" / "config.pbtxt").read_text()
    assert 'backend: "onnxruntime"' in cfg and "max_batch_size: 8" in cfg and "dims: [ 3, 3, 64, 128 ]" in cfg
    assert (tmp_path / "repo" / "lane" / "1" / "model.onnx").is_file()


@pytest.mark.slow  # moved out of the default run to keep it under 15 min (2026-12-02: 16:24)
def test_every_graph_of_the_bundle_is_served(tmp_path: Path) -> None:
    """A bundle of several graphs (lane's streaming program) gets one Triton model per graph."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    r = subprocess.run([sys.executable, "-c", "from edge.cli.main import export_main; export_main()", "lane",
                        "--config", "tiny", "--programs", "stream", "--out", str(tmp_path / "b"),
                        "--triton-repo", str(tmp_path / "repo")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "repo").iterdir() if p.is_dir()) == ["lane_encoder", "lane_temporal"]
    assert 'name: "lane_temporal"' in (tmp_path / "repo" / "lane_temporal" / "config.pbtxt").read_text()
    assert "stream: encoder -> temporal" in (tmp_path / "repo" / "README.txt").read_text()


def test_bad_triton_backend_fails_before_exporting(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-c", "from edge.cli.main import export_main; export_main()", "lane",
                        "--config", "tiny", "--out", str(tmp_path / "b"), "--triton-repo", str(tmp_path / "repo"),
                        "--triton-backends", "onnxruntime,tflite"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "tflite" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args", [["--triton-backends", "openvino"], ["--triton-device", "cpu"]])
def test_triton_options_without_a_repository_are_refused(tmp_path: Path, args: list[str]) -> None:
    """Found by a review: both were silently ignored without --triton-repo (and refused with it, when unfillable)."""
    r = subprocess.run([sys.executable, "-c", "from edge.cli.main import export_main; export_main()", "lane",
                        "--config", "tiny", "--out", str(tmp_path / "b"), *args], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "give --triton-repo" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_doctor_require_exit_codes() -> None:
    r = _run("doctor", "--json", "--require", "tensorrt")
    rows = {x["name"]: x for x in json.loads(r.stdout)["rows"]}
    assert r.returncode == (0 if rows["tensorrt"]["ok"] else 1)
    assert _run("doctor", "--json", "--require", "opencv").returncode == (0 if rows["opencv"]["ok"] else 1)
    r = _run("doctor", "--require", "flux-capacitor")
    assert r.returncode == 2 and "flux-capacitor" in r.stderr
    if not rows["tensorrt"]["ok"]:  # the table alone did not say why the exit status was 1
        r = _run("doctor", "--require", "tensorrt")
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.returncode == 1 and lines == [f"--require: missing tensorrt ({rows['tensorrt']['detail']})"], r.stderr
