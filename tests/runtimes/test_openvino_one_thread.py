"""OpenVINO with one thread: its CPU plugin (2026.4) segfaulted compiling NativeCross's step graph through its
fused "snippets" code path (`edge run --threads 1`, or any run bound to one core); one thread now runs
without snippets. A segfault cannot be caught, so the check runs in a child process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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

    assert ovr.one_thread(1) and not ovr.one_thread(2)
    monkeypatch.setattr(ovr.os, "sched_getaffinity", lambda _pid: {0}, raising=False)
    assert ovr.one_thread(0) and ovr.one_thread(None)
    monkeypatch.setattr(ovr.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    assert not ovr.one_thread(0)
