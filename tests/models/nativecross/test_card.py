"""The NativeCross card: the refinement program's host loop, pre/post-processing errors, the metrics on
hand-made cases, and the stream's counted skip of frame sets it cannot use."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from edge.data import se3
from edge.data.frame import Frame
from edge.errors import DataError
from edge.models.nativecross import card as C
from edge.models.nativecross.metrics import reduce_items, summarize

CFG = C.CONFIGS["tiny"]


def _frames(seed: int = 0, deg: float = 10, m: float = 0.25) -> dict[str, Frame]:
    from edge.models.nativecross.samples import samples

    cfg = {**CFG, "eval_max_deg": deg, "eval_max_m": m}
    return samples(cfg, "evaluation", 1, seed)[0][0]


def test_runner_applies_each_increment_on_the_left() -> None:
    """With a step that returns half of the exact increment, the error halves each iteration."""
    frames = _frames()
    truth = frames["camera"].meta["rig_true"].T_lidar_to_cam

    def step(feeds: dict) -> dict:
        T = np.asarray(feeds["T"][0], np.float64)
        return {"xi": (0.5 * se3.log_se3(truth @ se3.inverse(T)))[None].astype(np.float32)}

    runner = C.RefineRunner({"encode": lambda f: {"img_tokens": 0, "pt_tokens": 0}, "step": step}, CFG)
    feeds = C.preprocess(frames, CFG)
    out = runner.step(feeds)
    assert out["T_iters"].shape == (1, 4, 4, 4)
    errs = [se3.rotation_error_deg(T, truth) for T in out["T_iters"][0]]
    assert errs[0] > 1 and all(b == pytest.approx(a / 2, rel=0.02, abs=1e-3) for a, b in itertools.pairwise(errs))
    rec, _ = C.postprocess(out, frames, CFG)
    assert rec["eval"]["rot_deg"] == pytest.approx(errs[-1], abs=1e-3) and len(rec["eval"]["per_iter"]) == 3
    assert rec["eval"]["rot_deg_before"] == pytest.approx(errs[0], abs=1e-3)
    assert np.asarray(rec["T_lidar_to_cam"]).shape == (4, 4)
    assert rec["iterations"] == 3 and rec["match_rounds"] == 0
    runner.iterations = 5  # as the evaluation's table of 1..5 steps runs it: labelled as steps, not rounds
    rec, _ = C.postprocess(runner.step(feeds), frames, CFG)
    assert rec["iterations"] == 5 and rec["match_rounds"] == 0 and len(rec["eval"]["per_iter"]) == 5


def test_preprocess_feeds_and_errors() -> None:
    frames = _frames()
    feeds = C.preprocess(frames, CFG)
    h, w = CFG["input_hw"]
    assert feeds["image"].shape == (1, 3, h, w) and feeds["groups"].shape == (1, CFG["groups"], CFG["group_size"], 3)
    rig = frames["camera"].meta["rig"]
    # P is rescaled from the camera's pixels to the model's: a point lands at the same relative place
    ih, iw = frames["camera"].data.shape[:2]
    assert feeds["P"][0, 0, 0] == pytest.approx(rig.P[0, 0] * w / iw, rel=1e-5)
    assert feeds["P"][0, 1, 2] == pytest.approx(rig.P[1, 2] * h / ih, rel=1e-5)
    cam, lid = frames["camera"], frames["lidar"]
    small = Frame(cam.data[::2, ::2].copy(), 0, 0, "camera", {**cam.meta, "file": "cam0.png"})
    with pytest.raises(DataError, match=r"cam0.png: the image is \d+x\d+ but the rig"):
        C.preprocess({"camera": small, "lidar": lid}, CFG)
    bare = {"camera": Frame(cam.data, 0, 0, "camera", {}), "lidar": Frame(lid.data, 0, 0, "lidar", {})}
    with pytest.raises(DataError, match="--calib"):
        C.preprocess(bare, CFG)
    few = Frame(lid.data[:10], 0, 0, "lidar", {**lid.meta, "file": "scan.bin"})
    with pytest.raises(DataError, match=r"scan.bin: only \d+ LiDAR points"):
        C.preprocess({"camera": cam, "lidar": few}, CFG)


def test_metrics_on_hand_made_errors() -> None:
    s = summarize([0.5, 1.5, 3.0, 0.2], [1.0, 4.0, 1.0, 3.0])
    assert s["l1_rate"] == 25.0  # only (0.5 deg, 1 cm) is < 1 deg and < 2.5 cm
    assert s["l2_rate"] == 75.0 and s["value"] == 75.0  # (3 deg, 1 cm) fails the rotation bound
    assert s["rot_rmse_deg"] == pytest.approx(np.sqrt((0.25 + 2.25 + 9 + 0.04) / 4))
    assert s["trans_rmse_cm"] == pytest.approx(np.sqrt((1 + 16 + 1 + 9) / 4))
    items = [{"rot_deg": 0.5, "trans_cm": 1.0, "rot_deg_before": 9, "trans_cm_before": 20,
              "per_iter": [[3, 8], [1, 3], [0.5, 1.0]]}]
    r = reduce_items([*items, None])
    assert r["frames"] == 1 and r["before"]["l2_rate"] == 0
    assert [p["l2_rate"] for p in r["per_iteration"]] == [0, 100, 100]


def _run_pairs(pairs: list[tuple[int, np.ndarray, int]], cam: Frame, lid: Frame) -> dict:
    """The pipeline over (camera time, scan, LiDAR time) pairs with the card's preprocess."""
    from edge.stream.pipeline import Pipeline
    from edge.stream.sources.base import Source
    from edge.stream.task import Result

    class Pairs(Source):
        sensors = ("camera", "lidar")
        spec = "pairs"

        def open(self) -> None:
            pass

        def __iter__(self):
            for i, (tc, pts, tl) in enumerate(pairs):
                yield Frame(cam.data, tc, i, "camera", dict(cam.meta))
                yield Frame(pts, tl, i, "lidar", dict(lid.meta))

    class Task:
        sensors = ("camera", "lidar")
        wants_image = False

        def preprocess(self, frames):
            return C.preprocess(frames, CFG)

        def infer(self, x):
            return x

        def postprocess(self, out, frames):
            return {"ok": 1}, None

        def draw(self, result: Result):
            return None

        def summary(self) -> dict:
            return {}

        def close(self) -> None:
            pass

    return Pipeline([Pairs()], Task(), [], policy="block", sync_tolerance_ms=50).run(handle_signals=False)


def test_stream_counts_frame_sets_it_cannot_use() -> None:
    """A scan facing away, or no scan within the sync tolerance: counted skips with their reasons, not
    the end of the run."""
    good = _frames(1)
    cam, lid = good["camera"], good["lidar"]
    turned = lid.data.copy()
    turned["x"] *= -1
    fewer = turned.copy()
    fewer["x"][:5] *= -1  # a different count of points in view: still one reason, counted twice
    s = 1_000_000_000
    pairs = [(s, lid.data, s), (2 * s, turned, 2 * s), (3 * s, lid.data, 3 * s + s // 2), (4 * s, lid.data, 4 * s),
             (5 * s, fewer, 5 * s)]
    out = _run_pairs(pairs, cam, lid)
    assert out["frames"] == 2 and out["counters"]["skipped"] == 2 and out["counters"]["unsynced"] == 1
    assert sorted(out["skip_reasons"].values()) == [1, 2]
    reasons = " | ".join(out["skip_reasons"])
    assert "LiDAR points are in the camera's view" in reasons
    assert "no lidar frame within the sync tolerance (50 ms, --sync-ms)" in reasons


def test_edge_val_says_which_kitti_frames_it_cannot_score(real_data: Path, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """`edge run` named the images of a KITTI folder that have no scan or calibration; `edge val` scored fewer frames
    without a word (a review)."""
    import logging
    import shutil

    from edge.models.nativecross.samples import read_labelled

    src = real_data / "kitti" / "object" / "training"
    for sub, ext in (("image_2", "png"), ("velodyne", "bin"), ("calib", "txt")):
        (tmp_path / sub).mkdir()
        shutil.copy(src / sub / f"000114.{ext}", tmp_path / sub / f"000114.{ext}")
    shutil.copy(src / "image_2" / "000114.png", tmp_path / "image_2" / "000115.png")  # no scan, no calib
    shutil.copy(src / "velodyne" / "000114.bin", tmp_path / "velodyne" / "000200.bin")  # no image
    with caplog.at_level(logging.WARNING, logger="edge.data"):
        got = read_labelled(tmp_path, {}, starts=1)
    assert len(got) == 1
    assert "1 image(s) without a scan or calibration are not scored (000115)" in caplog.text
    assert "1 scan(s) without an image are not scored (000200)" in caplog.text
