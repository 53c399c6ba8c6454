"""The edge-waveform/1 file format: round trip, one-line errors for every kind of bad file (checked from
the array headers before anything is inflated), fuzzed, and layouts / point-grid conversions."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.data.waveform import (
    SCHEMA,
    Layout,
    grid_from_points,
    layout,
    points_from_ranges,
    read_waveform_file,
    write_waveform_file,
)
from edge.errors import DataError

LAY = replace(layout("VLP16"), azimuths=64, bins=128)


def _frames(n: int = 2) -> np.ndarray:
    return np.random.default_rng(0).random((n, *LAY.shape)).astype(np.float16)


def test_round_trip_keeps_frames_truths_and_layout(tmp_path: Path) -> None:
    w = _frames()
    rng = np.full((2, 16, 64), np.nan, np.float32)
    rng[:, 3, 5] = 12.5
    labels = (np.random.default_rng(1).random(w.shape) > 0.9).astype(np.uint8)
    p = write_waveform_file(tmp_path / "f.npz", LAY, w, range_m=rng, labels=labels, attack=[{"on": True}, {}])
    f = read_waveform_file(p)
    assert f.layout == LAY and np.array_equal(f.waveforms, w) and f.waveforms.dtype == np.float16
    assert np.array_equal(f.range_m, rng, equal_nan=True) and np.array_equal(f.labels, labels)
    assert f.attack == [{"on": True}, {}] and len(f) == 2
    assert not list(tmp_path.glob(".*"))  # written atomically, no temp file left


def _savez(path: Path, **arrays: object) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("case", ["missing", "not_zip", "truncated", "no_schema", "wrong_schema", "layout_json",
                                  "shape", "dtype", "rank", "labels_shape", "extra", "object", "nan", "huge",
                                  "attack_not_list", "label_value", "label_wraps", "range_inf", "range_negative",
                                  "attack_text_bomb", "stored_twice"])
def test_bad_files_are_one_line_errors(tmp_path: Path, case: str) -> None:
    good = {"schema": np.array(SCHEMA), "layout": np.array(LAY.to_json()), "waveforms": _frames()}
    p = tmp_path / "bad.npz"
    if case == "missing":
        p = tmp_path / "absent.npz"
    elif case == "not_zip":
        p.write_bytes(b"hello, not a zip")
    elif case == "truncated":
        _savez(p, **good)
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    elif case == "no_schema":
        _savez(p, waveforms=good["waveforms"])
    elif case == "wrong_schema":
        _savez(p, **{**good, "schema": np.array("edge-waveform/99")})
    elif case == "layout_json":
        _savez(p, **{**good, "layout": np.array("{not json")})
    elif case == "shape":
        _savez(p, **{**good, "waveforms": _frames()[:, :, :32]})
    elif case == "dtype":
        _savez(p, **{**good, "waveforms": _frames().astype(np.float64)})
    elif case == "rank":
        _savez(p, **{**good, "waveforms": _frames()[0]})
    elif case == "labels_shape":
        _savez(p, **good, labels=np.zeros((2, 16, 64), np.uint8))
    elif case == "extra":
        _savez(p, **good, secret=np.zeros(3))
    elif case == "object":
        buf = io.BytesIO()
        np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        _savez(p, **good)
        with zipfile.ZipFile(p, "a") as z:
            z.writestr("attack.npy", buf.getvalue())
    elif case == "attack_not_list":  # before: "TypeError: object of type 'int' has no len()"
        _savez(p, **good, attack=np.array("5"))
    elif case in ("label_value", "label_wraps"):  # 3 fell out of the 3x3 confusion; 86 wrapped (86 * 3 = 2 mod 256)
        labels = np.zeros(good["waveforms"].shape, np.uint8)
        labels[1, 2, 3, 4] = 3 if case == "label_value" else 86
        _savez(p, **good, labels=labels)
    elif case in ("range_inf", "range_negative"):
        rng = np.full((2, 16, 64), np.nan, np.float32)
        rng[0, 1, 2] = np.inf if case == "range_inf" else -4.0
        _savez(p, **good, range_m=rng)
    elif case == "attack_text_bomb":  # 64 MiB + of NULs after a valid JSON list: text members were read whole,
        # unchecked (a 1 GiB one in a 7 MB file took 2.2 GB)
        _savez(p, **good, attack=np.array("[]" + "\0" * (16 << 20)))
        with zipfile.ZipFile(tmp_path / "small.npz", "w", zipfile.ZIP_DEFLATED) as z:
            for name in ("schema", "layout", "waveforms"):
                z.writestr(f"{name}.npy", _npy(good[name]))
            z.writestr("attack.npy", _npy(np.array("[]" + "\0" * (16 << 20) + "x")))
        p = tmp_path / "small.npz"
    elif case == "stored_twice":  # 'waveforms' and 'waveforms.npy': the checks saw the last, numpy read the first
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("waveforms", _npy(np.zeros((2, 3), np.int64)))
            for name in ("schema", "layout", "waveforms"):
                z.writestr(f"{name}.npy", _npy(good[name]))
    elif case == "nan":
        w = _frames()
        w[0, 0, 0, 0] = np.nan
        _savez(p, **{**good, "waveforms": w})
    elif case == "huge":  # a header claiming 2^40 samples in a tiny stored file: refused before any allocation
        from numpy.lib import format as npf

        hdr = io.BytesIO()
        npf.write_array_header_1_0(hdr, {"descr": "<f2", "fortran_order": False, "shape": (1 << 10, 16, 1 << 15, 128)})
        with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as z:
            z.writestr("schema.npy", _npy(np.array(SCHEMA)))
            z.writestr("layout.npy", _npy(np.array(LAY.to_json())))
            z.writestr("waveforms.npy", b"\x93NUMPY" + hdr.getvalue()[6:] + b"\x00" * 64)
    with pytest.raises(DataError) as e:
        read_waveform_file(p)
    msg = str(e.value)
    assert "\n" not in msg and p.name in msg, msg


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 4000), flip=st.integers(0, 4000), byte=st.integers(0, 255))
def test_fuzzed_files_never_escape_as_anything_but_data_error(tmp_path: Path, cut: int, flip: int, byte: int) -> None:
    good = tmp_path / "g.npz"
    if not good.exists():
        write_waveform_file(good, LAY, _frames(1))
    data = bytearray(good.read_bytes())
    if flip < len(data):
        data[flip] = byte
    p = tmp_path / "f.npz"
    p.write_bytes(bytes(data[: max(cut, 1)] if cut < len(data) else data))
    try:
        read_waveform_file(p)
    except DataError as e:
        assert "\n" not in str(e)


def test_layouts_and_their_beams() -> None:
    vlp = layout("vlp-16")
    assert vlp.shape == (16, 1800, 800) and sorted(vlp.elevations_deg) == list(range(-15, 16, 2))
    assert layout("HDL64E").shape == (64, 4400, 800) and layout("hdl_32e").channels == 32
    assert vlp.max_range_m == pytest.approx(119.9, abs=0.1)
    d = vlp.directions()
    assert d.shape == (16, 1800, 3) and np.allclose(np.linalg.norm(d, axis=-1), 1.0)
    assert Layout.from_json(vlp.to_json()) == vlp
    with pytest.raises(DataError, match="unknown LiDAR layout"):
        layout("HDL128")
    # VLP-16 fires its lasers one after another: 2.304 us apart within a 55.6 us azimuth step
    t = vlp.fire_time_ns(np.array([0, 1, 0]), np.array([0, 0, 1]))
    assert t.tolist() == [0.0, 2304.0, pytest.approx(1e9 / 18000)]


def test_points_and_grid_round_trip() -> None:
    lay = replace(layout("VLP16"), azimuths=360)
    rng = np.random.default_rng(2).uniform(2, 100, (16, 360))
    rng[rng > 90] = np.nan
    pts = points_from_ranges(rng, lay)
    back, _ = grid_from_points(np.stack([pts["x"], pts["y"], pts["z"]], 1), lay)
    assert np.allclose(back, rng, equal_nan=True, atol=1e-4)


def test_a_file_of_zeros_that_inflates_a_thousandfold_is_refused(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A ~1 MB deflated file of zeros declared 1 GB of waveforms, was accepted and took 1.3 GB of RSS."""
    from edge.data import arrays

    monkeypatch.setattr(arrays, "BOMB_FLOOR", 1 << 20)  # the same rule at a test's size
    zeros = np.zeros((8, *LAY.shape), np.float16)  # 8 frames of 16 x 64 x 800
    p = tmp_path / "bomb.npz"
    np.savez_compressed(p, schema=np.array(SCHEMA), layout=np.array(LAY.to_json()), waveforms=zeros)
    with pytest.raises(DataError, match=r"bomb\.npz: 'waveforms' inflates \d+:1"):
        read_waveform_file(p)
    noisy = np.random.default_rng(0).random(zeros.shape).astype(np.float16)  # a recording's noise floor
    np.savez_compressed(p, schema=np.array(SCHEMA), layout=np.array(LAY.to_json()), waveforms=noisy)
    assert read_waveform_file(p).waveforms.shape == zeros.shape


def _neon_folder(root: Path, waveforms: list[list[str]], geo: list[tuple[str, str]] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    width = max((len(r) for r in waveforms), default=3)
    (root / "return_waveforms.csv").write_text(",".join(f"V{i + 1}" for i in range(width)) + "\n"
                                               + "".join(",".join(r) + "\n" for r in waveforms))
    geo = geo if geo is not None else [("10", "5")] * len(waveforms)
    (root / "geolocation.csv").write_text("fr,or\n" + "".join(f"{a},{b}\n" for a, b in geo))
    return root


def test_neon_reader_names_the_bad_cell(tmp_path: Path) -> None:
    """A non-numeric cell was a bare ValueError naming neither file nor row; an empty file was "0 waveforms but 0
    geolocation rows"; inf and 1e308 were taken as samples (the first return then timed at bin 0)."""
    from edge.data.waveform import read_neon
    from edge.errors import DataError

    ok = read_neon(_neon_folder(tmp_path / "ok", [["0", "5", "NA", "7"], ["3", "", "4"]]))
    assert ok.waveforms.shape == (2, 4) and ok.waveforms[0, 1] == 5 and np.isnan(ok.waveforms[0, 0])
    cases = {"abc": r"return_waveforms\.csv: row 2, column 3: 'abc' is not a number",
             "inf": r"row 2, column 3: 'inf' is not a digitizer count",
             "1e308": r"row 2, column 3: '1e308' is not a digitizer count",
             "nan": r"row 2, column 3: 'nan' is not a digitizer count"}
    for cell, needle in cases.items():
        with pytest.raises(DataError, match=needle):
            read_neon(_neon_folder(tmp_path / cell, [["1", "2", "3"], ["1", "2", cell]]))
    with pytest.raises(DataError, match=r"return_waveforms\.csv: no waveforms"):
        read_neon(_neon_folder(tmp_path / "empty", []))
    with pytest.raises(DataError, match=r"geolocation\.csv: a non-finite 'fr' or 'or' value \(row 2\)"):
        read_neon(_neon_folder(tmp_path / "geo", [["1"], ["2"]], [("1", "2"), ("inf", "2")]))


# (no surrogates: a file cannot hold them; a drawn one failed the test's own write_text, not the reader)
CELL = st.characters(blacklist_characters=',\n\r"', blacklist_categories=("Cs",))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(st.lists(st.text(alphabet=CELL, max_size=8), min_size=1, max_size=4), min_size=1, max_size=3))
def test_neon_reader_parses_or_says_what_is_wrong(tmp_path: Path, cells: list[list[str]]) -> None:
    import shutil

    from edge.data.waveform import read_neon
    from edge.errors import DataError

    root = tmp_path / "neon"
    shutil.rmtree(root, ignore_errors=True)
    try:
        shots = read_neon(_neon_folder(root, cells))
    except DataError as e:
        assert "\n" not in str(e) and str(root) in str(e)
    else:
        finite = shots.waveforms[np.isfinite(shots.waveforms)]
        assert (np.abs(finite) <= 2.0**31).all()


def test_a_neon_row_far_wider_than_a_waveform_is_refused(tmp_path: Path) -> None:
    """Found by a review: every row is padded to the widest, so one row of 100,000 commas took 1.8 GB."""
    from edge.data.waveform import MAX_NEON_BINS, read_neon
    from edge.errors import DataError

    rows = [["1"]] * 3 + [["1"] * (MAX_NEON_BINS + 1)]
    with pytest.raises(DataError, match=rf"return_waveforms\.csv: row 5 has {MAX_NEON_BINS + 1} samples"):
        read_neon(_neon_folder(tmp_path / "wide", rows))


def test_an_npz_of_many_members_is_named_in_a_short_line(tmp_path: Path) -> None:
    """Found by a review: an .npz of 100,000 members that is not a recording gave an 889 KB error line (every name)."""
    from edge.data.waveform import read_waveform_file
    from edge.errors import DataError

    p = tmp_path / "many.npz"
    np.savez(p, **{f"m{i:03d}": np.zeros(1) for i in range(50)})
    with pytest.raises(DataError) as e:
        read_waveform_file(p)
    assert str(e.value).endswith("has m000, m001, m002, m003, m004, m005, m006, m007 and 42 more)"), str(e.value)


@pytest.mark.parametrize(("first", "second"), [("waveforms", "waveforms.npy"), ("waveforms.npy", "waveforms.npy")])
def test_a_member_stored_twice_is_named_as_stored(tmp_path: Path, first: str, second: str) -> None:
    """A review: one name stored twice ('waveforms.npy' and 'waveforms.npy') was reported as "stored twice (as
    'waveforms' and 'waveforms.npy')", names the archive does not hold."""
    import warnings

    good = {"schema": np.array(SCHEMA), "layout": np.array(LAY.to_json()), "waveforms": _frames()}
    p = tmp_path / "twice.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name it writes
        with zipfile.ZipFile(p, "w") as z:
            z.writestr(first, _npy(np.zeros((2, 3), np.int64)))
            for name in ("schema", "layout", "waveforms"):
                z.writestr(f"{name}.npy", _npy(good[name]))
    with pytest.raises(DataError, match=rf"member 'waveforms' is stored twice \(as '{first}' and '{second}'\)"):
        read_waveform_file(p)
