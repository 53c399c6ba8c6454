"""ETA-VLA card: configs, the ``encode`` and ``policy`` graphs, the stream program (each view of each new
frame encoded once, a ring buffer of T frames), camera pre-processing, instruction tokenising, the
trajectory record, the metric and the overlay. numpy (+cv2).

Sensors: three cameras, ``front`` (primary: it paces the loop and carries the instruction in its meta,
``meta["instruction"] = {"command": ..., "text": ...}``, from the synthetic episodes or ``edge run
--command``), ``front_left`` and ``front_right``. The keep
ratio of the pruning is a config value, fixed in the exported graph (static TopK + Gather); the weights do
not depend on it, so one checkpoint exports at any keep ratio.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import DataError
from edge.models.contract import Command, FamilyData, Graph, Metric, ModelCard, ProgramSpec, Sensors, Trainer
from edge.models.etavla.tokens import check_vocabulary, default_vocabulary, parse_instruction, tokenize
from edge.models.history import History, one_sample
from edge.spec import IOSpec, TensorSpec

WEIGHTS = Path(__file__).parent / "weights"
VIEWS = ("front_left", "front", "front_right")  # the model's view order (left to right)
MEAN, STD = 0.45, 0.25  # image normalisation after /255 (every channel)


def _cfg(hw: tuple[int, int], widths: tuple[int, int, int], dim: int, heads: int, layers: int) -> dict[str, Any]:
    vocab = default_vocabulary()
    return {"image_hw": list(hw), "views": len(VIEWS), "frames": 4, "widths": list(widths), "dim": dim,
            "heads": heads, "layers": layers, "vocab": vocab, "vocab_size": len(vocab), "text_len": 10,
            "readout": 2, "waypoints": 8, "prune_layer": 1, "prune_rule": "eta", "diversity": 0.5, "keep": 1.0,
            "random_seed": 0, "keep_mix": 0.5}


CONFIGS: dict[str, dict[str, Any]] = {
    # seconds on 2 CPU cores; for tests
    "tiny": {**_cfg((32, 64), (8, 16, 24), 32, 2, 3), "keep": 0.25},
    # the shipped model: 3 views of 64x128 (4x8 = 32 patches each), 96 visual tokens, 8 layers of 128. As in
    # a real VLA the language model dominates the cost (the encoder runs once per view and frame), so
    # pruning after layer 1 is what can save most of a step
    "default": _cfg((64, 128), (8, 16, 32), 128, 4, 8),
    "large": _cfg((96, 192), (16, 32, 48), 160, 5, 10),
}


def build(cfg: dict[str, Any]) -> Any:
    from edge.models.etavla.net import ETAVLA

    return ETAVLA(cfg)


def _patches(cfg: dict[str, Any]) -> int:
    h, w = cfg["image_hw"]
    return (h // 16) * (w // 16)


def visual_tokens(cfg: dict[str, Any]) -> int:
    return int(cfg["views"]) * _patches(cfg)


def kept(cfg: dict[str, Any]) -> int:
    """Visual tokens after pruning (the graph's static k): ceil(keep x views x patches), at least 1."""
    n = visual_tokens(cfg)
    return max(1, min(n, math.ceil(float(cfg["keep"]) * n - 1e-9)))


def io_encode(cfg: dict[str, Any]) -> IOSpec:
    h, w = cfg["image_hw"]
    return IOSpec((TensorSpec("image", "float32", ("batch", 3, h, w), "one view, RGB, (x/255 - 0.45) / 0.25"),),
                  (TensorSpec("tokens", "float32", ("batch", _patches(cfg), cfg["dim"]), "patch tokens"),))


def io_policy(cfg: dict[str, Any]) -> IOSpec:
    t, v, d = cfg["frames"], cfg["views"], cfg["dim"]
    return IOSpec((TensorSpec("tokens", "float32", ("batch", t, v, _patches(cfg), d), "T frames x V views, oldest 1st"),
                   TensorSpec("instruction", "int64", ("batch", cfg["text_len"]), "command token, word ids, 0 = pad")),
                  (TensorSpec("waypoints", "float32", ("batch", cfg["waypoints"], 2), "m, ego frame, 0.5 s apart"),
                   TensorSpec("speed", "float32", ("batch", 1), "planned speed 1 s ahead, m/s"),
                   TensorSpec("kept", "int64", ("batch", kept(cfg)), "visual tokens kept (index in V x P)")))


def example_encode(cfg: dict[str, Any], batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"image": rng.standard_normal(io_encode(cfg).inputs[0].concrete(batch=batch)).astype(np.float32)}


def example_policy(cfg: dict[str, Any], batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    spec = io_policy(cfg)
    ids = rng.integers(2, cfg["vocab_size"], spec.inputs[1].concrete(batch=batch))
    ids[:, -3:] = 0  # some padding, as real instructions have
    return {"tokens": rng.standard_normal(spec.inputs[0].concrete(batch=batch)).astype(np.float32),
            "instruction": ids.astype(np.int64)}


class StreamRunner:
    """Each view of each new frame through ``encode`` once; a ring buffer of T frames; ``policy``."""

    def __init__(self, graphs: Mapping[str, Any], cfg: dict[str, Any]) -> None:
        self.encode, self.policy = graphs["encode"], graphs["policy"]
        self._tok = History(int(cfg["frames"]))

    def reset(self) -> None:
        self._tok.clear()

    def step(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        views = one_sample(feeds, "views")
        tok = np.concatenate([self.encode({"image": v[None]})["tokens"] for v in views])  # [V, P, D]
        return self._tok.through(tok, lambda t: self.policy({"tokens": t[None], "instruction": feeds["instruction"]}))


def card() -> ModelCard:
    """The ETA-VLA ModelCard."""
    from edge.models.etavla import samples, train

    return ModelCard(
        name="etavla",
        description="driving policy: 3 cameras x 4 frames, an instruction, visual tokens pruned inside the graph",
        configs=CONFIGS,
        default_config="default",
        build=build,
        graphs={
            "encode": Graph("encode", io_encode, lambda m: m.encoder, example_encode, "one view -> patch tokens"),
            "policy": Graph("policy", io_policy, lambda m: m.policy, example_policy,
                            "T x V views' tokens + instruction -> waypoints, speed, kept tokens"),
        },
        programs=(ProgramSpec("stream", ("encode", "policy"), StreamRunner,
                              "each view encoded once per frame + ring buffer of T frames + policy"),),
        sensors=Sensors(("front", "front_left", "front_right")),
        preprocess=preprocess,
        postprocess=postprocess,
        draw=draw,
        preprocess_params=preprocess_params,
        # a metre of ADE is a quarter of the shipped model's error: INT8 may cost 5 % of it by default
        metric=Metric("ADE", metric_item, metric_reduce, unit="m", higher_is_better=False, bounds=(0.0, math.inf),
                      max_drop="5%", fold=metric_fold),
        data=FamilyData(samples.synthetic, samples.samples, lambda cfg: int(cfg["frames"])),
        trainer=Trainer(train.batch_stream, train.loss, lr=1e-3),
        checkpoints={"default": WEIGHTS / "default.pt"},
        results_name="trajectories",
        config_added={"keep_mix": 0.0},  # the first full-model stage trained without pruning
        export_options={"keep": "fraction of the visual tokens kept after the pruning layer (0 < keep <= 1)",
                        "prune_rule": "eta (instruction attention + diversity), fastv or random",
                        "diversity": "weight of the diversity penalty in the eta rule",
                        "prune_layer": "the layer before which tokens are pruned"},
        command=Command("instruction", lambda text, cfg: parse_instruction(text, cfg["vocab"], int(cfg["text_len"])),
                        "'COMMAND[: sentence]', COMMAND one of left, straight, right, lane_left, lane_right, stop "
                        "(e.g. 'left: turn left at the next junction')"),
        config_rules=check_rules,
    )


#: how the policy scores visual tokens before pruning them (``prune_rule``)
PRUNE_RULES = ("eta", "fastv", "random")


def check_pruning(cfg: dict[str, Any]) -> None:
    """``keep`` a fraction in (0, 1] and ``prune_rule`` one of :data:`PRUNE_RULES`; ValueError otherwise."""
    if not 0.0 < float(cfg["keep"]) <= 1.0:  # (a NaN fails it too)
        raise ValueError(f"keep {cfg['keep']}: a fraction in (0, 1]")
    if str(cfg["prune_rule"]) not in PRUNE_RULES:
        raise ValueError(f"prune_rule '{cfg['prune_rule']}': use {', '.join(PRUNE_RULES)}")


def check_rules(cfg: dict[str, Any]) -> None:
    """What a config must hold beyond types and bounds: the vocabulary is looked up by its special tokens,
    and tokens are pruned before one of the layers (``--set prune_layer=3`` on 3 layers exported a graph
    that onnx.checker refused, naming neither the option nor its range). ValueError otherwise."""
    check_vocabulary(cfg)
    if not 0 <= cfg["prune_layer"] < cfg["layers"]:
        raise ValueError(f"prune_layer {cfg['prune_layer']} is not one of the layers 0..{cfg['layers'] - 1}")
    # what --set took and then failed on deep inside torch (a traceback), or after training (a review)
    if cfg["views"] != len(VIEWS):  # the cameras preprocess stacks, in this order
        raise ValueError(f"views {cfg['views']}: this family reads {len(VIEWS)} cameras ({', '.join(VIEWS)})")
    dim, heads = cfg["dim"], cfg["heads"]
    if heads < 1 or dim % heads or (dim // heads) % 2:  # rotary positions rotate half of each head's channels
        raise ValueError(f"dim {dim} with heads {heads}: dim must split into heads of an even size")
    if any(v < 16 or v % 16 for v in cfg["image_hw"]):  # the patch encoder's stride
        raise ValueError(f"image_hw {list(cfg['image_hw'])}: height and width must be multiples of 16")
    if not 0 <= cfg["keep_mix"] <= 1:  # a probability
        raise ValueError(f"keep_mix {cfg['keep_mix']} is a probability: from 0 to 1")
    from edge.models.etavla.world import MIN_WAYPOINTS

    if cfg["waypoints"] < MIN_WAYPOINTS:  # failed in the first step's episodes ("high - low < 0"; a review)
        raise ValueError(f"waypoints {cfg['waypoints']}: at least {MIN_WAYPOINTS} (the horizon must reach past the "
                         "nearest junction the synthetic episodes place, 6 m beyond the crossing road)")
    check_pruning(cfg)  # the pruning layer checks it as well; here before anything is built (it was after)
    from edge.models.etavla.tokens import TEMPLATES, words_of

    # the command token and the longest of the family's own sentences: fewer failed training when that sentence
    # was drawn, or exporting a checkpoint a short run had written (a review)
    longest = max((t for ts in TEMPLATES.values() for t in ts), key=lambda t: len(words_of(t)))
    if cfg["text_len"] < 1 + len(words_of(longest)):
        raise ValueError(f"text_len {cfg['text_len']}: at least {1 + len(words_of(longest))} (the command token and "
                         f"the {len(words_of(longest))} words of the family's longest instruction, '{longest}')")


def preprocess_params(cfg: dict[str, Any]) -> dict[str, Any]:
    h, w = cfg["image_hw"]
    return {"input": "+".join(VIEWS), "views": list(VIEWS), "frames": cfg["frames"], "size_hw": [h, w],
            "color": "RGB", "scale": 1 / 255, "mean": MEAN, "std": STD,
            "resize": "area; bilinear where the frame grows", "layout": "C,H,W",
            "text_len": cfg["text_len"], "keep": cfg["keep"], "prune_rule": cfg["prune_rule"]}


def view_feed(img_bgr: np.ndarray, cfg: dict[str, Any]) -> np.ndarray:
    """One HxWx3 uint8 BGR view -> [3, h, w] float32 normalised RGB at the model's input size."""
    from edge.data.images import chw_feed

    return chw_feed(img_bgr, cfg["image_hw"], MEAN, STD)


def instruction_of(frames: Mapping[str, Any]) -> dict[str, str]:
    ins = frames["front"].meta.get("instruction")
    if not isinstance(ins, Mapping) or not isinstance(ins.get("command"), str):
        raise DataError("front camera: no instruction (a route command and its text) came with the frame")
    return {"command": ins["command"], "text": str(ins.get("text", ""))}


def preprocess(frames: Mapping[str, Any], cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """Three views + the instruction -> feeds ``views`` [1, V, 3, h, w] and ``instruction`` [1, L]."""
    shapes = {s: getattr(frames[s].data, "shape", None) for s in VIEWS}
    for s, shp in shapes.items():
        if shp is None or len(shp) != 3 or shp[2] != 3:
            raise DataError(f"{s} camera: expected an HxWx3 image, got {shp}")
    if len({shp[:2] for shp in shapes.values()}) > 1:
        raise DataError("the views differ in size: " + ", ".join(f"{s} {shp[1]}x{shp[0]}" for s, shp in shapes.items()))
    ins = instruction_of(frames)
    ids = tokenize(ins["command"], ins["text"], cfg["vocab"], int(cfg["text_len"]))
    return {"views": np.stack([view_feed(frames[s].data, cfg) for s in VIEWS])[None], "instruction": ids[None]}


def postprocess(out: Mapping[str, np.ndarray], frames: Mapping[str, Any],
                cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Outputs -> the record: waypoints (m, ego frame), speed, the kept tokens, the instruction."""
    wp = np.asarray(out["waypoints"][0], dtype=np.float64)
    rec = {"waypoints": np.round(wp, 3).tolist(), "speed": round(float(out["speed"][0, 0]), 3),
           "kept": np.asarray(out["kept"][0]).astype(int).tolist(), **instruction_of(frames)}
    return rec, {"waypoints": wp, "kept": rec["kept"]}


def metric_item(rec: dict[str, Any], frames: Mapping[str, Any], cfg: dict[str, Any]) -> Any:
    """The record scored against the path of the command the model was *given*: an episode labels its own
    command's path and every other feasible one (``alternatives``), so ``edge run --command`` is scored on
    the commanded path (it was scored on the episode's own, ADE 9.3 m and 0 % following for a model that
    obeyed); a command the episode has no path for is not scored."""
    from edge.models.etavla.metrics import collides, score

    gt = frames["front"].meta.get("gt")
    if not gt:
        return None
    given = rec.get("command", gt["command"])
    if given != gt["command"]:
        alts = dict(gt.get("alternatives") or {})
        if given not in alts:
            return None
        path = alts.pop(given)
        # the episode's vehicles were cleared from its own command's path only (they would have yielded); those on
        # the commanded path would yield as well: following it exactly counted as a collision (16 % of `left`s)
        lane_y = float(gt["lane_y"])
        vehicles = [v for v in np.asarray(gt["vehicles"], np.float64).reshape(-1, 4)
                    if not collides(np.asarray(path), [v], lane_y)]
        gt = {**gt, "command": given, "waypoints": path, "alternatives": {**alts, gt["command"]: gt["waypoints"]},
              "vehicles": [list(map(float, v)) for v in vehicles]}
    return score(np.asarray(rec["waypoints"]), gt)


def metric_reduce(items: list[Any]) -> dict[str, Any]:
    from edge.models.etavla.metrics import reduce

    return reduce(items)


def metric_fold(items: list[Any]) -> dict[str, Any]:
    from edge.models.etavla.metrics import fold

    return fold(items)


def draw(payload: dict[str, Any], frames: Mapping[str, Any], cfg: dict[str, Any]) -> np.ndarray | None:
    """The front view with the trajectory on the ground (nominal camera: 1.4 m high, 3 deg down) and the
    patches whose tokens were kept outlined."""
    import cv2

    from edge.models.etavla.world import CAM_HEIGHT, camera

    img = frames["front"].data.copy()
    h, w = img.shape[:2]
    K, R = camera(0.0, 0.05, h, w)
    wp = payload["waypoints"]
    pts = np.concatenate([np.zeros((1, 2)), wp])
    cam = (np.stack([pts[:, 0], pts[:, 1], np.full(len(pts), -CAM_HEIGHT)], 1)) @ R  # ego -> camera
    ok = cam[:, 2] > 0.5
    uv = (cam[ok] @ K.T)[:, :2] / cam[ok][:, 2:3]
    p = np.round(uv).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(img, [p], False, (0, 220, 255), max(1, w // 320), cv2.LINE_AA)
    for x, y in p[:, 0]:
        cv2.circle(img, (int(x), int(y)), max(2, w // 200), (0, 160, 255), -1, cv2.LINE_AA)
    gh, gw = cfg["image_hw"][0] // 16, cfg["image_hw"][1] // 16
    front = VIEWS.index("front")
    for k in payload["kept"]:
        v, i = divmod(int(k), gh * gw)
        if v != front:
            continue
        r, c = divmod(i, gw)
        cv2.rectangle(img, (int(c * w / gw), int(r * h / gh)), (int((c + 1) * w / gw) - 1, int((r + 1) * h / gh) - 1),
                      (80, 200, 80), 1)
    return img
