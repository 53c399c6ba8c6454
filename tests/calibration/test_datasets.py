"""Calibration sets: every source kind, disjoint halves, and a clear error for each bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from edge.calibration.datasets import load_set  # noqa: E402
from edge.errors import DataError  # noqa: E402
from edge.models.lane import card as lane  # noqa: E402

CFG = lane.CONFIGS["tiny"]
IO = lane.io_full(CFG)


def _pre(img: np.ndarray) -> np.ndarray:
    return lane.preprocess_frame(img, CFG)


def _images(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    return folder


def test_image_folder_halves_are_disjoint(tmp_path: Path) -> None:
    folder = _images(tmp_path / "imgs", 8)
    a = load_set(str(folder), IO, size=4, role="calibration", preprocess=_pre, frames_per_sample=3)
    b = load_set(str(folder), IO, size=4, role="evaluation", preprocess=_pre, frames_per_sample=3)
    assert set(a.ids).isdisjoint(b.ids) and len(set(a.ids) | set(b.ids)) == 8
    assert a.feeds[0]["clip"].shape == (1, 3, 3, 64, 128) and a.feeds[0]["clip"].dtype == np.float32


def test_real_tusimple_frames(real_data: Path) -> None:
    folder = real_data / "lane" / "tusimple_lanenet" / "image"
    s = load_set(str(folder), IO, size=3, preprocess=_pre, frames_per_sample=3)
    assert len(s) == 3 and np.isfinite(s.feeds[0]["clip"]).all()


def test_video_windows(tmp_path: Path) -> None:
    from edge.stream.overlay import VideoWriter
    from edge.stream.sources import synthetic_frames

    with VideoWriter(tmp_path / "v.mp4", 10) as w:
        for _, img, _ in synthetic_frames(20, (72, 128)):
            w.write(img)
    a = load_set(str(tmp_path / "v.mp4"), IO, size=4, role="calibration", preprocess=_pre, frames_per_sample=3)
    b = load_set(str(tmp_path / "v.mp4"), IO, size=4, role="evaluation", preprocess=_pre, frames_per_sample=3)
    assert set(a.ids).isdisjoint(b.ids)
    with pytest.raises(DataError, match="need 40"):
        load_set(str(tmp_path / "v.mp4"), IO, size=20, preprocess=_pre, frames_per_sample=3)


def test_npz_and_npy(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((6, *IO.inputs[0].concrete(batch=1)[1:])).astype(np.float32)
    np.savez(tmp_path / "c.npz", clip=x)
    np.save(tmp_path / "c.npy", x)
    for f in ("c.npz", "c.npy"):
        s = load_set(str(tmp_path / f), IO, size=3)
        assert np.array_equal(s.feeds[1]["clip"], x[2:3])  # even indices calibrate
    with pytest.raises(DataError, match="asked for 4"):
        load_set(str(tmp_path / "c.npz"), IO, size=4)


@pytest.mark.parametrize("kind", ["empty", "unreadable", "missing", "suffix", "shape", "dtype", "key", "pickle"])
def test_bad_sets(tmp_path: Path, kind: str) -> None:
    src = tmp_path / "src"
    if kind == "empty":
        src.mkdir()
    elif kind == "unreadable":
        _images(src, 1)
        (src / "000.png").write_bytes(b"not a png")
    elif kind == "suffix":
        src = tmp_path / "x.txt"
        src.write_text("hello")
    elif kind in ("shape", "dtype", "key"):
        shape = IO.inputs[0].concrete(batch=1)[1:]
        arr = np.zeros((4, *shape), np.float64 if kind == "dtype" else np.float32)
        if kind == "shape":
            arr = arr[..., :7]
        src = tmp_path / "c.npz"
        np.savez(src, **({"frames" if kind == "key" else "clip": arr}))
    elif kind == "pickle":
        src = tmp_path / "c.npy"
        np.save(src, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError) as e:
        load_set(str(src), IO, size=1, preprocess=_pre, frames_per_sample=3)
    msg = str(e.value)
    assert "\n" not in msg and (src.name in msg or str(src) in msg)
