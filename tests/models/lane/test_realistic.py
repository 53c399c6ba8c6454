"""Domain-randomised lane clips on real lane layouts (edge/models/lane/realistic.py): the layouts read and the
validation clips left out, labels that are the drawn geometry, seeded, and the training mix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2")

from edge.errors import DataError
from edge.models.lane import card as lane
from edge.models.lane.realistic import LABEL_ROWS, load_layouts, realistic_clip


@pytest.fixture(scope="module")
def layouts_file(real_data: Path) -> Path:
    return real_data / "lane" / "tusimple_labels" / "label_data_0313.json"


def test_layouts_leave_out_the_validation_clips(layouts_file: Path, real_data: Path) -> None:
    all_lines = layouts_file.read_text().splitlines()
    got = load_layouts(str(layouts_file))
    assert got.shape[1:] == (4, len(LABEL_ROWS)) and 2000 < len(got) < len(all_lines)
    held = [json.loads(x) for x in (real_data / "lane" / "tusimple_lstr_train" /
                                    "label_data_0313.subset.json").read_text().splitlines()]
    for rec in held:  # not one validation frame's lanes is among the training layouts
        lanes = np.where(np.asarray(rec["lanes"], float) < 0, np.nan, np.asarray(rec["lanes"], float))
        assert not any(np.array_equal(lanes, g, equal_nan=True) for g in got), rec["raw_file"]


def test_missing_or_foreign_layouts_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="lane layouts not found"):
        load_layouts(str(tmp_path / "nope.json"))
    row = {"lanes": [[-2] * 47 + [700.0]] * 4, "h_samples": list(range(240, 720, 10)),
           "raw_file": "clips/0313-2/100/20.jpg"}
    (tmp_path / "ok.json").write_text(json.dumps(row) + "\n")
    assert load_layouts(str(tmp_path / "ok.json")).shape == (1, 4, 48)
    big = json.dumps(row).replace("700.0", "1" + "0" * 400)
    # a security review: a raw_file that is not text (AttributeError) and nesting past the JSON parser's depth
    # (RecursionError) were tracebacks; a later one: a byte that is not UTF-8 and an integer past the float range
    # were tracebacks blamed on --set, and Infinity was trained on
    for name, data, said in (
            ("bad.json", b'{"lanes": 3}\n', r"line 1: missing key"),
            ("attr.json", b'{"raw_file": 5, "lanes": [], "h_samples": []}\n', r"line 1: 'raw_file' is int"),
            ("deep.json", b"[" * 200_000 + b"]" * 200_000 + b"\n", r"line 1: invalid JSON"),
            ("bytes.json", json.dumps(row).encode() + b"\n\xff\n", r"line 2: not UTF-8"),
            ("big.json", big.encode() + b"\n", r"line 1: lanes\[0\]\[47\]"),
            ("inf.json", json.dumps(row).replace("700.0", "Infinity").encode() + b"\n", r"line 1: lanes\[0\]\[47\]"),
            ("name.json", json.dumps({**row, "raw_file": "x.jpg"}).encode() + b"\n", r"raw_file 'x\.jpg' is not"),
            ("far.json", json.dumps(row).replace("700.0", "1e12").encode() + b"\n",
             r"'clips/0313-2/100/20\.jpg': lanes\[0\]\[47\] is 1e\+12, far outside")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=rf"{name.replace('.', chr(92) + '.')}: {said}") as e:
            load_layouts(str(tmp_path / name))
        assert "\n" not in str(e.value)


def test_clips_are_seeded_and_labels_stay_below_where_the_road_ends(layouts_file: Path) -> None:
    layouts = load_layouts(str(layouts_file))
    cfg = lane.CONFIGS["default"]
    h, w = cfg["input_hw"]
    rows = np.asarray(cfg["row_anchors"]) * h
    a = realistic_clip(np.random.default_rng(5), layouts, height=h, width=w, frames=3, h_samples=rows)
    b = realistic_clip(np.random.default_rng(5), layouts, height=h, width=w, frames=3, h_samples=rows)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.lanes, b.lanes)
    assert a.frames.shape == (3, h, w, 3) and a.lanes.shape == (3, 6, len(rows))
    for seed in range(12):
        c = realistic_clip(np.random.default_rng(seed), layouts, height=h, width=w, frames=3, h_samples=rows)
        on = c.lanes >= 0
        assert on.any(axis=-1).sum() >= 3  # lanes in several slots across the clip
        assert (c.lanes[on] < w).all()
        # no label above the first labelled row of the layouts (TuSimple's 240 of 720): where the road ends
        assert not on[..., rows < 240 * h / 720 - 1e-6].any()
        for lanes_t in c.lanes:  # ego-relative: left slots left of the right slots at the bottom
            bottom = {s: x[x >= 0][-1] for s, x in enumerate(lanes_t) if (x >= 0).sum() >= 2}
            left = [v for s, v in bottom.items() if s < 3]
            right = [v for s, v in bottom.items() if s >= 3]
            if left and right:
                assert max(left) < min(right) + 1e-3
            # and slot by slot from left to right, compared at one row (each lane's line through its two
            # lowest points, extended to the bottom row): a lane that leaves the image high at the side is
            # still the outer one
            at = {s: _x_at(x, rows, rows[-1]) for s, x in enumerate(lanes_t) if (x >= 0).sum() >= 2}
            order = [at[s] for s in sorted(at)]
            assert order == sorted(order), (seed, at)


def _x_at(x: np.ndarray, rows: np.ndarray, row: float) -> float:
    on = np.flatnonzero(x >= 0)[-2:]
    k = (x[on[1]] - x[on[0]]) / (rows[on[1]] - rows[on[0]])
    return float(x[on[1]] + k * (row - rows[on[1]]))


def test_training_batches_mix_both_renderers(layouts_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.models.lane.train import batch_stream

    monkeypatch.setenv("EDGE_LANE_LAYOUTS", str(layouts_file))
    cfg = {**lane.CONFIGS["tiny"], "realistic_mix": 1.0}
    batch = next(batch_stream(cfg, 2, seed=0))
    assert batch["clip"].shape[:2] == (2, cfg["frames"]) and (batch["cell"] >= 0).any()
    monkeypatch.setenv("EDGE_LANE_LAYOUTS", str(layouts_file.parent / "missing.json"))
    load_layouts.cache_clear()
    with pytest.raises(DataError, match=r"missing\.json: lane layouts not found"):
        next(batch_stream(cfg, 2, seed=0))
    plain = next(batch_stream({**cfg, "realistic_mix": 0.0}, 2, seed=0))  # no layouts needed without the mix
    assert plain["clip"].shape == batch["clip"].shape


def test_vehicles_stand_in_a_lane_sized_by_it() -> None:
    """Hand-made lines at x 150 / 350 / 450 on row 150, diverging downwards: a vehicle between two neighbouring
    lines is centred and a share of their gap wide; beyond an outer line (a fifth of the picks) it stands as
    wide as the lane next to it, half that lane out; off the labelled rows the lines are extended straight;
    where they meet there is no vehicle."""
    from edge.models.lane.realistic import _vehicle

    ys = np.array([100.0, 150.0, 200.0])
    lanes = np.array([[200.0, 150.0, 100.0], [300.0, 350.0, 400.0], [np.nan, np.nan, np.nan],
                      [400.0, 450.0, 500.0]])
    assert _vehicle(lanes, ys, 150.0, 0.1, 0.7) == pytest.approx((250.0, 140.0))  # the lane 150-350
    assert _vehicle(lanes, ys, 150.0, 0.7, 0.5) == pytest.approx((400.0, 50.0))  # the lane 350-450
    assert _vehicle(lanes, ys, 150.0, 0.85, 0.5) == pytest.approx((50.0, 100.0))  # left of 150, as wide as 150-350
    assert _vehicle(lanes, ys, 150.0, 0.95, 0.5) == pytest.approx((500.0, 50.0))  # right of 450, as 350-450
    assert _vehicle(lanes, ys, 150.0, 0.999999, 0.5) == pytest.approx((500.0, 50.0))
    assert _vehicle(lanes, ys, 125.0, 0.1, 0.5) == pytest.approx((250.0, 75.0))  # interpolated
    assert _vehicle(lanes, ys, 250.0, 0.1, 0.5) == pytest.approx((250.0, 200.0))  # extended below
    assert _vehicle(lanes, ys, 50.0, 0.1, 0.5) is None  # the first two lines meet at row 50
    assert _vehicle(lanes[:1], ys, 150.0, 0.1, 0.5) is None  # one line: no lane to stand in
    # the lanes of a later frame, shifted sideways: the vehicle moves with them, its width unchanged
    assert _vehicle(lanes + 30.0, ys, 150.0, 0.1, 0.7) == pytest.approx((280.0, 140.0))


def test_vehicle_rows_are_log_uniform_below_the_horizon() -> None:
    """Rows run from a tenth of the road's rows below the horizon to just below the image, and the height below
    the horizon (inverse distance) is log-uniform: each doubling of distance holds the same share. Rows drawn
    uniformly (the old rule) put 59 % in the nearest half of the road's rows instead of 32 %."""
    from edge.models.lane.realistic import _vehicle_row

    rng = np.random.default_rng(5)
    yh, h = 100.0, 256
    d = np.array([_vehicle_row(rng, yh, h) for _ in range(4000)]) - yh
    lo, hi = 0.1 * (h - yh), 1.05 * h - yh
    assert d.min() >= lo and d.max() <= hi
    near = np.log(hi / (0.5 * (h - yh))) / np.log(hi / lo)  # log-uniform share beyond the road's middle row
    assert near == pytest.approx(0.32, abs=0.01)
    assert np.mean(d > 0.5 * (h - yh)) == pytest.approx(near, abs=0.03)
    # each factor of two in the height below the horizon holds log(2) / log(hi / lo) of the vehicles
    assert np.mean((d > 2 * lo) & (d <= 4 * lo)) == pytest.approx(np.log(2) / np.log(hi / lo), abs=0.03)


def test_clips_stand_their_vehicles_on_rows_from_vehicle_row(layouts_file: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``realistic_clip`` takes each vehicle's row from :func:`_vehicle_row` (whose distribution the test above
    checks), not from a rule of its own."""
    from edge.models.lane import realistic

    layouts = load_layouts(str(layouts_file))
    rows: list[float] = []
    vehicle = realistic._vehicle
    monkeypatch.setattr(realistic, "_vehicle_row", lambda rng, yh, h: float(rng.random()) * 0 + 101.25)
    monkeypatch.setattr(realistic, "_vehicle", lambda lanes, ys, yc, *a: rows.append(yc) or vehicle(lanes, ys, yc, *a))
    for seed in range(10):
        realistic_clip(np.random.default_rng(seed), layouts, height=128, width=256, frames=1,
                       h_samples=np.linspace(60, 127, 14))
    assert rows and set(rows) == {101.25}


def test_each_frame_places_its_vehicles_on_its_own_lanes(layouts_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The vehicles of a frame are placed on the lanes that frame draws and labels (shifted sideways over the
    clip), not on the layout before the shift: they stood off their lanes and did not move with them."""
    from edge.models.lane import realistic

    layouts = load_layouts(str(layouts_file))
    placed: list[np.ndarray] = []
    labelled: list[np.ndarray] = []
    vehicle, labels = realistic._vehicle, realistic._labels
    monkeypatch.setattr(realistic, "_vehicle", lambda lanes, *a: placed.append(lanes.copy()) or vehicle(lanes, *a))
    monkeypatch.setattr(realistic, "_labels", lambda lanes, *a: labelled.append(lanes.copy()) or labels(lanes, *a))
    for seed in range(40):
        placed.clear()
        labelled.clear()
        realistic_clip(np.random.default_rng(seed), layouts, height=128, width=256, frames=3,
                       h_samples=np.linspace(60, 127, 14))
        if not placed:
            continue  # no vehicle in this clip
        per_frame = len(placed) // 3
        assert per_frame * 3 == len(placed) and len(labelled) == 3
        for t in range(3):
            for got in placed[t * per_frame:(t + 1) * per_frame]:
                assert np.array_equal(got, labelled[t], equal_nan=True)
        assert not np.array_equal(labelled[0], labelled[2], equal_nan=True)  # the road moved over the clip
        return
    pytest.fail("no clip with a vehicle in 40 seeds")


def test_the_same_clip_without_its_vehicles(layouts_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``vehicles=False`` draws the same clip: the same labels and the same pixels wherever no vehicle stood (the
    random draws that follow the vehicles' are not shifted), and a vehicle's pixels differ."""
    from edge.models.lane import realistic

    layouts = load_layouts(str(layouts_file))
    boxes: list[tuple[float, float, float]] = []
    vehicle = realistic._vehicle

    def spy(lanes: np.ndarray, ys: np.ndarray, yc: float, *a: float) -> tuple[float, float] | None:
        got = vehicle(lanes, ys, yc, *a)
        if got is not None:
            boxes.append((yc, *got))
        return got

    monkeypatch.setattr(realistic, "_vehicle", spy)
    size = {"height": 128, "width": 256, "frames": 2, "h_samples": np.linspace(60, 127, 14)}
    checked = 0
    for seed in range(60):
        boxes.clear()
        with_v = realistic_clip(np.random.default_rng(seed), layouts, **size)
        if not boxes:
            continue
        without = realistic_clip(np.random.default_rng(seed), layouts, **size, vehicles=False)
        assert np.array_equal(with_v.lanes, without.lanes, equal_nan=True)
        free = np.ones((128, 256), bool)  # pixels no vehicle (box, shadow ellipse, blur, JPEG block) could reach
        m = 16  # JPEG's chroma blocks are 16 px
        for yc, xc, bw in boxes:
            r0, r1 = int(np.clip(yc - 0.8 * bw - m, 0, 128)), int(np.clip(yc + 0.1 * bw + m, 0, 128))
            c0, c1 = int(np.clip(xc - 0.6 * bw - m, 0, 256)), int(np.clip(xc + 0.6 * bw + m, 0, 256))
            free[r0:r1, c0:c1] = False
        if free.all() or free.mean() < 0.3:
            continue  # every vehicle off the image, or too little left to compare
        diff = np.abs(with_v.frames.astype(int) - without.frames.astype(int)).max(-1)
        assert np.all(diff[:, free] <= 12) and np.median(diff[:, free]) == 0
        assert diff[:, ~free].max() > 30
        checked += 1
        if checked == 3:
            return
    pytest.fail(f"{checked} of 3 clips with a vehicle on the image in 60 seeds")


def test_realistic_samples_are_held_out_clips_at_tusimple_size(layouts_file: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``samples.realistic_samples``: T labelled 1280x720 frames per clip from the evaluation stream (seeded: the
    same clips again), and ``vehicles=False`` the same clips' labels without their vehicles."""
    from edge.models.lane.samples import realistic_samples

    monkeypatch.setenv("EDGE_LANE_LAYOUTS", str(layouts_file))
    cfg = lane.CONFIGS["tiny"]
    a = realistic_samples(cfg, 2, 99)
    b = realistic_samples(cfg, 2, 99)
    c = realistic_samples(cfg, 2, 99, vehicles=False)
    assert len(a) == 2 and all(len(s) == cfg["frames"] for s in a)
    for sa, sb, sc in zip(a, b, c, strict=True):
        for fa, fb, fc in zip(sa, sb, sc, strict=True):
            assert fa["camera"].data.shape == (720, 1280, 3)
            assert np.array_equal(fa["camera"].data, fb["camera"].data)
            assert fa["camera"].meta["gt"] == fc["camera"].meta["gt"] and fa["camera"].meta["gt"]["lanes"]
    assert not np.array_equal(a[0][0]["camera"].data, a[1][0]["camera"].data)


def test_a_missing_layouts_file_is_one_line_before_the_bar(tmp_path: Path) -> None:
    """`edge train` drew its progress bar, then failed on the first batch (a review): the trainer's data files are
    read before the first step."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[3]
    env = {**os.environ, "EDGE_LANE_LAYOUTS": str(tmp_path / "nope.json"), "PYTHONPATH": str(repo)}
    r = subprocess.run([sys.executable, "-m", "edge.cli.main", "train", "lane", "--config", "tiny", "--set",
                        "realistic_mix=0.5", "--steps", "2", "--batch", "2", "--eval-clips", "0", "--out",
                        str(tmp_path / "x.pt")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and r.stderr.strip() == (
        f"error: {tmp_path / 'nope.json'}: lane layouts not found (TuSimple label_data_0313.json; set "
        "EDGE_LANE_LAYOUTS)"), r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
