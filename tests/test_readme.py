"""The README's commands run as written (with small, documented substitutions to keep them quick)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _block_after(heading: str) -> list[str]:
    part = README.split(heading, 1)[1]
    block = re.search(r"```bash\n(.*?)```", part, re.S)
    assert block, f"no bash block after {heading}"
    return [ln.split("#")[0].strip() for ln in block.group(1).splitlines() if ln.split("#")[0].strip()]


def test_quick_start_is_make_demo_and_make_test() -> None:
    assert _block_after("## Quick start") == ["make demo", "make test"]
    make = (REPO / "Makefile").read_text()
    assert re.search(r"^demo:", make, re.M) and re.search(r"^test:", make, re.M)
    assert "make test" in (REPO / ".ci" / "run").read_text()


def _exe(name: str) -> list[str]:
    if name == "edge":
        return [sys.executable, "-m", "edge.cli.main"]
    return [sys.executable, "-c", "from edge.cli.main import export_main; export_main()"]


@pytest.mark.slow
def test_readme_commands_run(tmp_path: Path) -> None:
    """Every `edge`/`edge-export` line of "What the commands do", in order, in a temp folder.

    Substitutions: training runs 2 steps of the tiny config (the README's 3000 default-size steps take
    an hour); `drive.mp4` is a short synthetic video written first; synthetic runs use 12 frames.
    """
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from edge.models.lane.samples import synthetic
    from edge.stream.overlay import VideoWriter

    with VideoWriter(tmp_path / "drive.mp4", 10) as w:
        for img in (tick['camera'][0] for tick in synthetic(6, (360, 640))):
            w.write(img)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmds = _block_after("## What the commands do")
    assert len(cmds) >= 5
    for line in cmds:
        line = line.replace("--steps 3000", "--steps 2 --config tiny --eval-clips 2 --batch 2")
        line = re.sub(r"synthetic:\d+", "synthetic:12", line)
        argv = shlex.split(line)
        r = subprocess.run([*_exe(argv[0]), *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, f"{line}\n{r.stderr[-2000:]}"
    assert (tmp_path / "out" / "lane" / "manifest.json").is_file()
    assert (tmp_path / "run1" / "o.mp4").is_file() and (tmp_path / "run1" / "lanes.jsonl").is_file()
