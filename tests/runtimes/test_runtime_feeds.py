"""Runtimes on a real (tiny) exported bundle: backend parity, feed validation, tampered files.

One tiny lane bundle and one user-module bundle are exported per module; everything else reuses them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from edge.bundle import Bundle  # noqa: E402
from edge.errors import BundleError, EdgeError, SpecError  # noqa: E402
from edge.export.api import export  # noqa: E402
from edge.runtimes import load  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BACKENDS = ["onnxruntime", "torch"]
RTOL = 1e-4


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - ref).max() / max(np.abs(ref).max(), 1e-12))


@pytest.fixture(scope="module")
def lane_bundle(tiny_clip_bundle: Path) -> Path:
    return tiny_clip_bundle


@pytest.fixture(scope="module")
def lane_feed(lane_bundle: Path) -> dict[str, np.ndarray]:
    spec = Bundle.load(lane_bundle).io.inputs[0]
    shape = spec.concrete(batch=1)
    return {spec.name: np.random.default_rng(42).standard_normal(shape).astype(np.float32)}


@pytest.fixture(scope="module")
def runtimes(lane_bundle: Path) -> Any:
    rts = {b: load(lane_bundle, backend=b) for b in BACKENDS}
    yield rts
    for rt in rts.values():
        rt.close()


# ------------------------------------------------------------------------------------------ lane bundle


def test_bundle_layout(lane_bundle: Path) -> None:
    b = Bundle.load(lane_bundle)
    assert b.model_name == "lane"
    # auto attention = the portable plugin node, with its ONNX Runtime lowering cached beside it
    assert b.manifest["attention"]["mode"] == "plugin"
    assert set(b.manifest["files"]) == {"model.onnx", "model.ort.onnx", "weights.pt"}
    assert b.io.input_names == ["clip"]
    assert b.io.output_names == ["loc", "exist"]
    assert b.io.inputs[0].shape[0] == 1  # not dynamic_batch: batch fixed at 1
    assert b.artifact(fmt="onnx")["parity"]["passed"] is True
    # no hidden temporary folders beside the bundle
    assert [p.name for p in lane_bundle.parent.iterdir()] == ["tiny"]


def test_backends_agree(runtimes: dict[str, Any], lane_feed: dict[str, np.ndarray]) -> None:
    ort_out = runtimes["onnxruntime"].infer(lane_feed)
    torch_out = runtimes["torch"].infer(lane_feed)
    assert runtimes["onnxruntime"].backend == "onnxruntime"
    assert runtimes["torch"].backend == "torch"
    assert set(ort_out) == set(torch_out) == {"loc", "exist"}
    for name in ("loc", "exist"):
        assert ort_out[name].shape == torch_out[name].shape
        assert ort_out[name].dtype == np.float32
        assert np.isfinite(ort_out[name]).all()
        assert np.abs(torch_out[name]).max() > 0
        assert rel_err(ort_out[name], torch_out[name]) <= RTOL, name


def test_output_shapes_match_spec(runtimes: dict[str, Any], lane_feed: dict[str, np.ndarray]) -> None:
    for rt in runtimes.values():
        out = rt.infer(lane_feed)
        for t in rt.outputs.outputs:
            assert out[t.name].shape == t.concrete(batch=1)
        assert rt.inputs.input_names == ["clip"]


def test_different_inputs_give_different_outputs(runtimes: dict[str, Any],
                                                 lane_feed: dict[str, np.ndarray]) -> None:
    other = {"clip": lane_feed["clip"][:, ::-1].copy()}
    for rt in runtimes.values():
        assert not np.allclose(rt.infer(lane_feed)["loc"], rt.infer(other)["loc"])


def _bad_feeds(feed: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    clip = feed["clip"]
    return {
        "wrong shape": {"clip": np.zeros((1, clip.shape[1], 3, clip.shape[3] + 8, clip.shape[4]), np.float32)},
        "wrong batch": {"clip": np.concatenate([clip, clip])},
        "wrong rank": {"clip": clip[0]},
        "float64": {"clip": clip.astype(np.float64)},
        "missing input": {},
        "extra input": {"clip": clip, "extra": np.zeros(1, np.float32)},
        "not an array": {"clip": clip.tolist()},
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["wrong shape", "wrong batch", "wrong rank", "float64", "missing input",
                                  "extra input", "not an array"])
def test_bad_feed_raises_spec_error(runtimes: dict[str, Any], lane_feed: dict[str, np.ndarray], backend: str,
                                    case: str) -> None:
    feeds = _bad_feeds(lane_feed)[case]
    with pytest.raises(SpecError) as ei:
        runtimes[backend].infer(feeds)
    msg = str(ei.value)
    assert ("'extra'" if case == "extra input" else "'clip'") in msg, msg
    assert "\n" not in msg


def test_closed_runtime_refuses(lane_bundle: Path, lane_feed: dict[str, np.ndarray]) -> None:
    with load(lane_bundle, backend="onnxruntime") as rt:
        rt.infer(lane_feed)
    with pytest.raises(RuntimeError, match=r"closed"):
        rt.infer(lane_feed)


def test_unknown_backend(lane_bundle: Path) -> None:
    with pytest.raises(EdgeError, match=r"nosuchbackend") as ei:
        load(lane_bundle, backend="nosuchbackend")
    assert "onnxruntime" in str(ei.value)  # lists the known ones


def test_missing_graph(lane_bundle: Path) -> None:
    with pytest.raises(BundleError, match=r"encoder"):
        load(lane_bundle, backend="onnxruntime", graph="encoder")


def test_garbage_model_same_length(lane_bundle: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(lane_bundle, bad)
    onnx_file = bad / "model.onnx"
    n = onnx_file.stat().st_size
    onnx_file.write_bytes(np.random.default_rng(1).integers(0, 256, n, dtype=np.uint8).tobytes())
    assert onnx_file.stat().st_size == n
    for backend in BACKENDS:
        with pytest.raises(BundleError, match=r"sha256") as ei:
            load(bad, backend=backend)
        assert str(onnx_file) in str(ei.value)


def test_garbage_model_with_updated_manifest_still_a_bundle_error(lane_bundle: Path, tmp_path: Path) -> None:
    """Even when the hashes are (re)written for a garbage graph, ONNX Runtime's failure is a BundleError."""
    import json

    from edge.files import sha256_file

    bad = tmp_path / "bad"
    shutil.copytree(lane_bundle, bad)
    m = json.loads((bad / "manifest.json").read_text())
    art = next(a for a in m["artifacts"] if a["format"] == "onnx")
    name = art.get("lowered", {}).get("onnxruntime", art["file"])  # the file ONNX Runtime really opens
    onnx_file = bad / name
    onnx_file.write_bytes(b"definitely not protobuf" * 10)
    m["files"][name].update(sha256=sha256_file(onnx_file), size=onnx_file.stat().st_size)
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=name.replace(".", r"\.")):
        load(bad, backend="onnxruntime")


# ------------------------------------------------------------------------------------------ user module


class SmallNet(torch.nn.Module):
    """Not one of ours: conv -> relu -> flatten -> linear, two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 8 * 8, 5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.conv(x))
        return self.fc(h.flatten(1)), h.mean(dim=(2, 3))


@pytest.fixture(scope="module")
def user_model() -> SmallNet:
    torch.manual_seed(0)
    return SmallNet().eval()


@pytest.fixture(scope="module")
def user_bundle(tmp_path_factory: pytest.TempPathFactory, user_model: SmallNet) -> Path:
    out = tmp_path_factory.mktemp("user") / "small"
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    export(user_model, {"x": x}, out, dynamic_batch=True)
    return out


def test_public_export_is_the_function_whatever_the_import_order() -> None:
    """``edge.export(model, ...)`` is the documented entry point; it must stay callable even when
    the ``edge.export`` subpackage was imported first (as the CLI and ``edge.export.api`` users do)."""
    code = (
        "import edge.export.api, edge.export.onnx_export, edge\n"
        "assert callable(edge.export), f'edge.export is {edge.export!r}'\n"
        "assert edge.export.__name__ == 'export' and edge.export.__module__ == 'edge.export.api'\n"
        "assert callable(edge.load) and callable(edge.export_card)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr.strip().splitlines()[-1]


def test_user_bundle_manifest(user_bundle: Path) -> None:
    b = Bundle.load(user_bundle)
    assert b.model_name == "custom"
    assert b.io.input_names == ["x"]
    assert b.io.inputs[0].shape == ("batch", 3, 8, 8)
    assert [t.shape for t in b.io.outputs] == [("batch", 5), ("batch", 4)]
    assert {a["format"] for a in b.artifacts} == {"onnx"}
    assert set(b.manifest["files"]) == {"model.onnx", "model.ort.onnx"}


@pytest.mark.parametrize("backend", ["onnxruntime"])
@pytest.mark.parametrize("batch", [1, 3])
def test_user_bundle_dynamic_batch(user_bundle: Path, user_model: SmallNet, backend: str, batch: int) -> None:
    x = np.random.default_rng(batch).standard_normal((batch, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        ref = [t.numpy() for t in user_model(torch.from_numpy(x))]
    with load(user_bundle, backend=backend) as rt:
        out = rt.infer({"x": x})
    assert list(out) == ["output0", "output1"]
    for name, r in zip(["output0", "output1"], ref):
        assert out[name].shape == r.shape
        assert rel_err(out[name], r) <= RTOL, (backend, batch, name)


@pytest.mark.parametrize("backend", ["onnxruntime"])
def test_user_bundle_bad_feeds(user_bundle: Path, backend: str) -> None:
    with load(user_bundle, backend=backend) as rt:
        with pytest.raises(SpecError, match=r"'x'"):
            rt.infer({"x": np.zeros((2, 3, 8, 9), np.float32)})
        with pytest.raises(SpecError, match=r"'x'"):
            rt.infer({"x": np.zeros((2, 3, 8, 8), np.float64)})
        with pytest.raises(SpecError, match=r"'x'.*'batch'"):
            rt.infer({"x": np.zeros((0, 3, 8, 8), np.float32)})


def test_user_bundle_has_no_torch_artifact(user_bundle: Path) -> None:
    """A user module's bundle carries no torch program (a .pt2 would unpickle at load): the torch
    backend says there is nothing it can load, in one line."""
    with pytest.raises(BundleError, match=r"the 'torch' backend loads checkpoint, torch_export artifacts and this "
                                          r"bundle has none \(edge.export of your own module keeps ONNX only"):
        load(user_bundle, backend="torch")
