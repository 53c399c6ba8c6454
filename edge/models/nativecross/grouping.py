"""Point grouping for NativeCross, on the host (numpy), so the exported graphs keep static shapes.

A scan becomes ``groups`` point groups of ``group_size`` points: the points the current extrinsic
guess puts in front of the camera and inside the image (with a margin, since the guess is wrong by up
to tens of pixels) are sampled to a fixed count, farthest point sampling picks the group centres (in
metres, or over viewing directions: ``group_space``) and the nearest neighbours of each centre form its
group (offsets from the centre). Everything is
deterministic for a given scan and guess, so a frame gives the same feeds on every backend.
"""

from __future__ import annotations

import numpy as np

from edge.errors import DataError


def in_view(xyz: np.ndarray, T: np.ndarray, P: np.ndarray, hw: tuple[int, int], margin: float,
            min_depth: float = 1.0, max_depth: float = 80.0) -> np.ndarray:
    """Mask of points that ``P @ T`` projects inside the image enlarged by ``margin`` (a fraction of
    its size on each side), between ``min_depth`` and ``max_depth`` metres in front of the camera."""
    from edge.data.rig import pinhole

    cam, pix = pinhole(xyz, T, P)
    z = cam[:, 2]
    ok = (z > min_depth) & (z < max_depth) & (pix[:, 2] > 1e-6)
    h, w = hw
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = pix[:, 0] / pix[:, 2], pix[:, 1] / pix[:, 2]
    ok &= (u > -margin * w) & (u < (1 + margin) * w) & (v > -margin * h) & (v < (1 + margin) * h)
    return ok


def sample_points(xyz: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Exactly ``n`` points: a seeded subset without repeats when there are more, every point plus
    seeded repeats when there are fewer (repeats change no group's shape, only its weights)."""
    rng = np.random.default_rng(seed)
    if len(xyz) >= n:
        idx = np.sort(rng.choice(len(xyz), n, replace=False))
    else:
        idx = np.concatenate([np.arange(len(xyz)), rng.integers(0, len(xyz), n - len(xyz))])
    return xyz[idx]


def farthest_points(xyz: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` farthest-point samples (start: the point farthest from the centroid).

    Squared distances are summed coordinate by coordinate over contiguous columns into preallocated
    buffers: the same float32 values, in the same order, as ``((pts - q) ** 2).sum(1)``, so the same
    samples, at a tenth of the time (128 centres of 8,192 points: 23.6 -> 2.3 ms on 1 core)."""
    pts = np.asarray(xyz, np.float32)
    cols = [np.ascontiguousarray(pts[:, j]) for j in range(pts.shape[1])]
    d = np.full(len(pts), np.inf, np.float32)
    first = int(np.argmax(((pts - pts.mean(0)) ** 2).sum(1)))
    out = np.empty(k, np.int64)
    out[0] = first
    acc, tmp = np.empty(len(pts), np.float32), np.empty(len(pts), np.float32)
    for i in range(1, k):
        q = pts[out[i - 1]]
        np.square(np.subtract(cols[0], q[0], out=acc), out=acc)
        for j in range(1, len(cols)):
            np.add(acc, np.square(np.subtract(cols[j], q[j], out=tmp), out=tmp), out=acc)
        np.minimum(d, acc, out=d)
        out[i] = int(np.argmax(d))
    return out


def knn(xyz: np.ndarray, centres: np.ndarray, k: int, stride: int = 16) -> np.ndarray:
    """[G, k] indices of each centre's ``k`` nearest points, nearest first, ties by lower index (the first ``k``
    of a stable sort of each row). The [G, N] squared distances are summed coordinate by coordinate over
    contiguous columns (the values of the [G, N, 3] broadcast's sum, without its 3x larger temporary).

    Why a prefilter: selecting from every row took most of the time (an argpartition of 128 x 8,192). Every
    ``stride``-th column's ``ceil(2k / stride)``-th smallest distance bounds about ``2k`` points of the row; when
    at least ``k`` are within it, the ``k`` nearest are among them (ties at the k-th distance included), so
    only those candidates are sorted: 12.3 -> 4.1 ms for 128 x 8,192 on the Zen 1, the same indices. A row with
    fewer candidates is sorted whole."""
    cols = [np.ascontiguousarray(xyz[:, j]) for j in range(xyz.shape[1])]
    d = np.subtract(centres[:, 0, None], cols[0][None])
    d *= d
    t = np.empty_like(d)
    for c in range(1, len(cols)):
        np.subtract(centres[:, c, None], cols[c][None], out=t)
        t *= t
        d += t
    out = np.empty((len(d), k), np.int64)
    m = -(-2 * k // stride)
    few = np.ones(len(d), bool)
    if len(d) and m < d.shape[1] // stride:
        thr = np.partition(d[:, ::stride], m - 1, axis=1)[:, m - 1:m]
        rows, cand = np.nonzero(d <= thr)  # row by row, columns ascending
        counts = np.bincount(rows, minlength=len(d))
        few = counts < k
        if not few.all():
            take = ~few[rows]
            rows, cand = rows[take], cand[take]
            counts = np.where(few, 0, counts)
            pos = np.arange(len(rows)) - (np.cumsum(counts) - counts)[rows]
            width = int(counts.max())
            cd = np.full((len(d), width), np.inf, d.dtype)
            ci = np.zeros((len(d), width), np.int64)
            cd[rows, pos] = d[rows, cand]
            ci[rows, pos] = cand
            pick = np.argsort(cd[~few], axis=1, kind="stable")[:, :k]  # the padding (inf) sorts last
            out[~few] = np.take_along_axis(ci[~few], pick, 1)
    if few.any():
        out[few] = np.argsort(d[few], axis=1, kind="stable")[:, :k]
    return out


#: where farthest point sampling measures distance: ``xyz`` (metres) or ``view`` (viewing direction from
#: the sensor + 0.1 log range)
SPACES = ("xyz", "view")


def fps_space(pts: np.ndarray, space: str) -> np.ndarray:
    """The coordinates farthest point sampling spreads the centres in. In metres (``xyz``) the far
    walls take most centres (median centre ~28 m away on synthetic streets), where a 25 cm translation
    moves a centre by ~2 pixels of the model's input; over viewing directions (``view``) the centres
    cover the image evenly, the near ground included (median ~8 m, ~5.5 pixels)."""
    if space == "xyz":
        return pts
    if space == "view":
        r = np.maximum(np.linalg.norm(pts, axis=1, keepdims=True), 1e-3)
        return np.concatenate([pts / r, 0.1 * np.log(r)], 1).astype(np.float32)
    raise DataError(f"group_space {space!r}: use one of {', '.join(SPACES)}")


def group(xyz: np.ndarray, n_points: int, groups: int, group_size: int, seed: int = 0, space: str = "xyz"
          ) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets [groups, group_size, 3], centres [groups, 3])`` float32 from points [N, 3]; centres by
    farthest point sampling in ``space`` (see :func:`fps_space`), groups by kNN in metres."""
    pts = sample_points(np.asarray(xyz, np.float32), n_points, seed)
    c_idx = farthest_points(fps_space(pts, space), groups)
    centres = pts[c_idx]
    nb = knn(pts, centres, group_size)
    return (pts[nb] - centres[:, None, :]).astype(np.float32), centres.astype(np.float32)


def view_points(xyz: np.ndarray, T: np.ndarray, P: np.ndarray, hw: tuple[int, int], cfg: dict,
                where: str = "LiDAR frame") -> np.ndarray:
    """The finite points [N, 3] (float64) the guess ``T`` puts in view (with ``view_margin``); one-line
    DataError (naming ``where``) when fewer than ``cfg['min_points']`` are (a wrong rig, an empty scan, a
    sensor facing away). The grouping and the matching stage's scan both draw from these."""
    xyz = np.asarray(xyz, np.float64).reshape(-1, 3)
    finite = np.isfinite(xyz).all(1)
    xyz = xyz[finite]
    ok = in_view(xyz, T, P, hw, float(cfg.get("view_margin", 0.15)))
    count = int(ok.sum())
    if count < int(cfg["min_points"]):
        raise DataError(f"{where}: only {count} LiDAR points are in the camera's view under the current extrinsic "
                        f"(need >= {cfg['min_points']}); is the rig right for this camera and scan?")
    return xyz[ok]


def group_view(view: np.ndarray, cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    """The groups of in-view points (:func:`view_points`)."""
    return group(view, int(cfg["points"]), int(cfg["groups"]), int(cfg["group_size"]), space=str(cfg["group_space"]))


def group_scan(xyz: np.ndarray, T: np.ndarray, P: np.ndarray, hw: tuple[int, int], cfg: dict,
               where: str = "LiDAR frame") -> tuple[np.ndarray, np.ndarray]:
    """The groups of a scan's in-view points under the guess ``T`` (:func:`view_points`, :func:`group_view`)."""
    return group_view(view_points(xyz, T, P, hw, cfg, where), cfg)
