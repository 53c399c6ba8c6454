"""`edge run`'s outputs: never onto a file the run reads, one file twice, the bundle or a device/pipe; a failed
run keeps no point dump; a failing UDP publisher is said; a variable-rate video keeps its own clock."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from edge.data.frame import POINT_DTYPE, Frame, now_ns  # noqa: E402
from edge.errors import DataError, EdgeError  # noqa: E402
from edge.files import check_outputs, check_target  # noqa: E402
from edge.stream.overlay import VideoWriter  # noqa: E402
from edge.stream.pipeline import Pipeline  # noqa: E402
from edge.stream.sinks import PointDumpSink, UdpJsonSink  # noqa: E402
from edge.stream.sources import MemorySource, Source, open_source  # noqa: E402
from edge.stream.sources.camera import FileClock  # noqa: E402


def _video(path: Path, n: int = 6, fps: float = 25.0) -> Path:
    with VideoWriter(path, fps) as w:
        for i in range(n):
            w.write(np.full((48, 64, 3), 20 * i % 256, np.uint8))
    return path


def test_outputs_onto_inputs_or_each_other_are_refused_before_any_work(tmp_path: Path) -> None:
    video = _video(tmp_path / "in.mp4")
    pcap = tmp_path / "scan.pcap"
    pcap.write_bytes(b"x")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "model.onnx").write_bytes(b"x")
    reads = [video, pcap]
    cases = [({"--jsonl": video}, {}, "--jsonl would replace"),
             ({"--save": tmp_path / "." / "in.mp4"}, {}, "--save would replace"),  # the same file, spelt otherwise
             ({"--save": tmp_path / "x.mp4", "--jsonl": tmp_path / "x.mp4"}, {}, "--save and --jsonl name the same"),
             ({"--jsonl": bundle / "model.onnx"}, {}, "would replace"),
             ({"--jsonl": bundle / "new.jsonl"}, {}, "would write into"),  # a file the manifest does not list
             ({"--jsonl": tmp_path / "r.jsonl"}, {"--dump-points": bundle / "pts"}, "--dump-points would write into"),
             ({"--jsonl": tmp_path / "pts"}, {"--dump-points": tmp_path / "pts"}, "name the same path")]
    for outputs, folders, needle in cases:
        with pytest.raises(DataError, match=needle) as e:
            check_outputs(outputs, reads, folders, sealed=(bundle,))
        assert "\n" not in str(e.value)
    # new files beside the inputs, and in a folder the run reads, are fine; so is an earlier run's output in a
    # sub-folder of a folder whose files the run reads (edge run --source frames/ --out frames/run1, twice)
    check_outputs({"--save": tmp_path / "o.mp4", "--jsonl": tmp_path / "o.jsonl", "--stats": None}, [*reads, tmp_path],
                  {"--dump-points": tmp_path / "elsewhere" / "pts"}, sealed=(bundle,))
    (tmp_path / "run1").mkdir()
    (tmp_path / "run1" / "overlay.mp4").write_bytes(b"x")
    check_outputs({"--save": tmp_path / "run1" / "overlay.mp4"}, [tmp_path])
    with pytest.raises(DataError, match="would replace a file in"):
        check_outputs({"--save": tmp_path / "scan.pcap"}, [tmp_path])


def test_out_onto_the_bundle_names_out(tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a review: `edge run B --out B` said "overlay.mp4: --save would write into B", an option not given."""
    from edge.cli.run_cmd import run_run

    for out in (tiny_bundle, tiny_bundle / "sub"):
        with pytest.raises(DataError, match=r"--out would write into .*, which this run reads") as e:
            run_run(str(tiny_bundle), source="synthetic:2", lidar=None, rig=None, save=None, jsonl=None, stats=None,
                    out=out, policy="block", backend="onnxruntime", precision=None, program=None, realtime=False,
                    max_frames=0, threads=0, display=False, dump_points=None, udp=None, sync_ms=50.0, live=False,
                    json_out=False)
        assert "--save" not in str(e.value)
    assert not (tiny_bundle / "sub").exists()
    # the review of that fix: a folder named like the source's spec ("synthetic") is not the source
    monkeypatch.chdir(tmp_path)
    run_run(str(tiny_bundle), source="synthetic:2", lidar=None, rig=None, save=None, jsonl=None, stats=None,
            out=Path("synthetic:2"), policy="block", backend="onnxruntime", precision=None, program=None,
            realtime=False, max_frames=0, threads=0, display=False, dump_points=None, udp=None, sync_ms=50.0,
            live=False, json_out=True)
    assert (tmp_path / "synthetic:2" / "summary.json").is_file()
    # and FFmpeg read "synthetic:2/overlay.mp4" (relative, a colon before the slash) as a URL: neither written nor read
    from edge.stream.overlay import readable_frames

    assert readable_frames("synthetic:2/overlay.mp4", 2) == 2


def test_a_video_in_a_folder_that_takes_no_file_says_why() -> None:
    """Found by a review: `--save /sys/a.avi` (as root, whom access() lets write anywhere) said "OpenCV cannot write
    a .avi video here (tried MJPG and mp4v); .avi uses OpenCV's own MJPG writer"; the folder takes no file."""
    from edge.stream.sinks import OverlaySink

    with pytest.raises(DataError, match=r"^/proc/edge-probe\.mp4: (cannot write \(|folder is not writable)"):
        OverlaySink("/proc/edge-probe.mp4").open()


def test_edge_run_onto_its_own_video_keeps_the_video(tiny_bundle: Path, tmp_path: Path) -> None:
    from edge.stream.api import run

    video = _video(tmp_path / "in.mp4")
    before = video.read_bytes()
    for kw in ({"jsonl": video}, {"save": video}, {"jsonl": tiny_bundle / "r.jsonl"}):
        with pytest.raises(DataError, match="which this run reads"):
            run(tiny_bundle, str(video), handle_signals=False, **kw)
    assert video.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    assert not (tiny_bundle / "r.jsonl").exists()


def test_the_video_keeps_its_name_and_no_temporary_name_hides_a_source(tiny_bundle: Path, tmp_path: Path) -> None:
    """Found by a review: `--save clip.txt` (any name mp4v would not open) was written as MJPG to `clip.avi`, a name no
    output check had seen, over the `clip.avi` the run was reading (exit 0); and a source named like the writer's
    temporary file (`.clip.partial.avi` for `--save clip.avi`) was overwritten by it and renamed away."""
    from edge.stream.api import run

    video = _video(tmp_path / "clip.avi")
    before = video.read_bytes()
    for name in ("clip.txt", "clip", "clip.json"):
        with pytest.raises(DataError, match=rf"{name}: --save writes a video; not a video file name"):
            run(tiny_bundle, str(video), save=tmp_path / name, handle_signals=False)
    # the sinks write under private names now: a source named as the old shared ones were is only read
    hidden = tmp_path / ".out.partial.avi"
    hidden.write_bytes(before)
    run(tiny_bundle, str(hidden), save=tmp_path / "out.avi", jsonl=tmp_path / "r.jsonl", handle_signals=False)
    assert video.read_bytes() == hidden.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.partial.avi", "clip.avi", "out.avi", "r.jsonl"]
    with pytest.raises(DataError, match=r"v\.gif: not a video file name"):
        VideoWriter(tmp_path / "v.gif", 10)


def test_two_writers_of_one_name_write_their_own_files(tmp_path: Path) -> None:
    """Two `edge run` with one --jsonl shared `.NAME.partial`: the second truncated the first's file, the first
    renamed it into place while the second kept writing, and the committed file mixed both runs with a broken
    line between them (the second said "nothing was kept"). Each writer's file is now its own (pid and a number),
    the last rename wins whole, and a killed writer's file is removed by the next one."""
    from edge.files import clean_stale_files, partial_file
    from edge.stream.sinks import JsonlSink

    a, b = JsonlSink(tmp_path / "r.jsonl"), JsonlSink(tmp_path / "r.jsonl")
    assert a.tmp != b.tmp and a.tmp.parent == tmp_path
    dead = tmp_path / ".r.jsonl.999999999-0.partial"  # no such pid
    dead.write_text("{half")
    other = tmp_path / ".mine.partial"  # not ours: never touched
    other.write_text("x")
    # a writer not seen here that wrote a moment ago may be alive in another pid namespace or host: kept
    assert clean_stale_files(tmp_path, "r.jsonl") == [] and dead.exists()
    os.utime(dead, (time.time() - 600, time.time() - 600))
    assert clean_stale_files(tmp_path, "r.jsonl") == [dead] and other.exists()
    assert partial_file(tmp_path / "v.mp4", ".mp4").name.endswith(".partial.mp4")


def test_a_video_writer_that_cannot_open_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer OpenCV would not open (fps=0.001 did: FFmpeg refused the rate) left its empty temporary file, and the
    folders made for it, after the one-line error. Now each failed try removes its file; a rate under 1 fps that
    no codec opens for is written at 1 fps."""
    import cv2

    real = cv2.VideoWriter

    class Refusing:
        def __init__(self, path: str, *args: object) -> None:
            Path(path).write_bytes(b"")  # as FFmpeg does before failing

        def isOpened(self) -> bool:  # OpenCV's name
            return False

        def release(self) -> None:
            pass

    monkeypatch.setattr(cv2, "VideoWriter", Refusing)
    with pytest.raises(DataError, match=r"v\.mp4: OpenCV cannot write a \.mp4 video here \(tried mp4v and MJPG"):
        _video(tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []
    # a review: on a full disk FFmpeg's mp4 muxer refuses without a word, and the codecs were blamed
    import errno

    from edge.stream import overlay

    def full(path: object, mode: str = "r", *a: object, **k: object) -> object:
        if "w" in mode:
            Path(str(path)).touch()  # creating a file takes no data block
            raise OSError(errno.ENOSPC, "No space left on device")
        return open(path, mode, *a, **k)

    monkeypatch.setattr(overlay, "open", full, raising=False)
    with pytest.raises(DataError, match=r"v\.mp4: cannot write the video \(No space left on device\); nothing was"):
        _video(tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.delattr(overlay, "open")
    monkeypatch.setattr(cv2, "VideoWriter", real)
    with VideoWriter(tmp_path / "slow.mp4", 0.001) as w:
        w.write(np.zeros((48, 64, 3), np.uint8))
    assert w.fps == 1.0 and (tmp_path / "slow.mp4").is_file()
    with VideoWriter(tmp_path / "lapse.mp4", 0.5) as w:  # a rate mp4v takes stays
        w.write(np.zeros((48, 64, 3), np.uint8))
    assert w.fps == 0.5


def test_a_pipe_or_device_is_not_an_output_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        check_target(fifo, "--jsonl")
    assert fifo.is_fifo()
    with pytest.raises(DataError, match="not a regular file"):
        check_target("/dev/null", "--save")
    check_target(tmp_path / "new.jsonl", "--jsonl")


def test_a_link_or_a_dash_is_not_an_output_file(tiny_bundle: Path, tmp_path: Path) -> None:
    """Found by a review: `--jsonl /dev/stdout` with stdout sent to a file (a link to /proc/self/fd/1 that leads to a
    regular file) passed the check, and the commit's rename replaced the link (as root, /dev/stdout itself) with the
    results; `--jsonl -` wrote a file named '-'. Both are refused before any work, links dangling or not; a folder
    given by --out that is a link to nowhere says so ("cannot create its folder (File exists)"); an option naming
    the file --out writes names --out (it named --jsonl, never given)."""
    target = tmp_path / "real.jsonl"
    target.write_text("kept\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    with pytest.raises(DataError, match=rf"^{link}: is a symbolic link \(to {target}\); --jsonl writes a file"):
        check_target(link, "--jsonl")
    (tmp_path / "dangling.mp4").symlink_to(tmp_path / "nowhere.mp4")
    with pytest.raises(DataError, match="is a symbolic link"):
        check_target(tmp_path / "dangling.mp4", "--save")
    with pytest.raises(DataError, match=r"^--jsonl -: standard output is not an output here"):
        check_target("-", "--jsonl")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edge.cli.main", "run", str(tiny_bundle), "--source",
                               "synthetic:2", *args], capture_output=True, text=True, timeout=300, cwd=tmp_path)

    r = cli("--jsonl", str(link), "--stats", str(tmp_path / "s.json"))
    assert r.returncode == 2 and "is a symbolic link" in r.stderr and link.is_symlink(), r.stderr
    assert target.read_text() == "kept\n" and not (tmp_path / "s.json").exists()
    r = cli("--jsonl", "-")
    assert r.returncode == 2 and "standard output" in r.stderr and not (tmp_path / "-").exists(), r.stderr
    (tmp_path / "gone").symlink_to(tmp_path / "no_such_folder")
    r = cli("--out", str(tmp_path / "gone"))
    assert r.returncode == 2 and f"{tmp_path / 'gone'} is a symbolic link to {tmp_path / 'no_such_folder'}, which " \
        "does not exist" in r.stderr, r.stderr
    r = cli("--out", str(tmp_path / "o"), "--stats", str(tmp_path / "o" / "lanes.jsonl"))
    assert r.returncode == 2 and f"--stats {tmp_path / 'o' / 'lanes.jsonl'}: is the file --out {tmp_path / 'o'} " \
        "writes (lanes.jsonl)" in r.stderr, r.stderr
    # a second run into --out with its summary elsewhere: the first run's summary.json there is said, as its JSONL is
    assert cli("--out", str(tmp_path / "o5")).returncode == 0
    r = cli("--out", str(tmp_path / "o5"), "--stats", str(tmp_path / "s2.json"))
    assert r.returncode == 0 and "also holds summary.json from an earlier run" in r.stderr, r.stderr
    # spelled through '..' (or a link to the folder): the same file, the same line
    r = cli("--out", str(tmp_path / "o"), "--jsonl", str(tmp_path / "o" / ".." / "o" / "summary.json"))
    assert r.returncode == 2 and "is the file --out" in r.stderr and "(summary.json)" in r.stderr, r.stderr


class PointsSource(Source):
    """A camera frame and a LiDAR frame per step (recorded, read at once)."""

    sensors = ("camera", "lidar")

    def __init__(self, n: int) -> None:
        self.n, self.spec = n, "points"

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self.n):
            t = now_ns()
            yield Frame(np.zeros((8, 8, 3), np.uint8), t, i, "camera", {})
            yield Frame(np.zeros(5, POINT_DTYPE), t, i, "lidar", {})


class FailAt:
    name = "fail"
    sensors = ("camera", "lidar")

    def __init__(self, at: int) -> None:
        self.at = at

    def preprocess(self, frames: dict[str, Frame]) -> Frame:
        return frames["camera"]

    def infer(self, x: Frame) -> int:
        if x.seq == self.at:
            raise ValueError("boom")
        return x.seq

    def postprocess(self, out: int, frames: dict[str, Frame]) -> tuple[dict, None]:
        return {"n": out}, None

    def summary(self) -> dict:
        return {"task": self.name}

    def close(self) -> None:
        pass


def test_a_failed_run_keeps_no_point_dump(tmp_path: Path) -> None:
    keep = tmp_path / "pts" / "mine.txt"  # a folder that held a file before the run keeps it
    keep.parent.mkdir()
    keep.write_text("x")
    sink = PointDumpSink(tmp_path / "pts")
    with pytest.raises(EdgeError, match="boom"):
        Pipeline([PointsSource(30)], FailAt(12), [sink], policy="block").run(handle_signals=False)
    assert [p.name for p in (tmp_path / "pts").iterdir()] == ["mine.txt"]
    sink = PointDumpSink(tmp_path / "new" / "pts")
    with pytest.raises(EdgeError, match="boom"):
        Pipeline([PointsSource(30)], FailAt(12), [sink], policy="block").run(handle_signals=False)
    assert not (tmp_path / "new").exists()
    sink = PointDumpSink(tmp_path / "ok")
    Pipeline([PointsSource(3)], FailAt(99), [sink], policy="block").run(handle_signals=False)
    assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == [f"lidar_{i:06d}.npy" for i in range(3)]


def test_a_discarded_run_leaves_an_earlier_runs_point_clouds_as_they_were(tmp_path: Path) -> None:
    """Found by a review of the two-half commit: a run discarded by another output's failed check (a video on a full
    disk) removed the clouds it had written over an earlier run's of the same names, so that run's dump was gone.
    An earlier cloud this run writes over is kept aside and put back when the run keeps nothing."""
    from tests.stream.test_pipeline import UncheckedSink

    first = PointDumpSink(tmp_path / "pts")
    Pipeline([PointsSource(3)], FailAt(99), [first], policy="block").run(handle_signals=False)
    before = {p.name: p.read_bytes() for p in (tmp_path / "pts").iterdir()}

    class Other(PointsSource):  # other clouds under the same names
        def __iter__(self) -> Iterator[Frame]:
            for f in super().__iter__():
                yield Frame(np.ones(7, POINT_DTYPE), f.t_capture_ns, f.seq, f.sensor, {}) if f.sensor == "lidar" else f

    unwritten = UncheckedSink("v.mp4: the video did not write completely; nothing was kept")
    with pytest.raises(EdgeError, match="nothing was kept"):
        Pipeline([Other(5)], FailAt(99), [PointDumpSink(tmp_path / "pts"), unwritten],
                 policy="block").run(handle_signals=False)
    assert {p.name: p.read_bytes() for p in (tmp_path / "pts").iterdir()} == before
    Pipeline([Other(2)], FailAt(99), [PointDumpSink(tmp_path / "pts")], policy="block").run(handle_signals=False)
    after = {p.name: p.read_bytes() for p in (tmp_path / "pts").iterdir()}  # a kept run replaces them for good
    assert sorted(after) == sorted(before) and after["lidar_000002.npy"] == before["lidar_000002.npy"]
    assert after["lidar_000000.npy"] != before["lidar_000000.npy"]


def test_a_killed_runs_point_dump_gives_back_the_earlier_clouds_it_moved_aside(tmp_path: Path) -> None:
    """Found by a review: a run killed with SIGKILL left the earlier run's clouds it had written over under hidden
    partial names, which the next run then deleted as leftovers (and its note counted them as clouds): the earlier
    clouds were gone for good. The next run puts them back first, and counts only real clouds."""
    import os

    from edge.files import ASIDE, partial_file

    folder = tmp_path / "pts"
    Pipeline([PointsSource(3)], FailAt(99), [PointDumpSink(folder)], policy="block").run(handle_signals=False)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    dead = 2**22 + 12345  # a pid no process has here
    aside = partial_file(folder / "lidar_000000.npy", ASIDE)
    aside = aside.with_name(aside.name.replace(f".{os.getpid()}-", f".{dead}-"))
    os.replace(folder / "lidar_000000.npy", aside)  # the killed run's move, then its own cloud under the name
    np.save(folder / "lidar_000000.npy", np.ones(9, POINT_DTYPE))
    (folder / f".lidar_000001.npy.{dead}-3.partial.npy").write_bytes(b"half")  # what it was writing when killed
    sink = PointDumpSink(folder)
    with pytest.raises(EdgeError, match="boom"):  # the next run (failing at once: it writes nothing)
        Pipeline([PointsSource(3)], FailAt(0), [sink], policy="block").run(handle_signals=False)
    assert sink._earlier == {"lidar_000000.npy", "lidar_000001.npy", "lidar_000002.npy"}  # no partial counted
    after = {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith(".")}
    assert after == before and not aside.exists()  # the earlier run's clouds, all of them
    # a name past LONG_NAME is written under a digest: its own name is not known, so that aside is left to the cleanup
    from edge.files import put_back_aside

    long_aside = partial_file(folder / ("lidar_" + "x" * 250 + ".npy"), ASIDE)
    long_aside = long_aside.with_name(long_aside.name.replace(f".{os.getpid()}-", f".{dead}-"))
    long_aside.write_bytes(b"cloud")
    assert put_back_aside(folder) == [] and long_aside.exists()


def test_a_point_dump_over_an_earlier_ones_names_what_it_did_not_write(tmp_path: Path) -> None:
    """A second, shorter run into the same dump folder left the first run's later clouds beside its own, unsaid."""
    sink = PointDumpSink(tmp_path / "pts")
    Pipeline([PointsSource(4)], FailAt(99), [sink], policy="block").run(handle_signals=False)
    assert sink.note() is None
    sink = PointDumpSink(tmp_path / "pts")
    Pipeline([PointsSource(2)], FailAt(99), [sink], policy="block").run(handle_signals=False)
    assert sink.note() == (f"{tmp_path / 'pts'} also holds 2 point cloud(s) this run did not write (lidar_000002.npy, "
                           "lidar_000003.npy): an earlier run's")


class FailingSource(Source):
    sensors = ("lidar",)
    spec = "bad.pcap"

    def __iter__(self) -> Iterator[Frame]:
        raise DataError("bad.pcap: no LiDAR frames")
        yield  # pragma: no cover


class SlowCamera(FailAt):
    """FailAt as a camera-only task of 10 ms a frame whose inference never fails."""

    sensors = ("camera",)

    def infer(self, x: Frame) -> int:
        import time

        time.sleep(0.01)
        return x.seq


def test_a_source_that_fails_ends_the_run_at_once() -> None:
    """A LiDAR file that gives nothing: said after a few frames, not after the whole video."""

    cam = MemorySource([np.zeros((8, 8, 3), np.uint8)], count=300)
    with pytest.raises(EdgeError, match="no LiDAR frames") as e:
        Pipeline([cam, FailingSource()], SlowCamera(0), policy="block").run(handle_signals=False)
    done = int(str(e.value).split("the ")[-1].split(" frame")[0]) if "frame(s) before" in str(e.value) else 0
    assert done < 30, str(e.value)


def test_a_source_that_never_gave_a_frame_leaves_no_outputs(tmp_path: Path) -> None:
    """A LiDAR pcap of another sensor's packets beside a camera: the camera frames processed before it was said
    lack the points that were asked for, so the run is bad input, its outputs discarded (they were kept, without
    a summary, behind the exit 2), unlike a device lost mid-run, whose frames before it stay."""
    from edge.stream.sinks import JsonlSink

    cam = MemorySource([np.zeros((8, 8, 3), np.uint8)], count=300)
    out = tmp_path / "run" / "lanes.jsonl"
    with pytest.raises(EdgeError, match="no LiDAR frames") as e:
        Pipeline([cam, FailingSource()], SlowCamera(0), [JsonlSink(out)], policy="block").run(handle_signals=False)
    assert "outputs kept" not in str(e.value) and not out.exists() and not (tmp_path / "run").exists()


def test_a_failing_udp_publisher_is_said_and_ipv6_brackets_are_read() -> None:
    from edge.stream.task import Result

    sink = UdpJsonSink("255.255.255.255:5600")  # broadcast without SO_BROADCAST: every send is refused
    sink.open()
    for i in range(3):
        sink.write(Result(i, {}, {"seq": i}, None, 0))
    sink.close()
    assert sink.errors == 3 and sink.note() is not None and "of 3 records 3 failed" in sink.note()
    assert UdpJsonSink("[::1]:5600").addr == ("::1", 5600)
    assert UdpJsonSink("127.0.0.1:5600").note() is None
    # a review: getaddrinfo read the host up to a NUL, and the results went to localhost without a word
    with pytest.raises(DataError, match=r"bad UDP target 'localhost\\x00\.example\.com:5600': a control character"):
        UdpJsonSink("localhost\x00.example.com:5600")


def test_file_clock_follows_the_stamps_and_steps_over_bad_ones() -> None:
    c = FileClock(0.04)
    assert [c.at(ms) for ms in (1400.0, 1420.0, 1500.0, 1500.0, float("nan"), 1600.0, -5.0)] == pytest.approx(
        [0.0, 0.02, 0.1, 0.14, 0.18, 0.2, 0.24])
    c = FileClock(0.5)
    assert [c.at(ms) for ms in (float("nan"), 0.0, 10.0)] == pytest.approx([0.0, 0.5, 1.0])


def _retime(path: Path, first: int) -> None:
    """Rewrite an mp4's sample durations (its stts box): the first ``first`` frames at half their duration,
    the rest longer so the file's duration stays (a variable-frame-rate file)."""
    data = bytearray(path.read_bytes())
    i = data.find(b"stts")
    n, count, delta = struct.unpack(">III", data[i + 8:i + 20])
    assert n == 1, "expected one stts entry"
    rest = (count * delta - first * (delta // 2)) // (count - first)
    new = struct.pack(">I4sBBBBI", 32, b"stts", 0, 0, 0, 0, 2) + struct.pack(">IIII", first, delta // 2,
                                                                              count - first, rest)
    size = struct.unpack(">I", data[i - 4:i])[0]
    grow = len(new) - size
    data[i - 4:i - 4 + size] = new
    for box in (b"moov", b"trak", b"mdia", b"minf", b"stbl"):  # the boxes holding it grow with it
        j = data.find(box)
        assert 0 < j < i
        struct.pack_into(">I", data, j - 4, struct.unpack(">I", data[j - 4:j])[0] + grow)
    path.write_bytes(bytes(data))


def test_a_variable_rate_video_is_placed_by_its_timestamps(tmp_path: Path) -> None:
    video = _video(tmp_path / "vfr.mp4", n=12, fps=25.0)
    _retime(video, 6)  # 6 frames 20 ms apart, then 6 frames 60 ms apart (a nominal 25 fps said 40)
    src = open_source(str(video))
    src.open()
    got = [f.meta["t_recorded_ns"] / 1e6 for f in src]
    assert got == pytest.approx([20.0 * i for i in range(6)] + [120.0 + 60.0 * i for i in range(6)], abs=1.0)
    slow = _video(tmp_path / "timelapse.mp4", n=3, fps=0.5)  # 0.5 fps was read as 30
    src = open_source(str(slow))
    src.open()
    assert src.fps == pytest.approx(0.5) and [f.meta["t_recorded_ns"] / 1e9 for f in src] == pytest.approx([0, 2, 4])
    # a review: below 0.01 fps a video was read as 30 (an image folder's fps=0.005 was kept): the loop's own range
    slower = _video(tmp_path / "slower.mp4", n=2, fps=0.005)
    src = open_source(str(slower))
    src.open()
    assert src.fps == pytest.approx(0.005, rel=1e-3)
    src.close()


def test_records_of_an_image_folder_name_their_files(tmp_path: Path) -> None:
    """A skipped unreadable file leaves the frame numbers without a gap: the record names each file."""
    folder = tmp_path / "d"
    folder.mkdir()
    for i, name in enumerate(["f0.jpg", "f1.png", "f2.png"]):
        cv2.imwrite(str(folder / name), np.full((16, 16, 3), 30 * i, np.uint8))
    (folder / "f0.jpg").write_bytes((folder / "f0.jpg").read_bytes()[:50])  # cut short: skipped

    class Keep:
        name = "keep"

        def __init__(self) -> None:
            self.records: list[dict] = []

        def open(self) -> None:
            pass

        def write(self, result: object) -> None:
            self.records.append(result.record)  # type: ignore[attr-defined]

        def close(self, commit: bool = True) -> None:
            pass

    class Task(FailAt):
        sensors = ("camera",)

    sink = Keep()
    Pipeline([open_source(str(folder))], Task(99), [sink], policy="block").run(handle_signals=False)
    assert [(r["frames"], r["files"]) for r in sink.records] == [({"camera": 0}, {"camera": "f1.png"}),
                                                                  ({"camera": 1}, {"camera": "f2.png"})]


def test_an_image_folder_rerun_into_itself_is_fine_and_its_gaps_keep_their_time(tmp_path: Path) -> None:
    """--out frames/ twice: only the images are inputs. A skipped unreadable image keeps its place in the
    recording (pairing with a LiDAR file went one period early after it)."""
    from edge.stream.sources.images import ImageFolderSource

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"{i:06d}.png"), np.full((8, 8, 3), 40 * i, np.uint8))
    (folder / "000002.png").write_bytes(b"")  # unreadable: skipped
    (folder / "results.jsonl").write_text("{}\n")  # the first run's output
    src = ImageFolderSource("frames", folder, fps=10)
    check_outputs({"--jsonl": folder / "results.jsonl"}, list(src.reads()))
    with pytest.raises(DataError, match="would replace"):
        check_outputs({"--save": folder / "000001.png"}, list(src.reads()))
    src.open()
    assert [round(f.meta["t_recorded_ns"] / 1e6) for f in src] == [0, 100, 300, 400]


def test_a_multi_source_of_files_pairs_on_recording_time() -> None:
    """multi: had no frame period before it opened, so a pcap beside it was paired on arrival."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_pipeline import EchoTask, RecordedSource

    from edge.stream.sources.multi import MultiSource

    multi = MultiSource("multi:x", [("camera", RecordedSource("camera", 3, 0.1)),
                                    ("left", RecordedSource("left", 3, 0.1))], primary="camera")
    p = Pipeline([multi, RecordedSource("lidar", 3, 0.1)], EchoTask(), policy="block")
    assert p.by_recording == {"lidar"}


def test_a_long_command_sentence_is_text_not_a_file_error(tiny_bundle: Path) -> None:
    from edge.stream.api import run

    with pytest.raises(DataError, match="takes no command"):  # not OSError: File name too long
        run(tiny_bundle, "synthetic:2", command="go straight and then " * 15, handle_signals=False)


def test_a_raw_calib_folder_is_an_input(tiny_bundle: Path, tmp_path: Path) -> None:
    from edge.stream.api import run

    raw = tmp_path / "calib"
    raw.mkdir()
    (raw / "calib_cam_to_cam.txt").write_text("P_rect_02: 700 0 600 0 0 700 180 0 0 0 1 0\n"
                                              "R_rect_00: 1 0 0 0 1 0 0 0 1\n")
    (raw / "calib_velo_to_cam.txt").write_text("R: 0 -1 0 0 0 -1 1 0 0\nT: 0.1 -0.2 0.3\n")
    before = (raw / "calib_cam_to_cam.txt").read_bytes()
    with pytest.raises(DataError, match="would replace"):
        run(tiny_bundle, "synthetic:2", rig=raw, jsonl=raw / "calib_cam_to_cam.txt", handle_signals=False)
    assert (raw / "calib_cam_to_cam.txt").read_bytes() == before


def test_an_ouster_metadata_file_is_an_input(real_data: Path) -> None:
    from edge.stream.sources.ouster import OusterSource

    meta = real_data / "lidar" / "ouster" / "OS-1-32-G_v2.1.1_1024x10.json"
    assert OusterSource(meta.with_suffix(".pcap"), meta=meta).reads() == (meta.with_suffix(".pcap"), meta)
