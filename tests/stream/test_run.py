"""Lane's two programs agree frame by frame on ONNX Runtime; `edge run` over synthetic and video sources."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")


from edge.bundle import Bundle  # noqa: E402
from edge.errors import DataError  # noqa: E402
from edge.models.lane import card as lane  # noqa: E402
from edge.models.lane.samples import synthetic  # noqa: E402
from edge.program import load_program  # noqa: E402
from edge.stream.overlay import VideoWriter  # noqa: E402
from edge.stream.sources import open_source, parse_synthetic  # noqa: E402


def test_streaming_program_equals_clip_program(tiny_bundle: Path) -> None:
    """Ring buffer of encoder outputs (ONNX) == the whole-clip ONNX graph, frame by frame, resets included."""
    b = Bundle.load(tiny_bundle)
    cfg = b.manifest["model"]["config"]
    stream, clip = load_program(b), load_program(b, program="clip")
    assert stream.name == "stream" and stream.spec.graphs == ("encoder", "temporal") and clip.name == "clip"
    rng = np.random.default_rng(0)
    for i in range(8):
        if i == 5:
            stream.reset()
            clip.reset()
        feeds = {"frame": lane.preprocess_frame(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8), cfg)[None]}
        a, c = stream.step(feeds), clip.step(feeds)
        for k in ("loc", "exist"):
            assert np.abs(a[k] - c[k]).max() <= 1e-4 * np.abs(c[k]).max(), (i, k)
    assert stream.calls == {"encoder": 8, "temporal": 8} and clip.calls == {"full": 8}
    stream.close()
    clip.close()


def test_source_specs_and_errors(tmp_path: Path) -> None:
    assert parse_synthetic("synthetic") == (60, None)
    assert parse_synthetic("synthetic:5:360x640") == (5, (360, 640))
    # the last two were accepted, their extra text dropped (a fuzz review)
    for bad in ("synthetic:x", "synthetic:0", "synthetic:3:10x10", "synthetic:10:64x64:junk", "synthetic,junk",
                # int() took these (a review): '' as the default 60, digit groups, other scripts' digits
                "synthetic:", "synthetic::64x64", "synthetic:1_0", "synthetic:\u0663", "synthetic:3:6\u00b34x64"):
        with pytest.raises(DataError):
            open_source(bad)
    for bad in ("camera:x", "csi:", "gst:", "camera:2147483648", "camera:\u00b2", "csi:99999",  # an OpenCV
                # traceback for a C int overflow; int() refused the superscripts str.isdigit passed
                "waveform:sim,frames=\u00b3", "waveform:x.npz,loop=\u00b2"):
        with pytest.raises(DataError, match=bad.split(":")[0]):
            open_source(bad)
    with pytest.raises(DataError, match=r"missing\.mp4"):
        open_source(str(tmp_path / "missing.mp4")).open()
    # a size for frames that have no camera image (a LiDAR family's waveforms) was taken and ignored (a review)
    from edge.stream.sources.synthetic import SyntheticSource

    def waves(n: int, hw: object, seed: int) -> Iterator[dict[str, object]]:
        for _ in range(n):
            yield {"waveform": (np.zeros((2, 8, 16), np.float32), {})}

    with pytest.raises(DataError, match=r"HxW sizes camera frames, and these synthetic frames have none \(sensors: "
                                        r"waveform\)"):
        SyntheticSource("synthetic:2:64x64", 2, (64, 64), generator=waves)
    assert SyntheticSource("synthetic:2", 2, None, generator=waves).sensors == ("waveform",)
    with pytest.raises(DataError, match="no images in this folder"):  # a folder is an image-folder source
        open_source(str(tmp_path)).open()
    for fps in ("1e-320", "1e-300", "nan", "0", "2000"):  # 1e-320: NaN nanoseconds a frame; 1e-300: infinity
        with pytest.raises(DataError, match=rf"fps={fps} must be in \[0.001, 1000\]"):
            open_source(f"{tmp_path},fps={fps}")
    assert open_source("rtsp://10.0.0.1/stream").live and open_source("camera:0").reconnect
    assert not open_source(str(tmp_path / "a.mp4")).live and open_source(str(tmp_path / "a.mp4"), realtime=True).live


def test_file_named_synthetic_is_a_file(tmp_path: Path) -> None:
    """`synthetic.mp4` is a video path, not the synthetic source."""
    with pytest.raises(DataError, match=r"synthetic\.mp4"):
        open_source(str(tmp_path / "synthetic.mp4")).open()


def test_gstreamer_source_without_gstreamer_is_one_line() -> None:
    from edge.stream.sources.camera import has_gstreamer

    if has_gstreamer():
        pytest.skip("this OpenCV has GStreamer")
    with pytest.raises(DataError, match="no GStreamer support"):
        open_source("csi:0").open()


def test_synthetic_frames_carry_labels() -> None:
    from edge.models import get_card

    src = open_source("synthetic:4:180x320", card=get_card("lane"))
    frames = list(src)
    assert [f.seq for f in frames] == [0, 1, 2, 3] and {f.sensor for f in frames} == {"camera"}
    img, gt = frames[0].data, frames[0].meta["gt"]
    assert img.shape == (180, 320, 3) and img.dtype == np.uint8
    assert len(gt["lanes"]) >= 1 and all(len(lane_) == len(gt["h_samples"]) for lane_ in gt["lanes"])


def test_synthetic_source_options_seed_and_kind() -> None:
    """``seed=`` picks the synthetic stream's seed (it was "synthetic() got multiple values for argument 'seed'"), an
    unknown key lists the keys there are (it was Python's "unexpected keyword argument"), and ``waveform:sim`` for
    a family that reads no waveforms is refused (a camera family quietly ran its own synthetic stream)."""
    from edge.models import get_card

    card = get_card("lane")

    def first(spec: str) -> np.ndarray:
        return next(iter(open_source(spec, card=card))).data

    assert np.array_equal(first("synthetic:1:64x128,seed=3"), first("synthetic:1:64x128,seed=3"))
    assert not np.array_equal(first("synthetic:1:64x128,seed=3"), first("synthetic:1:64x128,seed=4"))
    assert np.array_equal(first("synthetic:1:64x128"), first("synthetic:1:64x128,seed=7"))  # the default
    for bad, needle in (("synthetic:1,bogus=1", r"unknown option bogus \(model 'lane' takes seed"),
                        ("synthetic:1,seed=-1", "seed=-1 must be a whole number from 0"),
                        ("synthetic:1,seed=4294967296", "seed=4294967296 must be a whole number"),
                        ("waveform:sim,frames=1", "model 'lane' reads no full waveforms")):
        with pytest.raises(DataError, match=needle):
            open_source(bad, card=card)



def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli.main", *args], capture_output=True, text=True,
                          timeout=300)


def _video(path: Path, n: int, hw: tuple[int, int] = (120, 200), fps: float = 10) -> Path:
    with VideoWriter(path, fps) as w:
        for img in (tick['camera'][0] for tick in synthetic(n, hw)):
            w.write(img)
    return path


def _count_frames(path: str | Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_edge_run_block_mode_processes_every_video_frame_once(tiny_bundle: Path, tmp_path: Path) -> None:
    """A real mp4 read back by `edge run --policy block`: one JSONL line per frame, in order, no drops."""
    video = _video(tmp_path / "in.mp4", 23)
    assert video.is_file() and not list(tmp_path.glob(".*partial*"))
    in_file = int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT))
    assert in_file == _count_frames(video) == 23
    r = _cli("run", str(tiny_bundle), "--source", str(video), "--out", str(tmp_path / "run"), "--json",
             "--policy", "block")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    lines = [json.loads(x) for x in (tmp_path / "run" / "lanes.jsonl").read_text().splitlines()]
    assert summary["frames"] == len(lines) == in_file
    assert [x["frames"]["camera"] for x in lines] == list(range(in_file))
    assert summary["counters"]["dropped_camera"] == 0 and summary["policy"] == "block"
    assert _count_frames(summary["outputs"]["video"]) == in_file
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["frames"] == in_file


def test_edge_run_synthetic_scores_tusimple(tiny_bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "extrinsics.jsonl").write_text("{}\n")  # another family's results from an earlier run: said, kept
    r = _cli("run", str(tiny_bundle), "--source", "synthetic:5:180x320", "--out", str(tmp_path), "--json",
             "--backend", "torch")
    assert r.returncode == 0, r.stderr
    assert "also holds extrinsics.jsonl from an earlier run" in " ".join(r.stderr.split())
    assert (tmp_path / "extrinsics.jsonl").read_text() == "{}\n"
    s = json.loads(r.stdout)
    assert s["frames"] == 5 and s["task"]["program"] == "stream" and s["task"]["graphs"] == ["encoder", "temporal"]
    m = s["task"]["metric"]
    assert m["name"] == "TuSimple accuracy" and m["frames"] == 5 and 0.0 <= m["accuracy"] <= 1.0
    for stage in ("preprocess", "infer", "postprocess", "sinks"):
        assert s["stages"][stage]["count"] == 5 and s["stages"][stage]["p99_ms"] >= s["stages"][stage]["p50_ms"]
    rec = json.loads((tmp_path / "lanes.jsonl").read_text().splitlines()[-1])
    assert len(rec["tusimple"]["h_samples"]) == 56


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_edge_run_engine_preprocessing_matches_numpy(tiny_bundle: Path, tmp_path: Path, backend: str) -> None:
    """`--preprocess engine`: the same frames, uint8 into the engine, the records of the numpy run (a frame
    at the model's own size is only normalised, so the two runs decode alike, lane for lane)."""
    from edge.runtimes import get_backend

    if not get_backend(backend).is_available()[0]:
        pytest.skip(f"{backend} not installed")
    runs = {}
    for pp in ("numpy", "engine"):
        r = _cli("run", str(tiny_bundle), "--source", "synthetic:4:64x128", "--out", str(tmp_path / pp), "--json",
                 "--backend", backend, "--preprocess", pp)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["task"]["preprocess"] == pp
        runs[pp] = [json.loads(x) for x in (tmp_path / pp / "lanes.jsonl").read_text().splitlines()]
    assert len(runs["engine"]) == len(runs["numpy"]) == 4
    for a, b in zip(runs["engine"], runs["numpy"], strict=True):
        assert a["slots"] == b["slots"]
        for la, lb in zip(a["lanes"], b["lanes"], strict=True):
            assert np.allclose(la, lb, atol=0.5)


def test_sigint_leaves_playable_video_and_parseable_jsonl(tiny_bundle: Path, tmp_path: Path) -> None:
    """Ctrl-C in the middle of a real-time run: exit 0, video frame count == JSONL lines, all lines parse."""
    import signal
    import time

    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "edge.cli.main", "run", str(tiny_bundle), "--source",
                          "synthetic:3000:180x320", "--realtime", "--out", str(out), "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.poll() is None:  # the run's private partial file (pid and a number)
        partial = list(out.glob(".lanes.jsonl.*.partial")) if out.is_dir() else []
        if partial and partial[0].read_text().count("\n") >= 15:
            break
        time.sleep(0.1)
    assert p.poll() is None, p.stderr.read() if p.stderr else ""
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["interrupted"] is True and 15 <= summary["frames"] < 3000
    lines = [json.loads(x) for x in (out / "lanes.jsonl").read_text().splitlines()]
    assert len(lines) == summary["frames"]
    assert _count_frames(out / "overlay.mp4") == len(lines)
    assert not list(out.glob(".*partial*"))


def test_output_sinks_udp_and_separate_paths(tiny_bundle: Path, tmp_path: Path) -> None:
    """--save/--jsonl/--stats in different folders, and results published as UDP JSON datagrams."""
    import socket

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(10)
    port = rx.getsockname()[1]
    r = _cli("run", str(tiny_bundle), "--source", "synthetic:4:90x160", "--save", str(tmp_path / "v" / "o.mp4"),
             "--jsonl", str(tmp_path / "j" / "r.jsonl"), "--stats", str(tmp_path / "s.json"),
             "--udp", f"127.0.0.1:{port}")
    assert r.returncode == 0, r.stderr
    got = [json.loads(rx.recv(65536)) for _ in range(4)]
    rx.close()
    assert [g["seq"] for g in got] == [0, 1, 2, 3] and "lanes" in got[0]
    assert _count_frames(tmp_path / "v" / "o.mp4") == 4
    assert len((tmp_path / "j" / "r.jsonl").read_text().splitlines()) == 4
    assert json.loads((tmp_path / "s.json").read_text())["frames"] == 4


def test_run_option_errors(tiny_bundle: Path, tmp_path: Path) -> None:
    for args, needle in ((["--policy", "newest"], "--policy"), (["--udp", "nowhere"], "nowhere"),
                         (["--display"], "--display"), (["--source", "camera:x"], "camera:x")):
        r = _cli("run", str(tiny_bundle), "--source", "synthetic:2:90x160", *args, "--out", str(tmp_path / "o"))
        assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "o").exists()


def test_failed_run_leaves_previous_results_untouched(tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _cli("run", str(tiny_bundle), "--source", "synthetic:3:90x160", "--out", str(out)).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    r = _cli("run", str(tiny_bundle), "--source", str(bad), "--out", str(out))
    assert r.returncode == 2 and "broken.mp4" in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_block_mode_batch_decoding_gives_the_records_and_score_of_one_at_a_time(tiny_bundle: Path) -> None:
    """Lane in the loop over labelled frames: ``block`` (results decoded in batches) and ``latest`` with
    a source slower than the model (one at a time, nothing dropped) write the same records and score."""
    from edge.models import get_card
    from edge.stream import Pipeline
    from edge.stream.sinks import Sink
    from edge.stream.sources import MemorySource
    from edge.stream.task import FamilyTask

    frames = list(open_source("synthetic:16:180x320", card=get_card("lane")))

    class Keep(Sink):
        name = "keep"

        def __init__(self) -> None:
            self.records: list[dict] = []

        def write(self, result: object) -> None:
            self.records.append({k: v for k, v in result.record.items() if k not in ("e2e_ms", "t_capture_ns")})

    runs = {}
    for policy, fps in (("block", None), ("latest", 5.0)):
        task, sink = FamilyTask(Bundle.load(tiny_bundle), "onnxruntime"), Keep()
        assert task.decodes_in_batches
        batched, many = [], task.postprocess_many
        task.postprocess_many = lambda o, f, _many=many, _b=batched: (_b.append(len(o)), _many(o, f))[1]
        src = MemorySource([f.data for f in frames], fps=fps, meta=[f.meta for f in frames])
        s = Pipeline([src], task, [sink], policy=policy).run(handle_signals=False)
        runs[policy] = (sink.records, s["task"]["metric"], batched)
        task.close()
    assert len(runs["block"][0]) == 16 and runs["block"][0] == runs["latest"][0]
    assert runs["block"][1] == runs["latest"][1]
    assert runs["block"][2] and not runs["latest"][2]  # block decoded some results together, latest none


def test_a_labelled_run_folds_its_metric_items(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``FamilyTask`` folds its metric items every ``FOLD_EVERY`` scored frame sets (a long labelled run held every
    frame's lanes: 13 MB more every 1,000 frames); the score and its frame count are those of keeping them all."""
    import edge.stream.task as task_module
    from edge.models import get_card
    from edge.stream import Pipeline
    from edge.stream.sources import MemorySource

    frames = list(open_source("synthetic:10:180x320", card=get_card("lane")))
    scores, held = {}, {}
    for every in (3, 10_000):
        monkeypatch.setattr(task_module, "FOLD_EVERY", every)
        task = task_module.FamilyTask(Bundle.load(tiny_bundle), "onnxruntime")
        src = MemorySource([f.data for f in frames], meta=[f.meta for f in frames])
        scores[every] = Pipeline([src], task, [], policy="block").run(handle_signals=False)["task"]["metric"]
        held[every] = len(task._items)
        task.close()
    assert held == {3: 2, 10_000: 10}  # folded at the 3rd, 5th, 7th and 9th item: that fold and the 10th
    assert scores[3]["frames"] == scores[10_000]["frames"] == 10
    assert scores[3].keys() == scores[10_000].keys() and scores[3]["name"] == scores[10_000]["name"]
    nums = [k for k, v in scores[3].items() if isinstance(v, float)]
    assert "value" in nums and [scores[3][k] for k in nums] == pytest.approx([scores[10_000][k] for k in nums],
                                                                             rel=1e-12)


def test_latest_over_unpaced_sources_says_why_it_dropped(tiny_bundle: Path) -> None:
    """``--policy latest`` over a synthetic drive read as fast as possible drops most frames: the summary's note says
    so with the count and the options; a paced run (``--realtime``) and ``block`` have no such note."""
    from edge.stream import run

    s = run(tiny_bundle, "synthetic:40:180x320", policy="latest", handle_signals=False, backend="onnxruntime")
    dropped = s["counters"]["dropped_camera"]
    assert dropped > 0 and s["frames"] + dropped == 40
    assert [n for n in s.get("notes", []) if n.startswith(f"--policy latest dropped {dropped} frame(s)")]
    for kw in ({"policy": "latest", "realtime": True}, {"policy": "block"}):
        s = run(tiny_bundle, "synthetic:6:180x320", handle_signals=False, backend="onnxruntime", **kw)
        assert not [n for n in s.get("notes", []) if "--policy latest" in n], kw


def test_drops_of_several_sensors_are_said_per_sensor() -> None:
    """A review: a 3-camera ``multi:`` run under ``latest`` said "29 dropped" of 60 frame sets read and 37 processed:
    the sum of 23 dropped sets and 3 frames of each side camera. The run line, the live line and the note say each
    sensor's count; a run of one sensor keeps its single figure."""
    from types import SimpleNamespace

    from edge.stream.api import policy_note
    from edge.stream.stats import Stats, drops_text

    multi = {"dropped_front": 23, "dropped_front_left": 3, "dropped_front_right": 3, "unmatched_front_left": 20,
             "dropped_rear": 0, "sync_dropped_front_left": 4, "skipped": 2}
    assert drops_text(multi) == "dropped front 23, front_left 3, front_right 3"
    assert drops_text({"dropped_camera": 7, "dropped_lidar": 0, "skipped": 1}) == "7 dropped"
    assert drops_text({}) == "0 dropped"
    pipe = SimpleNamespace(policy="latest", sources=[SimpleNamespace(live=False)])
    assert policy_note(pipe, {"counters": multi}).startswith(
        "--policy latest dropped frames (front 23, front_left 3, front_right 3) of sources no clock paces")
    assert policy_note(pipe, {"counters": {"dropped_camera": 7}}).startswith("--policy latest dropped 7 frame(s) of")
    assert policy_note(pipe, {"counters": {"dropped_camera": 0}}) is None
    stats = Stats()
    for k, v in multi.items():
        stats.set_count(k, v)
    assert "  dropped front 23, front_left 3, front_right 3  " in stats.line()


def test_a_source_spec_with_options_but_no_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A review: ``--source ',fps=5'`` read the current folder's images (its head '' is Path('.')), and ``' '``
    with no such folder said ": no such video file"."""
    from edge.errors import DataError
    from edge.stream.sources import open_source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "frame.png").write_bytes(b"")
    for spec in (",fps=5", " ", " ,fps=2"):
        with pytest.raises(DataError, match=rf"^bad source '{spec}': no video, image folder or device before"):
            open_source(spec)
    (tmp_path / " ").mkdir()  # a folder named ' ' is a folder
    assert type(open_source(" ")).__name__ == "ImageFolderSource"


def test_a_new_sequence_starts_the_programs_state_afresh() -> None:
    """A review: ``edge run --source synthetic`` joins ETA-VLA episodes and nothing reset the ring buffer of past
    frames, so a model of 6 frames scored an episode's labelled frame on a history holding the previous episode.
    A source marks each frame's ``meta["sequence"]``; the task resets the program where it changes, at the step
    of that frame (preprocessing runs ahead in another thread)."""
    from types import SimpleNamespace

    from edge.data.frame import Frame
    from edge.stream.task import FamilyTask

    log: list[str] = []
    program = SimpleNamespace(preprocess=lambda card, frames: {"x": np.zeros(1)}, reset=lambda: log.append("reset"),
                              step=lambda x: log.append("step") or {}, spec=SimpleNamespace(name="p"))
    task = object.__new__(FamilyTask)
    task.program, task.card, task.name, task.sensors, task._sequence = program, None, "fam", ("front",), None
    frames = [{"front": Frame(np.zeros((2, 2, 3), np.uint8), i, i, "front", meta)}
              for i, meta in enumerate([{"sequence": 0}, {"sequence": 0}, {"sequence": 1}, {}, {"sequence": 1},
                                        {"sequence": 2}])]
    feeds = [task.preprocess(f) for f in frames]  # all ahead of the steps, as the loop's threads may run
    for x in feeds:
        task.infer(x)
    assert log == ["step", "step", "reset", "step", "step", "step", "reset", "step"]


def test_the_synthetic_episodes_say_where_each_begins() -> None:
    from edge.errors import DataError
    from edge.models.etavla.samples import synthetic

    seqs = [fs["front"][1].get("sequence") for fs in synthetic(7, (32, 64), frames="3")]
    assert seqs == [0, 0, 0, 1, 1, 1, 2]
    for bad in ("0", "x", "65", 0, True):
        with pytest.raises(DataError, match="frames per episode"):
            next(synthetic(1, (32, 64), frames=bad))
