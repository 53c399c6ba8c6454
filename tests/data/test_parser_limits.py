"""Parsers at the edges of what their formats allow: nesting deep enough to blow the recursion limit,
integers too large for a float, NaN / infinity where a size or a time belongs, frame numbers longer than
Python will convert. Each used to escape as a RecursionError, OverflowError, ValueError or TypeError
traceback; the project rule is one DataError line naming the file and the key (the CLIs exit 2)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.data.kitti import read_labels
from edge.data.rig import Rig
from edge.data.waveform import SCHEMA, Layout, layout, read_waveform_file
from edge.errors import DataError
from edge.stream.commands import parse_schedule

HUGE = 10**400  # a valid JSON integer that no float64 can hold
BIG_NUMBERS = st.sampled_from([HUGE, -HUGE, 2**64, 10**30, 1e308, -1e308, 5e-324])
NUMBERS = st.one_of(st.floats(), st.integers(-10**6, 10**6), BIG_NUMBERS)
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=6),
              st.sampled_from(["nan", "inf", "-1e999", "1e999", "12"])),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=20)
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _one_line(e: pytest.ExceptionInfo[DataError], *names: str) -> str:
    msg = str(e.value)
    assert "\n" not in msg and all(n in msg for n in names), msg
    return msg


# ------------------------------------------------------------------------------------ rig JSON

GOOD_RIG: dict[str, Any] = {"K": [[700, 0, 600], [0, 700, 180], [0, 0, 1]],
                            "T_lidar_to_cam": [[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]],
                            "image_size": [360, 1200], "D": [0.1, -0.05, 0.0, 0.0]}


def _rig_file(tmp_path: Path, d: Any, name: str = "rig.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(d) if not isinstance(d, str) else d)
    return p


def _check_rig(rig: Rig) -> None:
    """What a loaded rig promises its users: finite matrices, a positive whole-pixel size, and project() works."""
    assert np.isfinite(rig.P).all() and np.isfinite(rig.T_lidar_to_cam).all()
    if rig.image_size is not None:
        assert all(isinstance(v, int) and 0 < v <= 1 << 20 for v in rig.image_size), rig.image_size
    if rig.distortion is not None:
        assert all(isinstance(v, float) and math.isfinite(v) for v in rig.distortion)
    with np.errstate(over="ignore", invalid="ignore"):  # a focal length of 1e308 is legal, its pixels are not
        rig.project(np.array([[10.0, 0.5, 0.2], [-3.0, 1.0, 0.0]]))


def test_rig_good_base_loads(tmp_path: Path) -> None:
    """The base the properties below mutate is itself valid (else they would only test refusals)."""
    _check_rig(Rig.load(_rig_file(tmp_path, GOOD_RIG)))


def test_flat_row_major_matrices_read_as_the_nested_ones(tmp_path: Path) -> None:
    """A flat list of 16 or 12 numbers for T (as KITTI's .txt and ROS's CameraInfo write matrices) is the row-major
    matrix, as the README says; a flat list of another length is one line."""
    nested = Rig.load(_rig_file(tmp_path, GOOD_RIG))
    d = json.loads(json.dumps(GOOD_RIG))
    d["T_lidar_to_cam"] = np.asarray(d["T_lidar_to_cam"]).ravel().tolist()
    flat = Rig.load(_rig_file(tmp_path, d))
    assert np.array_equal(flat.T_lidar_to_cam, nested.T_lidar_to_cam) and np.array_equal(flat.P, nested.P)
    d["T_lidar_to_cam"] = d["T_lidar_to_cam"][:12]
    assert np.array_equal(Rig.load(_rig_file(tmp_path, d)).T_lidar_to_cam, nested.T_lidar_to_cam)
    d["T_lidar_to_cam"] = d["T_lidar_to_cam"][:10]
    with pytest.raises(DataError, match="'T_lidar_to_cam' should be 4x4 or 3x4, got shape \\[10\\]"):
        Rig.load(_rig_file(tmp_path, d))


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000,
                                  '{"P": ' + "[" * 100_000 + "]" * 100_000 + "}",
                                  # nesting json parses (900), which the number check's recursion overflowed on
                                  '{"P": ' + "[" * 900 + "1" + "]" * 900 + ', "T_lidar_to_cam": '
                                  '[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}'])
def test_deeply_nested_rig_json_is_one_line(tmp_path: Path, text: str) -> None:
    """Before: RecursionError from json.loads, then (a security review) from the matrix check."""
    p = _rig_file(tmp_path, text)
    with pytest.raises(DataError) as e:
        Rig.load(p)
    _one_line(e, "rig.json")


@pytest.mark.parametrize(("key", "value"), [
    ("K", [[HUGE, 0, 600], [0, 700, 180], [0, 0, 1]]),  # before: OverflowError in np.asarray
    ("P", [HUGE, 0, 600, 0, 0, 700, 180, 0, 0, 0, 1, 0]),
    ("T_lidar_to_cam", [[1, 0, 0, HUGE], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
    ("D", [HUGE, 0, 0, 0]),  # before: TypeError from np.isfinite on an object array
    ("image_size", [HUGE, 1200]),  # before: accepted, then OverflowError in project()
])
def test_huge_integers_in_a_rig_are_one_line(tmp_path: Path, key: str, value: Any) -> None:
    d = {k: v for k, v in GOOD_RIG.items() if not (key == "P" and k == "K")}
    if key == "P":
        d.pop("D")
    d[key] = value
    with pytest.raises(DataError) as e:
        Rig.load(_rig_file(tmp_path, d))
    _one_line(e, "rig.json", f"'{key}'")


@pytest.mark.filterwarnings("error")  # a value that overflows a message's formatting warned on stderr (np.round)
@FAST
@given(key=st.sampled_from(["K", "P", "T_lidar_to_cam", "image_size", "D"]),
       value=st.one_of(JSON, st.lists(NUMBERS, min_size=2, max_size=16),
                       st.lists(st.lists(NUMBERS, min_size=3, max_size=4), min_size=3, max_size=4)))
def test_any_json_value_in_a_rig_loads_or_is_one_line(tmp_path: Path, key: str, value: Any) -> None:
    """Whatever JSON stands in P/K/T/D/image_size: a rig that keeps its promises, or one DataError line."""
    d = dict(GOOD_RIG)
    if key == "P":
        d.pop("K")
        d.pop("D")
    d[key] = value
    p = _rig_file(tmp_path, d)
    try:
        rig = Rig.load(p)
    except DataError as e:
        assert "\n" not in str(e) and "rig.json" in str(e), str(e)
        return
    _check_rig(rig)


# ------------------------------------------------------------------------------------ KITTI raw calib

def _raw_folder(tmp_path: Path, s_rect: str) -> Path:
    (tmp_path / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\nP_rect_02: 700 0 600 0 0 700 180 0 0 0 1 0\n"
        f"R_rect_00: 1 0 0 0 1 0 0 0 1\nS_rect_02: {s_rect}\n")
    (tmp_path / "calib_velo_to_cam.txt").write_text("R: 0 -1 0 0 0 -1 1 0 0\nT: 0.1 -0.2 0.3\n")
    return tmp_path


def test_kitti_raw_size_is_read(tmp_path: Path) -> None:
    assert Rig.load(_raw_folder(tmp_path, "1.242000e+03 3.750000e+02")).image_size == (375, 1242)


@pytest.mark.parametrize("s_rect", ["nan 375", "1242 inf", "-3 -5", "0 375", "1242.5 375", "1e300 375"])
def test_kitti_raw_bad_image_size_is_one_line(tmp_path: Path, s_rect: str) -> None:
    """Before: ValueError (nan), OverflowError (inf), or a silently accepted size of (-5, -3)."""
    with pytest.raises(DataError) as e:
        Rig.load(_raw_folder(tmp_path, s_rect))
    _one_line(e, "calib_cam_to_cam.txt", "S_rect_02")


@FAST
@given(w=st.one_of(st.floats(), st.integers(-10**20, 10**20)), h=st.one_of(st.floats(), st.integers(-5, 5000)))
def test_any_kitti_raw_size_loads_or_is_one_line(tmp_path: Path, w: float, h: float) -> None:
    try:
        rig = Rig.load(_raw_folder(tmp_path, f"{w!r} {h!r}"))
    except DataError as e:
        assert "\n" not in str(e) and "calib_cam_to_cam.txt" in str(e), str(e)
        return
    _check_rig(rig)


# ------------------------------------------------------------------------------------ waveform layouts

LAY = layout("VLP16")


def _layout_text(**changes: str) -> str:
    """The VLP16 layout's JSON with some values replaced by raw JSON text (so 1e999, NaN, Infinity survive)."""
    d = json.loads(LAY.to_json())
    for k in changes:
        d[k] = f"@{k}@"
    text = json.dumps(d)
    for k, raw in changes.items():
        text = text.replace(f'"@{k}@"', raw)
    return text


@pytest.mark.parametrize(("key", "raw"), [
    ("azimuths", "1e999"),  # before: OverflowError through read_waveform_file
    ("bins", "-1e999"),
    ("elevations_deg", "[NaN" + ", 1.0" * 15 + "]"),  # before: accepted
    ("elevations_deg", "[1e400" + ", 1.0" * 15 + "]"),
    ("elevations_deg", "[95.0" + ", 1.0" * 15 + "]"),
    ("bin_ns", "Infinity"),  # before: accepted
    ("bin_ns", "NaN"),
    ("bin_ns", "2.247116418577895e+305"),  # before: loaded, and the last bin's range overflowed to inf (hypothesis)
    ("rotation_hz", "1e999"),
    ("group_ns", "Infinity"),
    ("fire_group", "[1e999" + ", 1" * 15 + "]"),
    ("fire_group", "[-1" + ", 1" * 15 + "]"),
])
def test_bad_layout_in_a_waveform_file_is_one_line(tmp_path: Path, key: str, raw: str) -> None:
    p = tmp_path / "bad.npz"
    w = np.zeros((1, *LAY.shape), np.float16)
    np.savez(p, schema=np.array(SCHEMA), layout=np.array(_layout_text(**{key: raw})), waveforms=w)
    with pytest.raises(DataError) as e:
        read_waveform_file(p)
    _one_line(e, "bad.npz", key)


def test_deeply_nested_layout_json_is_one_line() -> None:
    with pytest.raises(DataError) as e:
        Layout.from_json("[" * 100_000 + "]" * 100_000, where="w.npz: layout")
    _one_line(e, "w.npz")


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(["name", "elevations_deg", "azimuths", "bins", "bin_ns", "rotation_hz", "fire_group",
                            "group_ns", "extra"]),
       value=st.one_of(JSON, st.lists(NUMBERS, min_size=16, max_size=16)))
def test_any_json_value_in_a_layout_loads_or_is_one_line(key: str, value: Any) -> None:
    d = json.loads(LAY.to_json())
    d[key] = value
    try:
        lay = Layout.from_json(json.dumps(d), where="w.npz: layout")
    except DataError as e:
        assert "\n" not in str(e) and str(e).startswith("w.npz: layout"), str(e)
        return
    assert all(math.isfinite(v) and -90 <= v <= 90 for v in lay.elevations_deg)
    assert all(math.isfinite(v) and v > 0 for v in (lay.bin_ns, lay.rotation_hz, lay.step_ns, lay.max_range_m))
    assert math.isfinite(lay.group_ns) and lay.group_ns >= 0
    t = lay.fire_time_ns(np.arange(lay.channels), np.zeros(lay.channels, np.int64))
    assert np.isfinite(t).all()


# ------------------------------------------------------------------------------------ KITTI labels

LABEL = "Car 0.00 {occ} -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59"


@pytest.mark.parametrize("occ", ["nan", "inf", "-inf", "1e999", "1.5", "1_0", "1e300", "4"])
def test_bad_occluded_field_is_one_line(tmp_path: Path, occ: str) -> None:
    """Before: int(nan) -> ValueError, int(inf) -> OverflowError (outside the try); 1.5 became 1; "1_0" was read as
    10 (float() takes underscores) and 1e300 became a 301-digit occlusion state (KITTI's are 0-3, -1)."""
    p = tmp_path / "000001.txt"
    p.write_text(LABEL.format(occ=0) + "\n" + LABEL.format(occ=occ) + "\n")
    with pytest.raises(DataError) as e:
        read_labels(p)
    _one_line(e, "000001.txt:2")


@FAST
@given(st.lists(st.sampled_from(["0", "1", "-1.5", "nan", "inf", "-inf", "1e999", "3.0", "x", "1e-400"]),
                min_size=14, max_size=14))
def test_any_label_fields_load_or_are_one_line(tmp_path: Path, fields: list[str]) -> None:
    p = tmp_path / "l.txt"
    p.write_text("Car " + " ".join(fields) + "\n")
    try:
        objs = read_labels(p)
    except DataError as e:
        assert "\n" not in str(e) and "l.txt:1" in str(e), str(e)
        return
    (o,) = objs
    assert isinstance(o.occluded, int)
    nums = [o.truncated, o.alpha, *o.bbox, *o.dimensions, *o.location, o.rotation_y]
    assert all(math.isfinite(v) for v in nums)


# ------------------------------------------------------------------------------------ command schedules

@pytest.mark.parametrize("frame", ["9" * 5000, "1" * 19, "0" * 19])
def test_long_frame_numbers_are_one_line(frame: str) -> None:
    """Before: '9' * 5000 -> ValueError (Python's int max str digits), outside the DataError path."""
    with pytest.raises(DataError) as e:
        parse_schedule(f"0 go\n{frame} stop\n", "r.txt")
    msg = _one_line(e, "r.txt:2")
    assert len(msg) < 300, msg
    with pytest.raises(DataError) as e:  # the "has no command" message formats the frame too
        parse_schedule(f"0 go\n{frame}\n", "r.txt")
    _one_line(e, "r.txt:2")


def test_eighteen_digit_frame_numbers_still_parse() -> None:
    big = 10**18 - 1
    assert parse_schedule(f"0 go\n{big} stop\n", "r.txt") == [(0, "go"), (big, "stop")]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**40))
def test_any_frame_number_parses_or_is_one_line(frame: int) -> None:
    try:
        entries = parse_schedule(f"0 go\n{frame} stop\n", "r.txt")
    except DataError as e:
        assert "\n" not in str(e) and str(e).startswith("r.txt:2"), str(e)
        assert frame == 0 or len(str(frame)) > 18
        return
    assert entries == [(0, "go"), (frame, "stop")] and len(str(frame)) <= 18


@pytest.mark.parametrize("hz", [1e-6, 0.05, 1000.0])
def test_a_layout_rotation_rate_no_lidar_has_is_refused(hz: float) -> None:
    """A replay paces frames by the rotation rate: 1e-6 Hz would have slept eleven days per frame."""
    import json

    from edge.data.waveform import Layout

    text = json.dumps({"name": "x", "elevations_deg": [0.0, 1.0], "azimuths": 8, "bins": 16, "rotation_hz": hz})
    with pytest.raises(DataError, match=r"rotation_hz .* is not a spinning LiDAR's"):
        Layout.from_json(text, where="w.npz")


# ------------------------------------------------------------------------------------ rigs that lied

@pytest.mark.parametrize("r_rect, needle", [("2 0 0 0 2 0 0 0 2", "R_rect_00"), ("0 0 0 0 0 0 0 0 0", "R_rect_00")])
def test_a_raw_folder_with_a_non_rigid_rectification_is_one_line(tmp_path: Path, r_rect: str, needle: str) -> None:
    """A scaled R_rect_00 made T_lidar_to_cam non-rigid, and edge run --calib projected with it."""
    folder = _raw_folder(tmp_path, "1242 375")
    c2c = folder / "calib_cam_to_cam.txt"
    c2c.write_text(c2c.read_text().replace("R_rect_00: 1 0 0 0 1 0 0 0 1", f"R_rect_00: {r_rect}"))
    with pytest.raises(DataError) as e:
        Rig.load(folder)
    _one_line(e, "calib_cam_to_cam.txt", needle)


def test_a_camera_matrix_is_a_pinhole_and_its_scale_does_not_move_pixels(tmp_path: Path) -> None:
    """A third row [0 0 2] projected twice as far from the centre with 'D' [0 0 0 0] as without it."""
    pts = np.array([[0.5, 1.0, 10.0]])  # camera frame already: T is identity below
    base = {"T_lidar_to_cam": np.eye(4).tolist()}
    k = [[721.5, 0, 609.5], [0, 721.5, 172.8], [0, 0, 1]]
    want = Rig.load(_rig_file(tmp_path, {**base, "K": k})).project(pts)[0]
    k2 = (2 * np.array(k)).tolist()
    for extra in ({}, {"D": [0, 0, 0, 0]}):
        got = Rig.load(_rig_file(tmp_path, {**base, "K": k2, **extra})).project(pts)[0]
        assert np.allclose(got, want, atol=1e-3), (extra, got, want)
    with pytest.raises(DataError) as e:  # a third row [0 0 5e-324]: scaled to 1, the rest overflows
        Rig.load(_rig_file(tmp_path, {**base, "K": [[700, 0, 600], [0, 700, 180], [0, 0, 5e-324]]}))
    _one_line(e, "rig.json", "out of range once its third row is scaled")
    for bad in ([[721.5, 0, 609.5], [0, 721.5, 172.8], [0.5, 0, 1]], [[721.5, 0, 609.5], [3, 721.5, 172.8], [0, 0, 1]]):
        with pytest.raises(DataError) as e:
            Rig.load(_rig_file(tmp_path, {**base, "K": bad}))
        _one_line(e, "rig.json", "'K' is not a camera projection")


@pytest.mark.parametrize(("k", "dist", "needle"), [
    ([[1e-300, 0, 600], [0, 1e-300, 170], [0, 0, 1]], None, "focal lengths fx 1e-300, fy 1e-300 px"),
    ([[1e308, 0, 600], [0, 707, 170], [0, 0, 1]], None, "focal lengths fx 1e+308"),
    ([[700, 0, 1e300], [0, 700, 170], [0, 0, 1]], None, "has an entry 1e+300"),
    ([[700, 0, 600], [0, 700, 170], [0, 0, 1]], [1e308, 1e308, 0, 0], "'D' has a coefficient 1e+308"),
])
def test_a_camera_out_of_any_cameras_range_is_refused(tmp_path: Path, k: list, dist: list | None, needle: str) -> None:
    """Found by a review: fx 1e-300 was calibrated from (every point on the principal point) and wrote a rig; P2 1e308
    or 'D' 1e308 overflowed the projection (RuntimeWarnings on stderr) and ended in "0 points in view", naming
    neither the file nor the value."""
    d = {"T_lidar_to_cam": np.eye(4).tolist(), "K": k, **({"D": dist} if dist else {})}
    with pytest.raises(DataError) as e:
        Rig.load(_rig_file(tmp_path, d))
    _one_line(e, "rig.json", needle)


@pytest.mark.parametrize("case, needle", [
    ("text", "not a matrix of numbers"), ("bool", "not a matrix of numbers"),
    ("twice", "'T_lidar_to_cam' is given twice"), ("far", "more than 1000 m"), ("big", "is not a calibration file")])
def test_rig_json_that_was_quietly_taken(tmp_path: Path, case: str, needle: str) -> None:
    d: Any = json.loads(json.dumps(GOOD_RIG))
    if case == "text":
        d["K"][0][0] = "721.5"
    elif case == "bool":
        d["K"][2][2] = True
    elif case == "far":
        d["T_lidar_to_cam"][0][3] = 1e300
    text = json.dumps(d)
    if case == "twice":  # the last one silently won
        text = text[:-1] + ', "T_lidar_to_cam": ' + json.dumps(np.eye(4).tolist()) + "}"
    if case == "big":  # a video or pcap given as --calib by mistake: refused before it is read
        text = text + " " * (2 << 20)
    with pytest.raises(DataError) as e:
        Rig.load(_rig_file(tmp_path, text))
    _one_line(e, "rig.json", needle)


def test_rig_json_with_both_matrices_or_a_principal_point_off_its_image(tmp_path: Path) -> None:
    """Found by a review: 'P' beside a different 'K' ran with P, the K ignored; a principal point at x 5000 of a
    1242-wide image refined a rig 36 deg off. A raw calibration folder's S_rect is checked the same way."""
    base = {"T_lidar_to_cam": np.eye(4).tolist()}
    k = [[721.5, 0, 609.5], [0, 721.5, 172.8], [0, 0, 1]]
    p = [[721.5, 0, 609.5, 0], [0, 721.5, 172.8, 0], [0, 0, 1, 0]]
    with pytest.raises(DataError) as e:
        Rig.load(_rig_file(tmp_path, {**base, "K": k, "P": p}))
    _one_line(e, "rig.json", "give 'P' (3x4) or 'K' (3x3), not both")
    off = [[721.5, 0, 5000, 0], [0, 721.5, 172.8, 0], [0, 0, 1, 0]]
    with pytest.raises(DataError) as e:
        Rig.load(_rig_file(tmp_path, {**base, "P": off, "image_size": [375, 1242]}))
    _one_line(e, "rig.json", "principal point (5000.0, 172.8) lies outside the 1242x375 image")
    assert Rig.load(_rig_file(tmp_path, {**base, "P": off})).image_size is None  # no size stated: checked per image
    assert Rig.load(_rig_file(tmp_path, {**base, "K": k, "image_size": [375, 1242]})).image_size == (375, 1242)
    with pytest.raises(DataError) as e:
        Rig.load(_raw_folder(tmp_path, "500 300"))  # its principal point (600, 180) past the right edge
    _one_line(e, "calib_cam_to_cam.txt", "its principal point (600.0, 180.0) lies outside the 500x300 image")
    from edge.data.rig import principal_point_problem

    P = np.array(p, float)
    assert principal_point_problem(P, (375, 1242), sized=False) is None
    assert "far from the centre" in principal_point_problem(P, (188, 621), sized=False)
    assert principal_point_problem(P, (188, 621), sized=True) is None  # a stated size is trusted to the edges


def test_rig_last_row_is_exact_and_a_bom_is_read(tmp_path: Path) -> None:
    d: Any = json.loads(json.dumps(GOOD_RIG))
    d["T_lidar_to_cam"][3] = [0, 0, 0, 1.0009]  # within rounding: kept, but as 0 0 0 1
    p = tmp_path / "rig.txt"  # not .json: found by its first byte, after a byte-order mark
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps(d).encode())
    assert Rig.load(p).T_lidar_to_cam[3].tolist() == [0, 0, 0, 1]


@pytest.mark.parametrize("p2, needle", [("7_2_1.5377", "'P2' has a value that is not a number ('7_2_1.5377')"),
                                        ("7.2e+O2", "'P2' has a value that is not a number ('7.2e+O2')")])
def test_kitti_txt_values_that_are_not_plain_numbers_are_named(tmp_path: Path, p2: str, needle: str) -> None:
    """float() took 7_2_1.5377 as 721.5377; a typo dropped the line and read as "no 'P2'"."""
    text = ("P2: {} 0 609.5 44.8 0 721.5 172.8 0.2 0 0 1 0.003\nR0_rect: 1 0 0 0 1 0 0 0 1\n"
            "Tr_velo_to_cam: 0 -1 0 0 0 0 -1 0 1 0 0 0\n")
    p = tmp_path / "calib.txt"
    p.write_text(text.format(p2))
    with pytest.raises(DataError) as e:
        Rig.load(p)
    _one_line(e, "calib.txt", needle)
    p.write_text(text.format("721.5") + "P2: 1 0 0 0 0 1 0 0 0 0 1 0\n")
    with pytest.raises(DataError) as e:
        Rig.load(p)
    _one_line(e, "calib.txt", "'P2' is given twice")
    p.write_bytes(b"\xef\xbb\xbf" + ("P0: 1 0 0 0 0 1 0 0 0 0 1 0\n" + text.format("721.5")).encode())
    assert Rig.load(p).P[0, 0] == pytest.approx(721.5)


@pytest.mark.parametrize(("tr", "needle"), [
    ("0 -2 0 0 0 0 -2 0 2 0 0 0", "Tr_velo_to_cam: the rotation block is not orthonormal"),
    ("0 -1 0 1e200 0 0 -1 0 1 0 0 0", "Tr_velo_to_cam moves points by")])
def test_a_bad_kitti_extrinsic_is_named_as_the_file_names_it(tmp_path: Path, tr: str, needle: str) -> None:
    """A review: a scaled or far-off Tr_velo_to_cam was reported as 'T_lidar_to_cam', a key the file does not
    have (a raw drive's R|T and R0_rect were named right)."""
    p = tmp_path / "calib.txt"
    p.write_text("P2: 721.5 0 609.5 44.8 0 721.5 172.8 0.2 0 0 1 0.003\nR0_rect: 1 0 0 0 1 0 0 0 1\n"
                 f"Tr_velo_to_cam: {tr}\n")
    with pytest.raises(DataError) as e:
        Rig.load(p)
    _one_line(e, "calib.txt", needle)
