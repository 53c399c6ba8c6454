"""Domain-randomised lane clips: real lane geometry drawn with what real roads show and the plain renderer
(:mod:`edge.models.lane.synthetic`) does not.

Why: trained on the plain renderer only, the shipped model drew lanes into the sky, followed unpainted
asphalt/grass edges and zig-zagged across cars on real frames. Here the lane *layouts* come from
TuSimple's 2,858 labelled highway frames (``label_data_0313.json``: shapes, positions, counts and where
each lane starts), drawn in image space so the paint is exactly the label, and everything around them
is randomised: sky colour and hills or trees at the horizon, grass and dirt beside the road, unpainted
shoulders, guard rails, vehicles over the lines, shadows, solid / dashed / worn / yellow paint and Botts'
dots, lighting and colour cast, lens blur, JPEG artefacts and noise. Seeded like the plain renderer.

Only the geometry of the layouts is used, never their images. The layouts of the clips the real
validation frames come from (``tusimple_lstr_train``) and of their neighbours within
:data:`EXCLUDE_WITHIN` clip ids are left out, so validation geometry is not trained on.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from edge.errors import DataError
from edge.models.lane.synthetic import ABSENT, LaneClip

LAYOUTS_ENV = "EDGE_LANE_LAYOUTS"
#: where the layouts are by default: the real-data folder beside the repository
DEFAULT_LAYOUTS = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "real" / "lane" / \
    "tusimple_labels" / "label_data_0313.json"
#: clips of the real validation frames (tusimple_lstr_train): their layouts and neighbours are not used
VALIDATION_CLIPS = {"0313-1": (6040, 5320, 23700, 51660, 25680, 36000, 9460, 6180, 10100, 39720)}
EXCLUDE_WITHIN = 400
LABEL_ROWS = np.arange(240, 720, 10, dtype=np.float64)  # the layouts' rows, 1280x720 pixels
#: the farthest a layout's x may be from the frame (TuSimple's are 0..1279, -2 for no point): ten frames' widths
LAYOUT_X_LIMIT = 12800.0


def layouts_path() -> Path:
    """``$EDGE_LANE_LAYOUTS``, else the real-data folder (``$EDGE_REAL_DATA`` or ../shared/data/real)."""
    if LAYOUTS_ENV in os.environ:
        return Path(os.environ[LAYOUTS_ENV])
    if "EDGE_REAL_DATA" in os.environ:
        return Path(os.environ["EDGE_REAL_DATA"]) / "lane" / "tusimple_labels" / "label_data_0313.json"
    return DEFAULT_LAYOUTS


@functools.lru_cache(maxsize=2)
def load_layouts(path: str) -> np.ndarray:
    """[N, 4, 48] lane x (1280x720 pixels, NaN = absent) at rows 240..710, validation clips left out.

    Read by the TuSimple reader (:func:`~edge.models.lane.tusimple.read_tusimple`: a line at a time, every value
    finite, one-line errors naming the file and line): a parser of its own here let a byte that is not UTF-8 and an
    integer past the float range through as tracebacks blamed on ``--set``, and trained on ``Infinity`` (a review)."""
    from edge.models.lane.tusimple import read_tusimple

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: lane layouts not found (TuSimple label_data_0313.json; set {LAYOUTS_ENV})")
    out = []
    rows = LABEL_ROWS.astype(int).tolist()
    for s in read_tusimple(p):
        if s.h_samples != rows or len(s.lanes) != 4:  # another row set or lane count: not a layout of this kind
            continue
        parts = s.raw_file.split("/")
        try:
            clip, cid = parts[1], int(parts[2])
        except (IndexError, ValueError):
            raise DataError(f"{p}: raw_file {s.raw_file[:80]!r} is not a TuSimple frame name "
                            "(clips/<clip>/<id>/<frame>.jpg)") from None
        if any(abs(cid - v) <= EXCLUDE_WITHIN for v in VALIDATION_CLIPS.get(clip, ())):
            continue
        lanes = np.asarray(s.lanes, np.float64)
        far = np.abs(lanes) > LAYOUT_X_LIMIT  # 1e12 reached OpenCV's line drawing as "Bad argument", no file named
        if far.any():
            i, j = (int(v) for v in np.argwhere(far)[0])
            raise DataError(f"{p}: {s.raw_file[:80]!r}: lanes[{i}][{j}] is {lanes[i, j]:g}, far outside a 1280-wide "
                            f"frame (a layout's x is within +-{LAYOUT_X_LIMIT:g} px; -2 marks no point)")
        out.append(np.where(lanes < 0, np.nan, lanes))
    if not out:
        raise DataError(f"{p}: no usable lane layout")
    return np.stack(out)


def _bottom_x(xs: np.ndarray, ys: np.ndarray, at: float) -> float:
    """A lane's x extrapolated (straight line through its lowest points) to row ``at``."""
    ok = np.isfinite(xs)
    yv, xv = ys[ok][-6:], xs[ok][-6:]
    if len(yv) < 2:
        return float(xv[-1])
    k, b = np.polyfit(yv, xv, 1)
    return float(k * at + b)


def _x_at(xs: np.ndarray, ys: np.ndarray, at: float) -> float:
    """A lane's x at row ``at``: interpolated on its labelled rows, else a straight line through its nearest
    six points (a lane that starts below, or leaves the image above, that row)."""
    ok = np.isfinite(xs)
    yv, xv = ys[ok], xs[ok]
    if yv[0] <= at <= yv[-1]:
        return float(np.interp(at, yv, xv))
    if at > yv[-1]:
        return _bottom_x(xs, ys, at)
    k, b = np.polyfit(yv[:6], xv[:6], 1)
    return float(k * at + b)


#: the share of vehicles one lane out beyond an outer line (unlabelled lanes, the shoulder) rather than between
#: two of the layout's lines
BEYOND = 0.2


def _vehicle(lanes: np.ndarray, ys: np.ndarray, yc: float, pick: float, frac: float) -> tuple[float, float] | None:
    """Centre and width (px) of a vehicle standing at row ``yc`` in a lane of this frame's ``lanes``, ``frac`` of
    that lane's width. ``pick`` in [0, 1) chooses the lane: below ``1 - BEYOND`` one between two neighbouring
    lines (evenly), else one beyond the leftmost or rightmost line, as wide as the lane next to it. Sized by its
    lane and moving with the road, it hides the lines as real traffic does. None where the chosen lane's lines
    meet at that row (above or below its labelled rows a line is extended straight, :func:`_x_at`)."""
    xs = np.sort([_x_at(x, ys, yc) for x in lanes if np.isfinite(x).sum() >= 2])
    gaps = np.diff(xs)
    if gaps.size == 0:
        return None
    inner = 1.0 - BEYOND
    if pick < inner:
        k = min(int(pick / inner * gaps.size), gaps.size - 1)
        centre, gap = 0.5 * (xs[k] + xs[k + 1]), gaps[k]
    elif pick < 1.0 - BEYOND / 2:
        centre, gap = xs[0] - 0.5 * gaps[0], gaps[0]
    else:
        centre, gap = xs[-1] + 0.5 * gaps[-1], gaps[-1]
    if gap < 2.0:
        return None
    return float(centre), float(frac * gap)


def _vehicle_row(rng: np.random.Generator, yh: float, height: int) -> float:
    """The image row a vehicle stands on: log-uniform in its height below the horizon ``yh``, from a tenth of the
    road's rows to just below the image. On a flat road the distance is inversely proportional to that height,
    so every distance ratio (every apparent size) is as likely. Why not uniform in the row: that put 59 % of the
    vehicles in the nearest half of the road's rows (a horizon at 100 of 256), within a few car lengths and
    up to half the image wide (a truck filling the view, rare on the highways the layouts come from); on 60
    held-out clips such vehicles were in all eight the shipped model scored worst."""
    lo, hi = 0.1 * (height - yh), 1.05 * height - yh
    return float(yh + lo * (hi / lo) ** rng.random())


def _labels(lanes: np.ndarray, ys: np.ndarray, rows: np.ndarray, w: int, num_slots: int) -> np.ndarray:
    """Ego-relative slots (nearest left of the image centre = half - 1, right = half) at ``rows``."""
    out = np.full((num_slots, rows.size), ABSENT, np.float32)
    half = num_slots // 2
    bottoms = [(_bottom_x(x, ys, ys[-1]) - w / 2.0, i) for i, x in enumerate(lanes) if np.isfinite(x).sum() >= 2]
    left = sorted((b for b in bottoms if b[0] < 0), key=lambda b: -b[0])
    right = sorted((b for b in bottoms if b[0] >= 0), key=lambda b: b[0])
    slots = {half - 1 - k: i for k, (_, i) in enumerate(left[:half])}
    slots.update({half + k: i for k, (_, i) in enumerate(right[: num_slots - half])})
    for s, i in slots.items():
        x = lanes[i]
        ok = np.isfinite(x)
        j = np.clip(np.searchsorted(ys, rows, side="right") - 1, 0, len(ys) - 2)
        both = ok[j] & ok[j + 1] & (rows >= ys[0]) & (rows <= ys[-1])
        v = np.interp(rows, ys[ok], x[ok]) if ok.sum() >= 2 else np.full(rows.shape, np.nan)
        keep = both & (v >= 0) & (v < w)
        out[s, keep] = v[keep]
    return out


def _sky_and_horizon(img: np.ndarray, yh: int, rng: np.random.Generator) -> None:
    import cv2

    h, w = img.shape[:2]
    top = rng.choice([[235, 190, 140], [200, 200, 200], [150, 160, 210], [250, 220, 190]]) + rng.normal(0, 15, 3)
    low = top * rng.uniform(0.8, 1.15) + rng.normal(0, 12, 3)
    img[:yh] = np.linspace(top, low, max(yh, 1))[:yh, None, :]
    # hills / tree lines / buildings standing on the horizon
    for _ in range(int(rng.integers(1, 4))):
        col = rng.choice([[60, 100, 70], [70, 90, 100], [40, 70, 50], [120, 120, 125]]) + rng.normal(0, 12, 3)
        n = int(rng.integers(4, 12))
        xs = np.sort(rng.uniform(-0.1 * w, 1.1 * w, n))
        hts = rng.uniform(0.0, rng.uniform(0.03, 0.18), n) * h
        pts = np.concatenate([[[xs[0], yh + 2]], np.stack([xs, yh - hts], 1), [[xs[-1], yh + 2]]])
        cv2.fillPoly(img, [pts.astype(np.int32)], col.tolist())


def _paint(img: np.ndarray, x: np.ndarray, ys: np.ndarray, yh: float, scale: float, rng: np.random.Generator,
           phase: float) -> None:
    """One lane's marking along its labelled points: solid, dashed, worn, yellow or Botts' dots."""
    import cv2

    h = img.shape[0]
    kind = rng.choice(["solid", "dashed", "dashed", "dots", "double"], p=[0.3, 0.25, 0.25, 0.08, 0.12])
    colour = np.array([235, 235, 235]) if rng.random() < 0.8 else np.array([40, 190, 230])  # BGR yellow
    colour = colour * rng.uniform(0.7, 1.05) + rng.normal(0, 8, 3)
    wear = rng.uniform(0.35, 1.0)
    ok = np.isfinite(x)
    for j in range(len(ys) - 1):
        if not (ok[j] and ok[j + 1]):
            continue
        d0, d1 = 1.0 / max(ys[j] - yh, 1.0), 1.0 / max(ys[j + 1] - yh, 1.0)  # inverse depth along the road
        if kind == "dashed" and ((phase + 40.0 * h * 0.5 * (d0 + d1) * 0.01) % 1.0) > 0.4:
            continue
        if rng.random() > 0.5 + 0.5 * wear:  # worn away in places
            continue
        t = max(1, round(scale * (ys[j] - yh) / max(h - yh, 1.0) * rng.uniform(0.9, 1.1)))
        c = (colour * (0.6 + 0.4 * wear)).tolist()
        p0, p1 = (int(x[j]), int(ys[j])), (int(x[j + 1]), int(ys[j + 1]))
        if kind == "dots":
            cv2.circle(img, p0, max(1, t // 2 + 1), c, -1, cv2.LINE_AA)
        elif kind == "double":
            off = max(2, 2 * t)
            cv2.line(img, (p0[0] - off, p0[1]), (p1[0] - off, p1[1]), c, t, cv2.LINE_AA)
            cv2.line(img, (p0[0] + off, p0[1]), (p1[0] + off, p1[1]), c, t, cv2.LINE_AA)
        else:
            cv2.line(img, p0, p1, c, t, cv2.LINE_AA)


def _frame(lanes: np.ndarray, ys: np.ndarray, yh: float, h: int, w: int, look: dict, t: int,
           rng: np.random.Generator) -> np.ndarray:
    import cv2

    img = np.empty((h, w, 3), np.float32)
    yi = round(yh)
    state = np.random.default_rng(look["seed"])  # the scene's look stays fixed over the clip
    _sky_and_horizon(img, yi, state)
    ground = look["ground"]
    img[yi:] = ground + state.normal(0, 3, (h - yi, 1, 3))
    tex = cv2.resize(state.normal(0, 9, (h // 8 + 1, w // 8 + 1)).astype(np.float32), (w, h))
    img[yi:] += tex[yi:, :, None]
    # the road: between the outer lanes plus an unpainted shoulder, down to the bottom of the image
    rows = np.linspace(yh + 1, h + 5, 40)
    xs = [np.array([_bottom_x(x, ys, r) if r > np.nanmax(np.where(np.isfinite(x), ys, np.nan)) else
                    np.interp(r, ys[np.isfinite(x)], x[np.isfinite(x)]) for r in rows])
          for x in lanes if np.isfinite(x).sum() >= 2]
    if xs:
        stack = np.stack(xs)
        span = np.maximum(stack.max(0) - stack.min(0), 1.0) / max(len(xs) - 1, 1)
        lo, hi = stack.min(0) - look["shoulder"][0] * span, stack.max(0) + look["shoulder"][1] * span
        poly = np.concatenate([np.stack([lo, rows], 1), np.stack([hi, rows], 1)[::-1]])
        road = np.zeros((h, w), np.uint8)
        cv2.fillPoly(road, [np.clip(poly, -4 * w, 4 * w).astype(np.int32)], 255)
        img[road > 0] = look["asphalt"] + tex[road > 0][:, None] * 0.6
        for side, edge in ((0, lo), (1, hi)):  # guard rails on the shoulder's outer edge
            if look["rails"][side]:
                top = rows - 0.35 * np.abs(edge - (stack.min(0) if side == 0 else stack.max(0))) - 1
                pts = np.concatenate([np.stack([edge, rows], 1), np.stack([edge, top], 1)[::-1]])
                cv2.fillPoly(img, [np.clip(pts, -4 * w, 4 * w).astype(np.int32)], look["rail_colour"])
    for k, x in enumerate(lanes):
        _paint(img, x, ys, yh, look["paint_px"], np.random.default_rng(look["seed"] + 17 * k), look["phase"] + 0.3 * t)
    for yc, pick, frac, col in look["vehicles"]:  # boxes standing in the lanes, far ones first
        placed = _vehicle(lanes, ys, yc, pick, frac)
        if placed is None:
            continue
        xc, bw = placed
        bh = 0.8 * bw
        x0, y0 = int(xc - bw / 2), int(yc - bh)
        cv2.ellipse(img, (int(xc), int(yc)), (int(bw * 0.6), max(1, int(bh * 0.12))), 0, 0, 360, (20, 20, 20), -1)
        cv2.rectangle(img, (x0, y0), (int(x0 + bw), int(yc)), col, -1)
        cv2.rectangle(img, (x0, int(yc - 0.3 * bh)), (int(x0 + bw), int(yc)), (30, 30, 30), -1)
        cv2.rectangle(img, (int(x0 + 0.12 * bw), int(y0 + 0.1 * bh)), (int(x0 + 0.88 * bw), int(y0 + 0.4 * bh)),
                      (70, 60, 55), -1)
    for pts, strength in look["shadows"]:
        mask = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(mask, pts, 255)
        mask = cv2.GaussianBlur(mask, (0, 0), 3.0)
        img *= (1.0 - strength * mask.astype(np.float32)[..., None] / 255.0)
    img = (img - 128.0) * look["contrast"] + 128.0 + look["bright"] + rng.normal(0, 2)
    img *= look["cast"]
    if look["noise"] > 0:
        img += rng.normal(0, look["noise"], img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if look["blur"] > 0:
        out = cv2.GaussianBlur(out, (0, 0), look["blur"])
    if look["jpeg"]:
        _ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, look["jpeg"]])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def realistic_clip(rng: np.random.Generator, layouts: np.ndarray, *, height: int = 256, width: int = 512,
                   frames: int = 3, h_samples: np.ndarray, num_slots: int = 6, vehicles: bool = True) -> LaneClip:
    """One clip on a real lane layout (randomly mirrored, shifted, drifting over the clip) and its labels.
    ``vehicles=False`` draws the same clip (the same random draws) without its vehicles: what they cost a model
    is measured on otherwise identical clips (``benchmarks/lane_realistic_heldout.py``)."""
    base = layouts[int(rng.integers(len(layouts)))].copy()
    if rng.random() < 0.5:
        base = 1280.0 - base
    sx, sy = width / 1280.0, height / 720.0
    ys = LABEL_ROWS * sy
    first = np.nanmin(np.where(np.isfinite(base), LABEL_ROWS[None, :], np.nan)) * sy
    yh = max(2.0, first - rng.uniform(4, 30) * sy)  # where the road ends: a little above the lanes' start
    shift, drift = rng.normal(0, 40), rng.normal(0, 8)
    rows_h = np.asarray(h_samples, np.float64)
    look = {"seed": int(rng.integers(1 << 31)), "ground": rng.choice([[60, 110, 80], [70, 120, 110], [90, 120, 130],
                                                                      [50, 90, 60]]) + rng.normal(0, 12, 3),
            "asphalt": rng.uniform(70, 150) + rng.normal(0, 6, 3), "shoulder": rng.uniform(0.1, 1.0, 2),
            "rails": rng.random(2) < 0.3, "rail_colour": (rng.uniform(120, 200) + rng.normal(0, 8, 3)).tolist(),
            "paint_px": rng.uniform(14, 26) * sx, "phase": rng.random(), "contrast": rng.uniform(0.6, 1.3),
            "bright": rng.normal(0, 25), "cast": np.clip(rng.normal(1.0, 0.07, 3), 0.8, 1.2),
            "noise": rng.uniform(0, 7), "blur": rng.uniform(0.3, 1.4) if rng.random() < 0.5 else 0.0,
            "jpeg": int(rng.integers(25, 95)) if rng.random() < 0.7 else 0, "vehicles": [], "shadows": []}
    drawn = sum(np.isfinite(x).sum() >= 2 for x in base)  # the layout's lanes with at least two points
    for _ in range(int(rng.integers(0, 4))):
        if drawn < 2:
            break
        yc = _vehicle_row(rng, yh, height)
        look["vehicles"].append((yc, rng.random(), rng.uniform(0.55, 0.85),
                                 (rng.integers(20, 230, 3)).tolist()))
    look["vehicles"].sort(key=lambda v: v[0])
    if not vehicles:
        look["vehicles"].clear()
    for _ in range(int(rng.integers(0, 4))):
        y0 = rng.uniform(yh, height)
        pts = np.array([[rng.uniform(-0.2, 1.2) * width, y0], [rng.uniform(-0.2, 1.2) * width, y0],
                        [rng.uniform(-0.2, 1.2) * width, y0 + rng.uniform(5, 60) * sy],
                        [rng.uniform(-0.2, 1.2) * width, y0 + rng.uniform(5, 60) * sy]], np.int32)
        look["shadows"].append((pts, rng.uniform(0.25, 0.6)))
    imgs, labels = [], []
    for t in range(frames):
        # the car drifts sideways over the clip: lanes move most at the bottom, not at the vanishing point
        move = (shift + drift * t) * np.clip((ys - yh) / max(height - yh, 1.0), 0, None)
        lanes = base * sx + move[None, :]
        imgs.append(_frame(lanes, ys, yh, height, width, look, t, rng))
        labels.append(_labels(lanes, ys, rows_h, width, num_slots))
    return LaneClip(np.stack(imgs), np.stack(labels), rows_h.astype(np.int64))
