"""Calibration samples: every source kind, disjoint halves, and a clear error for each bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from edge.calibration.datasets import check_source, load_samples  # noqa: E402
from edge.errors import DataError  # noqa: E402
from edge.models import get_card  # noqa: E402

CARD = get_card("lane")
CFG = CARD.config("tiny")
H, W = CFG["input_hw"]


def _images(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    return folder


def test_synthetic_samples_are_sequences_of_step_feeds() -> None:
    s = load_samples("synthetic", CARD, CFG, size=2)
    assert len(s) == 2 and len(s.sequences[0]) == CFG["frames"]  # one clip of T frames per sample
    feed = s.sequences[0][0]
    assert set(feed) == {"frame"} and feed["frame"].shape == (1, 3, H, W) and feed["frame"].dtype == np.float32
    again = load_samples("synthetic", CARD, CFG, size=2)
    assert np.array_equal(again.sequences[1][2]["frame"], s.sequences[1][2]["frame"])  # seeded


def test_every_image_of_a_folder_calibrates(tmp_path: Path) -> None:
    """An even/odd split set half of a user's images aside for an evaluation that never read them (the gate
    scores the family's labelled samples): all 8 calibrate now, and no role but calibration is offered."""
    folder = _images(tmp_path / "imgs", 8)
    a = load_samples(str(folder), CARD, CFG, size=8, role="calibration")
    assert len(set(a.ids)) == 8
    assert len(a.sequences[0]) == 1 and a.sequences[0][0]["frame"].shape == (1, 3, H, W)
    with pytest.raises(DataError, match="only calibrate"):
        load_samples(str(folder), CARD, CFG, size=4, role="evaluation")


def test_real_tusimple_frames(real_data: Path) -> None:
    folder = real_data / "lane" / "tusimple_lanenet" / "image"
    s = load_samples(str(folder), CARD, CFG, size=3)
    assert len(s) == 3 and np.isfinite(s.sequences[0][0]["frame"]).all()


def test_video_windows_are_consecutive_frames(tmp_path: Path) -> None:
    from edge.models.lane.samples import synthetic
    from edge.stream.overlay import VideoWriter

    with VideoWriter(tmp_path / "v.mp4", 10) as w:
        for tick in synthetic(20, (72, 128)):
            w.write(tick["camera"][0])
    a = load_samples(str(tmp_path / "v.mp4"), CARD, CFG, size=4, role="calibration")
    assert len(set(a.ids)) == 4
    assert all(len(seq) == CFG["frames"] for seq in a.sequences)  # T consecutive frames per sample
    every = load_samples(str(tmp_path / "v.mp4"), CARD, CFG, size=18)  # 20 frames, windows of 3: all 18
    assert len(set(every.ids)) == 18
    with pytest.raises(DataError, match="give 18 windows of 3; need 19"):
        load_samples(str(tmp_path / "v.mp4"), CARD, CFG, size=19)


def test_npz_of_steps_and_of_sequences(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((6, 3, H, W)).astype(np.float32)
    np.savez(tmp_path / "c.npz", frame=x)
    np.save(tmp_path / "c.npy", x)
    for f in ("c.npz", "c.npy"):
        s = load_samples(str(tmp_path / f), CARD, CFG, size=3)
        assert len(s.sequences[1]) == 1 and np.array_equal(s.sequences[1][0]["frame"], x[1:2])  # in file order
    assert len(load_samples(str(tmp_path / "c.npz"), CARD, CFG, size=6)) == 6  # every sample of the file
    seq = np.random.default_rng(1).standard_normal((4, 5, 3, H, W)).astype(np.float32)
    np.savez(tmp_path / "s.npz", frame=seq)
    s = load_samples(str(tmp_path / "s.npz"), CARD, CFG, size=2)
    assert len(s.sequences[0]) == 5 and np.array_equal(s.sequences[1][4]["frame"], seq[1, 4][None])
    with pytest.raises(DataError, match="6 samples available for calibration, asked for 7"):
        load_samples(str(tmp_path / "c.npz"), CARD, CFG, size=7)


@pytest.mark.parametrize("kind", ["empty", "unreadable", "missing", "suffix", "shape", "dtype", "key", "pickle",
                                  "pickle_npz", "nan", "inf", "no_steps"])
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
        arr = np.zeros((4, 3, H, W), np.float64 if kind == "dtype" else np.float32)
        if kind == "shape":
            arr = arr[..., :7]
        src = tmp_path / "c.npz"
        np.savez(src, **({"frames" if kind == "key" else "frame": arr}))
    elif kind == "pickle":
        src = tmp_path / "c.npy"
        np.save(src, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif kind == "pickle_npz":
        src = tmp_path / "c.npz"
        np.savez(src, frame=np.array([{"a": 1}], dtype=object))
    elif kind in ("nan", "inf"):  # before: ONNX Runtime's "scale issue" naming an internal graph file
        arr = np.zeros((4, 3, H, W), np.float32)
        arr[0, 1, 2, 3] = np.nan if kind == "nan" else np.inf
        src = tmp_path / "c.npz"
        np.savez(src, frame=arr)
    elif kind == "no_steps":  # sequences of 0 steps: before, "empty calibration set" without a file name
        src = tmp_path / "c.npz"
        np.savez(src, frame=np.zeros((4, 0, 3, H, W), np.float32))
    with pytest.raises(DataError) as e:
        load_samples(str(src), CARD, CFG, size=1)
    msg = str(e.value)
    assert "\n" not in msg and (src.name in msg or str(src) in msg)


def test_check_source_refuses_before_any_work(tmp_path: Path) -> None:
    check_source("synthetic")
    with pytest.raises(DataError, match="not found"):
        check_source(str(tmp_path / "nope"))
    with pytest.raises(DataError, match="not found"):  # the path of a labelled spec, before its options
        check_source(str(tmp_path / "nope") + ",images=x")
    (tmp_path / "x.txt").write_text("x")
    check_source(str(tmp_path / "x.txt"))  # a label file maybe: the family's reader says once the card is loaded
    check_source(str(tmp_path / "x.txt") + ",images=x")
    with pytest.raises(DataError, match=r"x\.txt.*not valid JSON|x\.txt.*line 1"):
        load_samples(str(tmp_path / "x.txt"), CARD, CFG, size=1)


def _label_file(folder: Path, n: int) -> Path:
    """``n`` TuSimple-format labelled frames (one lane each) and their images, in ``folder``."""
    import json

    _images(folder / "clips", n)
    rows = [{"lanes": [[-2, 100, 110]], "h_samples": [10, 20, 30], "raw_file": f"clips/{i:03d}.png"} for i in range(n)]
    (folder / "label.json").write_text("\n".join(json.dumps(r) for r in rows))
    return folder / "label.json"


def test_labelled_data_calibrates_through_the_cards_preprocessing(tmp_path: Path) -> None:
    """``--calib`` takes what ``edge val --data`` takes: the family's labelled format, its labels unread, every
    sample through the card's preprocessing (the same feeds an image of the set gives), shuffled by the seed."""
    label = _label_file(tmp_path, 5)
    s = load_samples(str(label), CARD, CFG, size=5, seed=3)
    assert len(s) == 5 and len(set(s.ids)) == 5 and s.source == str(label)
    direct = load_samples(str(tmp_path / "clips"), CARD, CFG, size=5, seed=3)
    by_image = {float(q[0]["frame"].sum()) for q in direct.sequences}
    assert {float(q[0]["frame"].sum()) for q in s.sequences} == by_image
    two = load_samples(str(label), CARD, CFG, size=2, seed=3).ids
    assert two == load_samples(str(label), CARD, CFG, size=2, seed=3).ids and set(two) < set(s.ids)  # seeded
    assert len({tuple(load_samples(str(label), CARD, CFG, size=2, seed=k).ids) for k in range(6)}) > 1
    assert load_samples(f"{label},images={tmp_path}", CARD, CFG, size=1).ids  # the reader's options
    with pytest.raises(DataError, match=r"5 samples available for calibration, asked for 6"):
        load_samples(str(label), CARD, CFG, size=6)
    with pytest.raises(DataError, match="unknown option bogus"):
        load_samples(f"{label},bogus=1", CARD, CFG, size=1)
    with pytest.raises(DataError, match=r"^--calib .*label\.json,images=.*no such image folder"):
        load_samples(f"{label},images={tmp_path / 'none'}", CARD, CFG, size=1)
    # edge val's synthetic:N is the held-out evaluation stream: never a calibration set
    for spec in ("synthetic,seed=2", "synthetic:8"):
        with pytest.raises(DataError, match="synthetic takes no count or options"):
            load_samples(spec, CARD, CFG, size=1)
        with pytest.raises(DataError, match="synthetic takes no count or options"):
            check_source(spec)


def test_only_the_samples_used_are_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A labelled set is listed and checked up front, and only the ``--calib-size`` samples used are read: the
    reader used to load every frame of the set (a dataset's label file: gigabytes) to keep a few dozen."""
    import edge.data.images as images

    label = _label_file(tmp_path, 6)
    real, read = images.read_image, []
    monkeypatch.setattr(images, "read_image", lambda p: (read.append(p), real(p))[1])
    s = load_samples(str(label), CARD, CFG, size=2, seed=1)
    assert len(s) == 2 and len(read) == 2
    (tmp_path / "clips" / "005.png").unlink()  # a listed image that is gone: refused up front, before any read
    read.clear()
    with pytest.raises(DataError, match=r"005\.png: no such image, listed in .*label\.json"):
        load_samples(str(label), CARD, CFG, size=1)
    assert read == []


def test_lazy_samples_index_slice_and_chain() -> None:
    from edge.models import LazySamples
    from edge.models.contract import chain_samples

    loads: list[int] = []
    lazy = LazySamples(3, lambda i: (loads.append(i), [{"i": i}])[1])
    assert len(lazy) == 3 and loads == []
    assert lazy[0] == [{"i": 0}] and lazy[-1] == [{"i": 2}] and lazy[1:] == [[{"i": 1}], [{"i": 2}]]
    with pytest.raises(IndexError):
        lazy[3]
    assert [x[0]["i"] for x in lazy] == [0, 1, 2]
    both = chain_samples([[[{"i": "a"}]], lazy, [[{"i": "b"}]]])
    assert len(both) == 5 and [x[0]["i"] for x in both] == ["a", 0, 1, 2, "b"] and both[-2] == [{"i": 2}]
    assert chain_samples([[[1]], [[2]]]) == [[1], [2]]  # lists stay a list


def test_a_stray_file_says_how_it_was_read(tmp_path: Path) -> None:
    """A file that is no calibration kind is read by the family's labelled reader; its error says so, and names
    --calib (an image given instead of a folder said only 'line 1: not UTF-8 text')."""
    img = _images(tmp_path / "i", 1) / "000.png"
    with pytest.raises(DataError, match=r"^--calib .*000\.png: read as model 'lane' labelled data: .*000\.png"):
        load_samples(str(img), CARD, CFG, size=1)


def test_a_two_sensor_family_without_a_reader_keeps_its_advice(tmp_path: Path) -> None:
    """A folder for a family that needs several sensors goes to its labelled reader only when it has one: one
    without (ETA-VLA's cameras) is told what can calibrate it, not 'a folder of images' (a regression)."""
    card = get_card("etavla")
    folder = _images(tmp_path / "imgs", 2)
    with pytest.raises(DataError, match=r"needs sensors .* calibrate with synthetic or an \.npz of step feeds"):
        load_samples(str(folder), card, card.config("tiny"), size=1)
    # with more samples asked than the folder holds it was first told "2 images available for calibration, asked
    # for 32" (a user who added 30 images was then refused for this reason): this reason comes first
    with pytest.raises(DataError, match=r"needs sensors .* calibrate with synthetic or an \.npz of step feeds"):
        load_samples(str(folder), card, card.config("tiny"), size=32)
    from edge.stream.overlay import VideoWriter

    with VideoWriter(tmp_path / "v.mp4", 10) as w:  # a video: the same, before its windows are counted
        for _ in range(3):
            w.write(np.zeros((32, 64, 3), np.uint8))
    with pytest.raises(DataError, match=r"needs sensors .* calibrate with synthetic or an \.npz of step feeds"):
        load_samples(str(tmp_path / "v.mp4"), card, card.config("tiny"), size=32)


def test_labelled_calibration_needs_the_familys_reader(tmp_path: Path) -> None:
    card = get_card("pulsar")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataError, match=r"x\.json: unsupported calibration source for model 'pulsar'") as e:
        load_samples(str(tmp_path / "x.json"), card, card.config("tiny"), size=1)
    # a review: a waveform model was told to give images or a video, which it then refused
    assert "images" not in str(e.value) and "video" not in str(e.value) and "waveform:FILE" in str(e.value)


def test_a_recorded_waveform_file_calibrates_a_waveform_model(tmp_path: Path) -> None:
    """Found by a review: a waveform model took no waveform recording as --calib (its own edge-waveform .npz, what
    `edge run --source waveform:FILE` replays, was read as a feeds archive and refused). A recording a source spec
    names (waveform:FILE, multi:...), or an .npz in the waveform format, calibrates through the card's preprocess,
    windows of its sequence length, as the stream would feed it."""
    from edge.data.waveform import write_waveform_file
    from edge.models.pulsar.samples import synthetic

    card = get_card("pulsar")
    cfg = card.config("tiny")
    ticks = list(synthetic(3, None, 5, attack="on", azimuths=cfg["azimuths"]))
    path = write_waveform_file(tmp_path / "rec.npz", ticks[0]["waveform"][1]["layout"],
                               np.stack([t["waveform"][0] for t in ticks]))
    for spec in (str(path), f"waveform:{path}"):
        s = load_samples(spec, card, cfg, size=3)
        assert len(s) == 3 and s.source == f"waveform:{path}"
        want = card.preprocess({"waveform": _frame(ticks[1]["waveform"][0])}, cfg)
        assert np.array_equal(s.sequences[1][0]["waveform"], want["waveform"])
    for spec in (str(path), f"waveform:{path},loop=1"):  # named as given (a review: the bare .npz was not)
        with pytest.raises(DataError, match=rf"^--calib {spec}: 3 windows of 1 frame sets for calibration, asked "
                                            "for 4$"):
            load_samples(spec, card, cfg, size=4)
    lane = get_card("lane")
    with pytest.raises(DataError, match=r"^--calib .*rec\.npz: frame set 0: .*no frame for sensor"):
        load_samples(str(path), lane, lane.config("tiny"), size=1)
    comma = tmp_path / "w,3.npz"  # a comma in a name stays in it, as edge run reads it (a review)
    comma.symlink_to(path)
    check_source(f"waveform:{comma}")
    etavla = get_card("etavla")  # a recording carries no text command, which its frame sets need (a review)
    with pytest.raises(DataError, match=r"^--calib multi:.*: model 'etavla' reads its instruction beside its frames"):
        load_samples(f"multi:front={tmp_path},left={tmp_path},right={tmp_path}", etavla, etavla.config("tiny"),
                     size=1)
    with pytest.raises(DataError, match=r"--calib waveform:.*nope\.npz: no such waveform file"):
        check_source(f"waveform:{tmp_path / 'nope.npz'}")
    # a review: edge run's simulated stream was refused as "no such waveform file"
    for sim in ("waveform:sim", "waveform:sim,frames=3"):
        with pytest.raises(DataError, match=rf"^--calib {sim}: the family's simulated waveforms calibrate as --calib "
                                            "synthetic"):
            check_source(sim)


def _frame(data: np.ndarray) -> object:
    from edge.data.frame import Frame

    return Frame(data, 0, 0, "waveform", {})


def test_real_kitti_pairs_calibrate_a_two_sensor_family(real_data: Path) -> None:
    """An image folder feeds one sensor; a KITTI folder through the family's reader gives camera + LiDAR pairs:
    the one real calibration set of a family that needs both (before, synthetic or a hand-made .npz only)."""
    card = get_card("nativecross")
    cfg = card.config("tiny")
    drive = real_data / "kitti" / "raw_2011_09_26" / "2011_09_26"
    s = load_samples(str(drive), card, cfg, size=12, seed=0)
    feeds = s.sequences[0][0]
    assert len(s) == 12 and {"image", "groups", "centres", "T", "P"} <= set(feeds)
    assert all(np.isfinite(q[0]["groups"]).all() for q in s.sequences)
    assert len({float(q[0]["T"].sum()) for q in s.sequences}) == 12  # 12 different starts
    with pytest.raises(DataError, match=r"10 samples available for calibration, asked for 11"):
        load_samples(f"{drive},starts=1", card, cfg, size=11)
    with pytest.raises(DataError, match=r"^--calib .*,deg=x: deg=x: not a number"):
        load_samples(f"{drive},deg=x", card, cfg, size=1)
    with pytest.raises(DataError, match="labelled data in its format"):  # a video feeds one sensor: the advice
        from edge.calibration.datasets import _preprocess

        _preprocess(card, cfg, [np.zeros((8, 8, 3), np.uint8)], "v.mp4")


def test_calibrating_on_the_gates_own_data_is_named(tmp_path: Path) -> None:
    """``--calib`` and ``--eval-data`` that may share frames: the INT8 gate would score samples it was calibrated
    on, so the export says so, once (the request is checked again when the precisions are added); held-out data,
    or another label file of the same dataset folder, says nothing."""
    import shutil

    from edge.calibration.precision import PrecisionJob, check_request, shared_data

    label = _label_file(tmp_path / "a", 3)
    other = tmp_path / "b"
    shutil.copytree(tmp_path / "a", other)
    (tmp_path / "a" / "label2.json").write_text(label.read_text())

    def said(calib: str, data: str) -> list[str]:
        out: list[str] = []
        job = PrecisionJob(card=CARD, cfg=CFG, module=None, jobs=[], programs=["stream"], precisions=["fp32", "int8"],
                           calib=calib, calib_size=2, eval_data=[data], say=out.append)
        check_request(job)
        check_request(job)
        return [m for m in out if "--calib and --eval-data" in m]

    assert len(said(str(label), str(label))) == 1
    assert len(said(f"{label},images={tmp_path / 'a'}", str(label))) == 1  # options do not hide it
    assert len(said(str(tmp_path / "a" / "clips"), str(label))) == 1  # the label file's own images, as a folder
    assert said(str(label), str(other / "label.json")) == []
    assert said(str(tmp_path / "b" / "clips"), str(label)) == []
    assert shared_data(str(label), [str(tmp_path / "a" / "label2.json")]) is None  # two label files: their own
    assert shared_data(Path(label), [str(label)]) == str(label.resolve())  # a PathLike, as the API takes it
    assert shared_data("synthetic", [str(label)]) is None
    video = tmp_path / "a" / "v.mp4"
    video.write_bytes(b"")
    assert shared_data(str(video), [str(tmp_path / "a" / "clips")]) is None  # a video is its own frames


def test_a_bad_frame_in_eval_data_fails_before_the_export(tmp_path: Path) -> None:
    """Labelled readers load frames when they are used; ``--eval-data`` is still read whole before any graph is
    exported (each sample once, let go), so a corrupt image is one line up front, not a failure in the gate."""
    from edge.export.api import export_card

    label = _label_file(tmp_path / "d", 3)
    (tmp_path / "d" / "clips" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError, match=r"001\.png: .*listed in .*label\.json"):
        export_card("lane", tmp_path / "b", config="tiny", precisions="fp32,int8", calib_size=2, eval_data=str(label))
    assert not (tmp_path / "b").exists()


def test_a_set_larger_than_memory_is_refused_before_it_is_rendered(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    """Found by a review: `--calib-size 100000000` (or `--eval-size`) rendered lane clips until the machine ran out of
    memory, minutes into the export. One sample is rendered to size the set; past half the free memory, one line."""
    import edge.bench.machine as machine
    from edge.calibration.datasets import held_bytes

    one = held_bytes(CARD.data.samples(CFG, "calibration", 1, 0))
    monkeypatch.setattr(machine, "available_memory_bytes", lambda: 40 * one)
    with pytest.raises(DataError, match=r"^--calib-size 1000: .* GiB held at once \(.* MiB a sample\), more than half "
                                        r"of the .* GiB free here; at most \d+ on this machine$"):
        load_samples("synthetic", CARD, CFG, size=1000)
    assert len(load_samples("synthetic", CARD, CFG, size=2)) == 2  # what fits is rendered
    monkeypatch.setattr(machine, "available_memory_bytes", lambda: 1000 * one)
    with pytest.raises(DataError, match=r"^--eval-size 100000: .* GiB held at once"):  # the gate's set
        import edge

        edge.export_card("lane", config="tiny", targets="onnx", precisions="fp32,int8", eval_size=100_000,
                         out=tmp_path / "b")
    assert not (tmp_path / "b").exists()
    monkeypatch.setattr(machine, "available_memory_bytes", lambda: None)  # unknown (not Linux): unchecked
    assert len(load_samples("synthetic", CARD, CFG, size=3)) == 3


def test_a_view_of_a_frame_is_not_counted_twice() -> None:
    """The review of the memory check: a family whose feed is a view of its frame (``w[None]``) was counted twice
    (a PULSAR-Net default INT8 export would have been refused below ~5.5 GiB free instead of ~2.8)."""
    from edge.calibration.datasets import held_bytes
    from edge.data.frame import Frame

    w = np.zeros((8, 100), np.float32)
    assert held_bytes([{"lidar": Frame(w, 0, 0, "lidar")}, {"x": w[None]}, [w.reshape(-1)]]) == w.nbytes
    assert held_bytes([w, np.ones(3)]) == w.nbytes + 24


def test_calibration_refusals_name_what_can_be_given(tmp_path: Path) -> None:
    """Found by a review: `--calib synthetic:4` said "--calib-size and --seed set them" (edge-export has no --seed),
    and a family reading a command beside its frames was told to give a recording, which it then refused."""
    with pytest.raises(DataError) as e:
        check_source("synthetic:4")
    assert "--calib-size sets the count" in str(e.value) and "--seed" not in str(e.value)
    card = get_card("etavla")
    cfg = card.config("tiny")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataError, match="unsupported calibration source") as e:
        load_samples(str(tmp_path / "x.json"), card, cfg, size=1)
    assert "recording" not in str(e.value) and ".npz/.npy of step feeds" in str(e.value), e.value
    with pytest.raises(DataError, match="a recording edge run --source takes"):  # a family reading frames alone
        load_samples(str(tmp_path / "x.json"), get_card("pulsar"), get_card("pulsar").config("tiny"), size=1)
