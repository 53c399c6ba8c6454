"""``.npz`` / ``.npy`` files a user gave us, read without trusting them.

``np.load`` inflates a whole member before anyone can look at its shape: a 3.7 MB ``.npz`` of zeros
that declares 4.3 GB is 4.3 GB of RSS. Here the ``.npy`` headers are read first (shape, dtype,
order; nothing inflated), object arrays are refused (they need pickle), declared sizes are checked
against a limit, and :func:`read_rows` streams a member and keeps only the rows asked for, so what
a calibration set costs in memory is what is used, whatever the file declares.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import numpy as np

from edge.errors import DataError, first_line

#: what one member may declare before it is refused (a limit on a forged header, not on real data)
MAX_MEMBER_BYTES = 8 << 30
#: a deflate bomb: more than MAX_RATIO bytes inflated per byte stored, past BOMB_FLOOR bytes (recorded sensor data
#: carries noise and does not deflate like that, torch stores its members; a file of zeros does, ~1000:1: a 1 MB
#: file inflated to 1.3 GB of RSS). One rule for every zip a user gives (waveform recordings, checkpoints)
MAX_RATIO, BOMB_FLOOR = 200, 256 << 20


def bomb_ratio(inflated: int, stored: int) -> int | None:
    """How many times ``stored`` bytes inflate, when that is a deflate bomb (:data:`MAX_RATIO`, :data:`BOMB_FLOOR`);
    None otherwise."""
    if inflated > BOMB_FLOOR and inflated > MAX_RATIO * max(stored, 1):
        return inflated // max(stored, 1)
    return None


@dataclass(frozen=True)
class ArrayHeader:
    """One array as its ``.npy`` header declares it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    #: bytes the member inflates to and bytes it takes in the archive (an ``.npz`` member's; ``None`` for
    #: a plain ``.npy``): their ratio tells a deflate bomb from recorded data before anything is inflated
    inflated: int | None = None
    stored: int | None = None

    @property
    def ratio(self) -> float | None:
        """Inflated bytes per stored byte (``None`` outside an archive)."""
        if self.inflated is None or self.stored is None:
            return None
        return self.inflated / max(self.stored, 1)

    @property
    def nbytes(self) -> int:
        # Python's integers: numpy's int64 product of a forged shape ([2**49, 3, 64, 128]) wrapped to 0 or below
        # and passed every size check (a review: MemoryError building the sample index)
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def row_bytes(self) -> int:
        """Bytes of one entry along the first axis."""
        return math.prod(self.shape[1:]) * self.dtype.itemsize


def _read_header(f: IO[bytes], where: str) -> ArrayHeader:
    from numpy.lib import format as npf

    try:
        version = npf.read_magic(f)
        shape, fortran, dtype = (npf.read_array_header_1_0(f) if version == (1, 0)
                                 else npf.read_array_header_2_0(f))
    except Exception as e:  # a truncated or forged header
        raise DataError(f"{where}: not a readable array ({first_line(e, 120)})") from None
    if dtype.hasobject:
        raise DataError(f"{where}: holds Python objects (an object array needs pickle, which is never loaded)")
    if any(int(d) < 0 for d in shape):
        raise DataError(f"{where}: negative dimension in shape {list(shape)}")
    return ArrayHeader(tuple(int(d) for d in shape), dtype, bool(fortran))


# What zipfile raises for a forged archive: besides BadZipFile/zlib errors, a flipped flag bit reads as
# "encrypted" (RuntimeError) and a flipped method field as an unsupported compression (NotImplementedError).
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, NotImplementedError,
               UnicodeDecodeError)  # a name flagged UTF-8 that is not (zipfile decodes names as it reads them)


def _member(name: str) -> str:
    return name[:-4] if name.endswith(".npy") else name


def npz_headers(path: str | os.PathLike[str], *, what: str = "array file",
                limit: int | None = None) -> dict[str, ArrayHeader]:
    """Every member's header, read without inflating any data; DataError naming the file and member for
    a file that is not an ``.npz``, a member that is not an array, an object array, or a member that
    declares more than ``limit`` bytes (default :data:`MAX_MEMBER_BYTES`; or more than a member holds)."""
    limit = MAX_MEMBER_BYTES if limit is None else limit
    p = Path(path)
    try:
        zf = zipfile.ZipFile(p)
    except ZIP_ERRORS as e:
        try:  # an archive's start without its directory (at the end): a file cut short, said so
            with open(p, "rb") as f:
                cut = f.read(4) == b"PK\x03\x04"
        except OSError:
            cut = False
        why = "an .npz archive cut short or damaged" if cut else "not an .npz archive"
        raise DataError(f"{p}: not a {what} ({why}: {first_line(e, 120)})") from None
    out = {}
    stored: dict[str, str] = {}  # member name -> the entry's name in the archive
    with zf:
        for info in zf.infolist():
            name = _member(info.filename)
            where = f"{p}: member '{name}'"
            if info.file_size > limit:
                raise DataError(f"{where} inflates to {info.file_size} bytes (limit {limit})")
            try:
                with zf.open(info) as f:
                    head = _read_header(f, where)
            except ZIP_ERRORS as e:
                raise DataError(f"{where}: truncated or corrupt ({first_line(e, 120)})") from None
            if head.nbytes > limit:
                raise DataError(f"{where} declares {list(head.shape)} {head.dtype}: {head.nbytes} bytes "
                                f"(limit {limit})")
            if head.nbytes > info.file_size:
                raise DataError(f"{where} declares {head.nbytes} bytes of data but holds {info.file_size}")
            if name in out:  # 'x' and 'x.npy' (or one name twice): the checks would see one and numpy read the other
                raise DataError(f"{where} is stored twice (as '{stored[name]}' and '{info.filename}'); an .npz holds "
                                "each array once")
            stored[name] = info.filename
            out[name] = replace(head, inflated=info.file_size, stored=info.compress_size)
    return out


def npy_header(path: str | os.PathLike[str], *, limit: int | None = None) -> ArrayHeader:
    """The header of a plain ``.npy`` file, checked like an ``.npz`` member's."""
    limit = MAX_MEMBER_BYTES if limit is None else limit
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = _read_header(f, str(p))
            start = f.tell()
    except OSError as e:
        raise DataError(f"{p}: cannot read ({e.strerror})") from None
    if head.nbytes > limit:
        raise DataError(f"{p}: declares {list(head.shape)} {head.dtype}: {head.nbytes} bytes (limit {limit})")
    if start + head.nbytes > p.stat().st_size:
        raise DataError(f"{p}: declares {head.nbytes} bytes of data but the file is {p.stat().st_size} bytes")
    return head


@contextmanager
def _open_data(p: Path, name: str | None) -> Iterator[tuple[IO[bytes], ArrayHeader, str]]:
    """The data stream of one array (an ``.npz`` member, or the ``.npy``), positioned after its header."""
    if name is None:
        with open(p, "rb") as f:
            yield f, _read_header(f, str(p)), str(p)
        return
    with zipfile.ZipFile(p) as zf:
        member = name if name in zf.namelist() else f"{name}.npy"
        where = f"{p}: member '{name}'"
        with zf.open(member) as f:
            yield f, _read_header(f, where), where


def read_rows(path: str | os.PathLike[str], name: str | None, rows: Sequence[int]) -> np.ndarray:
    """Rows ``rows`` (indices along the first axis) of one array, streamed: only those rows are ever held.

    ``name`` None reads a plain ``.npy``. A file shorter than its header declares is a DataError.
    """
    p = Path(path)
    want = sorted(set(int(r) for r in rows))
    try:
        with _open_data(p, name) as (f, head, where):
            if head.fortran and len(head.shape) > 1:
                raise DataError(f"{where}: Fortran-ordered arrays are not read (save it C-ordered)")
            if not head.shape:
                raise DataError(f"{where}: a scalar, not an array of samples")
            n, step = head.shape[0], head.row_bytes
            if want and want[-1] >= n:
                raise DataError(f"{where}: row {want[-1]} asked, it has {n}")
            out = np.empty((len(want), *head.shape[1:]), head.dtype)
            pos = 0
            for j, r in enumerate(want):
                skip = (r - pos) * step
                while skip > 0:  # compressed streams cannot seek: read and drop
                    chunk = f.read(min(skip, 1 << 22))
                    if not chunk:
                        raise DataError(f"{where}: truncated (ends before row {r})")
                    skip -= len(chunk)
                buf = f.read(step)
                if len(buf) != step:
                    raise DataError(f"{where}: truncated (row {r} is incomplete)")
                out[j] = np.frombuffer(buf, head.dtype).reshape(head.shape[1:])
                pos = r + 1
    except ZIP_ERRORS as e:
        raise DataError(f"{p}: truncated or corrupt ({first_line(e, 120)})") from None
    order = [want.index(int(r)) for r in rows]
    return out[order]
