"""Every file a runtime opens is listed and hashed: ONNX external data, OpenVINO IR weights; symlinks
must resolve inside the bundle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import edge  # noqa: E402
from edge.bundle import Bundle  # noqa: E402
from edge.errors import BundleError  # noqa: E402
from edge.files import sha256_file  # noqa: E402

X = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()
    out = tmp_path_factory.mktemp("small") / "b"
    edge.export(m, {"x": X}, out, dynamic_batch=True)
    with torch.no_grad():
        return out, m(torch.from_numpy(X)).numpy()


def _rehash(b: Path, *names: str, add: bool = False) -> None:
    m = json.loads((b / "manifest.json").read_text())
    for n in names:
        if n in m["files"] or add:
            m["files"][n] = {"sha256": sha256_file(b / n), "size": (b / n).stat().st_size, "role": "data"}
    (b / "manifest.json").write_text(json.dumps(m))


def _copy(small: tuple[Path, np.ndarray], tmp_path: Path) -> Path:
    b = tmp_path / "b"
    shutil.copytree(small[0], b)
    return b


def _externalize(b: Path, name: str, location: str) -> None:
    model = onnx.load(str(b / name))
    onnx.save_model(model, str(b / name), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)


def test_unlisted_external_data_is_refused(small: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    want = small[1]
    b = _copy(small, tmp_path)
    for name in ("model.onnx", "model.ort.onnx"):
        _externalize(b, name, name.replace(".onnx", ".weights"))
    _rehash(b, "model.onnx", "model.ort.onnx")  # the models are listed and hashed; their weights are not
    with pytest.raises(BundleError, match=r"model\.onnx: makes the runtime read 'model\.weights', which "
                                          r"manifest\.json does not list"):
        Bundle.load(b)
    for backend in ("onnxruntime", "openvino"):
        with pytest.raises(BundleError, match="does not list"):
            edge.load(b, backend=backend)
    _rehash(b, "model.weights", "model.ort.weights", add=True)  # listed: verified, and it runs
    with edge.load(b, backend="onnxruntime") as rt:
        assert np.allclose(rt.infer({"x": X})["output0"], want, rtol=1e-4, atol=1e-5)
    (b / "model.ort.weights").write_bytes((b / "model.ort.weights").read_bytes()[::-1])  # swapped weights
    with pytest.raises(BundleError, match=r"model\.ort\.weights: (size|sha256)"):
        Bundle.load(b)


def test_a_second_location_entry_is_checked_too(small: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    """Found by a security review: a tensor with two 'location' entries was checked by its first (a listed, hashed
    file) while OpenVINO reads its last: an unlisted file's weights ran (ONNX Runtime refuses two)."""
    b = _copy(small, tmp_path)
    _externalize(b, "model.onnx", "w.bin")
    (b / "evil.bin").write_bytes((b / "w.bin").read_bytes())
    model = onnx.load(str(b / "model.onnx"), load_external_data=False)
    for t in model.graph.initializer:
        extra = t.external_data.add()
        extra.key, extra.value = "location", "evil.bin"
    onnx.save_model(model, str(b / "model.onnx"))
    _rehash(b, "model.onnx")
    _rehash(b, "w.bin", add=True)  # the first location is listed and hashed; the second is not
    with pytest.raises(BundleError, match=r"makes the runtime read 'evil\.bin', which manifest\.json does not list"):
        Bundle.load(b)


def test_external_data_leaving_the_bundle_is_refused(small: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    b = _copy(small, tmp_path)
    (tmp_path / "elsewhere").mkdir()
    _externalize(b, "model.onnx", "w.bin")
    shutil.move(b / "w.bin", tmp_path / "elsewhere" / "w.bin")
    model = onnx.load(str(b / "model.onnx"), load_external_data=False)
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../elsewhere/w.bin"
    onnx.save_model(model, str(b / "model.onnx"))
    _rehash(b, "model.onnx")
    with pytest.raises(BundleError, match=r"'\.\./elsewhere/w\.bin'"):
        Bundle.load(b)


def test_openvino_weights_must_be_listed(tmp_path: Path) -> None:
    b = tmp_path / "b"
    b.mkdir()
    (b / "m.xml").write_text("<net/>")
    (b / "m.bin").write_bytes(b"\x00" * 8)
    m = {"schema_version": 1, "model": {"name": "x"}, "io": {"inputs": [], "outputs": []}, "files": {},
         "artifacts": [{"name": "ir", "format": "openvino_ir", "file": "m.xml"}]}
    m["files"]["m.xml"] = {"sha256": sha256_file(b / "m.xml"), "size": 6}
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=r"m\.xml: makes the runtime read 'm\.bin'"):
        Bundle.load(b)


def test_symlinks_must_stay_inside(small: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    want = small[1]
    b = _copy(small, tmp_path)
    outside = tmp_path / "outside.onnx"
    shutil.move(b / "model.ort.onnx", outside)
    (b / "model.ort.onnx").symlink_to(outside)  # same bytes, same hash: still refused
    with pytest.raises(BundleError, match=r"model\.ort\.onnx: a link leaving the bundle"):
        Bundle.load(b)
    (b / "model.ort.onnx").unlink()
    (b / "store").mkdir()
    shutil.move(outside, b / "store" / "model.ort.onnx")
    (b / "model.ort.onnx").symlink_to(Path("store") / "model.ort.onnx")  # a link inside is fine
    with edge.load(b, backend="onnxruntime") as rt:
        assert np.allclose(rt.infer({"x": X})["output0"], want, rtol=1e-4, atol=1e-5)


def test_the_manifest_itself_must_stay_inside(small: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    """Found by a review: every listed file was refused as a link leaving the bundle, but manifest.json itself,
    which says what every other file must be, was read through one."""
    b = _copy(small, tmp_path)
    outside = tmp_path / "elsewhere.json"
    shutil.move(b / "manifest.json", outside)
    (b / "manifest.json").symlink_to(outside)
    with pytest.raises(BundleError, match=r"manifest\.json: a link leaving the bundle"):
        Bundle.load(b)
    (b / "manifest.json").unlink()
    shutil.move(outside, b / "m.json")
    (b / "manifest.json").symlink_to("m.json")  # a link inside is fine
    assert Bundle.load(b).manifest["files"]
