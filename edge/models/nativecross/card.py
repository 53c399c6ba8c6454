"""NativeCross card: configs, the ``encode`` and ``step`` graphs, the refinement program, camera + LiDAR
pre/post-processing, the extrinsic metrics and the before/after projection overlay. numpy (+cv2).

Program ``refine`` (what ``edge run`` and ``edge calibrate`` execute): ``encode`` once per frame set,
then ``step`` ``iterations`` times (default 3), each time with the current extrinsic guess; the host
applies ``T <- exp(xi) T``. Program ``refine_match`` (configs with ``match_rounds`` > 0; run it by name) goes
on with ``match_rounds`` rounds of local matching: crops around each group centre at ``match_hw``, the
``match`` graph's landings, a robust pose solve on the host (:mod:`edge.models.nativecross.matching`).
The starting guess is the rig the frames carry (``edge run --calib``, a
KITTI folder's calib, or ``edge calibrate --init``); the record holds the refined ``T_lidar_to_cam``
and, when the frames know the true rig (synthetic rigs, or a KITTI folder's calib while ``--calib``
gives a perturbed start), the errors before and after.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge.data.frame import is_image, is_points
from edge.data.rig import principal_point_problem
from edge.errors import DataError
from edge.models.contract import (
    FamilyData,
    Graph,
    ImageInput,
    Metric,
    ModelCard,
    ProgramSpec,
    Sensors,
    Trainer,
    feeds_wanted,
    percent_per_sample,
)
from edge.spec import IOSpec, TensorSpec

WEIGHTS = Path(__file__).parent / "weights"
MEAN, STD = 0.45, 0.25  # image normalisation after /255 (every channel)


def _cfg(hw: tuple[int, int], widths: tuple[int, int, int], dim: int, point_widths: tuple[int, int], heads: int,
         blocks: int, harmonics: int, points: int, groups: int, group_size: int, match: dict[str, Any]
         ) -> dict[str, Any]:
    return {**match, "input_hw": list(hw), "widths": list(widths), "dim": dim, "point_widths": list(point_widths),
            "heads": heads, "blocks": blocks, "harmonics": harmonics, "points": points, "groups": groups,
            "group_size": group_size, "min_points": max(64, points // 32), "view_margin": 0.15, "iterations": 3,
            "qk_scale": 0.5, "landing": 5, "group_space": "view", "flow_solve": 1, "flow_attention": 1,
            "rot_scale": 0.1, "trans_scale": 0.1, "train_max_deg": 12.0, "train_max_m": 0.35,
            "eval_max_deg": 10.0, "eval_max_m": 0.25}


def _match(rounds: int, hw: tuple[int, int], crop: int, widths: tuple[int, int, int, int, int], hidden: int,
           points: int, max_sigma: float = 0.0) -> dict[str, Any]:
    """The local matching stage's keys: ``match_rounds`` (0: no stage), the image size crops are cut from,
    the crop side (a multiple of 16), the matcher's widths (image stem, depth stem, three stages) and head,
    the scan points the depth channel draws, the share of groups (surest first) the solve uses, the
    flow unit (px) the graph's outputs are in, the residual range (per axis) the matcher trains on, and the
    surest share's median scale (px) above which the rounds stop (``matching.confident``; 0: never)."""
    return {"match_rounds": rounds, "match_hw": list(hw), "match_crop": crop, "match_widths": list(widths),
            "match_hidden": hidden, "match_points": points, "match_keep": 0.5, "match_scale": 10.0,
            "match_train_deg": 1.5, "match_train_m": 0.25, "match_max_sigma": max_sigma}


CONFIGS: dict[str, dict[str, Any]] = {
    # seconds on 2 CPU cores; for tests
    "tiny": _cfg((64, 192), (8, 16, 32), 32, (16, 32), 2, 1, 4, 1024, 32, 16,
                 _match(2, (128, 384), 32, (8, 8, 16, 16, 32), 32, 2048)),
    # the shipped model: 128x384 input (16x48 = 768 patch tokens), 8192 points in 128 groups of 64; local
    # matching on 48x48 crops of the image at 256x768, the rounds stopping where the surest half's median
    # landing scale is above 4.25 px (chosen on 100 calibration-stream rigs: above it the rounds made most
    # rigs' translation worse, README)
    "default": _cfg((128, 384), (16, 32, 64), 64, (32, 64), 4, 1, 6, 8192, 128, 64,
                    _match(4, (256, 768), 48, (24, 16, 48, 64, 128), 256, 16384, max_sigma=4.25)),
    "large": _cfg((160, 480), (24, 48, 96), 96, (48, 96), 4, 2, 6, 8192, 128, 64,
                  _match(4, (320, 960), 48, (32, 16, 64, 96, 160), 256, 16384)),
}


def build(cfg: dict[str, Any]) -> Any:
    from edge.models.nativecross.net import NativeCross

    return NativeCross(cfg)


def _tokens(cfg: dict[str, Any]) -> int:
    h, w = cfg["input_hw"]
    return (h // 8) * (w // 8)


def io_encode(cfg: dict[str, Any]) -> IOSpec:
    h, w = cfg["input_hw"]
    g, k, d = cfg["groups"], cfg["group_size"], cfg["dim"]
    return IOSpec((TensorSpec("image", "float32", ("batch", 3, h, w), "RGB, (x/255 - 0.45) / 0.25"),
                   TensorSpec("groups", "float32", ("batch", g, k, 3), "point offsets from their group centre, m")),
                  (TensorSpec("img_tokens", "float32", ("batch", _tokens(cfg), d), "patch tokens (stride 8)"),
                   TensorSpec("pt_tokens", "float32", ("batch", g, d), "one token per point group")))


def io_step(cfg: dict[str, Any]) -> IOSpec:
    g, d = cfg["groups"], cfg["dim"]
    return IOSpec((TensorSpec("img_tokens", "float32", ("batch", _tokens(cfg), d)),
                   TensorSpec("pt_tokens", "float32", ("batch", g, d)),
                   TensorSpec("centres", "float32", ("batch", g, 3), "group centres, LiDAR frame, m"),
                   TensorSpec("T", "float32", ("batch", 4, 4), "current LiDAR-to-camera guess"),
                   TensorSpec("P", "float32", ("batch", 3, 4), "projection to the model input's pixels")),
                  (TensorSpec("xi", "float32", ("batch", 6), "se(3) increment: rotation vector, translation"),))


def io_match(cfg: dict[str, Any]) -> IOSpec:
    g, c = cfg["groups"], cfg["match_crop"]
    return IOSpec((TensorSpec("crops", "float32", ("batch", g, 4, c, c),
                              "per group centre: BGR / 255 and 4 / depth of the scan under the guess, at match_hw"),),
                  (TensorSpec("flow", "float32", ("batch", g, 3),
                              "the centre's true landing from the crop centre (px / match_scale), log scale"),))


def example_match(cfg: dict[str, Any], batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    g, c = cfg["groups"], cfg["match_crop"]
    x = rng.uniform(0, 1, (batch, g, 4, c, c)).astype(np.float32)
    x[:, :, 3] *= rng.random((batch, g, c, c)) < 0.1  # the depth channel is sparse
    return {"crops": x}


def _example_geometry(cfg: dict[str, Any], batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Centres in front of a forward camera, a KITTI-like projection and a perturbed extrinsic."""
    from edge.data.se3 import perturbation
    from edge.models.nativecross.rigsim import LIDAR_TO_CAM_AXES

    h, w = cfg["input_hw"]
    g = cfg["groups"]
    x = rng.uniform(4, 40, (batch, g))
    c = np.stack([x, rng.uniform(-0.6, 0.6, (batch, g)) * x, rng.uniform(-1.7, 2.0, (batch, g))], -1)
    T = np.tile(np.eye(4), (batch, 1, 1))
    T[:, :3, :3] = LIDAR_TO_CAM_AXES
    T = perturbation(rng, 10, 0.25, batch) @ T
    P = np.tile(np.array([[0.58 * w, 0, w / 2, 0], [0, 0.6 * w, 0.46 * h, 0], [0, 0, 1, 0]]), (batch, 1, 1))
    return {"centres": c.astype(np.float32), "T": T.astype(np.float32), "P": P.astype(np.float32)}


def example_encode(cfg: dict[str, Any], batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    h, w = cfg["input_hw"]
    g, k = cfg["groups"], cfg["group_size"]
    return {"image": rng.normal(0, 1, (batch, 3, h, w)).astype(np.float32),
            "groups": rng.normal(0, 0.3, (batch, g, k, 3)).astype(np.float32)}


def example_step(cfg: dict[str, Any], batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    d, g = cfg["dim"], cfg["groups"]
    return {"img_tokens": rng.normal(0, 1, (batch, _tokens(cfg), d)).astype(np.float32),
            "pt_tokens": rng.normal(0, 1, (batch, g, d)).astype(np.float32), **_example_geometry(cfg, batch, rng)}


# ---------------------------------------------------------------------------------------------
# the program


class RefineRunner:
    """``encode`` once, ``step`` ``iterations`` times, ``T <- exp(xi) T`` on the host (float64); with a
    ``match`` graph, then ``match_rounds`` rounds of crops -> landings -> pose solve."""

    def __init__(self, graphs: Mapping[str, Any], cfg: dict[str, Any]) -> None:
        self.encode, self.update = graphs["encode"], graphs["step"]
        self.match = graphs.get("match")
        self.iterations = int(cfg["iterations"])
        self.rounds = int(cfg.get("match_rounds", 0)) if self.match is not None else 0
        self.cfg = cfg

    def reset(self) -> None:
        pass

    def step(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from edge.data.se3 import exp_se3

        tok = self.encode({"image": feeds["image"], "groups": feeds["groups"]})
        T = np.asarray(feeds["T"], np.float64)
        Ts = [T]
        for _ in range(self.iterations):
            xi = self.update({"img_tokens": tok["img_tokens"], "pt_tokens": tok["pt_tokens"],
                              "centres": feeds["centres"], "T": T.astype(np.float32), "P": feeds["P"]})["xi"]
            T = exp_se3(np.asarray(xi, np.float64)) @ T
            Ts.append(T)
        active = np.ones(len(T), bool)  # items whose rounds have not stopped (an unsure round stops them)
        applied = np.zeros(len(T), np.int64)
        for _ in range(self.rounds):
            if active.any():
                T, moved = self._match_round(feeds, T, active)
                active &= moved
                applied += moved
            Ts.append(T)  # a stopped item keeps its guess: one iterate per round all the same
        # how many of the iterates are matching rounds (the record's labels; a caller may change either count),
        # and how many of them moved each item's guess
        return {"T": T, "T_iters": np.stack(Ts, 1), "match_rounds": np.array([self.rounds]), "match_applied": applied}

    def _match_round(self, feeds: Mapping[str, np.ndarray], T: np.ndarray, active: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """One round for the ``active`` items: (new guesses, whether each moved); the others keep theirs."""
        from edge.models.nativecross import matching

        P = np.asarray(feeds["match_P"], np.float64)
        m = int(self.cfg["match_crop"])
        g = len(feeds["centres"][0])
        # a stopped item gets blank crops (the graph's batch may be static) and no host work
        blank = (np.zeros((g, matching.CHANNELS, m, m), np.float32), np.zeros(g, bool), np.zeros((g, 2)))
        cut = [matching.crops(feeds["match_image"][b], feeds["scan"][b], feeds["centres"][b], T[b], P[b], m)
               if active[b] else blank for b in range(len(T))]
        out = self.match({"crops": np.stack([c[0] for c in cut])})["flow"]
        moved = np.array([bool(active[b]) and matching.confident(out[b], cut[b][1], self.cfg) for b in range(len(T))])
        return np.stack([matching.update(out[b], cut[b][1], cut[b][2], feeds["centres"][b], T[b], P[b], self.cfg)
                         if moved[b] else np.asarray(T[b], np.float64) for b in range(len(T))]), moved


class AlignRunner(RefineRunner):
    """:class:`RefineRunner`'s steps, then the edge alignment on the host (:mod:`edge.models.nativecross.edges`),
    searched from the steps' result and from the frame's starting guess (and the grid turns and restarts around
    them that :func:`~edge.models.nativecross.edges.align` adds; the best-scoring pose is kept)."""

    def step(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from edge.models.nativecross.edges import ScanEdges, align

        out = super().step(feeds)
        T, start = out["T"], np.asarray(feeds["T"], np.float64)
        aligned, info = [], []
        for b in range(len(T)):
            Tb, rec = align(feeds["edge_image"][b], ScanEdges.unpack(feeds["edge_points"][b]), [T[b], start[b]],
                            feeds["edge_P"][b])
            aligned.append(Tb)
            info.append([rec["score_before"], rec["score"], rec["start"], rec["edges"]])
        T = np.stack(aligned)
        return {**out, "T": T, "T_iters": np.concatenate([out["T_iters"], T[:, None]], 1),
                "edge_stage": np.array([1]), "edge_info": np.array(info, np.float64)}


# ---------------------------------------------------------------------------------------------
# pre/post-processing


def _rig(frames: Mapping[str, Any]) -> Any:
    for name in ("camera", "lidar"):
        rig = frames[name].meta.get("rig")
        if rig is not None:
            return rig
    where = frames["camera"].meta.get("file") or "camera frame"
    raise DataError(f"{where}: NativeCross needs the camera intrinsics and a starting extrinsic: pass --calib RIG "
                    "(a KITTI calib .txt or a rig JSON)")


def camera_image(img: np.ndarray, rig: Any) -> np.ndarray:
    """The image as a pinhole camera with ``rig.P`` sees it: undistorted when the rig has distortion
    coefficients (the model and the projections know only the pinhole model)."""
    if rig.distortion is None:
        return img
    import cv2

    return cv2.undistort(img, rig.P[:, :3], np.asarray(rig.distortion, np.float64))


def _xyz(points: np.ndarray) -> np.ndarray:
    return np.stack([points["x"], points["y"], points["z"]], 1).astype(np.float64)


def image_input(cfg: dict[str, Any]) -> ImageInput:
    """The encode graph's ``image`` is one normalised camera image (an engine may take the camera's bytes)."""
    h, w = cfg["input_hw"]
    return ImageInput("encode", "image", (h, w), (MEAN,) * 3, (STD,) * 3)


def image_feed(img: np.ndarray, cfg: dict[str, Any]) -> np.ndarray:
    """BGR uint8 [h, w, 3] -> the model's [1, 3, H, W] float32 input (under ``raw_images``: the frame itself,
    [1, h, w, 3] uint8, for the engine's own preprocessing)."""
    from edge.data.images import image_feed as feed

    return feed(img, image_input(cfg))[None].copy()


def scaled_projection(P: np.ndarray, image_hw: tuple[int, int], cfg: dict[str, Any]) -> np.ndarray:
    """``P`` of an image of ``image_hw`` rescaled to the model input's pixels."""
    from edge.data.rig import resized_P

    return resized_P(P, image_hw, tuple(cfg["input_hw"]))


def preprocess(frames: Mapping[str, Any], cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """Image + scan + starting rig -> feeds (image, groups, centres, T, P); one-line DataError for a frame
    set that cannot be refined (wrong image size for the rig, too few points in view)."""
    from edge.models.nativecross.grouping import group_view, view_points

    cam, lid = frames["camera"], frames["lidar"]
    where = cam.meta.get("file") or "camera frame"
    if not is_image(cam.data):
        raise DataError(f"{where}: expected a BGR uint8 image, got {type(cam.data).__name__}")
    if not is_points(lid.data):
        raise DataError(f"{lid.meta.get('file') or 'LiDAR frame'}: expected a point cloud")
    rig = _rig(frames)
    hw = cam.data.shape[:2]
    if rig.image_size is not None and tuple(rig.image_size) != tuple(hw):
        raise DataError(f"{where}: the image is {hw[1]}x{hw[0]} but the rig ({rig.source or 'given'}) is for "
                        f"{rig.image_size[1]}x{rig.image_size[0]} images")
    problem = principal_point_problem(rig.P, hw, sized=rig.image_size is not None)
    if problem:  # a calibration stating no size (KITTI object) beside an image of another size
        raise DataError(f"{where}: the rig ({rig.source or 'given'}): {problem}")
    view = view_points(_xyz(lid.data), rig.T_lidar_to_cam, rig.P, hw, cfg, where=lid.meta.get("file") or "LiDAR frame")
    groups, centres = group_view(view, cfg)
    img = camera_image(cam.data, rig)
    feeds = {"image": image_feed(img, cfg), "groups": groups[None], "centres": centres[None],
             "T": rig.T_lidar_to_cam[None].astype(np.float64),
             "P": scaled_projection(rig.P, hw, cfg)[None].astype(np.float32)}
    if int(cfg.get("match_rounds", 0)) > 0 and feeds_wanted("match"):  # refine alone does not read them
        feeds.update(match_feeds(img, view, rig.P, cfg))
    if feeds_wanted("edges"):
        feeds.update(edge_feeds(img, lid.data, rig, cfg))
    return feeds


def edge_feeds(img: np.ndarray, points: np.ndarray, rig: Any, cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """What the edge alignment reads: the (undistorted) image, at most ``edges.MAX_WIDTH`` wide, its projection,
    and the scan's ``edges.POINTS`` heaviest depth edges in front of the camera under the starting guess (within
    half an image's margin around it: the stage may turn the camera that far), packed to one shape."""
    import cv2

    from edge.data.rig import pinhole
    from edge.models.nativecross.edges import MAX_WIDTH, POINTS, ScanEdges, scan_edges

    h, w = img.shape[:2]
    k = min(1.0, MAX_WIDTH / w)
    small = img if k == 1.0 else cv2.resize(img, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
    P = scaled_projection(rig.P, (h, w), {"input_hw": small.shape[:2]})
    ring = points["ring"] if "ring" in (points.dtype.names or ()) else None
    e = scan_edges(_xyz(points), ring)
    _, pix = pinhole(e.xyz, rig.T_lidar_to_cam, P)
    z = np.maximum(pix[:, 2], 1e-6)
    sh, sw = small.shape[:2]
    near = (pix[:, 2] > 1.0) & (np.abs(pix[:, 0] / z - sw / 2) < sw) & (np.abs(pix[:, 1] / z - sh / 2) < sh)
    e = ScanEdges(e.xyz[near], e.weight[near], e.vertical[near])
    return {"edge_image": np.ascontiguousarray(small)[None], "edge_P": P[None],
            "edge_points": e.packed(POINTS)[None]}


def match_feeds(img: np.ndarray, view: np.ndarray, P: np.ndarray, cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """What the matching rounds read on the host: the (undistorted) image at ``match_hw`` (BGR uint8), its
    projection, and ``match_points`` of the scan's points in view of the starting guess (``view``, the
    points the grouping drew from; sampled to a fixed count so the feeds have one shape)."""
    import cv2

    from edge.models.nativecross.grouping import sample_points

    hw = img.shape[:2]
    mh, mw = cfg["match_hw"]
    small = img if hw == (mh, mw) else cv2.resize(img, (mw, mh), interpolation=cv2.INTER_AREA)
    return {"match_image": np.ascontiguousarray(small)[None],
            "match_P": scaled_projection(P, hw, {"input_hw": (mh, mw)})[None],
            "scan": sample_points(np.asarray(view, np.float32), int(cfg["match_points"]), seed=1)[None]}


def _truth(frames: Mapping[str, Any]) -> Any:
    """The true rig when the frames know it: a synthetic rig's truth, or the source's own calibration
    (a KITTI folder's) when the run's ``--calib`` replaced it as the starting guess."""
    for key in ("rig_true", "rig_source"):
        for name in ("camera", "lidar"):
            r = frames[name].meta.get(key)
            if r is not None:
                return r
    return None


def postprocess(out: Mapping[str, np.ndarray], frames: Mapping[str, Any],
                cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The refined extrinsic, how far it moved, and (with a known truth) the errors before/after."""
    from edge.models.nativecross.metrics import pose_errors

    rig = _rig(frames)
    T0 = np.asarray(rig.T_lidar_to_cam, np.float64)
    T = np.asarray(out["T"][0], np.float64)
    rot, trans = pose_errors(T, T0)
    rounds = int(np.asarray(out.get("match_rounds", 0)).ravel()[0])
    edge = int(np.asarray(out.get("edge_stage", 0)).ravel()[0])
    rec: dict[str, Any] = {"T_lidar_to_cam": np.round(T, 7).tolist(), "correction_deg": round(rot, 4),
                           "correction_cm": round(trans, 3),
                           "iterations": int(out["T_iters"].shape[1] - 1 - rounds - edge), "match_rounds": rounds}
    if edge:  # the edge alignment's scores (before: at the steps' result) and which chain it kept
        from edge.models.nativecross.edges import FROM

        before, after, start, n = (float(v) for v in np.asarray(out["edge_info"])[0])
        rec["edge_alignment"] = {"score_before": before, "score": after, "from": FROM[int(start)], "edges": int(n)}
    if "match_applied" in out:  # the rounds that moved the guess (they stop at the first unsure one)
        rec["match_rounds_applied"] = int(np.asarray(out["match_applied"]).ravel()[0])
    truth = _truth(frames)
    if truth is not None:
        Tt = np.asarray(truth.T_lidar_to_cam, np.float64)
        r0, t0 = pose_errors(T0, Tt)
        r1, t1 = pose_errors(T, Tt)
        rec["eval"] = {"rot_deg_before": r0, "trans_cm_before": t0, "rot_deg": r1, "trans_cm": t1,
                       "per_iter": [list(pose_errors(Ti, Tt)) for Ti in out["T_iters"][0][1:]]}
    payload = {"T0": T0, "T": T, "P": np.asarray(rig.P, np.float64)}
    return rec, payload


def metric_item(rec: dict[str, Any], frames: Mapping[str, Any], cfg: dict[str, Any]) -> Any:
    return rec.get("eval")


def metric_reduce(items: list[Any]) -> dict[str, Any]:
    from edge.models.nativecross.metrics import reduce_items

    return reduce_items(items)


def metric_fold(items: list[Any]) -> dict[str, Any]:
    from edge.models.nativecross.metrics import fold_items

    return fold_items(items)


def draw(payload: dict[str, Any], frames: Mapping[str, Any], cfg: dict[str, Any]) -> np.ndarray:
    """The camera image with the scan projected by the starting extrinsic (grey, small) and by the
    refined one (coloured by range)."""
    import cv2

    from edge.data.rig import pinhole
    from edge.stream.overlay import jet

    img = camera_image(frames["camera"].data, _rig(frames)).copy()
    xyz = _xyz(frames["lidar"].data)
    if len(xyz) > 30000:
        xyz = xyz[:: len(xyz) // 30000 + 1]
    h, w = img.shape[:2]
    rng_m = np.linalg.norm(xyz, axis=1)
    for key, coloured in (("T0", False), ("T", True)):
        T = payload[key]
        cam, pix = pinhole(xyz, T, payload["P"])
        ok = (cam[:, 2] > 0.5) & (pix[:, 2] > 1e-6)
        uv = np.round(pix[ok, :2] / pix[ok, 2:3]).astype(np.int64)
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        uv = uv[inside]
        if coloured:
            hue = np.clip(rng_m[ok][inside] / 50.0 * 255, 0, 255).astype(np.uint8)
            col = jet(hue)
        else:
            col = np.full((len(uv), 3), 150, np.uint8)
        for du, dv in ((0, 0), (1, 0), (0, 1), (1, 1)):  # 2x2 dots, vectorised (no per-point calls)
            img[np.minimum(uv[:, 1] + dv, h - 1), np.minimum(uv[:, 0] + du, w - 1)] = col
    txt = "grey: start  colour: refined"
    cv2.putText(img, txt, (8, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    return img


def card() -> ModelCard:
    """The NativeCross ModelCard."""
    from edge.models.nativecross import samples, train

    return ModelCard(
        name="nativecross",
        description="NativeCross: camera-LiDAR extrinsic refinement by cross-attention (image patches x point groups)",
        configs=CONFIGS,
        default_config="default",
        build=build,
        graphs={"encode": Graph("encode", io_encode, lambda m: m.encoder, example_encode,
                                "image + point groups -> tokens (once per frame)"),
                "step": Graph("step", io_step, lambda m: m.step, example_step,
                              "tokens + centres + current extrinsic -> se(3) increment"),
                "match": Graph("match", io_match, lambda m: m.matcher, example_match,
                               "crops around each group centre -> its landing and scale (per matching round)")},
        # the steps alone stay the default: the matching stage reaches only a few pixels (its crops' half
        # width), and on real frames the steps leave more than that (README, NativeCross)
        programs=(ProgramSpec("refine", ("encode", "step"), RefineRunner,
                              "encode once, then `iterations` steps of T <- exp(xi) T on the host"),
                  ProgramSpec("refine_match", ("encode", "step", "match"), RefineRunner,
                              "encode once, `iterations` steps of T <- exp(xi) T, then `match_rounds` rounds of "
                              "local matching and a pose solve on the host",
                              available=lambda cfg: int(cfg.get("match_rounds", 0)) > 0),
                  ProgramSpec("refine_edges", ("encode", "step"), AlignRunner,
                              "encode once, `iterations` steps of T <- exp(xi) T, then the scan's depth edges "
                              "aligned with the image's edges on the host", host_stages=("edges",),
                              gated_by="refine")),
        sensors=Sensors(("camera", "lidar"), points=("lidar",)),
        preprocess=preprocess,
        postprocess=postprocess,
        draw=draw,
        preprocess_params=lambda cfg: {"input": "camera+lidar", "input_hw": cfg["input_hw"], "mean": MEAN,
                                       "std": STD, "points": cfg["points"], "groups": cfg["groups"],
                                       "group_size": cfg["group_size"], "iterations": cfg["iterations"],
                                       "group_space": cfg["group_space"], "match_rounds": cfg["match_rounds"],
                                       "match_hw": cfg["match_hw"], "match_points": cfg["match_points"]},
        metric=Metric("L2 rate", metric_item, metric_reduce, unit="%", bounds=(0.0, 100.0), quantum=percent_per_sample,
                      fold=metric_fold),
        data=FamilyData(samples.synthetic, samples.samples,
                        labelled=samples.LABELLED),
        trainer=Trainer(train.batch_stream, train.loss, lr=1e-3),
        checkpoints={"default": WEIGHTS / "default.pt"},
        results_name="extrinsics",
        rig_output="T_lidar_to_cam",
        needs_rig=True,
        image_inputs=lambda cfg: (image_input(cfg),),
        # the same weights, another stop rule (`edge-export nativecross --set match_max_sigma=0`: never stop)
        export_options={"match_max_sigma": "px: the matching rounds stop at the first whose surest landings' median "
                                           "scale is above this (0: they never stop)"},
        # the first shipped weights predate the landing cue, view-space grouping and the flow solve (and
        # its attention search)
        config_added={"landing": 0, "group_space": "xyz", "flow_solve": 0, "flow_attention": 0,
                      # and the local matching stage (the default's sizes; no rounds: no matcher; no stop rule:
                      # checkpoints from before match_max_sigma never stopped)
                      **_match(0, (256, 768), 48, (24, 16, 48, 64, 128), 256, 16384)},
        config_rules=check_rules,
    )


def check_rules(cfg: dict[str, Any]) -> None:
    """What a config must hold beyond types and bounds (``edge train --set`` took these, then torch failed in the
    first step, or the export's PyTorch run did): ValueError saying which."""
    if cfg["dim"] % cfg["heads"]:  # the cross-attention's heads split the token width
        raise ValueError(f"dim {cfg['dim']} is not divisible by heads {cfg['heads']}")
    if cfg.get("flow_solve", 0) and cfg.get("flow_attention", 0) and cfg["dim"] // cfg["heads"] < 2:
        # the flow attention's values are the patch centres (u, v) in each head's first two channels
        raise ValueError(f"dim {cfg['dim']} with heads {cfg['heads']}: the flow attention needs heads of 2 or more "
                         "channels")
    from edge.models.nativecross.grouping import SPACES

    if cfg.get("group_space", SPACES[0]) not in SPACES:  # was refused only when the first batch was grouped
        raise ValueError(f"group_space {cfg['group_space']!r}: use one of {', '.join(SPACES)}")
    h, w = cfg["input_hw"]
    if h % 8 or w % 8:  # the patch grid is the stride-8 features', [h/8, w/8]
        raise ValueError(f"input_hw {[h, w]}: height and width must be multiples of 8")
    if cfg.get("landing", 0) > 5:  # the landing cue reads the centre and the four patches around it
        raise ValueError(f"landing {cfg['landing']}: at most 5 (the centre and its four neighbours)")
    if cfg.get("match_rounds", 0):  # (older checkpoints' configs lack these keys: their card values hold)
        if cfg["match_crop"] < 16 or cfg["match_crop"] % 16:  # the matcher's four stride-2 stages
            raise ValueError(f"match_crop {cfg['match_crop']}: a multiple of 16")
        if not 0 < cfg["match_keep"] <= 1:  # a share of the groups
            raise ValueError(f"match_keep {cfg['match_keep']} is a share of the groups: above 0, at most 1")
