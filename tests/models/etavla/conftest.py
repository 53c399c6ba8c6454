"""A tiny ETA-VLA bundle (keep 0.25) shared by the export and stream tests of this folder."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from edge.export.api import export_card

    out = tmp_path_factory.mktemp("eta") / "b"
    export_card("etavla", out, config="tiny", options={"keep": 0.25})
    return out
