"""A family from outside edge-deploy, found through the ``edge.families`` entry point group, taken through
`edge train`, `edge-export --precision fp32,int8`, `edge bench` and `edge run` with no change to the core.

The family (tests/fixtures/toyfam: two graphs, a stateless program, a colour-accuracy metric) is
installed the way pip would leave it: the package plus a ``.dist-info`` with ``entry_points.txt`` on
``sys.path``, so discovery goes through importlib.metadata for real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "toyfam"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    shutil.copytree(FIXTURE, root / "toyfam", ignore=shutil.ignore_patterns("__pycache__"))
    info = root / "toyfam-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyfam\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[edge.families]\ntoy = toyfam.card:card\n")
    return root


def _edge(site: Path, *args: str, prog: str = "main", timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    code = f"from edge.cli.main import {prog}; {prog}()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def test_without_the_package_the_family_is_unknown() -> None:
    r = subprocess.run([sys.executable, "-m", "edge.cli.main", "train", "toy", "--out", "x.pt"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "unknown model 'toy'" in r.stderr and "Traceback" not in r.stderr


def test_out_of_tree_family_end_to_end(site: Path, tmp_path: Path) -> None:
    r = _edge(site, "models", "--json")
    assert r.returncode == 0, r.stderr
    toy = {m["name"]: m for m in json.loads(r.stdout)}["toy"]
    assert toy["programs"] == {"main": {"graphs": ["embed", "head"], "description": "embed, then classify"}}
    assert toy["metric"] == "colour accuracy (%)"

    ckpt = tmp_path / "toy.pt"
    r = _edge(site, "train", "toy", "--config", "tiny", "--steps", "6", "--batch", "8", "--eval-samples", "8",
              "--out", str(ckpt), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads(r.stdout)
    assert rec["model"] == "toy" and rec["steps"] == 6 and rec["eval"]["metric"] == "colour accuracy"
    assert 0.0 <= rec["eval"]["value"] <= 100.0 and ckpt.is_file()

    bundle = tmp_path / "b"
    r = _edge(site, str(ckpt), "--to", "onnx,openvino", "--precision", "fp32,int8", "--calib-size", "4",
              "--eval-size", "8", "--max-drop", "100", "--out", str(bundle), "--json", prog="export_main")
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout)
    assert {(x["program"], x["precision"], x["backend"]) for x in rep["precisions"]} == {
        ("main", "fp32", "onnxruntime"), ("main", "int8", "onnxruntime"), ("main", "int8-nncf", "openvino"),
        ("main", "int8-u8s8", "onnxruntime")}
    man = json.loads((bundle / "manifest.json").read_text())
    assert man["model"]["family"] == "toy" and set(man["graphs"]) == {"embed", "head"}
    int8 = man["programs"]["main"]["precisions"]["int8"]
    # ONNX Runtime's own form where the graph has convolutions (embed), the symmetric graph elsewhere (head)
    assert int8["onnxruntime"] == {"embed": "onnx-int8-u8s8-embed", "head": "onnx-int8-head"}
    assert int8["openvino"] == {"embed": "openvino-int8-nncf-embed", "head": "openvino-int8-nncf-head"}
    assert {a["file"] for a in man["artifacts"]} >= {"embed.onnx", "head.onnx", "embed.int8.onnx", "head.int8.onnx"}

    r = _edge(site, "bench", str(bundle), "--rounds", "3", "--warmup", "1", "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    configs = {row["config"] for row in json.loads(r.stdout)["rows"]}
    assert {"torch/fp32", "onnxruntime/fp32", "onnxruntime/int8", "openvino/int8-nncf"} <= configs

    # `edge val`: the family's held-out synthetic set, and its own labelled format (a CSV the card reads)
    r = _edge(site, "val", str(bundle), "--data", "synthetic:8", "--backends", "torch,onnxruntime,openvino", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout)
    got = {row["config"]: row for row in rep["rows"]}
    assert {"main:torch/fp32", "main:onnxruntime/fp32", "main:onnxruntime/int8", "main:openvino/int8-nncf"} <= set(got)
    assert rep["samples"] == 8 and rep["metric"] == "colour accuracy"
    assert got["main:onnxruntime/fp32"]["value"] == got["main:torch/fp32"]["value"]  # same frames, parity ~1e-6
    import cv2
    import numpy as np

    data = tmp_path / "mine"
    data.mkdir()
    colours = {0: (200, 40, 40), 2: (40, 40, 200)}  # toyfam's COLOURS (BGR) of classes 0 and 2
    for i, k in enumerate((0, 2, 0)):
        cv2.imwrite(str(data / f"{i}.png"), np.full((48, 64, 3), colours[k], np.uint8))
    (data / "labels.csv").write_text("0.png,0\n1.png,2\n2.png,0\n")
    r = _edge(site, "val", str(bundle), "--data", f"{data / 'labels.csv'},limit=2", "--backends", "onnxruntime",
              "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout)
    assert rep["samples"] == 2 and all(row["score"]["num"] == 2 for row in rep["rows"])
    r = _edge(site, "val", str(bundle), "--data", f"{data / 'labels.csv'},nope=1")
    assert r.returncode == 2 and "unknown option" in r.stderr and "Traceback" not in r.stderr
    # the same format calibrates INT8 (`--calib` takes what `--data` takes); a bad option fails before any export
    r = _edge(site, str(ckpt), "--precision", "fp32,int8", "--calib", f"{data / 'labels.csv'},nope=1",
              "--out", str(tmp_path / "c"), prog="export_main")
    assert r.returncode == 2 and "--calib" in r.stderr and "unknown option nope" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and not (tmp_path / "c").exists()

    for backend, precision in (("onnxruntime", "fp32"), ("openvino", "int8")):
        out = tmp_path / f"run_{backend}"
        r = _edge(site, "run", str(bundle), "--source", "synthetic:6:48x64", "--backend", backend, "--precision",
                  precision, "--out", str(out), "--json")
        assert r.returncode == 0, r.stderr[-2000:]
        s = json.loads(r.stdout)
        assert s["frames"] == 6 and s["task"]["task"] == "toy" and s["task"]["precision"] == precision
        assert s["task"]["metric"]["name"] == "colour accuracy" and s["task"]["metric"]["frames"] == 6
        lines = [json.loads(x) for x in (out / "classes.jsonl").read_text().splitlines()]
        assert len(lines) == 6 and all(0 <= x["class"] < 4 for x in lines)
        assert (out / "overlay.mp4").stat().st_size > 0


def test_register_at_run_time(tmp_path: Path) -> None:
    """`edge.models.register` adds a family in-process; a card naming itself differently is refused."""
    sys.path.insert(0, str(FIXTURE.parent))
    try:
        from toyfam.card import card

        import edge
        from edge.errors import ModelError

        edge.models.register("toy2", card)
        try:
            with pytest.raises(ModelError, match="calls itself 'toy'"):
                edge.models.get_card("toy2")
        finally:
            edge.models.unregister("toy2")
        edge.models.register("toy", card)
        try:
            assert "toy" in edge.list_models() and edge.models.get_card("toy").programs[0].name == "main"
        finally:
            edge.models.unregister("toy")
    finally:
        sys.path.remove(str(FIXTURE.parent))
