"""The TensorRT plugin module imports without TensorRT or a GPU and says clearly why it cannot register."""

from __future__ import annotations

import sys

import pytest

from edge.errors import BackendUnavailable


def test_module_imports_lazily() -> None:
    import edge.runtimes.plugins.tensorrt_plugin as tp

    assert tp.PLUGIN_ID == "edge::EdgeAttention"
    assert "tensorrt" not in sys.modules or tp.tensorrt_plugin_support()[0]


def test_register_reason_without_tensorrt() -> None:
    import edge.runtimes.plugins.tensorrt_plugin as tp

    ok, why = tp.tensorrt_plugin_support()
    if ok:
        pytest.skip("TensorRT and a GPU are present: registration is exercised on the device")
    assert why
    with pytest.raises(BackendUnavailable, match="EdgeAttention TensorRT plugin"):
        tp.register()
