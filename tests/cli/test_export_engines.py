"""``edge-export --to tensorrt`` on a machine with the engine builder goes through ``edge build``'s own path
(``build_cmd.run_build``): every graph at every precision, each new engine handed the check against ONNX Runtime,
the masked-attention refusal before any build. No TensorRT here: the backend's availability and its build are
faked; what is tested is which path the export takes and what it reports."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


@pytest.fixture
def fake_builder(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    from edge.runtimes import tensorrt, trt_engine

    calls: list[dict[str, Any]] = []

    def build(bundle: Any, *, graph: str, precision: str, **kw: Any) -> tuple[Any, bool]:
        calls.append({"graph": graph, "precision": precision, "verify": kw.get("verify"), "dims": kw.get("dims")})
        rec = trt_engine.EngineRecord(graph, precision, f"{graph}.onnx", "0" * 64, "10.14.1", "fake", "9.0",
                                      engine_file=f"engines/{graph}.{precision}.plan", build_s=0.5)
        return rec, False

    be = dataclasses.replace(tensorrt.BACKEND, is_available=lambda: (True, "10.14.1 (faked)"), build=build)
    monkeypatch.setattr(tensorrt, "BACKEND", be)
    return calls


def test_export_builds_every_graph_through_edge_builds_path(tiny_bundle: Path,
                                                                           fake_builder: list[dict[str, Any]]) -> None:
    from rich.console import Console

    import edge
    from edge.cli import build_cmd
    from edge.cli.export_cmd import _engines

    seen: list[str] = []
    real = build_cmd.run_build
    out = None
    try:
        build_cmd.run_build = lambda *a, **kw: (seen.append(kw["precision"]), real(*a, **kw))[1]
        out = _engines(edge.Bundle.load(tiny_bundle), "tensorrt", ["fp32"], Console(stderr=True))
    finally:
        build_cmd.run_build = real
    graphs = edge.Bundle.load(tiny_bundle).graphs
    assert seen == ["fp32"]
    assert [(c["graph"], c["precision"]) for c in fake_builder] == [(g, p) for p in ("fp32",) for g in graphs]
    assert all(callable(c["verify"]) for c in fake_builder)  # each new engine is checked before it enters the bundle
    assert out == {"built": [f"engines/{g}.{p}.plan" for p in ("fp32",) for g in graphs], "checks": {}}


def test_a_masked_plugin_graph_is_refused_before_any_build(tmp_path: Path, fake_builder: list[dict[str, Any]]
                                                           ) -> None:
    from rich.console import Console

    import edge
    from edge.cli.export_cmd import _engines
    from edge.errors import ExportError
    from edge.export.api import export_card

    export_card("etavla", tmp_path / "b", config="tiny", attention="plugin")
    with pytest.raises(ExportError, match="has a mask input") as e:
        _engines(edge.Bundle.load(tmp_path / "b"), "tensorrt", ["fp32"], Console(stderr=True))
    assert "\n" not in str(e.value) and fake_builder == []
