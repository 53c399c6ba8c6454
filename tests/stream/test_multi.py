"""``multi:NAME=SPEC,...``: parts read in lockstep with one time and frame number per step, the primary
last, ending with the shortest part; names resolve to the family's sensors or are refused in one line."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edge.errors import DataError
from edge.models.contract import Sensors
from edge.stream.sources import MemorySource, SyntheticSource, open_source
from edge.stream.sources.multi import MultiSource, multi_source, resolve_name, split_parts

CARD = SimpleNamespace(name="fam", sensors=Sensors(("front", "front_left", "front_right")))


def test_split_parts_keeps_options_with_their_part() -> None:
    assert split_parts("front=a.mp4,left=dir/,fps=10,right=c, d.mp4", "s") == [
        ("front", "a.mp4"), ("left", "dir/,fps=10"), ("right", "c, d.mp4")]
    for bad in ("front=a.mp4", "front=a.mp4,left=", "a.mp4,b.mp4", "front=a,left b=c"):
        with pytest.raises(DataError, match="bad source 's'"):
            split_parts(bad, "s")


def test_names_resolve_to_the_family_sensors() -> None:
    wanted = ("front", "front_left", "front_right", "rear_left")
    assert resolve_name("front", wanted, "s") == "front"
    assert resolve_name("right", wanted, "s") == "front_right"
    assert resolve_name("rear", wanted, "s") == "rear_left"
    with pytest.raises(DataError, match="'left' matches front_left, rear_left"):
        resolve_name("left", wanted, "s")
    with pytest.raises(DataError, match="'back' is not one of its sensors"):
        resolve_name("back", wanted, "s")
    assert resolve_name("back", (), "s") == "back"  # no family: names as given


def _mem(n: int, v: int) -> MemorySource:
    return MemorySource([np.full((4, 4, 3), v, np.uint8)], count=n, meta=[{"v": v}])


def test_lockstep_one_time_per_step_primary_last_shortest_ends() -> None:
    src = MultiSource("m", [("front", _mem(5, 1)), ("front_left", _mem(3, 2)), ("front_right", _mem(9, 3))], "front")
    src.open()
    frames = list(src)
    assert src.ended == "front_left" and src.frames_total == 3
    # said (found by a review: the run stopped at the shortest part without a word)
    assert src.note() == ("m: part 'front_left' ended the run after 3 frame set(s); 'front_right' has 9, 'front' "
                          "has 5 (parts are read in lockstep)")
    assert src.note(max_frames=3) is None  # --max-frames ended it (the review of the note: it blamed a part)
    assert [f.sensor for f in frames] == ["front_left", "front_right", "front"] * 3
    for k in range(3):
        step = frames[3 * k:3 * k + 3]
        assert {f.seq for f in step} == {k} and len({f.t_capture_ns for f in step}) == 1
        assert [f.meta["v"] for f in step] == [2, 3, 1]
    assert frames[3].t_capture_ns > frames[0].t_capture_ns
    with pytest.raises(DataError, match="two parts feed the same sensor"):
        MultiSource("m", [("a", _mem(1, 1)), ("a", _mem(1, 2))])


def test_open_source_multi_builds_and_refuses(tmp_path: Path) -> None:
    for i in range(2):
        (tmp_path / f"d{i}").mkdir()
    src = open_source(f"multi:front={tmp_path / 'd0'},fps=5,right={tmp_path / 'd1'},left={tmp_path / 'd0'}", card=CARD)
    assert isinstance(src, MultiSource) and set(src.sensors) == {"front", "front_right", "front_left"}
    assert src.parts[-1][0] == "front"
    with pytest.raises(DataError, match="cannot hold another"):
        open_source(f"multi:front=multi:a={tmp_path},b=x.mp4", card=CARD)
    two = SyntheticSource("pair", 2, None, generator=lambda n, hw, seed: iter([{"a": (1, {}), "b": (2, {})}] * n))
    with pytest.raises(DataError, match=r"part 'left=k' gives 2 sensors \(a, b\); each part must be one camera"):
        multi_source("multi:front=x.mp4,left=k", lambda sub: two if sub == "k" else open_source(sub), CARD)


def test_an_option_on_a_video_part_names_the_video(tmp_path: Path) -> None:
    """`c.avi,fps=5` (fps belongs to image folders and KITTI) said "c.avi,fps=5: no such video file" of a video
    that exists."""
    import cv2

    w = cv2.VideoWriter(str(tmp_path / "c.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    w.write(np.zeros((24, 32, 3), np.uint8))
    w.release()
    with pytest.raises(DataError, match=r"c\.avi: a video file takes no options \(fps=5\)"):
        open_source(f"{tmp_path / 'c.avi'},fps=5").open()
    with pytest.raises(DataError, match=r"nope\.avi: no such video file"):
        open_source(str(tmp_path / "nope.avi")).open()


def test_a_part_that_cannot_open_closes_the_others(tmp_path: Path) -> None:
    closed = []

    class Spy(MemorySource):
        def close(self) -> None:
            closed.append(self.spec)

    good = Spy([np.zeros((2, 2, 3), np.uint8)], spec="good")
    bad = open_source(str(tmp_path / "missing.mp4"))
    src = MultiSource("m", [("front", good), ("front_left", bad)], "front_left")
    with pytest.raises(DataError, match="no such video file"):
        src.open()
    assert closed == ["good"]


def _folder(path: Path) -> Path:
    import cv2

    path.mkdir()
    cv2.imwrite(str(path / "000000.png"), np.zeros((8, 8, 3), np.uint8))
    return path


def test_parts_at_different_rates_are_named_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A 60 fps part beside a 10 fps one was read in lockstep without a word (the 60 fps one played 6x slow)."""
    a, b = _folder(tmp_path / "a"), _folder(tmp_path / "b")
    with caplog.at_level("WARNING", logger="edge.stream"):
        same = open_source(f"multi:front={a},fps=10,left={b},fps=10", card=CARD)
        same.open()
        same.close()
        assert not caplog.records
        src = open_source(f"multi:front={a},fps=60,left={b},fps=10", card=CARD)
        src.open()
        src.close()
    (rec,) = caplog.records
    assert "frame rates differ (front_left 10 fps, front 60 fps)" in rec.getMessage()
    assert "at front's 60 fps" in rec.getMessage()
    # --realtime: each part waits for its own frame times, so the sets come at the slowest part's rate (the warning
    # said the lead's, and the lead played six times slower than recorded)
    caplog.clear()
    with caplog.at_level("WARNING", logger="edge.stream"):
        paced = open_source(f"multi:front={a},fps=60,left={b},fps=10", card=CARD, realtime=True)
        paced.open()
        paced.close()
    (rec,) = caplog.records
    assert "the sets come at front_left's 10 fps and the faster parts play slower than recorded" in rec.getMessage()


LIDAR_CARD = SimpleNamespace(name="fam", sensors=Sensors(("camera",), ("scan",), points=("scan",)))


def test_a_part_for_a_point_cloud_sensor_is_refused(tmp_path: Path) -> None:
    """`multi:camera=drive.mp4,lidar=imgs` ran with JPEGs in the LiDAR's slot, exit 0 and no word."""
    a, b = _folder(tmp_path / "a"), _folder(tmp_path / "b")
    with pytest.raises(DataError, match=r"'scan' takes point clouds \(give the LiDAR with --lidar\)"):
        open_source(f"multi:camera={a},scan={b}", card=LIDAR_CARD)
    named = SimpleNamespace(name="fam", sensors=Sensors(("camera",), ("lidar",)))  # no points declared: by name
    with pytest.raises(DataError, match="'lidar' takes point clouds"):
        open_source(f"multi:camera={a},lidar={b}", card=named)


def test_sources_bind_to_sensors_of_their_kind() -> None:
    """By order alone a LiDAR took a family's second camera (free sensors: left, scan -> lidar fed 'left')."""
    from edge.stream.api import bind_sensors

    fam = Sensors(("front", "left"), ("scan",), points=("scan",))
    cam, lid = MemorySource([np.zeros((2, 2, 3), np.uint8)]), MemorySource([np.zeros((2, 4), np.float32)],
                                                                              sensor="lidar", spec="x.pcap")
    bind_sensors([cam, lid], fam)
    assert cam.sensors == ("front",) and lid.sensors == ("scan",)
    cams = Sensors(("front", "front_left"))  # no point cloud: --lidar is one line, not a camera's frames
    lid2 = MemorySource([np.zeros((2, 4), np.float32)], sensor="lidar", spec="x.pcap")
    with pytest.raises(DataError, match=r"x\.pcap: model 'fam' takes no point cloud \(it reads front, front_left\)"):
        bind_sensors([MemorySource([np.zeros((2, 2, 3), np.uint8)]), lid2], cams, "model 'fam'")
    named = Sensors(("camera",), ("lidar",))  # a sensor called lidar takes the LiDAR by name, declared or not
    lid3 = MemorySource([np.zeros((2, 4), np.float32)], sensor="lidar")
    bind_sensors([lid3], named)
    assert lid3.sensors == ("lidar",)
    pair = MemorySource([np.zeros((2, 2, 3), np.uint8)])
    pair.sensors = ("camera", "lidar")  # a kitti: source: images with their scans
    bind_sensors([pair], Sensors(("image",)))  # a camera-only family: the scans stay unread, no refusal
    assert pair.sensors == ("image", "lidar")
    only_points = Sensors(("cloud",), points=("cloud",))  # a camera is never bound to a point-cloud sensor
    cam2 = MemorySource([np.zeros((2, 2, 3), np.uint8)])
    bind_sensors([cam2], only_points)
    assert cam2.sensors == ("camera",)


def test_points_must_be_sensors() -> None:
    from edge.errors import ModelError

    with pytest.raises(ModelError, match=r"points \['x'\] are not among the sensors"):
        Sensors(("camera",), points=("x",))


def test_a_part_that_skips_an_unreadable_image_stays_aligned(tmp_path: Path) -> None:
    """Found by a review: a part whose folder skipped an unreadable image fed its frame i + 1 beside the others'
    frame i for the rest of the run, without a word. The parts now meet at each frame's position in its recording:
    the set it lacked is left out and counted, every later set is one position, and no part is said to have
    ended the run early."""
    import cv2

    for d in ("f", "l", "r"):
        (tmp_path / d).mkdir()
        for i in range(6):
            cv2.imwrite(str(tmp_path / d / f"{i:04d}.png"), np.full((8, 8, 3), 40 * i, np.uint8))
    (tmp_path / "l" / "0002.png").write_bytes(b"junk" * 10)  # the left camera's third image is unreadable
    (tmp_path / "r" / "0004.png").write_bytes(b"junk" * 10)  # and the right's fifth
    src = open_source(f"multi:front={tmp_path / 'f'},left={tmp_path / 'l'},right={tmp_path / 'r'}", card=CARD)
    src.open()
    sets: dict[int, dict[str, str]] = {}
    for f in src:
        sets.setdefault(f.seq, {})[f.sensor] = f.meta["file"]
    src.close()
    assert [sorted(set(s.values())) for s in sets.values()] == [["0000.png"], ["0001.png"], ["0003.png"],
                                                                 ["0005.png"]]
    assert src.counters()["incomplete_sets"] == 2 and src.note() is None
    # capped at 3 sets: the parts read on past their own count to meet (a part capped by it ended the run at 2 and
    # its note blamed the other part); the cap is the multi source's
    spec = f"multi:front={tmp_path / 'f'},left={tmp_path / 'l'},right={tmp_path / 'r'}"
    src = open_source(spec, card=CARD, max_frames=3)
    src.open()
    files = [f.meta["file"] for f in src if f.sensor == "front"]
    src.close()
    assert files == ["0000.png", "0001.png", "0003.png"] and src.frames_total == 3 and src.note(3) is None
    assert src.counters()["incomplete_sets"] == 1
