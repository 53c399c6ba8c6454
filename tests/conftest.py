"""Shared fixtures. Real sensor data is read from ../shared/data/real through one fixture."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("EDGE_REAL_DATA", REPO.parent / "shared" / "data" / "real"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real-sample folder (TuSimple, KITTI, pcaps, waveforms); skips cleanly when absent."""
    if not (REAL_DATA / "MANIFEST.md").is_file():
        pytest.skip(f"real data not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny lane bundle (full + streaming graphs, dynamic batch), exported once per session."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from edge.export.api import export_card

    out = tmp_path_factory.mktemp("bundles") / "lane_tiny"
    export_card("lane", out, config="tiny", dynamic_batch=True)
    return out
