"""No code runs from a bundle: a forged ``torch.export`` program (``.pt2``) whose weight is a pickled
``os.system`` call is planted in a bundle (manifest re-hashed, programs table pointing the torch
backend at it), and every way in (``edge bench``, ``edge run --backend torch``, ``edge.load``,
``edge.load_program``) must refuse it without running the payload.

The payload is first proven live: ``torch.export.load`` on the same file does run it, so these
tests fail if the torch backend ever opens a ``.pt2`` again.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from edge.bundle import Bundle  # noqa: E402
from edge.errors import BundleError  # noqa: E402
from edge.export.api import export  # noqa: E402
from edge.files import sha256_file  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
       "COLUMNS": "200", "NO_COLOR": "1"}


class Small(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch '{self.marker}'",))


def _forge_pt2(module: torch.nn.Module, x: torch.Tensor, path: Path, marker: Path) -> None:
    """A real torch.export archive whose first weight is a pickle that runs ``touch marker``."""
    clean = path.with_suffix(".clean.pt2")
    torch.export.save(torch.export.export(module, (x,)), str(clean))
    with zipfile.ZipFile(clean) as src:
        members = [(info, src.read(info.filename)) for info in src.infolist()]
    cfg_name = next(i.filename for i, _ in members if i.filename.endswith("weights/model_weights_config.json"))
    cfg = json.loads(dict((i.filename, d) for i, d in members)[cfg_name])
    first = next(iter(cfg["config"].values()))
    first["use_pickle"] = True
    victim = cfg_name.rsplit("/", 1)[0] + "/" + first["path_name"]
    with zipfile.ZipFile(path, "w") as out:
        for info, data in members:
            if info.filename == cfg_name:
                data = json.dumps(cfg).encode()
            elif info.filename == victim:
                data = pickle.dumps(_Payload(marker))
            out.writestr(info, data)
    clean.unlink()


@pytest.fixture(scope="module")
def forged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(bundle, forged .pt2 inside it, marker the payload would create)."""
    root = tmp_path_factory.mktemp("forged")
    module = Small().eval()
    x = torch.ones(1, 4)
    bundle = root / "b"
    export(module, {"x": x.numpy()}, bundle)
    marker = root / "PWNED"
    pt2 = bundle / "model.pt2"
    _forge_pt2(module, x, pt2, marker)
    mpath = bundle / "manifest.json"
    m = json.loads(mpath.read_text())
    m["files"]["model.pt2"] = {"sha256": sha256_file(pt2), "size": pt2.stat().st_size, "role": "torch_export"}
    m["artifacts"].append({"name": "torch", "format": "torch_export", "file": "model.pt2", "graphs": ["full"],
                           "precision": "fp32"})
    for prog in m.get("programs", {}).values():
        prog.setdefault("precisions", {}).setdefault("fp32", {})["torch"] = {"full": "torch"}
    mpath.write_text(json.dumps(m))
    Bundle.load(bundle)  # hash-consistent: the forgery passes the integrity check
    return bundle, pt2, marker


def test_payload_is_live(forged: tuple[Path, Path, Path]) -> None:
    """Control: torch.export.load itself runs the payload, so the tests below can fail."""
    _, pt2, marker = forged
    code = f"import torch\ntry:\n    torch.export.load({str(pt2)!r})\nexcept Exception:\n    pass\n"
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300, env=ENV)
    assert marker.exists(), "the forged .pt2 no longer runs its payload under torch.export.load"
    marker.unlink()


def _no_payload(marker: Path) -> None:
    assert not marker.exists(), "code from the bundle ran"


def test_edge_load_refuses(forged: tuple[Path, Path, Path]) -> None:
    from edge import load

    bundle, _, marker = forged
    with pytest.raises(BundleError, match=r"model\.pt2.*refused.*can run code"):
        load(bundle, backend="torch")
    _no_payload(marker)


def test_load_program_refuses(forged: tuple[Path, Path, Path]) -> None:
    from edge.program import load_program

    bundle, _, marker = forged
    with pytest.raises(BundleError, match=r"refused"):
        load_program(bundle, "torch")
    _no_payload(marker)


def test_bench_skips_torch_and_says_why(forged: tuple[Path, Path, Path], tmp_path: Path) -> None:
    bundle, _, marker = forged
    r = subprocess.run([sys.executable, "-m", "edge.cli.main", "bench", str(bundle), "--rounds", "2", "--warmup",
                        "0", "--backends", "torch,onnxruntime", "--out", str(tmp_path), "--json"],
                       capture_output=True, text=True, timeout=300, env=ENV)
    _no_payload(marker)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert [row["backend"] for row in report["rows"]] == ["onnxruntime"]
    assert any(s["config"].startswith("torch") and "refused" in s["reason"] for s in report["skipped"])


def test_run_refuses(forged: tuple[Path, Path, Path], tmp_path: Path) -> None:
    bundle, _, marker = forged
    r = subprocess.run([sys.executable, "-m", "edge.cli.main", "run", str(bundle), "--backend", "torch",
                        "--source", "synthetic:2:32x32", "--jsonl", str(tmp_path / "o.jsonl")],
                       capture_output=True, text=True, timeout=300, env=ENV)
    _no_payload(marker)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "refused" in lines[0], r.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_user_export_carries_no_program(tmp_path: Path) -> None:
    """A user module's bundle holds no torch.export program at all (nothing to forge a load path for)."""
    out = tmp_path / "b"
    export(Small().eval(), {"x": np.ones((1, 4), np.float32)}, out)
    b = Bundle.load(out)
    assert not any(a["format"] == "torch_export" for a in b.artifacts)
    assert not any(name.endswith(".pt2") for name in b.manifest["files"])
    from edge import load

    with pytest.raises(BundleError, match="torch"):
        load(out, backend="torch")
