"""Full-waveform LiDAR data: sensor layouts, the on-disk waveform format, real NEON waveforms.

A full-waveform frame is a float array ``[channels, azimuth steps, time bins]``: for every laser
firing (channel = laser row, azimuth step) the digitised return signal in 1 ns bins after the
firing. Time of flight t (ns) is range ``R = t * C_M_PER_NS / 2`` (0.1499 m per bin, 800 bins =
120 m). Layouts give each channel's elevation and the firing schedule (which channels fire at the same
instant), which is what a jammer's pulse train is timed against.

On disk (``.npz``, never pickle; schema ``edge-waveform/1``):

==============  ======================  =====================================================
array           dtype, shape            meaning
==============  ======================  =====================================================
``schema``      str, ()                 ``"edge-waveform/1"``
``layout``      str, ()                 JSON of :class:`Layout` (name, elevations, azimuths, ...)
``waveforms``   float16/32 [F, C, A, T] the frames
``range_m``     float32 [F, C, A]       optional ground truth: true range, NaN = no return
``labels``      uint8 [F, C, A, T]      optional per-bin labels (0 background, 1 echo, 2 attack)
``attack``      str, ()                 optional JSON list (per frame) of the attack's parameters
==============  ======================  =====================================================

Every mismatch (missing member, wrong dtype or shape, truncated or non-zip file, sizes beyond the
limits) is a one-line DataError naming the file; array headers are checked before any data is read,
so a small forged file cannot make us allocate gigabytes.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.data import arrays
from edge.data.arrays import ArrayHeader, npz_headers
from edge.errors import DataError, first_line

SCHEMA = "edge-waveform/1"
C_M_PER_NS = 0.299792458
RANGE_PER_BIN_M = C_M_PER_NS / 2  # 1 ns bins
#: what a waveform file may hold before anything is read (headers are checked against it)
MAX_FILE_BYTES = 4 << 30
MAX_BINS = 4096
MAX_CHANNELS = 256
MAX_AZIMUTHS = 8192
#: the widest digitiser bin a layout may declare (ns): 150 m of range per bin, far past any full-waveform sensor's
MAX_BIN_NS = 1000.0


@dataclass(frozen=True)
class Layout:
    """A spinning LiDAR's sampling grid and firing schedule.

    ``elevations_deg`` per channel (row 0 = the first entry); ``azimuths`` steps per revolution at
    ``rotation_hz``; ``bins`` of ``bin_ns`` after each firing; channels with the same ``fire_group``
    fire at the same instant, groups fire ``group_ns`` apart within one azimuth step.
    """

    name: str
    elevations_deg: tuple[float, ...]
    azimuths: int
    bins: int = 800
    bin_ns: float = 1.0
    rotation_hz: float = 10.0
    fire_group: tuple[int, ...] = ()
    group_ns: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        c = len(self.elevations_deg)
        if not 1 <= c <= MAX_CHANNELS or not 1 <= self.azimuths <= MAX_AZIMUTHS or not 8 <= self.bins <= MAX_BINS:
            raise DataError(f"layout '{self.name}': {c} channels x {self.azimuths} azimuths x {self.bins} bins is out "
                            f"of range (1..{MAX_CHANNELS} x 1..{MAX_AZIMUTHS} x 8..{MAX_BINS})")
        if self.fire_group and len(self.fire_group) != c:
            raise DataError(f"layout '{self.name}': fire_group has {len(self.fire_group)} entries for {c} channels")
        if self.fire_group and not all(0 <= g < c for g in self.fire_group):
            raise DataError(f"layout '{self.name}': fire_group entries are group numbers 0..{c - 1}")
        if not all(math.isfinite(e) and -90 <= e <= 90 for e in self.elevations_deg):
            raise DataError(f"layout '{self.name}': elevations_deg must be finite angles in -90..90 degrees")
        for key in ("bin_ns", "rotation_hz", "group_ns"):  # NaN and infinity fail these comparisons too
            v = getattr(self, key)
            if not (math.isfinite(v) and (v >= 0 if key == "group_ns" else v > 0)):
                raise DataError(f"layout '{self.name}': {key} must be a finite number "
                                f"{'>= 0' if key == 'group_ns' else '> 0'}, got {v}")
        if self.bin_ns > MAX_BIN_NS:  # the range of the last bin is bins x bin_ns: 2e305 ns overflowed to inf
            raise DataError(f"layout '{self.name}': bin_ns {self.bin_ns} is not a digitiser's bin (at most "
                            f"{MAX_BIN_NS:g} ns, {MAX_BIN_NS * RANGE_PER_BIN_M:g} m of range per bin)")
        if not 0.1 <= self.rotation_hz <= 100:  # a replay paces frames by it: 1e-6 Hz slept 11 days a frame
            raise DataError(f"layout '{self.name}': rotation_hz {self.rotation_hz} is not a spinning LiDAR's "
                            "(0.1..100 Hz)")

    @property
    def channels(self) -> int:
        return len(self.elevations_deg)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.channels, self.azimuths, self.bins

    @property
    def step_ns(self) -> float:
        """Time between two azimuth steps (ns)."""
        return 1e9 / (self.rotation_hz * self.azimuths)

    @property
    def max_range_m(self) -> float:
        return self.bins * self.bin_ns * RANGE_PER_BIN_M

    def azimuth_deg(self) -> np.ndarray:
        """Azimuth of each step (deg, 0 = +x forward, counter-clockwise), step centres."""
        return (np.arange(self.azimuths) + 0.5) * 360.0 / self.azimuths

    def fire_time_ns(self, channels: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """When each (channel, azimuth step) fires, from the start of the revolution (ns)."""
        group = np.asarray(self.fire_group or range(self.channels))[channels]
        return steps * self.step_ns + group * self.group_ns

    def directions(self) -> np.ndarray:
        """Unit vectors [C, A, 3] of every beam (x forward, y left, z up)."""
        el = np.deg2rad(np.asarray(self.elevations_deg, np.float64))[:, None]
        az = np.deg2rad(self.azimuth_deg())[None, :]
        return np.stack(np.broadcast_arrays(np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)), -1)

    def to_json(self) -> str:
        d = asdict(self)
        d["elevations_deg"] = list(self.elevations_deg)
        d["fire_group"] = list(self.fire_group)
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str, where: str = "layout") -> Layout:
        """Parse :meth:`to_json`'s text; any problem is one DataError line starting with ``where`` and naming
        the key (a forged file can hold 1e999, NaN or arrays nested past the recursion limit)."""
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as e:
            why = "nested too deeply" if isinstance(e, RecursionError) else first_line(e)
            raise DataError(f"{where}: not a waveform layout ({why})") from None
        if not isinstance(d, dict):
            raise DataError(f"{where}: not a waveform layout (a JSON object, got {type(d).__name__})")
        for key in ("name", "elevations_deg", "azimuths"):
            if key not in d:
                raise DataError(f"{where}: not a waveform layout (no '{key}')")
        els, groups, extra = d["elevations_deg"], d.get("fire_group", []), d.get("extra", {})
        if not isinstance(els, list) or not isinstance(groups, list):
            raise DataError(f"{where}: '{'elevations_deg' if not isinstance(els, list) else 'fire_group'}' "
                            "must be a JSON list")
        if not isinstance(extra, dict):
            raise DataError(f"{where}: 'extra' must be a JSON object")
        if not isinstance(d["name"], str):
            raise DataError(f"{where}: 'name' must be a JSON string")
        try:
            return cls(name=d["name"], elevations_deg=tuple(_number(where, "elevations_deg", v) for v in els),
                       azimuths=_whole(where, "azimuths", d["azimuths"]),
                       bins=_whole(where, "bins", d.get("bins", 800)),
                       bin_ns=_number(where, "bin_ns", d.get("bin_ns", 1.0)),
                       rotation_hz=_number(where, "rotation_hz", d.get("rotation_hz", 10.0)),
                       fire_group=tuple(_whole(where, "fire_group", v) for v in groups),
                       group_ns=_number(where, "group_ns", d.get("group_ns", 0.0)), extra=dict(extra))
        except DataError as e:
            msg = str(e)
            raise DataError(msg if msg.startswith(where) else f"{where}: {msg}") from None


def _number(where: str, key: str, v: Any) -> float:
    """A finite JSON number as a float; DataError naming ``key`` (a huge integer overflows, 1e999 parses as inf)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        try:
            f = float(v)
        except OverflowError:
            f = math.inf
        if math.isfinite(f):
            return f
    raise DataError(f"{where}: '{key}' must be a finite number, got {str(v)[:40]}")


def _whole(where: str, key: str, v: Any) -> int:
    """A whole JSON number (3 or 3.0) as an int; DataError naming ``key`` for 1e999, NaN, 2.5 or text."""
    f = _number(where, key, v)
    if f != int(f):
        raise DataError(f"{where}: '{key}' must be a whole number, got {f:g}")
    return int(v) if isinstance(v, int) else int(f)


def _vlp16() -> Layout:
    # firing order -15, 1, -13, 3, ..., 15 deg; 16 lasers fired one after another, 2.304 us apart
    el = tuple(float(v) for v in np.array([[-15 + 2 * i, 1 + 2 * i] for i in range(8)]).ravel())
    return Layout("VLP16", el, 1800, fire_group=tuple(range(16)), group_ns=2304.0)


def _hdl32e() -> Layout:
    el = tuple(float(v) for v in np.round(np.linspace(-30.67, 10.67, 32), 3))
    return Layout("HDL32E", el, 2160, fire_group=tuple(range(32)), group_ns=1152.0)


def _hdl64e() -> Layout:
    # two blocks of 32 lasers firing in pairs (upper + lower block simultaneously)
    el = tuple(float(v) for v in np.round(np.concatenate([np.linspace(2.0, -8.33, 32), np.linspace(-8.87, -24.9, 32)]),
                                          3))
    return Layout("HDL64E", el, 4400, fire_group=tuple(list(range(32)) * 2), group_ns=1440.0)


LAYOUTS = {"VLP16": _vlp16, "HDL32E": _hdl32e, "HDL64E": _hdl64e}


def layout(name: str) -> Layout:
    """A named layout (VLP16, HDL32E, HDL64E; case and dashes ignored)."""
    key = "".join(ch for ch in str(name).upper() if ch.isalnum())
    if key not in LAYOUTS:
        raise DataError(f"unknown LiDAR layout '{name}' (known: {', '.join(LAYOUTS)})")
    return LAYOUTS[key]()


# ------------------------------------------------------------------------------------ points and grids


def points_from_ranges(ranges: np.ndarray, lay: Layout, intensity: np.ndarray | None = None) -> np.ndarray:
    """Ranges [C, A] (NaN or <= 0 = no return) -> POINT_DTYPE points in the sensor frame."""
    from edge.data.frame import POINT_DTYPE

    r = np.asarray(ranges, np.float64)
    ok = np.isfinite(r) & (r > 0)
    xyz = lay.directions()[ok] * r[ok][:, None]
    pts = np.zeros(int(ok.sum()), POINT_DTYPE)
    pts["x"], pts["y"], pts["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    pts["ring"] = np.nonzero(ok)[0]
    if intensity is not None:
        pts["intensity"] = np.asarray(intensity)[ok]
    return pts


def grid_from_points(xyz: np.ndarray, lay: Layout, intensity: np.ndarray | None = None,
                     max_angle_deg: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Resample a point cloud onto the layout's beams: (range [C, A] NaN = none, intensity [C, A]).

    Each point goes to the nearest channel elevation (within ``max_angle_deg``, default half the
    largest gap between channels) and its azimuth step; the nearest point of a cell wins.
    """
    p = np.asarray(xyz, np.float64).reshape(-1, 3)
    r = np.linalg.norm(p, axis=1)
    keep = (r > 0.5) & (r < lay.max_range_m)
    p, r = p[keep], r[keep]
    inten = np.asarray(intensity, np.float64).reshape(-1)[keep] if intensity is not None else np.ones(len(r))
    el = np.rad2deg(np.arcsin(np.clip(p[:, 2] / r, -1, 1)))
    az = np.rad2deg(np.arctan2(p[:, 1], p[:, 0])) % 360.0
    els = np.asarray(lay.elevations_deg)
    order = np.argsort(els)
    pos = np.clip(np.searchsorted(els[order], el), 1, len(els) - 1)
    lo, hi = order[pos - 1], order[pos]
    ch = np.where(np.abs(els[lo] - el) <= np.abs(els[hi] - el), lo, hi)
    gap = max_angle_deg if max_angle_deg is not None else max(np.diff(np.sort(els)).max() / 2, 0.1)
    ok = np.abs(els[ch] - el) <= gap
    step = np.minimum((az / 360.0 * lay.azimuths).astype(np.int64), lay.azimuths - 1)
    ch, step, r, inten = ch[ok], step[ok], r[ok], inten[ok]
    rng = np.full((lay.channels, lay.azimuths), np.nan)
    out_i = np.zeros((lay.channels, lay.azimuths))
    cell = ch * lay.azimuths + step
    order = np.lexsort((r, cell))  # by cell, nearest first
    first = np.ones(len(order), bool)
    first[1:] = cell[order][1:] != cell[order][:-1]
    sel = order[first]
    rng.reshape(-1)[cell[sel]] = r[sel]
    out_i.reshape(-1)[cell[sel]] = inten[sel]
    return rng, out_i


# ------------------------------------------------------------------------------------ files


@dataclass
class WaveformFile:
    """A waveform file read and checked: frames [F, C, A, T] (+ optional truths)."""

    path: Path
    layout: Layout
    waveforms: np.ndarray
    range_m: np.ndarray | None = None
    labels: np.ndarray | None = None
    attack: list[Any] | None = None

    def __len__(self) -> int:
        return int(self.waveforms.shape[0])


def write_waveform_file(path: str | os.PathLike[str], lay: Layout, waveforms: np.ndarray, *,
                        range_m: np.ndarray | None = None, labels: np.ndarray | None = None,
                        attack: list[Any] | None = None) -> Path:
    """Write frames in the schema above, atomically (a temp name, renamed when complete)."""
    from edge.files import atomic_path

    w = np.asarray(waveforms)
    if w.ndim == 3:
        w = w[None]
    if w.ndim != 4 or w.shape[1:] != lay.shape:
        raise DataError(f"{path}: waveforms of shape {list(w.shape)} do not fit layout {lay.name} {list(lay.shape)}")
    arrays: dict[str, Any] = {"schema": np.array(SCHEMA), "layout": np.array(lay.to_json()),
                              "waveforms": w.astype(np.float16 if w.dtype == np.float16 else np.float32)}
    if range_m is not None:
        arrays["range_m"] = np.asarray(range_m, np.float32).reshape(w.shape[:3])
    if labels is not None:
        arrays["labels"] = np.asarray(labels, np.uint8).reshape(w.shape)
    if attack is not None:
        arrays["attack"] = np.array(json.dumps(attack))
    p = Path(path)
    with atomic_path(p, error=DataError) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return p


_DTYPES = {"schema": ("U",), "layout": ("U",), "attack": ("U",), "waveforms": ("<f2", "<f4"),
           "range_m": ("<f4",), "labels": ("|u1",)}


#: the text members (schema, layout JSON, the per-frame attack JSON) are kilobytes; numpy stores 4 bytes a character
MAX_TEXT_BYTES = 64 << 20


def _check_ratio(p: Path, waves: ArrayHeader) -> None:
    """The waveforms' deflate-bomb check (:func:`edge.data.arrays.bomb_ratio`; labels are not checked: their shape
    equals the waveforms', so they stay within what those may take)."""
    if waves.inflated is None or waves.stored is None:
        return
    ratio = arrays.bomb_ratio(waves.inflated, waves.stored)
    if ratio is not None:
        raise DataError(f"{p}: 'waveforms' inflates {ratio}:1 ({waves.inflated} bytes from {waves.stored}); "
                        f"recorded waveforms do not compress like that (more than {arrays.MAX_RATIO}:1 is refused)")


def is_waveform_file(path: str | os.PathLike[str]) -> bool:
    """An .npz in this format (what `edge run --source waveform:FILE` replays), not a feeds archive or another
    .npz: its ``schema`` array says so. False for anything unreadable (the reader that takes it says what is
    wrong). Only the ``schema`` member is looked at, and read only when it inflates to the size of this format's (a
    few characters): one that inflated to 3 GB was read whole to be compared (peak RSS 3 GB from a 2.9 MB file);
    the other members are the reader's to judge (one over its size limit made the file "not a recording")."""
    import io
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            entries = [i for i in zf.infolist() if i.filename in ("schema.npy", "schema")]
            # one entry, read through the ZipInfo checked here (numpy's loader preferred a raw 'schema' beside
            # 'schema.npy', and a name stored twice opens its last copy: a 400 MB one, read whole)
            if len(entries) != 1 or entries[0].file_size > 4 * (len(SCHEMA) + 64) + 256:  # a header + a short string
                return False
            with zf.open(entries[0]) as f:
                data = f.read(entries[0].file_size + 1)
        return str(np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)) == SCHEMA
    except Exception:  # not an archive, or a damaged one
        return False


def read_waveform_file(path: str | os.PathLike[str]) -> WaveformFile:
    """Read and check a waveform file (see the module docstring); DataError on any mismatch."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such waveform file" if not p.exists() else f"{p}: not a file")
    heads = npz_headers(p, what="waveform file", limit=MAX_FILE_BYTES)  # nothing inflated
    for key in ("schema", "layout", "waveforms"):
        if key not in heads:
            names = sorted(heads)
            some = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
            raise DataError(f"{p}: not an {SCHEMA} file (no '{key}' array; has {some or 'none'})")
    for key, head in heads.items():
        dtype = head.dtype
        allowed = _DTYPES.get(key)
        if allowed is None:
            raise DataError(f"{p}: unexpected array '{key}' (schema {SCHEMA}: {', '.join(_DTYPES)})")
        if dtype.str not in allowed and dtype.kind not in [a for a in allowed if len(a) == 1]:
            raise DataError(f"{p}: '{key}' is {dtype}, the schema wants {' or '.join(allowed)}")
    w_shape = heads["waveforms"].shape
    if len(w_shape) != 4 or 0 in w_shape:
        raise DataError(f"{p}: 'waveforms' has shape {list(w_shape)}, the schema wants [frames, C, A, T]")
    total = math.prod(w_shape) * heads["waveforms"].dtype.itemsize
    if total > MAX_FILE_BYTES:
        raise DataError(f"{p}: 'waveforms' would take {total} bytes (limit {MAX_FILE_BYTES})")
    _check_ratio(p, heads["waveforms"])
    for key in ("schema", "layout", "attack"):  # read whole below: a 1 GiB string of NULs deflated to 1 MB
        if key in heads and heads[key].nbytes > MAX_TEXT_BYTES:
            raise DataError(f"{p}: '{key}' is {heads[key].nbytes} bytes of text; the schema's are small (limit "
                            f"{MAX_TEXT_BYTES})")
    try:
        with np.load(p, allow_pickle=False) as z:
            schema = str(z["schema"])
            if schema != SCHEMA:
                raise DataError(f"{p}: schema '{schema[:40]}', this edge-deploy reads '{SCHEMA}'")
            lay = Layout.from_json(str(z["layout"]), where=f"{p}: layout")
            if w_shape[1:] != lay.shape:
                raise DataError(f"{p}: 'waveforms' has frames of {list(w_shape[1:])}, its layout {lay.name} says "
                                f"{list(lay.shape)}")
            for key, want in (("range_m", w_shape[:3]), ("labels", w_shape)):
                if key in heads and heads[key].shape != want:
                    raise DataError(f"{p}: '{key}' has shape {list(heads[key].shape)}, expected {list(want)}")
            waves = z["waveforms"]
            rng = z["range_m"] if "range_m" in heads else None
            labels = z["labels"] if "labels" in heads else None
            attack = json.loads(str(z["attack"])) if "attack" in heads else None
            if attack is not None and not isinstance(attack, list):
                raise DataError(f"{p}: 'attack' must be a JSON list (an entry per frame), got {type(attack).__name__}")
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{p}: truncated or corrupt waveform file ({first_line(e)})") from None
    except RecursionError:  # an 'attack' JSON nested past the recursion limit
        raise DataError(f"{p}: 'attack' is not readable JSON (nested too deeply)") from None
    if not np.isfinite(waves).all():
        raise DataError(f"{p}: 'waveforms' holds NaN or infinite samples")
    # truths are scored as given: a label past 2 fell out of the 3x3 confusion or wrapped into another class
    if labels is not None and (bad := int(np.count_nonzero(labels > 2))):
        raise DataError(f"{p}: 'labels' holds {bad} values other than 0 (background), 1 (echo) and 2 (attack), "
                        f"e.g. {int(labels[labels > 2].flat[0])}")
    if rng is not None and (bad := int(np.count_nonzero(np.isinf(rng) | (rng < 0)))):
        raise DataError(f"{p}: 'range_m' holds {bad} negative or infinite ranges (NaN means no return)")
    return WaveformFile(p, lay, waves, rng, labels, attack)


# ------------------------------------------------------------------------------------ NEON


@dataclass
class NeonShots:
    """Airborne full waveforms (digitiser counts, 1 ns bins, 0 = padding) and their reference bins."""

    waveforms: np.ndarray  # [N, T] float64, NaN where padded
    first_return_bin: np.ndarray  # [N] the geolocation table's first-return reference bin ("fr")
    outgoing_bin: np.ndarray  # [N] the outgoing pulse's reference bin ("or")


#: the most samples a NEON return waveform row may have (they hold a few hundred 1 ns bins)
MAX_NEON_BINS = 4096


def read_neon(folder: str | os.PathLike[str]) -> NeonShots:
    """``return_waveforms.csv`` + ``geolocation.csv`` of a NEON sample folder (see shared/MANIFEST)."""
    import csv

    root = Path(folder)
    try:
        with open(root / "return_waveforms.csv", newline="") as f:
            rows = list(csv.reader(f))[1:]
        with open(root / "geolocation.csv", newline="") as f:
            geo = list(csv.DictReader(f))
    except OSError as e:
        raise DataError(f"{root}: NEON waveform files missing ({e.strerror}: {e.filename})") from None
    if not rows:
        raise DataError(f"{root}/return_waveforms.csv: no waveforms (a header at most)")
    if len(rows) != len(geo):
        raise DataError(f"{root}: {len(rows)} waveforms but {len(geo)} geolocation rows")
    width = max(len(r) for r in rows)
    if width > MAX_NEON_BINS:  # every row is padded to the widest: one row of 100,000 commas took 1.8 GB
        row = next(i for i, r in enumerate(rows) if len(r) == width)
        raise DataError(f"{root}/return_waveforms.csv: row {row + 2} has {width} samples; a NEON waveform has a few "
                        f"hundred (at most {MAX_NEON_BINS} are read)")
    w = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        w[i, : len(r)] = [_neon_sample(root / "return_waveforms.csv", i, j, v) for j, v in enumerate(r)]
    w[w == 0] = np.nan  # zero is padding
    try:
        fr = np.array([float(g["fr"]) for g in geo])
        out = np.array([float(g["or"]) for g in geo])
    except (KeyError, ValueError, TypeError) as e:
        raise DataError(f"{root}/geolocation.csv: no numeric 'fr'/'or' columns ({first_line(e)})") from None
    if not (np.isfinite(fr).all() and np.isfinite(out).all()):
        raise DataError(f"{root}/geolocation.csv: a non-finite 'fr' or 'or' value (row "
                        f"{int(np.flatnonzero(~(np.isfinite(fr) & np.isfinite(out)))[0]) + 1})")
    return NeonShots(w, fr, out)


#: the largest magnitude a NEON waveform sample (a digitizer count) may have
NEON_MAX_SAMPLE = 2.0**31


def _neon_sample(path: Path, row: int, col: int, v: str) -> float:
    """One cell of a NEON waveform CSV: a digitizer count, or NaN where empty / "NA" (padding); anything else is
    the file's one-line error naming the row (1 = the first after the header) and column."""
    if v in ("", "NA"):
        return math.nan
    try:
        x = float(v)
    except ValueError:
        raise DataError(f"{path}: row {row + 1}, column {col + 1}: {v[:40]!r} is not a number") from None
    if not math.isfinite(x) or abs(x) > NEON_MAX_SAMPLE:
        raise DataError(f"{path}: row {row + 1}, column {col + 1}: {v[:40]!r} is not a digitizer count")
    return x
