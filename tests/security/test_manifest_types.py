"""A manifest of the wrong types (files re-hashed, so only the types are wrong) is one line and exit 2
on ``edge bench`` and ``edge run``, never a traceback; so is a hash-consistent corrupt ONNX file.

The CLIs run in-process through the same error boundary the console scripts use (exceptions that
are not EdgeError would escape and fail the test).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from edge.cli.main import _invoke, app
from edge.files import sha256_file


@pytest.fixture(scope="module")
def lane(tiny_clip_bundle: Path) -> Path:
    return tiny_clip_bundle


def _art(m: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in m["artifacts"] if a["name"] == name)


MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "lowered_list": (lambda m: _art(m, "onnx-fp32-full").__setitem__("lowered", ["model.ort.onnx"]),
                     "malformed 'lowered'"),
    "config_missing": (lambda m: m["model"].pop("config"), "'model.config' lacks"),
    "artifacts_empty": (lambda m: m.__setitem__("artifacts", []), "malformed 'precisions'"),
    "graph_int": (lambda m: _art(m, "onnx-fp32-full").__setitem__("graph", 5), "'graph'"),
    "precision_int": (lambda m: _art(m, "onnx-fp32-full").__setitem__("precision", 3), "precision 3"),
    "frames_float": (lambda m: m["model"]["config"].__setitem__("frames", 1e7),
                     "'model.config.frames' must be an integer"),
    "frames_huge": (lambda m: m["model"]["config"].__setitem__("frames", 10_000_000), "model.config.frames"),
    "input_hw_float": (lambda m: m["model"]["config"].__setitem__("input_hw", [1e5, 1e5]), "model.config.input_hw[0]"),
    "input_hw_huge": (lambda m: m["model"]["config"].__setitem__("input_hw", [100_000, 100_000]),
                      "model.config.input_hw[0]"),
    "input_hw_zero": (lambda m: m["model"]["config"].__setitem__("input_hw", [0, 128]), "must be > 0"),
    "io_huge": (lambda m: m["io"]["inputs"][0].__setitem__("shape", [1, 3, 100_000, 100_000]), "declares more than"),
    "programs_list": (lambda m: m.__setitem__("programs", ["clip"]), "'programs' must be an object"),
    "programs_null": (lambda m: m.__setitem__("programs", None), "'programs' must be an object"),  # fuzz found
    "files_size_str": (lambda m: m["files"]["model.onnx"].__setitem__("size", "12"), "file entry 'model.onnx'"),
    "task_list": (lambda m: m.__setitem__("task", []), "'task' must be an object"),
    # a graph's name becomes part of engine file names: a path there would write outside the bundle
    "graph_name_path": (lambda m: m["graphs"].__setitem__("../../victim/pwn", m["graphs"].pop("full")),
                        "graph name '../../victim/pwn' must be"),
    "artifact_graph_path": (lambda m: (m.__setitem__("graphs", {}),
                                       _art(m, "onnx-fp32-full").__setitem__("graph", "../x")), "'graph'"),
    "artifact_file_missing": (lambda m: _art(m, "onnx-fp32-full").pop("file"), "needs a 'file'"),
    # external data is looked for in files named *.onnx: a model named otherwise would skip that check
    "onnx_named_dat": (lambda m: (m["files"].__setitem__("model.dat", m["files"]["model.onnx"]),
                                  _art(m, "onnx-fp32-full").__setitem__("file", "model.dat")), "must be named *.onnx"),
}


def _cli(*args: str | Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = _invoke(app, [str(a) for a in args], "edge")
    return code, capsys.readouterr().err


def _one_line(code: int, err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (code, err)
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_type_confusion_is_one_line(lane: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    b = tmp_path / "b"
    shutil.copytree(lane, b)
    m = json.loads((b / "manifest.json").read_text())
    mutate, needle = MUTATIONS[case]
    mutate(m)
    (b / "manifest.json").write_text(json.dumps(m))
    code, err = _cli("bench", b, "--rounds", "1", "--warmup", "0", "--out", tmp_path, capsys=capsys)
    _one_line(code, err, needle)
    code, err = _cli("run", b, "--source", "synthetic:2", "--out", tmp_path / "r", capsys=capsys)
    _one_line(code, err, needle)
    assert not (tmp_path / "r").exists()


def test_hash_consistent_corrupt_onnx(lane: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The manifest's hash matches, but the file is not a model: every backend says so in one line."""
    b = tmp_path / "b"
    shutil.copytree(lane, b)
    for name in ("model.ort.onnx", "model.onnx"):
        (b / name).write_bytes(b"\x0a\xff\xff\xff\xff\x0f garbage that is not protobuf")
    m = json.loads((b / "manifest.json").read_text())
    for name in ("model.ort.onnx", "model.onnx"):
        m["files"][name].update(sha256=sha256_file(b / name), size=(b / name).stat().st_size)
    (b / "manifest.json").write_text(json.dumps(m))
    code, err = _cli("bench", b, "--backends", "onnxruntime,openvino", "--rounds", "1", "--warmup", "0", "--out",
                     tmp_path, capsys=capsys)
    _one_line(code, err, "model.ort.onnx: not a readable ONNX model")
    code, err = _cli("run", b, "--source", "synthetic:2", "--out", tmp_path / "r", capsys=capsys)
    _one_line(code, err, "model.ort.onnx")


def test_an_export_option_may_be_zero_a_size_may_not() -> None:
    """``prune_layer`` 0 (an export option the model accepts) passes the config check; a size at 0, an
    option below 0 or a float where the configs hold integers does not."""
    from types import SimpleNamespace

    from edge.errors import BundleError
    from edge.manifest_schema import check_config

    card = SimpleNamespace(name="fam", configs={"a": {"layers": 4, "prune": 1, "w": 0.5},
                                                "b": {"layers": 8, "prune": 2, "w": 0.25}},
                           config_added={}, export_options={"prune": "the layer tokens go before", "w": "a weight"})
    assert check_config({"layers": 4, "prune": 0, "w": 0.5}, card, "m.json")["prune"] == 0
    assert check_config({"layers": 4, "prune": 1, "w": 0.0}, card, "m.json")["w"] == 0.0  # a float option at 0
    assert check_config({"layers": 4, "prune": 1, "w": 0}, card, "m.json")["w"] == 0
    for cfg, says in (({"layers": 0, "prune": 1, "w": 0.5}, "'model.config.layers' = 0 must be > 0"),
                      ({"layers": 4, "prune": -1, "w": 0.5}, "'model.config.prune' = -1 must be >= 0"),
                      ({"layers": 4, "prune": 0.0, "w": 0.5}, "'model.config.prune' must be an integer"),
                      ({"layers": 4, "prune": 1, "w": -0.1}, "'model.config.w' = -0.1 must be >= 0")):
        with pytest.raises(BundleError, match=says):
            check_config(cfg, card, "m.json")


@pytest.mark.parametrize("text, says", [("[" * 100_000 + "]" * 100_000, "RecursionError"),
                                        ('{"a": ' + "9" * 5000 + "}", "ValueError")])
def test_manifest_json_python_cannot_read_is_one_line(lane: Path, tmp_path: Path, text: str, says: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Arrays nested past the recursion limit and integers past Python's digit limit are corrupt manifests."""
    b = tmp_path / "b"
    shutil.copytree(lane, b)
    (b / "manifest.json").write_text(text)
    code, err = _cli("run", b, "--source", "synthetic:2", "--out", tmp_path / "r", capsys=capsys)
    _one_line(code, err, "manifest.json: corrupt manifest", says)


def test_a_symlink_loop_in_a_bundle_is_one_line(lane: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = tmp_path / "b"
    shutil.copytree(lane, b)
    (b / "model.onnx").unlink()
    (b / "model.onnx").symlink_to("model.onnx")
    code, err = _cli("run", b, "--source", "synthetic:2", "--out", tmp_path / "r", capsys=capsys)
    _one_line(code, err, "model.onnx")


def test_an_engine_is_never_written_outside_the_bundle(lane: Path, tmp_path: Path) -> None:
    """Even handed a record whose graph name is a path (the manifest check refuses such names first),
    ``add_engine`` writes nothing: the file names are checked before any write."""
    from edge.bundle import Bundle
    from edge.errors import BundleError
    from edge.runtimes.tensorrt import add_engine
    from edge.runtimes.trt_engine import EngineRecord

    b = tmp_path / "deep" / "b"
    shutil.copytree(lane, b)
    rec = EngineRecord(graph="../../victim/pwn", precision="fp16", onnx_file="model.onnx", onnx_sha256="0" * 64,
                       tensorrt="10.0", gpu="none", compute_capability="8.7")
    with pytest.raises(BundleError, match="bad file name"):
        add_engine(Bundle.load(b), rec, b"plan")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if "victim" in p.as_posix()) == []
    assert not (b / "engines").exists()


def test_config_types_and_required_keys_come_from_every_named_config() -> None:
    """A family whose first config says ``scale: 1`` and another ``scale: 0.5`` takes numbers there (the
    card's own second config was refused as 'must be an integer'); a key only one config has is optional."""
    from types import SimpleNamespace

    from edge.errors import BundleError
    from edge.manifest_schema import check_config

    card = SimpleNamespace(name="fam", configs={"tiny": {"scale": 1, "extra": 2, "n": 4},
                                                "default": {"scale": 0.5, "n": 8}}, config_added={}, export_options={})
    assert check_config({"scale": 0.5, "n": 8}, card, "m.json") == {"scale": 0.5, "n": 8}
    assert check_config({"scale": 2, "extra": 3, "n": 4}, card, "m.json")["scale"] == 2
    with pytest.raises(BundleError, match=r"'model\.config\.n' must be an integer"):
        check_config({"scale": 1, "n": 4.5}, card, "m.json")
    with pytest.raises(BundleError, match=r"lacks \['n'\]"):
        check_config({"scale": 1}, card, "m.json")


def test_a_bundle_from_before_a_config_key_runs_with_the_value_that_meant_before(
        lane: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bundle exported before the card gained a key (lane's realistic_mix; NativeCross's landing and match_*)
    has none in its manifest: it was refused "'model.config' lacks [...]" by run, bench and val although the card
    declares the value that meant "before" (config_added, which an older checkpoint already gets). Filled in, it
    runs and computes what it computed; a key the card does not declare missing is still one line."""
    from edge.models import get_card
    from edge.program import load_program

    added = get_card("lane").config_added
    assert added
    b = tmp_path / "old"
    shutil.copytree(lane, b)
    m = json.loads((b / "manifest.json").read_text())
    for k in added:
        m["model"]["config"].pop(k, None)
    (b / "manifest.json").write_text(json.dumps(m))
    code, err = _cli("run", b, "--source", "synthetic:2", "--out", tmp_path / "r", capsys=capsys)
    assert code == 0, err
    card = get_card("lane")
    with load_program(lane) as new, load_program(b) as old:
        assert old.cfg == new.cfg
        for frames in card.data.samples(new.cfg, "evaluation", 1, 0)[0]:
            a, o = new.step(new.preprocess(card, frames)), old.step(old.preprocess(card, frames))
            assert all(np.array_equal(a[k], o[k]) for k in a)
    required = sorted(set(m["model"]["config"]) - set(added))[0]
    m["model"]["config"].pop(required)
    (b / "manifest.json").write_text(json.dumps(m))
    code, err = _cli("run", b, "--source", "synthetic:2", "--out", tmp_path / "r2", capsys=capsys)
    _one_line(code, err, "lacks", required)


def test_filled_config_keys_must_describe_the_bundles_graphs(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A manifest stripped of the keys a card added (by hand: an older bundle never had a matching graph) is not
    filled and run as the older model beside a graph that model has no use for (a review: it ran, the match graph
    loaded and unused, the step fed as without the landing cue): one line naming the graph, export again."""
    from edge.export.api import export_card
    from edge.models import get_card

    b = tmp_path / "nc"
    export_card("nativecross", b, config="tiny", programs=["refine", "refine_match"])
    m = json.loads((b / "manifest.json").read_text())
    for k in get_card("nativecross").config_added:
        m["model"]["config"].pop(k, None)
    (b / "manifest.json").write_text(json.dumps(m))
    code, err = _cli("run", b, "--source", "synthetic:2", "--out", tmp_path / "r", capsys=capsys)
    _one_line(code, err, "lacks", "there is no graph 'match'", "export the bundle again")
