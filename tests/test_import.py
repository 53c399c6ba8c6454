"""`import edge` and `edge --help` work without heavy backends installed, and stay fast.

Time is measured as the subprocess's own CPU time (``time.process_time``), which a loaded machine
does not inflate the way it inflates wall-clock time.
"""

from __future__ import annotations

import json
import subprocess
import sys

BLOCKER = r"""
import sys, time, importlib.abc
BLOCKED = {"torch", "openvino", "onnxruntime", "tensorrt", "pycuda", "cv2", "nncf", "onnxscript", "onnxslim"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked for this test: {name}")
        return None
sys.meta_path.insert(0, Block())
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCKER + code], capture_output=True, text=True, timeout=120)


def test_import_without_heavy_backends() -> None:
    r = _run(
        "t0 = time.process_time(); import edge; dt = time.process_time() - t0\n"
        "import json; print(json.dumps({'dt': dt, 'v': edge.__version__, "
        "'heavy': sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED)}))"
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["heavy"] == []
    assert out["dt"] < 1.0, f"import edge took {out['dt']:.2f}s"


def test_help_without_heavy_backends() -> None:
    for entry in ("main", "export_main"):
        r = _run(
            "t0 = time.process_time()\n"
            f"sys.argv = ['edge', '--help']\nfrom edge.cli.main import {entry}\n"
            f"try:\n    {entry}()\nexcept SystemExit as e:\n    code = e.code\n"
            "sys.stderr.write(f'DT={time.process_time() - t0}\\n'); sys.exit(code)"
        )
        assert r.returncode == 0, r.stderr
        assert "Usage" in r.stdout
        dt = float(r.stderr.strip().split("DT=")[-1])
        assert dt < 1.0, f"{entry} --help took {dt:.2f}s"


def test_missing_backend_is_one_clear_line() -> None:
    """With onnxruntime absent, loading on it is a BackendUnavailable naming the package."""
    r = _run(
        "from edge.runtimes import require\nfrom edge.errors import BackendUnavailable\n"
        "try:\n    require('onnxruntime')\nexcept BackendUnavailable as e:\n    print(e)\n"
    )
    assert r.returncode == 0, r.stderr
    assert "onnxruntime is not installed" in r.stdout


def test_doctor_without_heavy_backends() -> None:
    r = _run("from edge.cli.doctor_cmd import collect\nimport json\nprint(json.dumps(collect()))")
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert {"torch", "onnxruntime", "openvino", "tensorrt", "pycuda", "gpu"} <= set(rows)
    assert not rows["torch"]["ok"] and "not installed" in rows["torch"]["detail"]


def test_ctrl_c_while_the_cli_loads_is_one_line() -> None:
    """A Ctrl-C while ``edge`` imports its commands (Typer, rich, the command modules: the first ~0.1 s of
    every run) is the CLI's ``interrupted`` and exit 130, as later, not a KeyboardInterrupt traceback. The
    interrupt is raised by an import hook at that import, so the test does not depend on timing."""
    for entry in ("main", "export_main"):
        code = (
            "import sys, importlib.abc\n"
            "class Stop(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'edge.cli.commands':\n"
            "            raise KeyboardInterrupt\n"
            "        return None\n"
            "sys.meta_path.insert(0, Stop())\n"
            f"from edge.cli.main import {entry}\n"
            f"{entry}(['--help'])\n"
        )
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert (r.returncode, r.stderr) == (130, "interrupted\n"), (entry, r.stderr[-1500:])
