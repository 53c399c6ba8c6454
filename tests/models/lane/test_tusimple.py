"""TuSimple reader/writer and the official lane metric, checked on real TuSimple labels.

The metric is compared with an independent plain-Python re-implementation of ``LaneEval.bench`` (closed
form least-squares slope instead of lstsq) on perturbed real frames, and every official rule is pinned
by a small synthetic case so a change to any of them fails a named test.
"""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.errors import DataError
from edge.models.lane.tusimple import (
    TuSimpleSample,
    evaluate,
    evaluate_files,
    lane_angle,
    lane_bench,
    line_accuracy,
    read_tusimple,
    write_tusimple,
)

LABELS_0313 = Path("lane/tusimple_labels/label_data_0313.json")
LANENET_6 = Path("lane/tusimple_lanenet/gt_tusimple_format_derived_from_instance_masks.json")
ROWS = list(range(240, 720, 10))  # 48 rows, as in label_data_0313


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def gt0313(real_data: Path) -> list[TuSimpleSample]:
    return read_tusimple(real_data / LABELS_0313)


@pytest.fixture(scope="module")
def gt6(real_data: Path) -> list[TuSimpleSample]:
    return read_tusimple(real_data / LANENET_6)


def _shift(samples: list[TuSimpleSample], dx: float) -> list[TuSimpleSample]:
    """Predictions = GT with every present point moved right by dx (absent points stay -2)."""
    return [
        TuSimpleSample(s.raw_file, [[x + dx if x >= 0 else x for x in lane] for lane in s.lanes], s.h_samples)
        for s in samples
    ]


# ---------------------------------------------------------------------- independent reference metric


def _ref_bench(pred, gt, ys, running_time):
    """LaneEval.bench written out in plain Python; slope k = cov(y, x) / var(y) in closed form."""
    if any(len(p) != len(ys) for p in pred):
        raise ValueError("format")
    if running_time > 200 or len(gt) + 2 < len(pred):
        return 0.0, 0.0, 1.0
    line_accs, fn, matched = [], 0, 0
    for g in gt:
        pts = [(y, x) for x, y in zip(g, ys) if x >= 0]
        if len(pts) > 1:
            my = sum(y for y, _ in pts) / len(pts)
            mx = sum(x for _, x in pts) / len(pts)
            var = sum((y - my) ** 2 for y, _ in pts)
            cov = sum((y - my) * (x - mx) for y, x in pts)
            k = cov / var if var > 0 else 0.0
        else:
            k = 0.0
        thresh = 20 / math.cos(math.atan(k))
        best = 0.0
        for p in pred:
            ok = 0
            for xp, xg in zip(p, g):
                xp = xp if xp >= 0 else -100
                xg = xg if xg >= 0 else -100
                ok += abs(xp - xg) < thresh
            best = max(best, ok / len(g))
        if best < 0.85:
            fn += 1
        else:
            matched += 1
        line_accs.append(best)
    fp = len(pred) - matched
    if len(gt) > 4 and fn > 0:
        fn -= 1
    s = sum(line_accs)
    if len(gt) > 4:
        s -= min(line_accs)
    denom = max(min(len(gt), 4), 1)
    return s / denom, (fp / len(pred) if pred else 0.0), fn / denom


def _perturb(rng: random.Random, s: TuSimpleSample) -> tuple[list, list, float]:
    """Random prediction for a real GT frame (and sometimes a GT with extra lanes, for the >4 rules)."""
    gt = [list(lane) for lane in s.lanes]
    if rng.random() < 0.25:  # 5 or 6 GT lanes: copies of real lanes moved sideways
        for _ in range(rng.randint(1, 2)):
            src = rng.choice(s.lanes)
            dx = rng.choice([-150, 150]) + rng.uniform(-10, 10)
            gt.append([x + dx if x >= 0 and x + dx >= 0 else -2 for x in src])
    pred = []
    for lane in gt:
        if rng.random() < 0.15:
            continue  # missed lane
        dx = rng.choice([0.0, rng.uniform(-8, 8), rng.uniform(-45, 45), float(rng.randint(-35, 35))])
        new = []
        for x in lane:
            if x < 0:
                new.append(-2 if rng.random() < 0.97 else rng.uniform(0, 1280))  # spurious point
            elif rng.random() < 0.08:
                new.append(-2)  # dropped point
            else:
                new.append(x + dx + rng.gauss(0, 3))
        pred.append(new)
    for _ in range(rng.choice([0, 0, 0, 1, 2, 4])):  # extra lanes (4 often exceeds len(gt) + 2)
        base = rng.choice(gt)
        off = rng.uniform(-300, 300)
        pred.append([x + off if x >= 0 and x + off >= 0 else -2 for x in base])
    rng.shuffle(pred)
    run_time = rng.choice([0.0, rng.uniform(0, 190), rng.uniform(201, 400)])
    return pred, gt, run_time


# ----------------------------------------------------------------------------------- real-data reading


def test_read_real_labels(gt0313):
    assert len(gt0313) == 2858
    assert len({s.raw_file for s in gt0313}) == 2858
    for s in gt0313:
        assert s.h_samples == ROWS
        assert s.run_time is None
        assert s.lanes, s.raw_file
        for lane in s.lanes:
            assert len(lane) == len(s.h_samples)
    first = gt0313[0]
    assert first.raw_file == "clips/0313-1/6040/20.jpg"
    assert first.lanes[0][:6] == [-2, -2, -2, -2, 632, 625]


def test_read_real_lanenet(gt6):
    assert len(gt6) == 6
    for s in gt6:
        assert s.h_samples == list(range(160, 720, 10))
        assert all(len(lane) == len(s.h_samples) for lane in s.lanes)


def test_round_trip_real(gt0313, gt6, tmp_path):
    for name, samples in (("a.json", gt0313), ("b.json", gt6)):
        out = tmp_path / name
        write_tusimple(out, samples)
        assert read_tusimple(out) == samples
    # Official files hold ints; we write whole numbers back as ints (no "-2.0"), no run_time for GT.
    first = json.loads((tmp_path / "a.json").read_text().splitlines()[0])
    assert list(first) == ["lanes", "h_samples", "raw_file"]
    assert all(type(x) is int for lane in first["lanes"] for x in lane)


def test_write_keeps_float_precision_and_run_time(tmp_path):
    s = TuSimpleSample("c/1.jpg", [[-2, 10.123456789, 33.0]], [300, 310, 320], run_time=12.5)
    t = TuSimpleSample("c/2.jpg", [], [300, 310, 320], run_time=7.0)
    out = tmp_path / "p.json"
    write_tusimple(out, [s, t])
    lines = out.read_text().splitlines()
    assert json.loads(lines[0]) == {
        "lanes": [[-2, 10.123456789, 33]],
        "h_samples": [300, 310, 320],
        "raw_file": "c/1.jpg",
        "run_time": 12.5,
    }
    assert '"run_time": 7' in lines[1] and "7.0" not in lines[1]
    assert read_tusimple(out) == [s, t]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # atomic: no temp file left


def test_write_rejects_what_cannot_be_read_back(tmp_path):
    with pytest.raises(DataError, match="lanes\\[0\\] has 2 points"):
        write_tusimple(tmp_path / "x.json", [TuSimpleSample("a", [[1, 2]], [1, 2, 3])])
    with pytest.raises(DataError, match="finite"):
        write_tusimple(tmp_path / "x.json", [TuSimpleSample("a", [[float("nan")]], [1])])
    with pytest.raises(DataError, match=r"lanes\[0\] is 1000.*; JSON lane files hold finite numbers only"):
        write_tusimple(tmp_path / "x.json", [TuSimpleSample("a", [[10**400]], [1])])  # past the float range
    # written, then refused by the reader (a fuzz review): the reader's rules run on each line written
    with pytest.raises(DataError, match=r"h_samples\[0\] is -5, expected an image row"):
        write_tusimple(tmp_path / "x.json", [TuSimpleSample("a.jpg", [[1.0]], [-5])])
    for name in ("", "a\x00.jpg"):
        with pytest.raises(DataError, match="expected a file name"):
            write_tusimple(tmp_path / "x.json", [TuSimpleSample(name, [[1.0]], [5])])
    with pytest.raises(DataError, match="does not exist"):
        write_tusimple(tmp_path / "nope" / "x.json", [])
    assert not (tmp_path / "x.json").exists()


# ------------------------------------------------------------------------------------ metric: real data


def test_perfect_prediction_real(gt0313, gt6):
    for gts in (gt0313[:300], gt6):
        r = evaluate(gts, gts)
        assert r == {"accuracy": 1.0, "fp": 0.0, "fn": 0.0, "num": len(gts)}


def test_evaluate_files_real(real_data, tmp_path, gt6):
    pred = tmp_path / "pred.json"
    write_tusimple(pred, [TuSimpleSample(s.raw_file, s.lanes, s.h_samples, run_time=10.0) for s in gt6])
    assert evaluate_files(pred, real_data / LANENET_6) == {"accuracy": 1.0, "fp": 0.0, "fn": 0.0, "num": 6}


def test_shift_5px_keeps_full_accuracy(gt0313):
    gts = gt0313[:300]
    assert evaluate(_shift(gts, 5), gts) == {"accuracy": 1.0, "fp": 0.0, "fn": 0.0, "num": 300}


def test_shift_30px_loses_accuracy(gt0313):
    gts = gt0313[:300]
    r = evaluate(_shift(gts, 30), gts)
    assert r["accuracy"] < 0.85
    assert r["fn"] > 0.15
    assert r["fp"] > 0.15
    r40 = evaluate(_shift(gts, 40), gts)
    assert r40["accuracy"] < r["accuracy"] and r40["fn"] > r["fn"]


def test_dropping_a_lane_raises_fn(gt0313):
    gts = gt0313[:300]
    preds = [TuSimpleSample(s.raw_file, s.lanes[1:], s.h_samples) for s in gts]
    r = evaluate(preds, gts)
    assert r["fn"] > 0.2  # one of four lanes missed in (almost) every frame
    assert r["accuracy"] < 0.8
    assert r["fp"] == 0.0


def test_spurious_lane_raises_fp(gt0313):
    gts = gt0313[:300]
    junk = [5.0] * len(ROWS)  # a vertical line at the image edge, far from every real lane
    preds = [TuSimpleSample(s.raw_file, [*s.lanes, junk], s.h_samples) for s in gts]
    r = evaluate(preds, gts)
    assert r["fp"] == pytest.approx(1 / 5)  # 4 GT lanes + 1 junk in every frame
    assert r["accuracy"] == 1.0 and r["fn"] == 0.0


def test_card_metric_is_the_official_metric_folded_or_not(gt0313):
    """The lane card's metric (a frame's score as its item, sums as its fold) gives what ``evaluate`` gives on the
    same real frames, whole or folded in chunks as a labelled live run folds it."""
    import numpy as np

    from edge.data.frame import Frame
    from edge.models.lane.card import metric_fold, metric_item, metric_reduce

    gts = gt0313[:120]
    preds = _shift(gts, 30)  # some lanes matched, some not: accuracy, fp and fn all between 0 and 1
    items = [metric_item({"tusimple": {"lanes": p.lanes, "h_samples": p.h_samples}},
                         {"camera": Frame(np.zeros((2, 2, 3), np.uint8), i, 0, "camera",
                                          {"gt": {"lanes": g.lanes, "h_samples": g.h_samples}})}, {})
             for i, (p, g) in enumerate(zip(preds, gts, strict=True))]
    want = evaluate(preds, gts)
    assert 0.3 < want["accuracy"] < 0.97 and want["fp"] > 0 and want["fn"] > 0
    folded = [metric_fold([metric_fold(items[:50]), *items[50:70]]), *items[70:]]
    for got in (metric_reduce(items), metric_reduce(folded)):
        assert got["num"] == 120 and got["value"] == pytest.approx(100 * want["accuracy"], rel=1e-12)
        assert [got[k] for k in ("accuracy", "fp", "fn")] == pytest.approx([want[k] for k in ("accuracy", "fp", "fn")],
                                                                            rel=1e-12)
    unlabelled = {"camera": Frame(np.zeros((2, 2, 3), np.uint8), 0, 0, "camera", {})}
    assert metric_item({"tusimple": {}}, unlabelled, {}) is None


def test_lane_bench_matches_reference_on_real_frames(gt0313):
    rng = random.Random(1234)
    frames = rng.sample(gt0313, 200)
    seen = {"zeroed": 0, "big_gt": 0, "fn": 0, "fp": 0}
    for s in frames:
        pred, gt, run_time = _perturb(rng, s)
        got = lane_bench(pred, gt, s.h_samples, run_time)
        want = _ref_bench(pred, gt, s.h_samples, run_time)
        assert all(isinstance(v, float) for v in got)
        assert got == pytest.approx(want, abs=1e-12, rel=0), s.raw_file
        seen["zeroed"] += got == (0.0, 0.0, 1.0)
        seen["big_gt"] += len(gt) > 4
        seen["fn"] += 0 < got[2] < 1
        seen["fp"] += got[1] > 0
    assert all(n >= 10 for n in seen.values()), seen  # the random cases really exercise every rule


def test_evaluate_matches_reference(gt0313):
    rng = random.Random(7)
    gts = gt0313[1000:1150]
    preds, total = [], [0.0, 0.0, 0.0]
    for s in gts:
        pred, _, run_time = _perturb(rng, TuSimpleSample(s.raw_file, s.lanes, s.h_samples))
        pred = [p for p in pred if len(p) == len(s.h_samples)]
        preds.append(TuSimpleSample(s.raw_file, pred, s.h_samples, run_time=run_time))
        for i, v in enumerate(_ref_bench(pred, s.lanes, s.h_samples, run_time)):
            total[i] += v
    rng.shuffle(preds)  # matched by raw_file, not by order
    r = evaluate(preds, gts)
    assert r["num"] == 150
    for key, t in zip(("accuracy", "fp", "fn"), total):
        assert r[key] == pytest.approx(t / 150, abs=1e-12, rel=0)
    assert 0.0 <= r["accuracy"] <= 1.0


# ------------------------------------------------------------------------------- metric: official rules


def _line(x0: float, k: float) -> list[float]:
    return [x0 + k * (y - ROWS[0]) for y in ROWS]


def test_angle_adjusted_threshold_accepts_shift_on_steep_lane():
    gt = _line(100, 1.0)  # 45 degrees: threshold 20 / cos(45) = 28.28 px
    assert lane_angle(gt, ROWS) == pytest.approx(math.pi / 4, abs=1e-12)
    for dx in (25.0, 28.0):  # beyond 20 px, yet accepted: proves the angle adjustment
        assert lane_bench([[x + dx for x in gt]], [gt], ROWS) == (1.0, 0.0, 0.0)
    assert lane_bench([[x + 28.5 for x in gt]], [gt], ROWS) == (0.0, 1.0, 1.0)


def test_vertical_lane_threshold_is_exactly_20px():
    gt = [600.0] * len(ROWS)
    assert lane_angle(gt, ROWS) == 0.0
    assert lane_bench([[619.0] * len(ROWS)], [gt], ROWS) == (1.0, 0.0, 0.0)
    assert lane_bench([[620.0] * len(ROWS)], [gt], ROWS) == (0.0, 1.0, 1.0)  # strict "<"
    assert lane_bench([[621.0] * len(ROWS)], [gt], ROWS) == (0.0, 1.0, 1.0)


def test_lane_angle_edge_cases():
    assert lane_angle([-2, -2, 500, -2], [10, 20, 30, 40]) == 0.0  # one point: theta = 0
    assert lane_angle([-2, -2, -2], [10, 20, 30]) == 0.0
    xs = [3 * y + 7 for y in ROWS]
    assert lane_angle(xs, ROWS) == pytest.approx(math.atan(3), abs=1e-12)
    # Only present points (x >= 0) enter the fit: absent rows must not bend the slope.
    xs2 = [-2, -2, *xs[2:]]
    assert lane_angle(xs2, ROWS) == pytest.approx(math.atan(3), abs=1e-12)
    # All present points on one row: sklearn's centred least squares gives k = 0, so must we.
    assert lane_angle([100, 200, 300], [50, 50, 50]) == 0.0


def test_line_accuracy_absent_points():
    # absent on both sides counts as correct; present on one side only counts as wrong
    assert line_accuracy([-2, -2, 10, 10], [-2, -5, 10, -2], 20) == 0.75
    assert line_accuracy([-2, 100, 10, 10], [-2, -2, 10, 50], 20) == 0.5


def test_fp_fn_accuracy_denominators():
    a, b, c = _line(100, 0.5), _line(500, 0.0), _line(900, -0.5)
    # missed one of three GT lanes
    assert lane_bench([a, b], [a, b, c], ROWS) == (pytest.approx(2 / 3), 0.0, pytest.approx(1 / 3))
    # no predictions at all
    assert lane_bench([], [a, b], ROWS) == (0.0, 0.0, 1.0)
    # no GT lanes: every prediction is a false positive, accuracy 0
    assert lane_bench([a], [], ROWS) == (0.0, 1.0, 0.0)
    # one prediction matching two close GT lanes: matched = 2 > len(pred), so fp < 0 (official quirk)
    assert lane_bench([_line(505, 0)], [b, _line(510, 0)], ROWS) == (1.0, -1.0, 0.0)


def test_too_many_predicted_lanes_scores_zero():
    a, b = _line(100, 0.5), _line(500, 0.0)
    four = [a, b, _line(800, 0), _line(1000, 0)]
    assert lane_bench(four, [a, b], ROWS) == (1.0, 0.5, 0.0)  # len(gt) + 2 lanes: still scored
    assert lane_bench([*four, _line(1200, 0)], [a, b], ROWS) == (0.0, 0.0, 1.0)


def test_running_time_over_200ms_scores_zero():
    a = _line(100, 0.5)
    assert lane_bench([a], [a], ROWS, running_time=200) == (1.0, 0.0, 0.0)
    assert lane_bench([a], [a], ROWS, running_time=200.5) == (0.0, 0.0, 1.0)


def test_pred_lane_length_is_a_format_error_even_when_too_slow():
    a = _line(100, 0.5)
    with pytest.raises(DataError, match="predicted lane 1 has 3 points"):
        lane_bench([a, [1, 2, 3]], [a], ROWS, running_time=1000)


def test_more_than_four_gt_lanes_forgives_one_miss():
    gts = [_line(100 + 250 * i, 0.1 * i) for i in range(5)]
    # all five found: worst line dropped, 4 / 4
    assert lane_bench(gts, gts, ROWS) == (1.0, 0.0, 0.0)
    # one missed: the miss is not counted as fn and its 0 accuracy is the one removed
    assert lane_bench(gts[:4], gts, ROWS) == (1.0, 0.0, 0.0)
    # two missed: one forgiven, one counted; accuracy 3 / 4
    assert lane_bench(gts[:3], gts, ROWS) == (0.75, 0.0, 0.25)
    # six GT lanes, nothing predicted: fn = (6 - 1) / min(6, 4) = 1.25 (official, can exceed 1)
    six = [*gts, _line(1400, 0)]
    assert lane_bench([], six, ROWS) == (0.0, 0.0, 1.25)
    # with four GT lanes a miss is a miss
    assert lane_bench(gts[:3], gts[:4], ROWS) == (0.75, 0.0, 0.25)


# ---------------------------------------------------------------------------------- evaluate() errors


def _frame(name: str) -> TuSimpleSample:
    return TuSimpleSample(name, [_line(100, 0.5)], ROWS)


def test_evaluate_missing_prediction():
    with pytest.raises(DataError, match=re.escape("no prediction for ground-truth frame 'clips/b.jpg'")):
        evaluate([_frame("clips/a.jpg")], [_frame("clips/a.jpg"), _frame("clips/b.jpg")])


def test_evaluate_unknown_raw_file():
    with pytest.raises(DataError, match=re.escape("'clips/zzz.jpg', which is not in the ground truth")):
        evaluate([_frame("clips/a.jpg"), _frame("clips/zzz.jpg")], [_frame("clips/a.jpg")])


def test_evaluate_duplicates_and_empty_and_format():
    with pytest.raises(DataError, match=re.escape("'clips/a.jpg' appears more than once")):
        evaluate([_frame("clips/a.jpg"), _frame("clips/a.jpg")], [_frame("clips/a.jpg")])
    with pytest.raises(DataError, match="no samples"):
        evaluate([], [])
    bad = TuSimpleSample("clips/a.jpg", [[1.0, 2.0]], [1, 2])
    with pytest.raises(DataError, match=re.escape("'clips/a.jpg': predicted lane 0 has 2 points")):
        evaluate([bad], [_frame("clips/a.jpg")])


def test_evaluate_uses_run_time():
    f = _frame("a")
    slow = TuSimpleSample("a", f.lanes, f.h_samples, run_time=250.0)
    assert evaluate([slow], [f]) == {"accuracy": 0.0, "fp": 0.0, "fn": 1.0, "num": 1}


# ------------------------------------------------------------------------------------ malformed files

_GOOD = json.dumps({"lanes": [[-2, 5, 6]], "h_samples": [1, 2, 3], "raw_file": "a.jpg"})


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _assert_error(path: Path, line: int | None, what: str) -> None:
    with pytest.raises(DataError) as ei:
        read_tusimple(path)
    msg = str(ei.value)
    assert "\n" not in msg
    assert path.name in msg
    if line is not None:
        assert f"line {line}:" in msg
    assert what in msg, msg


@pytest.mark.parametrize(
    ("third_line", "what"),
    [
        ('{"lanes": [[1, 2, 3]], "h_samples": [1, 2, 3], "raw_file": "b.jpg"', "invalid JSON"),
        ('{"lanes": [[1, 2, 3]], "raw_file": "b.jpg"}', "missing key(s) 'h_samples'"),
        ('{"h_samples": [1, 2, 3]}', "missing key(s) 'lanes', 'raw_file'"),
        ('{"lanes": [[1, 2]], "h_samples": [1, 2, 3], "raw_file": "b.jpg"}', "lanes[0] has 2 points"),
        ('{"lanes": [[1, "x", 3]], "h_samples": [1, 2, 3], "raw_file": "b.jpg"}', "lanes[0][1] is str"),
        ('{"lanes": [[1, true, 3]], "h_samples": [1, 2, 3], "raw_file": "b.jpg"}', "lanes[0][1] is bool"),
        ('{"lanes": [[1, NaN, 3]], "h_samples": [1, 2, 3], "raw_file": "b.jpg"}', "finite"),
        ('{"lanes": [[1, 2, 3]], "h_samples": [1, 2.5, 3], "raw_file": "b.jpg"}', "h_samples[1]"),
        ('{"lanes": [[1, 2, 3]], "h_samples": [], "raw_file": "b.jpg"}', "'h_samples' is empty"),
        ('{"lanes": [[1, 2, 3]], "h_samples": [1, 2, 3], "raw_file": 7}', "'raw_file' is int"),
        ('{"lanes": [1, 2, 3], "h_samples": [1, 2, 3], "raw_file": "b.jpg"}', "lanes[0] is int"),
        ('{"lanes": [], "h_samples": [1], "raw_file": "b", "run_time": "fast"}', "'run_time' is str"),
        ('{"lanes": [[1, 1' + "0" * 400 + ', 3]], "h_samples": [1, 2, 3], "raw_file": "b.jpg"}',
         "lanes[0][1] is 1000"),
        ('{"lanes": [[1, 2, 3]], "h_samples": [1, -2, 3], "raw_file": "b.jpg"}', "h_samples[1] is -2"),
        ('{"lanes": [[1, 2, 3]], "h_samples": [1, 2, 3], "raw_file": ""}', "'raw_file' is ''"),
        ('{"lanes": [[1, 2, 3]], "h_samples": [1, 2, 3], "raw_file": "a\\u0000.png"}', "'raw_file' is 'a\\x00.png'"),
        ("[1, 2, 3]", "expected a JSON object"),
        ("[" * 100_000, "invalid JSON"),
    ],
)
def test_malformed_line_3(tmp_path, third_line, what):
    p = _write_lines(tmp_path / "labels.json", [_GOOD, _GOOD, third_line, _GOOD])
    _assert_error(p, 3, what)


def test_blank_lines_skipped_and_numbered(tmp_path):
    p = _write_lines(tmp_path / "gaps.json", ["", _GOOD, "   ", "\r", _GOOD, ""])
    assert len(read_tusimple(p)) == 2
    p = _write_lines(tmp_path / "gaps2.json", ["", _GOOD, "", "{oops"])
    _assert_error(p, 4, "invalid JSON")


def test_missing_file_and_folder_and_binary(tmp_path):
    _assert_error(tmp_path / "absent_labels.json", None, "no such file")
    (tmp_path / "adir").mkdir()
    _assert_error(tmp_path / "adir", None, "not a file")
    bad = tmp_path / "binary.json"
    bad.write_bytes(_GOOD.encode() + b"\n\xff\xfe\n")
    _assert_error(bad, 2, "not UTF-8")


def test_evaluate_files_names_bad_file(tmp_path, real_data):
    pred = _write_lines(tmp_path / "preds.json", [_GOOD, "nope"])
    with pytest.raises(DataError, match=r"preds\.json: line 2: invalid JSON"):
        evaluate_files(pred, real_data / LANENET_6)


# ------------------------------------------------------------------------------------------- fuzzing

_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-5, 2000)
    | st.integers(10**308, 10**330)  # JSON integers past the float range
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5)
)
_json_val = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.sampled_from(["lanes", "h_samples", "raw_file", "run_time", "x"]), inner, max_size=5
        )
    ),
    max_leaves=30,
)
_near_valid = st.fixed_dictionaries(
    {
        "lanes": st.lists(st.lists(st.integers(-2, 1280) | _json_leaf, min_size=2, max_size=4), max_size=3),
        "h_samples": st.lists(st.integers(-3, 720), min_size=0, max_size=4),
        "raw_file": st.text(max_size=8) | st.integers() | st.just("a\x00.png"),
    },
    optional={"run_time": _json_leaf},
)


def _read_outcome(path: Path) -> None:
    try:
        out = read_tusimple(path)
    except DataError as e:
        assert "\n" not in str(e) and path.name in str(e)
        return
    for s in out:
        assert isinstance(s, TuSimpleSample)
        assert all(len(lane) == len(s.h_samples) for lane in s.lanes)


@_FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_bytes(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("fz") / "fuzz.json"
    p.write_bytes(data)
    _read_outcome(p)


@_FUZZ
@given(text=st.text(max_size=300))
def test_fuzz_text(tmp_path_factory, text):
    p = tmp_path_factory.mktemp("fz") / "fuzz.json"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    _read_outcome(p)


@_FUZZ
@given(rows=st.lists(_json_val | _near_valid, max_size=4))
def test_fuzz_json_values(tmp_path_factory, rows):
    p = tmp_path_factory.mktemp("fz") / "fuzz.json"
    p.write_text("\n".join(json.dumps(r) for r in rows))
    _read_outcome(p)


def test_a_label_with_absurd_row_or_lane_counts_is_one_line(tmp_path):
    """Found by a review: a 10 MB line of 2.5 M rows took 1.9 GB to score, a million one-point lanes 109 s. Rows are
    sampled once each and at most MAX_ROWS; at most MAX_LANES lanes a line."""
    from edge.models.lane.tusimple import MAX_LANES, MAX_ROWS

    cases = {"rows": ({"lanes": [], "h_samples": list(range(MAX_ROWS + 1)), "raw_file": "a.jpg"},
                      rf"'h_samples' has {MAX_ROWS + 1} rows; a label samples at most {MAX_ROWS}"),
             "twice": ({"lanes": [[1, 2, 3]], "h_samples": [100, 110, 100], "raw_file": "a.jpg"},
                       r"'h_samples' gives row 100 twice"),
             "lanes": ({"lanes": [[1]] * (MAX_LANES + 1), "h_samples": [100], "raw_file": "a.jpg"},
                       rf"'lanes' has {MAX_LANES + 1} lanes; a label holds at most {MAX_LANES}")}
    for name, (obj, needle) in cases.items():
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps(obj) + "\n")
        with pytest.raises(DataError, match=needle):
            read_tusimple(p)


def test_a_label_file_is_read_a_line_at_a_time(tmp_path, monkeypatch):
    """Found by a review: the file was read whole and split, 9x its size in memory (300 MB of newlines took 2.7 GB
    before its one line); lines are read one at a time now, and one past the line limit is refused by number."""
    import tracemalloc

    from edge.models.lane import tusimple

    p = tmp_path / "newlines.json"
    p.write_bytes(b"\n" * 2_000_000 + (_GOOD + "\n").encode())
    tracemalloc.start()
    try:
        assert len(read_tusimple(p)) == 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, peak  # below the file's 2 MB (the split list alone was 16 MB)
    monkeypatch.setattr(tusimple, "MAX_LINE_BYTES", 1000)
    long = _write_lines(tmp_path / "long.json", [_GOOD, " " * 2000 + _GOOD])
    _assert_error(long, 2, "longer than")
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + (_GOOD + "\n" + _GOOD).encode())  # the last line without its newline
    assert len(read_tusimple(bom)) == 2
    # its review: the line's "\n" went to json.loads, whose errors then counted columns past it (column 1)
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"lanes": [[1, 2]], "h_samples": [100, 110], "raw_file": "a.jpg"\n')
    _assert_error(bad, 1, "Expecting ',' delimiter: column 65")
    bad.write_bytes(b'{"lanes": [], "h_samples": [], "raw_file": "clips/0313-1/6040/20.jpg\n')
    _assert_error(bad, 1, "Unterminated string starting at: column 44")
