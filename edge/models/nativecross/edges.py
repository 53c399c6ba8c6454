"""Edge alignment: the extrinsic refined on the host by lining the scan's depth edges up with the image's edges.

Why: the learned steps correct rotation but leave the translation where it started (on synthetic rigs the
lateral and forward components keep a slope of 0.98 against their start), and on real KITTI frames they
leave 7 deg. Where the scan jumps in depth (an object's side against what is behind it, its top against
the sky or a far wall, the crease where a wall meets the ground) the camera sees an edge too, and those
places move differently under each of the six degrees of freedom: near edges by parallax, all of them by
rotation. So the stage maximises, over the extrinsic, how much image edge lies under the scan's edges.

- **Scan edges** (:func:`scan_edges`): a range image (rows: the scan's rings; without ring numbers, rings
  found where the azimuth wraps in the file's order, as KITTI's scans are stored; else elevation
  quantiles; columns at the scan's own azimuth step, each ring at its own azimuth phase),
  then the foreground side of every horizontal jump (> ``min_jump`` m beyond the step the surface itself
  continues with, so a wall seen obliquely is no edge), every vertical jump to a beam at least ``RATIO``
  times as far (the ground's own range growth between beams is not an edge, nor flat ground going on flat
  towards the horizon) and every crease (flat below, steep above, no jump between: where a wall or a car
  meets the road). Each edge is
  placed halfway between the two beams it lies between (direction at the foreground range; for a crease
  the midpoint): the true edge is somewhere between the
  beams, and on KITTI 000114 placing it on the foreground beam moved the optimum 8-9 cm from the true
  extrinsic (halfway, with the rules above: 2.2 cm and 0.18 deg).
- **Image edges** (:func:`image_maps`): colour gradients, the horizontal one for the scan's vertical
  silhouettes and the vertical one for its horizontal edges (so a facade's texture of the other orientation
  does not attract them), each normalised by its 99th percentile, blurred and minus a 4x wider blur (a
  region dense with texture scores ~0 everywhere, so points are not drawn into it).
- **Search** (:func:`align`): a pattern search (each degree of freedom +/- a step, the step halved when
  nothing improves) on maps blurred from coarse to fine; on the coarse maps only the rotation moves
  (there a translation's effect is below the blur), on the fine ones all six, within a trust region
  around the stage's start. The pose that scores highest on the finest maps is kept, over chains from:
  the two starts (the steps' result and the frame's own starting guess); the ``GRID_KEEP`` best
  rotations of a coarse grid around both (``GRID_DEG`` per axis, scored on the coarsest maps: where the
  steps leave 10 deg or more, neither start's chain found the right rotation in 3 of 100 KITTI
  perturbations); and, from the best of those, restarts moved ``RESTART_M`` along each camera axis,
  searched from the ``RESTART_BLUR`` down with all six free (13 of 100 KITTI perturbations ended 25-37
  cm off with the rotation compensating, scoring below the truth: a local optimum in translation); and
  the *held* chains: from the first start (the steps' result) with its pitch and roll kept (rotations about
  the camera's x and z axes), yaw and translation searched, from it and from the same restarts around its
  result, each then released (all six free on the two finest blurs, within ``RELEASE_TRUST`` of it). Why:
  the learned steps get pitch and roll right on scenes like those they were trained on (median 0.26 /
  0.24 deg on synthetic rigs) and leave yaw and translation, which the edges fix; where a scene has few
  silhouettes (synthetic rigs: 0.15x KITTI's) the free search traded the height against a pitch and a
  roll, ending 20-80 cm off while scoring above the truth. The score still decides between all chains,
  so where the steps' pitch and roll are wrong (real frames: several degrees) the held chains score low
  (at most half the best on KITTI 000114) and are not kept.

No weights: nothing here is trained or exported; the program ``refine_edges`` runs it after the steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.data.rig import pixels
from edge.data.se3 import exp_se3

#: a vertical neighbour is across an edge only when at least this many times as far (ground: ~1.1-1.3)
RATIO = 1.5
#: slopes (rise over run) below / above a crease point
FLAT, STEEP = 0.3, 2.0
#: the widths the search's blurs are given in are pixels of a 1242-px-wide image (KITTI's)
REF_WIDTH = 1242.0
#: rotation-only above this blur (px at REF_WIDTH)
ROTATION_ONLY_ABOVE = 5.0
#: the search's blurs, coarse to fine (px at REF_WIDTH), and its trust region around each start
BLURS = (24.0, 12.0, 6.0, 3.0, 1.5)
TRUST_DEG, TRUST_M = 15.0, 0.6
#: scan edges kept (heaviest first) and the widest image read (a wider camera image is resized to this)
POINTS, MAX_WIDTH = 8192, 1280
#: the coarse rotation grid around each start (deg per axis) and how many of its best rotations are searched
GRID_DEG, GRID_KEEP = (-10.0, -5.0, 0.0, 5.0, 10.0), 4
#: the restarts' translation offset (m, along each camera axis) and the widest blur they search from (px)
RESTART_M, RESTART_BLUR = 0.2, 12.0
#: the held chains (module doc): the degrees of freedom they search (yaw and translation; the first start's pitch and
#: roll, rotations about the camera's x and z axes, kept), and the trust region of the release that follows each
#: (all six free on the two finest blurs, within this of the held result: deg, m)
HELD_DOFS, RELEASE_TRUST = (1, 3, 4, 5), (1.0, 0.1)
#: pattern-search steps per px of blur and the smallest steps
ROT_STEP_DEG, TRANS_STEP_M = 0.1, 0.015
MIN_ROT_DEG, MIN_TRANS_M = 0.02, 0.002


@dataclass(frozen=True)
class ScanEdges:
    """Edge points of one scan (LiDAR frame, m), their weights, and whether each is a vertical silhouette."""

    xyz: np.ndarray
    weight: np.ndarray
    vertical: np.ndarray

    def __len__(self) -> int:
        return len(self.xyz)

    def packed(self, n: int) -> np.ndarray:
        """[n, 5] float32 (x, y, z, weight, vertical): the ``n`` heaviest, zero-padded (one feed shape)."""
        order = np.argsort(-self.weight, kind="stable")[:n]
        out = np.zeros((n, 5), np.float32)
        out[: len(order), :3] = self.xyz[order]
        out[: len(order), 3] = self.weight[order]
        out[: len(order), 4] = self.vertical[order]
        return out

    @classmethod
    def unpack(cls, a: np.ndarray) -> ScanEdges:
        a = np.asarray(a, np.float64)
        keep = a[:, 3] > 0
        return cls(a[keep, :3], a[keep, 3], a[keep, 4] > 0.5)


def _rows(xyz: np.ndarray, ring: np.ndarray | None, rows: int) -> np.ndarray:
    """Each point's range-image row, rows ordered by elevation."""
    r = np.linalg.norm(xyz, axis=1)
    el = np.arcsin(np.clip(xyz[:, 2] / np.maximum(r, 1e-9), -1, 1))
    if ring is not None and len(np.unique(ring)) > 1:
        seg = np.unique(ring, return_inverse=True)[1]
    else:
        az = np.arctan2(xyz[:, 1], xyz[:, 0])
        starts = np.zeros(len(r), np.int64)
        starts[np.flatnonzero(np.abs(np.diff(az)) > np.pi) + 1] = 1
        seg = np.cumsum(starts)
        if not 8 <= seg[-1] + 1 <= 256:  # not stored ring by ring: elevation quantiles
            seg = np.empty(len(r), np.int64)
            seg[np.argsort(el, kind="stable")] = (np.arange(len(r)) * rows) // len(r)
    n = int(seg.max()) + 1
    count = np.bincount(seg, minlength=n)
    mean_el = np.bincount(seg, el, minlength=n) / np.maximum(count, 1)  # the mean elevation orders the rings
    return np.argsort(np.argsort(mean_el, kind="stable"), kind="stable")[seg]


def _columns(az: np.ndarray, row: np.ndarray) -> int:
    """Range-image columns at the scan's own azimuth spacing (the median step within a ring), so that a ring's
    neighbouring returns are neighbouring cells whatever the sensor's resolution."""
    order = np.lexsort((az, row))
    d = np.diff(az[order])[np.diff(row[order]) == 0]
    d = d[d > 1e-6]
    return int(np.clip(round(2 * np.pi / float(np.median(d))), 256, 8192)) if len(d) else 2048


def scan_edges(xyz: np.ndarray, ring: np.ndarray | None = None, *, rows: int = 64,
               min_jump: float = 0.3) -> ScanEdges:
    """The depth edges of a scan ``xyz`` [N, 3] (LiDAR frame) with optional ring numbers (module doc)."""
    xyz = np.asarray(xyz, np.float64)
    keep = np.isfinite(xyz).all(1) & (np.linalg.norm(xyz, axis=1) > 0.5)
    xyz = xyz[keep]
    if len(xyz) == 0:
        return ScanEdges(np.zeros((0, 3)), np.zeros(0), np.zeros(0, bool))
    row = _rows(xyz, None if ring is None else np.asarray(ring)[keep], rows)
    r = np.linalg.norm(xyz, axis=1)
    az = np.arctan2(xyz[:, 1], xyz[:, 0])
    cols = _columns(az, row)
    x = (az + np.pi) / (2 * np.pi) * cols
    # each ring on the grid at its own azimuth phase: a sensor fires its lasers at offset azimuths, and where a
    # ring's returns sat half a cell off the grid two of them rounded into one cell and the next stayed empty, so
    # a wall's neighbours were two steps apart and a far oblique facade was all "edges"
    ang = 2 * np.pi * (x - np.floor(x))
    n_rows = int(row.max()) + 1
    phase = np.arctan2(np.bincount(row, np.sin(ang), n_rows), np.bincount(row, np.cos(ang), n_rows))
    col = np.round(x - phase[row] / (2 * np.pi)).astype(np.int64) % cols
    R = np.full((n_rows, cols), np.nan)
    order = np.argsort(-r, kind="stable")  # the nearest return of a cell wins
    R[row[order], col[order]] = r[order]
    U = np.full((*R.shape, 3), np.nan)
    U[row[order], col[order]] = xyz[order] / r[order, None]
    P = R[..., None] * U
    ok = np.isfinite(R)
    found: list[tuple[np.ndarray, np.ndarray, bool]] = []

    def between(mask: np.ndarray, nb_u: np.ndarray, d: np.ndarray, vertical: bool) -> None:
        u = U[mask] + nb_u[mask]
        found.append((R[mask, None] * u / np.linalg.norm(u, axis=1, keepdims=True),
                      np.sqrt(np.clip(d[mask], 0, 3.0)), vertical))

    with np.errstate(invalid="ignore"):
        for dc in (1, -1):  # the neighbours left and right in the ring
            d = np.roll(R, dc, 1) - R
            # the jump beyond the step the surface itself continues with (on a wall seen obliquely each step grows
            # by about the same amount, and a plain threshold found "edges" all over far facades)
            slope_r = np.clip(np.nan_to_num(R - np.roll(R, -dc, 1)), 0, None)
            between(ok & (d - slope_r > min_jump), np.roll(U, dc, 1), np.nan_to_num(d), True)  # slope_r >= 0
        up, down = np.roll(P, -1, 0), np.roll(P, 1, 0)
        up[-1], down[0] = np.nan, np.nan

        def slope(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            dd = b - a
            return np.abs(dd[..., 2]) / np.maximum(np.hypot(dd[..., 0], dd[..., 1]), 1e-3)

        up_r = np.roll(R, -1, 0)
        up_r[-1] = np.nan
        d = up_r - R
        # not where flat ground goes on flat: towards the horizon the ground's range grows by more than RATIO from
        # beam to beam, and those "tops" drew lines across open road on synthetic rigs (a pitch error laid them
        # on the horizon's haze: from the truth the search drifted out of 2 deg / 5 cm on 10 of 40, 8 without)
        below, above = slope(down, P), slope(P, up)
        top = ok & (d > min_jump) & (up_r > RATIO * R) & ~((below < FLAT) & (above < FLAT))
        between(top, np.roll(U, -1, 0), np.nan_to_num(d), False)

        down_r = np.roll(R, 1, 0)
        down_r[0] = np.nan
        # flat below, steep above, and no depth jump to the beam below (that is a silhouette's top, seen from behind)
        crease = ok & (above > STEEP) & (below < FLAT) & (down_r * RATIO > R)
    found.append((0.5 * (P[crease] + down[crease]), np.ones(int(crease.sum())), False))
    return ScanEdges(np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found]),
                     np.concatenate([np.full(len(f[0]), f[2]) for f in found]))


def gradients(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(horizontal, vertical) colour gradient magnitudes of a BGR image, each normalised by its 99th percentile
    and capped at 1: what every blur of :func:`image_maps` starts from (computed once per image)."""
    import cv2

    f = cv2.GaussianBlur(np.asarray(img, np.float32), (0, 0), 1.0)
    out = []
    for dx, dy in ((1, 0), (0, 1)):
        g = np.abs(cv2.Sobel(f, cv2.CV_32F, dx, dy))
        g = g.max(-1) if g.ndim == 3 else g
        out.append(np.minimum(g / (float(np.percentile(g, 99)) + 1e-6), 1.0))
    return out[0], out[1]


def image_maps(img: np.ndarray | tuple[np.ndarray, np.ndarray], sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(horizontal-gradient map, vertical-gradient map) of a BGR image, or of its :func:`gradients`, at blur
    ``sigma`` px (module doc)."""
    import cv2

    grads = img if isinstance(img, tuple) else gradients(img)
    m = [cv2.GaussianBlur(g, (0, 0), sigma) - cv2.GaussianBlur(g, (0, 0), 4 * sigma) for g in grads]
    return m[0], m[1]


def score(maps: tuple[np.ndarray, np.ndarray], edges: ScanEdges, T: np.ndarray, P: np.ndarray) -> float:
    """Weighted mean of the image-edge map under the scan's edges projected by ``T`` (off-image edges: 0)."""
    import cv2

    if len(edges) == 0:
        return 0.0
    pix = pixels(edges.xyz, np.asarray(P, np.float64) @ np.asarray(T, np.float64))
    front = pix[2] > 1.0
    zs = np.where(front, pix[2], 1.0)
    u, v = pix[0] / zs - 0.5, pix[1] / zs - 0.5  # pixel i's centre is at i + 0.5
    h, w = maps[0].shape
    inside = front & (u >= 0) & (u < w - 1) & (v >= 0) & (v < h - 1)
    total = 0.0
    for m, sel in ((maps[0], inside & edges.vertical), (maps[1], inside & ~edges.vertical)):
        if sel.any():
            vals = cv2.remap(m, u[sel].astype(np.float32)[None], v[sel].astype(np.float32)[None], cv2.INTER_LINEAR)
            total += float(vals[0] @ edges.weight[sel])
    return total / float(edges.weight.sum())


def _search(maps: tuple[np.ndarray, np.ndarray], edges: ScanEdges, T: np.ndarray, P: np.ndarray,
            anchor: np.ndarray, rot_step: float, trans_step: float, dofs: range, trust: tuple[float, float]
            ) -> np.ndarray:
    best = score(maps, edges, T, P)
    step = np.array([rot_step] * 3 + [trans_step] * 3)
    floor = np.array([np.deg2rad(MIN_ROT_DEG)] * 3 + [MIN_TRANS_M] * 3)
    active = np.zeros(6, bool)
    active[list(dofs)] = True
    moves: dict[tuple[int, float], np.ndarray] = {}  # exp of each single-axis move, made once per step size
    cos_trust = np.cos(trust[0])  # the rotation to the anchor is within trust[0] where its cosine is above this
    while (step[active] >= floor[active]).any():
        improved = False
        for k in np.flatnonzero(active):
            for sign in (1.0, -1.0):
                key = (int(k), float(sign * step[k]))
                if key not in moves:
                    xi = np.zeros(6)
                    xi[k] = key[1]
                    moves[key] = exp_se3(xi)
                cand = moves[key] @ T
                cos = (float(np.sum(cand[:3, :3] * anchor[:3, :3])) - 1.0) / 2.0  # trace(R_c R_a^T) = 1 + 2 cos
                if cos < cos_trust or np.linalg.norm(cand[:3, 3] - anchor[:3, 3]) > trust[1]:
                    continue
                s = score(maps, edges, cand, P)
                if s > best:
                    best, T, improved = s, cand, True
        if not improved:
            step = step / 2
    return T


def _chain(maps: dict[float, tuple[np.ndarray, np.ndarray]], edges: ScanEdges, T: np.ndarray, P: np.ndarray,
           anchor: np.ndarray, blurs: tuple[float, ...], trust: tuple[float, float], six_above: float,
           free: tuple[int, ...] = tuple(range(6))) -> np.ndarray:
    """The pattern search over ``blurs`` (coarse to fine) from ``T``: the rotation's degrees of freedom among ``free``
    above ``six_above`` px of blur, every one of ``free`` at blurs up to it."""
    for b in blurs:
        dofs = [k for k in free if k < 3 or b <= six_above]
        T = _search(maps[b], edges, T, P, anchor, np.deg2rad(ROT_STEP_DEG * b), TRANS_STEP_M * b, dofs, trust)
    return T


def _grid(maps: tuple[np.ndarray, np.ndarray], edges: ScanEdges, starts: list[np.ndarray], P: np.ndarray
          ) -> list[tuple[np.ndarray, int]]:
    """The ``GRID_KEEP`` best-scoring rotations of the grid around each start, with the start each turns."""
    g = np.deg2rad(np.asarray(GRID_DEG))
    turns = [exp_se3(np.array([a, b, c, 0.0, 0.0, 0.0])) for a in g for b in g for c in g]
    turned = [(k, R @ T0) for k, T0 in enumerate(starts) for R in turns]
    cands = [(score(maps, edges, T, P), k, T) for k, T in turned]
    cands.sort(key=lambda c: -c[0])  # stable: ties keep the grid's order
    return [(T, k) for _, k, T in cands[:GRID_KEEP]]


def _restarts(T: np.ndarray) -> list[np.ndarray]:
    """``T`` moved ``RESTART_M`` both ways along each camera axis (the restarts' starts)."""
    return [exp_se3(sign * move) @ T for move in np.eye(6)[3:] * RESTART_M for sign in (1.0, -1.0)]


#: which chain the kept pose came from (the record's "start")
FROM = ("steps", "start", "grid", "restart", "held")


def align(img: np.ndarray, edges: ScanEdges, starts: list[np.ndarray], P: np.ndarray, *,
          blurs: tuple[float, ...] = BLURS, trust_deg: float = TRUST_DEG, trust_m: float = TRUST_M
          ) -> tuple[np.ndarray, dict[str, Any]]:
    """The extrinsic that best lines ``edges`` up with ``img``'s edges, searched from ``starts`` (the first two
    are recorded as "steps" and "start"), grid rotations around them, translation restarts and the chains that
    hold the first start's pitch and roll (module doc);
    and a record: the score of the first start and of the result, which chain won (an index into ``FROM``),
    the edges used. Every chain keeps within the trust region around the start it came from."""
    scale = img.shape[1] / REF_WIDTH
    trust = (np.deg2rad(trust_deg), trust_m)
    grads = gradients(img)
    maps = {b: image_maps(grads, b * scale) for b in blurs}
    P = np.asarray(P, np.float64)
    starts = [np.asarray(T0, np.float64) for T0 in starts]
    fine = maps[blurs[-1]]
    results = []  # (score on the finest maps, pose, which chain, the start it is anchored to)
    chains = [(T0, min(k, 1), k) for k, T0 in enumerate(starts)]
    chains += [(T, 2, k) for T, k in _grid(maps[blurs[0]], edges, starts, P)]
    for T0, kind, k in chains:
        T = _chain(maps, edges, T0, P, starts[k], blurs, trust, ROTATION_ONLY_ABOVE)
        results.append((score(fine, edges, T, P), T, kind, k))
    _, T_best, _, k_best = max(results, key=lambda r: r[0])
    restart_blurs = tuple(b for b in blurs if b <= RESTART_BLUR)
    for T in _restarts(T_best):
        T = _chain(maps, edges, T, P, starts[k_best], restart_blurs, trust, RESTART_BLUR)
        results.append((score(fine, edges, T, P), T, 3, k_best))
    release = (np.deg2rad(RELEASE_TRUST[0]), RELEASE_TRUST[1])
    held = _chain(maps, edges, starts[0], P, starts[0], blurs, trust, ROTATION_ONLY_ABOVE, HELD_DOFS)
    helds = [held] + [_chain(maps, edges, T, P, starts[0], restart_blurs, trust, ROTATION_ONLY_ABOVE, HELD_DOFS)
                      for T in _restarts(held)]  # restarts around the held result, held too
    for T in helds:
        results.append((score(fine, edges, T, P), T, 4, 0))
        T = _chain(maps, edges, T, P, T, blurs[-2:], release, RESTART_BLUR)  # then all six, close to it
        results.append((score(fine, edges, T, P), T, 4, 0))
    best = max(range(len(results)), key=lambda i: results[i][0])  # the first of equal scores
    s, T, kind, _ = results[best]
    return T, {"score_before": round(score(fine, edges, starts[0], P), 5), "score": round(s, 5), "start": kind,
               "edges": len(edges)}
