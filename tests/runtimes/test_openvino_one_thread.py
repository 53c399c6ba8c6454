"""OpenVINO with one thread: its CPU plugin (2026.4) segfaulted compiling NativeCross's step graph through its
fused "snippets" code path (`edge run --threads 1`, or any run bound to one core); one thread now runs
without snippets. A segfault cannot be caught, so the check runs in a child process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import _shared

pytest.importorskip("openvino")


@pytest.mark.slow  # an export of its own (static shapes) + a child process: ~25 s on a Zen 1 core pair
def test_a_family_program_compiles_and_runs_with_one_thread(tmp_path_factory: pytest.TempPathFactory) -> None:
    pytest.importorskip("torch")

    def build(out: Path) -> None:
        from edge.export.api import export_card

        export_card("nativecross", out, config="tiny")  # static shapes: the dynamic-batch graph compiled

    path = _shared(tmp_path_factory, "nativecross_static", "nativecross_tiny", build)
    code = ("import sys, edge\n"
            "from edge.program import load_program, run_samples\n"
            "card = edge.get_card('nativecross')\n"
            "prog = load_program(sys.argv[1], 'openvino', threads=1)\n"
            "out = run_samples(prog, card, card.data.samples(prog.cfg, 'evaluation', 1, 0))\n"
            "print('ran', len(out))\n")
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0 and "ran 1" in r.stdout, (r.returncode, r.stderr[-1500:])


def test_one_thread_is_asked_for_or_the_only_core(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.runtimes import openvino as ovr

    monkeypatch.setattr(ovr.os, "sched_getaffinity", lambda _pid: {0}, raising=False)
    # bound to one core, 2 threads asked for are 1 (OpenVINO clamps INFERENCE_NUM_THREADS to the cores allowed)
    assert ovr.one_thread(0) and ovr.one_thread(None) and ovr.one_thread(2)
    monkeypatch.setattr(ovr.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    assert not ovr.one_thread(0) and not ovr.one_thread(2) and ovr.one_thread(1)


def test_cpu_settings_apply_wherever_the_cpu_plugin_compiles(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    """AUTO / HETERO / MULTI devices that may pick the CPU get the CPU settings (no pinning; no snippets
    with one thread): they compile on the CPU plugin and accept both."""
    import onnx
    from onnx import TensorProto, helper

    from edge.runtimes import openvino as ovr
    from edge.spec import IOSpec, TensorSpec

    for device, cpu in (("CPU", True), ("AUTO", True), ("AUTO:CPU", True), ("AUTO:GPU,CPU", True),
                        ("HETERO:GPU,CPU", True), ("MULTI:CPU.0", True), ("GPU", False), ("AUTO:GPU", False),
                        ("NPU", False)):
        assert ovr.runs_on_cpu(device) is cpu, device
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)]), str(tmp_path / "g.onnx"))
    io = IOSpec((TensorSpec("x", "float32", (1, 4)),), (TensorSpec("y", "float32", (1, 4)),))
    configs: list[dict] = []
    real = ovr.core()

    class Spy:
        available_devices = real.available_devices

        def __getattr__(self, name: str):  # read_model and the rest: the real core's
            return getattr(real, name)

        def compile_model(self, model, device, config):
            configs.append(dict(config))
            return real.compile_model(model, device, config)

    monkeypatch.setattr(ovr, "core", lambda: Spy())
    rt = ovr.OpenVinoRuntime(str(tmp_path / "g.onnx"), io, device="AUTO:CPU", threads=1)
    assert configs[-1]["SNIPPETS_MODE"] == "DISABLE" and configs[-1]["ENABLE_CPU_PINNING"] is False
    assert rt.infer({"x": np.array([[-1, 2, -3, 4]], np.float32)})["y"].tolist() == [[0, 2, 0, 4]]
