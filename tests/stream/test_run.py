"""ClipRunner streaming == whole-clip graph; `edge run` over synthetic and video sources."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

from edge.bundle import Bundle  # noqa: E402
from edge.errors import DataError  # noqa: E402
from edge.models import lane  # noqa: E402
from edge.stream.clip_runner import ClipRunner  # noqa: E402
from edge.stream.overlay import VideoWriter  # noqa: E402
from edge.stream.sources import parse_source, synthetic_frames  # noqa: E402


def test_streaming_runner_equals_clip_runner(tiny_bundle: Path) -> None:
    """Ring buffer of encoder outputs (ONNX) == the whole-clip ONNX graph, frame by frame."""
    b = Bundle.load(tiny_bundle)
    cfg = b.manifest["model"]["config"]
    stream, clip = ClipRunner(b, streaming=True), ClipRunner(b, streaming=False)
    assert stream.streaming and not clip.streaming
    rng = np.random.default_rng(0)
    for i in range(6):
        frame = lane.preprocess_frame(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8), cfg)
        a, c = stream.push(frame), clip.push(frame)
        for k in ("loc", "exist"):
            assert np.abs(a[k] - c[k]).max() <= 1e-4 * np.abs(c[k]).max(), (i, k)
    stream.close()
    clip.close()


def test_parse_source_errors(tmp_path: Path) -> None:
    assert parse_source("synthetic") == ("synthetic", (60, (720, 1280)))
    assert parse_source("synthetic:5:360x640") == ("synthetic", (5, (360, 640)))
    for bad in ("synthetic:x", "synthetic:0", "synthetic:3:10x10", str(tmp_path / "missing.mp4"), str(tmp_path)):
        with pytest.raises(DataError):
            parse_source(bad)


def test_synthetic_frames_carry_labels() -> None:
    frames = list(synthetic_frames(4, (180, 320)))
    assert [i for i, _, _ in frames] == [0, 1, 2, 3]
    _, img, gt = frames[0]
    assert img.shape == (180, 320, 3) and img.dtype == np.uint8
    assert len(gt["lanes"]) >= 1 and all(len(lane_) == len(gt["h_samples"]) for lane_ in gt["lanes"])


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli.main", *args], capture_output=True, text=True,
                          timeout=300)


def test_edge_run_on_video_file(tiny_bundle: Path, tmp_path: Path) -> None:
    """A real mp4 written by our writer, read back by `edge run`: one JSONL line per frame + overlay."""
    video = tmp_path / "in.mp4"
    with VideoWriter(video, 10) as w:
        for _, img, _ in synthetic_frames(7, (120, 200)):
            w.write(img)
    assert video.is_file() and not list(tmp_path.glob(".*partial*"))
    r = _cli("run", str(tiny_bundle), "--source", str(video), "--out", str(tmp_path / "run"), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    lines = (tmp_path / "run" / "lanes.jsonl").read_text().splitlines()
    assert summary["frames"] == len(lines) == 7
    assert json.loads(lines[0])["frame"] == 0
    cap = cv2.VideoCapture(summary["overlay"])
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 7


def test_edge_run_synthetic_scores_tusimple(tiny_bundle: Path, tmp_path: Path) -> None:
    r = _cli("run", str(tiny_bundle), "--source", "synthetic:5:180x320", "--out", str(tmp_path), "--json",
             "--backend", "torch")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["frames"] == 5 and s["streaming"] is True
    assert 0.0 <= s["tusimple"]["accuracy"] <= 1.0
    rec = json.loads((tmp_path / "lanes.jsonl").read_text().splitlines()[-1])
    assert len(rec["tusimple"]["h_samples"]) == 56


def test_file_named_synthetic_is_a_file(tmp_path: Path) -> None:
    """`synthetic.mp4` is a video path, not the synthetic source."""
    with pytest.raises(DataError, match=r"synthetic\.mp4"):
        parse_source(str(tmp_path / "synthetic.mp4"))
    (tmp_path / "synthetic_drive.mp4").write_bytes(b"")
    assert parse_source(str(tmp_path / "synthetic_drive.mp4"))[0] == "video"


def test_failed_run_leaves_previous_results_untouched(tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _cli("run", str(tiny_bundle), "--source", "synthetic:3:90x160", "--out", str(out)).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    r = _cli("run", str(tiny_bundle), "--source", str(bad), "--out", str(out))
    assert r.returncode == 2 and "broken.mp4" in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
