"""Shared fixtures. Real sensor data is read from ../shared/data/real through one fixture; model
families get a tiny bundle each (``family_bundle``, parametrised over every shipped family)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the property tests on a fixed seed, so a landing never depends on which random cases a run
# drew; a developer's run (no CI variable) explores new cases every time and keeps failures in its
# local example database.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def _slow_deadline() -> float:
    """``EDGE_SLOW_DEADLINE`` (seconds since the epoch; unset: none): after it, slow tests are skipped with a
    reason instead of run. CI sets it from its own start so the slow suite runs while the job stays inside
    its 90 min on whatever machine it lands (a Zen 1 core pair takes twice a Zen 4's time), rather than
    being cut off or skipped whole."""
    raw = os.environ.get("EDGE_SLOW_DEADLINE", "")
    try:
        return float(raw) if raw else float("inf")
    except ValueError:
        raise pytest.UsageError(f"EDGE_SLOW_DEADLINE={raw!r}: not a number of seconds since the epoch") from None


_DEADLINE: list[float] = []


def pytest_configure(config: pytest.Config) -> None:
    _DEADLINE[:] = [_slow_deadline()]  # read once: a bad value stops the run before any test


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("slow") is not None and time.time() > _DEADLINE[0]:
        pytest.skip("slow test not started: past EDGE_SLOW_DEADLINE (the CI job's time budget)")


# ONNX Runtime's INT8 form keeps in float the Convs whose int8 kernel is slower on the exporting machine
# (edge.calibration.ort_pays, timed). What a test's export writes must not depend on the CPU it ran on, so
# tests (and the CLI exports they start as subprocesses) quantize every Conv, as a user asks for a bundle
# that does not depend on the build machine; tests/calibration/test_ort_pays.py times for real.
os.environ["EDGE_ORT_INT8_CONVS"] = "all"
# likewise NNCF's INT8 form for OpenVINO quantizes every op type NNCF does (edge.calibration.ov_pays would leave
# in float those slower in int8 here); tests/calibration/test_ov_pays.py times for real
os.environ["EDGE_OV_INT8_OPS"] = "all"
# TensorRT's INT8 form (fp16 float layers, edge.calibration.trt_int8) adds 5-25 s to each INT8 export; only
# its own tests (tests/export/test_precisions.py, tests/calibration/test_fp16.py) turn it on
os.environ["EDGE_TRT_INT8_FORM"] = "off"


REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("EDGE_REAL_DATA", REPO.parent / "shared" / "data" / "real"))
#: the families edge-deploy ships (folders of edge/models with a card)
FAMILIES = sorted(p.parent.name for p in (REPO / "edge" / "models").glob("*/card.py"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real-sample folder (TuSimple, KITTI, pcaps, waveforms); skips cleanly when absent."""
    if not (REAL_DATA / "MANIFEST.md").is_file():
        pytest.skip(f"real data not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture
def half_size_kitti(real_data: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(a KITTI object folder, its image): 000114's calib and scan beside its image at half size (621x188), the
    calibration (which states no image size) then for another size than the image."""
    cv2 = pytest.importorskip("cv2")
    src = real_data / "kitti" / "object" / "training"
    obj = tmp_path / "half_size_kitti"
    for sub, ext in (("calib", ".txt"), ("velodyne", ".bin")):
        (obj / sub).mkdir(parents=True)
        (obj / sub / f"000114{ext}").symlink_to(src / sub / f"000114{ext}")
    (obj / "image_2").mkdir()
    png = obj / "image_2" / "000114.png"
    cv2.imwrite(str(png), cv2.resize(cv2.imread(str(src / "image_2" / "000114.png")), (621, 188)))
    return obj, png


_BUNDLES: dict[str, Path] = {}


def _shared(tmp_path_factory: pytest.TempPathFactory, key: str, name: str, build: Callable[[Path], object]) -> Path:
    """A bundle ``build(out)`` writes once per test run. Under pytest-xdist the workers share it (the first to
    ask builds it under a file lock while the others wait): each exporting the same tiny bundles took both
    cores ~20 s a bundle on a Zen 1. Shared, so a test that changes a bundle copies it first. The bundle
    (folder ``name``) is alone in its parent folder, as an export leaves it."""
    if key not in _BUNDLES:
        from filelock import FileLock

        base = tmp_path_factory.getbasetemp()
        root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared-bundles"
        root.mkdir(parents=True, exist_ok=True)
        out = root / key / name
        with FileLock(str(root / f"{key}.lock")):
            if not (out / "manifest.json").is_file():
                build(out)  # an export writes the folder whole or not at all
        _BUNDLES[key] = out
    return _BUNDLES[key]


def _export(tmp_path_factory: pytest.TempPathFactory, family: str) -> Path:
    """A tiny bundle of ``family`` (its test config, every program, dynamic batch), once per run."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")

    def build(out: Path) -> None:
        from edge.export.api import export_card
        from edge.models import get_card

        export_card(family, out, config=get_card(family).test_config_name, dynamic_batch=True)

    return _shared(tmp_path_factory, family, f"{family}_tiny", build)


@pytest.fixture(scope="session", params=FAMILIES)
def family_bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(family, tiny bundle) for every shipped family."""
    return request.param, _export(tmp_path_factory, request.param)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny lane bundle, for tests about lane itself and the loop machinery it exercises."""
    return _export(tmp_path_factory, "lane")


@pytest.fixture(scope="session")
def tiny_clip_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny lane bundle with its whole-clip program only (what ``edge run`` then runs), once per run."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")

    def build(out: Path) -> None:
        from edge.export.api import export_card

        export_card("lane", out, config="tiny", programs=["clip"])

    return _shared(tmp_path_factory, "clip", "tiny", build)
