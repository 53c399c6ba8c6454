"""``edge doctor`` and ``edge models`` say what is missing with the pip line that installs it, tell a broken install
from an absent one, and print a family's error as written (a review of both commands)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


def test_a_familys_error_is_printed_as_written(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Rich read "[video]" in a pip line as a style tag (the user was told to install 'edge-deploy'), and
    "[/opt/..." crashed the table with a MarkupError traceback."""
    from edge.cli.models_cmd import run_models
    from edge.errors import ModelError
    from edge.models import registry

    def broken() -> None:
        raise ModelError("cv2 is not installed (pip install 'edge-deploy[video]'); cannot read [/opt/models/w]")

    monkeypatch.setitem(registry._REGISTERED, "revbroken", broken)
    from rich.console import Console

    import edge.cli

    monkeypatch.setattr(edge.cli, "console", lambda stderr=False: Console(width=1000, file=sys.stdout))
    run_models(False)
    out = capsys.readouterr().out
    assert "pip install 'edge-deploy[video]'" in out and "cannot read [/opt/models/w]" in out


def test_a_tensorrt_that_does_not_load_is_not_called_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.runtimes import tensorrt

    if "tensorrt" in sys.modules and sys.modules["tensorrt"] is not None:
        pytest.skip("a real TensorRT is loaded here")
    pkg = tmp_path / "tensorrt"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise ImportError('libnvinfer.so.10: cannot open shared object file')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    ok, why = tensorrt._available()
    assert not ok and why.startswith("tensorrt is installed but cannot be imported (ImportError: libnvinfer"), why
    assert "on a Jetson it comes with JetPack" in why


def test_an_old_cuda_python_is_said_too_old(monkeypatch: pytest.MonkeyPatch) -> None:
    """cuda-python before 12.6.1 has no cuda.bindings: it was "not installed; pip install cuda-python", which pip
    answers with "already satisfied"."""
    from importlib import metadata

    from edge import deps

    e = ModuleNotFoundError("No module named 'cuda.bindings'", name="cuda.bindings")
    monkeypatch.setattr(metadata, "version", lambda dist: "12.2.0")
    assert deps.cuda_python_missing(e) == ("cuda-python 12.2.0 has no cuda.bindings (it came with 12.6.1): pip "
                                           "install -U 'cuda-python>=12.6.1'")

    def none(dist: str) -> str:
        raise metadata.PackageNotFoundError(dist)

    monkeypatch.setattr(metadata, "version", lambda dist: "13.0.0")  # new enough: something else is wrong
    assert deps.cuda_python_missing(e).startswith("cuda-python 13.0.0 is installed but cannot be imported")

    monkeypatch.setattr(metadata, "version", none)
    assert deps.cuda_python_missing(e) == "cuda (cuda-python) is not installed (pip install 'edge-deploy[tensorrt]')"


def test_doctor_rows_give_the_pip_line() -> None:
    from edge.cli.doctor_cmd import _pkg

    ok, why = _pkg("edge_no_such_package.sub")
    assert not ok and why == "edge_no_such_package is not installed (pip install edge_no_such_package)"


def test_the_exports_engine_notice_keeps_the_pip_line(tiny_bundle: Path) -> None:
    """A review of README's commands: edge-export --to onnx,tensorrt said "pip install 'edge-deploy'" (Rich read
    "[tensorrt]" as a style tag); lines with paths, reasons or notes print as they are."""
    import io

    from rich.console import Console

    from edge.bundle import Bundle
    from edge.cli.export_cmd import _engines
    from edge.runtimes.registry import get_backend

    ok, why = get_backend("tensorrt").is_available()
    if ok:
        pytest.skip("TensorRT is available here")
    buf = io.StringIO()
    _engines(Bundle.load(tiny_bundle), "tensorrt", ["fp16"], Console(file=buf, width=400))
    assert why in buf.getvalue() and "pip install 'edge-deploy[tensorrt]'" in buf.getvalue()


def test_a_bundle_path_with_brackets_prints_as_it_is(tmp_path: Path) -> None:
    """A review: table titles were read as Rich markup, so `--out 'q[/x]'` wrote the bundle and then crashed with a
    MarkupError traceback (and 'nc[x]' lost its '[x]'); edge val's title and edge calibrate's lines did the same."""
    import subprocess

    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    (tmp_path / "q[").mkdir()
    out = tmp_path / "q[" / "x]"
    r = subprocess.run([sys.executable, "-c", "from edge.cli.main import export_main; export_main()", "lane",
                        "--config", "tiny", "--programs", "clip", "--out", str(out)], capture_output=True, text=True,
                       timeout=300, env={**__import__("os").environ, "COLUMNS": "300"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{out} (lane, attention=" in r.stdout and "Traceback" not in r.stderr
