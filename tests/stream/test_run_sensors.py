"""`edge run` with real sensor data: KITTI camera + LiDAR pairs, and a camera with a Velodyne pcap beside it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli.main", "run", *args], capture_output=True, text=True,
                          timeout=300)


def test_kitti_run_projects_lidar_and_dumps_points(tiny_bundle: Path, real_data: Path, tmp_path: Path) -> None:
    """KITTI 000114: 19,463 of its points land in the image; the dump is the .bin; the overlay keeps 1242x375."""
    root = real_data / "kitti" / "object" / "training"
    r = _cli(str(tiny_bundle), "--source", f"kitti:{root}", "--out", str(tmp_path / "o"), "--dump-points",
             str(tmp_path / "pts"), "--json")
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "o" / "lanes.jsonl").read_text().splitlines()[0])
    assert rec["lidar"] == {"points": 120002, "in_image": 19463}
    assert rec["frames"] == {"camera": 0, "lidar": 0}
    pts = np.load(tmp_path / "pts" / "lidar_000000.npy")
    raw = np.fromfile(root / "velodyne" / "000114.bin", np.float32).reshape(-1, 4)
    assert np.array_equal(pts["x"], raw[:, 0]) and np.array_equal(pts["intensity"], raw[:, 3])
    cap = cv2.VideoCapture(str(tmp_path / "o" / "overlay.mp4"))
    ok, frame = cap.read()
    assert ok and frame.shape[:2] == (376, 1242)  # 375 rows padded to even for MPEG-4, never cropped
    img = cv2.imread(str(root / "image_2" / "000114.png"))
    # projected points are drawn: the overlay differs from the camera image in many pixels
    assert (np.abs(frame[:375].astype(int) - img.astype(int)).max(-1) > 60).sum() > 5000


def test_a_kitti_calibration_for_another_image_size_is_a_counted_skip(tiny_bundle: Path, real_data: Path,
                                                                        half_size_kitti: tuple[Path, Path],
                                                                        tmp_path: Path) -> None:
    """KITTI object's calib states no image size; beside a half-size image its principal point sits at the image's
    right edge. The source used to give it the image's size, and the overlay and the horizon were drawn at the
    full-size scale without a word; the frame set is now skipped, its image and the reason named."""
    root = real_data / "kitti" / "object" / "training"
    obj, png = half_size_kitti
    r = _cli(str(tiny_bundle), "--source", f"kitti:{obj}", "--out", str(tmp_path / "o"), "--json")
    # its only frame skipped: the run's one line names the skip's reason
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "no frames were processed" in r.stderr and f"{png}: the rig" in r.stderr, r.stderr
    assert "far from the centre of the 621x188 image" in r.stderr, r.stderr
    # the same calib given with --calib beside the full-size image still runs (its principal point is central)
    r = _cli(str(tiny_bundle), "--source", str(root / "image_2" / "000114.png"), "--calib",
             str(root / "calib" / "000114.txt"), "--out", str(tmp_path / "o2"), "--json")
    assert r.returncode == 0, r.stderr
    assert not (json.loads(r.stdout.strip().splitlines()[-1]).get("skip_reasons") or {}), r.stdout


def test_camera_with_velodyne_pcap_is_synced_by_capture_time(tiny_bundle: Path, real_data: Path,
                                                             tmp_path: Path) -> None:
    """A 30 fps video + the VLP-16 pcap, both at recorded speed: its rotations ride along nearby frames."""
    from edge.models.lane.samples import synthetic
    from edge.stream.overlay import VideoWriter

    pcap = real_data / "lidar" / "velodyne" / "velodyne_vlp16.pcap"
    video = tmp_path / "cam.mp4"
    with VideoWriter(video, 30) as w:
        for img in (tick['camera'][0] for tick in synthetic(24, (90, 160))):
            w.write(img)
    r = _cli(str(tiny_bundle), "--source", str(video), "--realtime", "--lidar",
             f"velodyne:{pcap},model=VLP16", "--sync-ms", "100", "--jsonl", str(tmp_path / "r.jsonl"),
             "--policy", "block", "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(lines) == 24
    with_lidar = [x for x in lines if "lidar" in x["frames"]]
    # the file holds one full rotation (18,154 points) and a partial one (1,425: the capture's end), which is
    # counted, not paired (it was paired with the frames nearest it, a wedge of the sweep as their scan); the
    # full rotation rides along every camera frame within the tolerance of it
    assert with_lidar and all(x["frames"]["lidar"] == 0 and x["lidar"]["points"] == 18154 for x in with_lidar)
    s = json.loads(r.stdout)
    assert s["counters"]["partial_lidar"] == 1
    src = next(v for k, v in s["sources"].items() if k.startswith("velodyne:"))
    assert src["bad_packets"] == 0 and src["packets"] == 84


def test_video_and_pcap_without_realtime_pair_on_their_recorded_times(tiny_bundle: Path, real_data: Path,
                                                                     tmp_path: Path) -> None:
    """Read as fast as the loop takes them, a 30 fps video and the VLP-16 pcap pair by where each frame sits
    in its recording (the rotations' middles: 50.6 and 105.8 ms after the first packet), the same on any
    machine; read times would pair them by decoding speed."""
    from edge.models.lane.samples import synthetic
    from edge.stream.overlay import VideoWriter

    pcap = real_data / "lidar" / "velodyne" / "velodyne_vlp16.pcap"
    video = tmp_path / "cam.mp4"
    with VideoWriter(video, 30) as w:
        for img in (tick['camera'][0] for tick in synthetic(12, (90, 160))):
            w.write(img)
    r = _cli(str(tiny_bundle), "--source", str(video), "--lidar", f"velodyne:{pcap},model=VLP16", "--sync-ms",
             "100", "--jsonl", str(tmp_path / "r.jsonl"), "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    # frame k at 33.3 k ms: the full rotation (its middle at 50.6 ms) within 100 ms, up to frame 4 at 133 ms; the
    # partial one (105.8 ms) is not paired (frames 3-6 took it before)
    assert [x["frames"].get("lidar") for x in lines] == [0] * 5 + [None] * 7
    s = json.loads(r.stdout)
    assert s["counters"]["partial_lidar"] == 1
    assert s["policy"] == "block" and s["sync"] == {"lidar": "recording"}


def test_lidar_spec_errors_are_one_line(tiny_bundle: Path, tmp_path: Path) -> None:
    for spec, needle in (("nothere.pcap", "nothere.pcap"), ("ouster:x.pcap", "meta"), ("lidar:foo", "lidar:foo")):
        r = _cli(str(tiny_bundle), "--source", "synthetic:2:90x160", "--lidar", spec, "--out", str(tmp_path / "o"))
        assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, (spec, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_point_dump_of_a_camera_only_run_is_not_claimed(tiny_bundle: Path, tmp_path: Path) -> None:
    """No point cloud arrives: no folder is left, and the summary does not list one as written."""
    r = _cli(str(tiny_bundle), "--source", "synthetic:2", "--no-live", "--out", str(tmp_path / "o"),
             "--dump-points", str(tmp_path / "pts"), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert "points" not in summary["outputs"] and not (tmp_path / "pts").exists()
    # and it says so: the option did nothing (a review found it silently ignored)
    said = "no point cloud in this run's 2 result(s) (no LiDAR rotation was paired"
    assert any(said in n for n in summary.get("notes", [])), summary


def test_lidar_beside_a_source_that_gives_one_names_the_option(tiny_bundle: Path, real_data: Path,
                                                                tmp_path: Path) -> None:
    """`kitti:` with `--lidar` said "two sources deliver the same sensor (camera, lidar, lidar); give each its own
    name", which a user cannot do for --lidar (a review)."""
    kitti = real_data / "kitti" / "object" / "training"
    pcap = real_data / "lidar" / "velodyne" / "velodyne_vlp16.pcap"
    r = _cli(str(tiny_bundle), "--source", f"kitti:{kitti}", "--lidar", str(pcap), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "--lidar: --source kitti:" in r.stderr and "drop --lidar" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
