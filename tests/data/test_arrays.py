"""edge.data.arrays: headers without inflating, rows streamed, every malformed file a DataError."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.data.arrays import npy_header, npz_headers, read_rows
from edge.errors import DataError


@pytest.mark.parametrize("compressed", [False, True])
def test_rows_match_numpy(tmp_path: Path, compressed: bool) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((9, 3, 4)).astype(np.float32)
    b = rng.integers(0, 9, (9, 2)).astype(np.int64)
    path = tmp_path / "x.npz"
    (np.savez_compressed if compressed else np.savez)(path, a=a, b=b)
    heads = npz_headers(path)
    assert heads["a"].shape == (9, 3, 4) and heads["a"].dtype == np.float32 and heads["b"].row_bytes == 16
    for rows in ([0], [8, 2, 2, 5], list(range(9))):
        assert np.array_equal(read_rows(path, "a", rows), a[rows])
        assert np.array_equal(read_rows(path, "b", rows), b[rows])
    np.save(tmp_path / "a.npy", a)
    assert npy_header(tmp_path / "a.npy").shape == (9, 3, 4)
    assert np.array_equal(read_rows(tmp_path / "a.npy", None, [7, 1]), a[[7, 1]])


def test_malformed_files(tmp_path: Path) -> None:
    obj = tmp_path / "o.npz"
    np.savez(obj, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match=r"o\.npz: member 'x': holds Python objects"):
        npz_headers(obj)
    (tmp_path / "t.txt").write_text("hello")
    with pytest.raises(DataError, match=r"t\.txt: not a calib set \(not an \.npz archive"):
        npz_headers(tmp_path / "t.txt", what="calib set")
    np.save(tmp_path / "a.npy", np.zeros((100, 10), np.float32))
    cut = tmp_path / "cut.npy"
    cut.write_bytes((tmp_path / "a.npy").read_bytes()[:2000])
    with pytest.raises(DataError, match=r"cut\.npy: declares 4000 bytes of data but the file is 2000 bytes"):
        npy_header(cut)
    with pytest.raises(DataError, match=r"cut\.npy: truncated"):
        read_rows(cut, None, [99])
    with pytest.raises(DataError, match=r"row 100 asked, it has 100"):
        read_rows(tmp_path / "a.npy", None, [100])


def _valid_npz() -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, frame=np.arange(24, dtype=np.float32).reshape(4, 6), ids=np.arange(4))
    return buf.getvalue()


VALID = _valid_npz()


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(0, len(VALID)))
def test_mutated_npz_is_a_data_error_or_reads(tmp_path: Path, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(VALID)
    for pos, val in edits:
        data[pos] = val
    path = tmp_path / "m.npz"
    path.write_bytes(bytes(data[:cut]))
    try:
        heads = npz_headers(path)
        for name, h in heads.items():
            if h.shape:
                read_rows(path, name, list(range(min(h.shape[0], 3))))
    except DataError as e:  # anything else escaping (BadZipFile, zlib.error, ValueError) fails the test
        assert "\n" not in str(e) and str(path) in str(e)


def test_headers_report_inflated_and_stored_bytes(tmp_path: Path) -> None:
    """An .npz member's header carries what it inflates to and what it takes in the archive, so a caller
    can refuse a deflate bomb before inflating anything; a plain .npy has no ratio."""
    zeros, noise = np.zeros((256, 256), np.float32), np.random.default_rng(0).standard_normal((64, 64))
    np.savez_compressed(tmp_path / "a.npz", zeros=zeros, noise=noise)
    heads = npz_headers(tmp_path / "a.npz")
    import zipfile

    with zipfile.ZipFile(tmp_path / "a.npz") as zf:
        sizes = {i.filename[:-4]: (i.file_size, i.compress_size) for i in zf.infolist()}
    for name, h in heads.items():
        assert (h.inflated, h.stored) == sizes[name]
    assert heads["zeros"].ratio > 100 > 2 > heads["noise"].ratio > 1
    np.save(tmp_path / "b.npy", zeros)
    assert npy_header(tmp_path / "b.npy").ratio is None


@pytest.mark.parametrize("where", ["central", "local"])
def test_a_member_name_flagged_utf8_that_is_not_is_one_line(tmp_path: Path, where: str) -> None:
    """Found by a seeded run of the test above (1 in ~60 seeds): a member name flagged UTF-8 whose bytes are not
    escaped zipfile as a UnicodeDecodeError traceback, from opening the archive (the central directory's name) or
    the member (its local header's)."""
    buf = io.BytesIO()
    np.savez(buf, frame=np.zeros((2, 3), np.float32))
    data = bytearray(buf.getvalue())
    sig, flag_at, name_at = ((b"PK\x01\x02", 8, 46) if where == "central" else (b"PK\x03\x04", 6, 30))
    at = data.index(sig)
    data[at + flag_at + 1] |= 0x08  # bit 11 of the (little-endian) general-purpose flags: the name is UTF-8
    data[at + name_at] = 0x80  # ... and its first byte cannot start a UTF-8 character
    p = tmp_path / "bad.npz"
    p.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"bad\.npz"):
        npz_headers(p)


@pytest.mark.parametrize("shape", [(2**49, 3, 64, 128), (2**25, 2**24, 3, 64, 128), (2**61, 2**3)])
def test_a_shape_past_int64_is_refused_not_wrapped(tmp_path: Path, shape: tuple[int, ...]) -> None:
    """numpy's int64 product of these shapes wraps to 0 or below, which passed every size check: the calibration
    index over 2**49 samples was a MemoryError (a review). Sizes are Python integers: the limit refuses them."""
    from numpy.lib import format as npf

    buf = io.BytesIO()
    npf.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    assert int(np.prod(shape, dtype=np.int64)) * 4 <= 0  # what the check used to compute
    (tmp_path / "big.npy").write_bytes(buf.getvalue())
    with pytest.raises(DataError, match=r"big\.npy: declares .* bytes \(limit"):
        npy_header(tmp_path / "big.npy")
    import zipfile

    with zipfile.ZipFile(tmp_path / "big.npz", "w") as z:
        z.writestr("frame.npy", buf.getvalue())
    with pytest.raises(DataError, match=r"big\.npz: member 'frame'.* bytes"):
        npz_headers(tmp_path / "big.npz")


def test_an_archive_cut_short_is_said_so(tmp_path: Path) -> None:
    """A review: an .npz cut short (its directory, at the end, gone) read "not an .npz archive"."""
    np.savez(tmp_path / "whole.npz", x=np.arange(1000.0))
    data = (tmp_path / "whole.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.npz: not a array file \(an \.npz archive cut short or damaged: "):
        npz_headers(tmp_path / "cut.npz")
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(DataError, match=r"text\.npz: not a array file \(not an \.npz archive: "):
        npz_headers(tmp_path / "text.npz")
