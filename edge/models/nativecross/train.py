"""What the shared training loop needs from NativeCross: seeded batches of wrongly calibrated synthetic
rigs and the unrolled refinement loss.

Rendering a rig costs ~0.1-0.3 s, so rigs live in a pool (48) with one rig renewed per batch; every
draw gets a fresh perturbation of its extrinsic, so no two samples repeat. Perturbations cover the
training range (``train_max_deg`` / ``train_max_m`` per axis) half of the time and a random fraction
of it otherwise, so the step learns both the first big move and the last centimetres; a third of them
keep the rotation within a tenth of its range, so translation is learned where it is visible.

Loss: the step is unrolled ``iterations`` times from the same tokens (as the runner runs it); each
iteration's increment is compared with the exact one that would land on the truth,
log(T_true T^-1), in units of ``rot_scale`` / ``trans_scale`` (smooth L1), later iterations weighted
more; the guess is updated with the detached prediction between iterations.

With a matcher (``match_rounds`` > 0), rigs are rendered at ``match_hw`` (the encoder's image is resized
from it, as a camera's is), and each batch also carries ``MATCH_BATCH`` crops for the matcher, drawn from a
buffer of the last ``MATCH_BUFFER`` crops cut on ``MATCH_RIGS`` freshly rendered rigs per batch: each rig
under a start perturbed from its truth within ``match_train_deg`` / ``match_train_m`` per axis (or half of
that), about the residual the steps leave; the target is where the true extrinsic puts each centre.
Drawing crops from many rigs matters: trained instead on the crops of the batch's 8 samples, under the
guesses the frozen steps left, the matcher learned nothing (it predicted no flow; its surest tenth of
the groups missed by 4.9 px against 1.8 px for this recipe, 1,800 steps each). Laplace NLL, half of the
crops mirrored. When the encoder and step are frozen (``edge train --freeze encoder,step``: the stage
trained alone on top of a trained model) only the matcher's loss is computed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from edge.errors import DataError, ModelError

POOL = 48
TRANSLATION_ONLY = 1 / 3
FLOW_WEIGHT = 0.25  # per-group flow loss (patches, Laplace NLL) next to the increment's
# patches: only a guard against absurd targets. Clipping near the landing window (4 was tried) taught
# clipped flows with confident sigmas, and the solve from true flows clipped at 4 patches missed by
# 47-58 cm at 10 deg; unclipped, a group that cannot see its flow learns a large sigma instead
FLOW_CLIP = 16.0
#: the matcher's crops per batch, the buffer they are drawn from, and the rigs rendered for it per batch
MATCH_BATCH = 384
MATCH_BUFFER = 12000
MATCH_RIGS = 2


def _item(rig: Any, rng: np.random.Generator, cfg: dict[str, Any]) -> dict[str, np.ndarray] | None:
    from edge.data.se3 import perturbation
    from edge.models.nativecross.card import image_feed, scaled_projection
    from edge.models.nativecross.grouping import group_scan

    f = 1.0 if rng.random() < 0.5 else rng.uniform(0.05, 1.0)
    # a third of the draws: rotation nearly right, translation over its whole range. That is what the
    # later iterations see, and only there is a translation's parallax (near points move more than far
    # ones) not buried under the uniform shift of a 10 deg rotation
    fr = f if rng.random() >= TRANSLATION_ONLY else f * rng.uniform(0.0, 0.1)
    T0 = perturbation(rng, cfg["train_max_deg"] * fr, cfg["train_max_m"] * f) @ rig.rig.T_lidar_to_cam
    xyz = np.stack([rig.points["x"], rig.points["y"], rig.points["z"]], 1)
    hw = rig.image.shape[:2]
    try:
        groups, centres = group_scan(xyz, T0, rig.rig.P, hw, cfg)
    except DataError:
        return None
    return {"image": image_feed(rig.image, cfg)[0], "groups": groups, "centres": centres, "T": T0,
            "T_true": rig.rig.T_lidar_to_cam, "P": scaled_projection(rig.rig.P, hw, cfg).astype(np.float32)}


def match_crops(rig: Any, rng: np.random.Generator, cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """The matcher's training crops of one rig (float16) and their targets (px / ``match_scale``), under a
    start perturbed within the matcher's training range (half of the time half of it); half mirrored."""
    from edge.data.se3 import perturbation
    from edge.models.nativecross.card import match_feeds
    from edge.models.nativecross.grouping import group_view, view_points
    from edge.models.nativecross.matching import _project, crops

    f = 1.0 if rng.random() < 0.5 else 0.5
    T, P = rig.rig.T_lidar_to_cam, rig.rig.P
    T0 = perturbation(rng, cfg["match_train_deg"] * f, cfg["match_train_m"] * f) @ T
    xyz = np.stack([rig.points["x"], rig.points["y"], rig.points["z"]], 1).astype(np.float64)
    hw = rig.image.shape[:2]
    try:
        view = view_points(xyz, T0, P, hw, cfg)
    except DataError:
        return None
    _, centres = group_view(view, cfg)
    feeds = match_feeds(rig.image, view, P, cfg)
    Pm = feeds["match_P"][0]
    x, valid, base = crops(feeds["match_image"][0], feeds["scan"][0], centres, T0, Pm, int(cfg["match_crop"]))
    flow = (_project(centres[valid].astype(np.float64), T, Pm)[0] - base[valid]) / float(cfg["match_scale"])
    x = x[valid]
    flip = rng.random(len(x)) < 0.5  # mirrored: the x flow negated (the even crop's half-pixel offset ignored)
    x[flip] = x[flip][..., ::-1]
    flow[flip, 0] *= -1
    return x.astype(np.float16), flow.astype(np.float32)


class CropBuffer:
    """The last ``size`` training crops of the matcher (a ring), sampled at random for each batch."""

    def __init__(self, size: int, crop: int) -> None:
        self.x = np.zeros((size, 4, crop, crop), np.float16)
        self.y = np.zeros((size, 2), np.float32)
        self.n = self.at = 0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        k, size = len(x), len(self.x)
        x, y = x[-size:], y[-size:]  # more than the ring holds: only the last fit, where one by one they would go
        idx = (self.at + k - len(x) + np.arange(len(x))) % size
        self.x[idx], self.y[idx] = x, y
        self.at = (self.at + k) % size
        self.n = min(self.n + k, size)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        idx = rng.integers(0, self.n, n)
        return self.x[idx], self.y[idx]


def render_hw(cfg: dict[str, Any]) -> tuple[int, int]:
    """Training rigs are rendered at the model's input, or at the matcher's image size when it has one."""
    return tuple(cfg["match_hw"] if int(cfg.get("match_rounds", 0)) > 0 else cfg["input_hw"])


def batch_stream(cfg: dict[str, Any], batch: int, seed: int, worker: int = 0,
                 frozen: tuple[str, ...] = ()) -> Iterator[dict[str, np.ndarray]]:
    """Endless batches: image, groups, centres, P (float32), T and T_true (float64), and with a matcher its
    crops (match_x, match_y). With the encoder and the step both ``frozen`` (the matcher trained alone) only
    the crops: the steps' samples would cost a rig and 8 groupings per batch that no loss reads."""
    from edge.models.nativecross.rigsim import random_rig

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, worker)))
    hw = render_hw(cfg)
    buf = CropBuffer(MATCH_BUFFER, int(cfg["match_crop"])) if int(cfg.get("match_rounds", 0)) > 0 else None
    steps = buf is None or not {"encoder", "step"} <= set(frozen)
    pool = [random_rig(rng, hw) for _ in range(min(POOL, max(batch, 8)))] if steps else []
    renew = 1
    while True:
        dry = 0
        while buf is not None and buf.n < MATCH_BATCH:  # at the start: enough crops for one batch
            before = buf.n
            _add_crops(buf, random_rig(rng, hw), rng, cfg)
            dry = 0 if buf.n > before else dry + 1
            _check_dry(dry, "the matching stage no crop", cfg)
        for _ in range(MATCH_RIGS if buf is not None else 0):
            _add_crops(buf, random_rig(rng, hw), rng, cfg)
        if not steps:
            assert buf is not None
            x, y = buf.sample(rng, MATCH_BATCH)
            yield {"match_x": x, "match_y": y}
            continue
        for _ in range(renew):
            pool[int(rng.integers(len(pool)))] = random_rig(rng, hw)
        if len(pool) < POOL:
            pool.append(random_rig(rng, hw))
        items: list[dict[str, np.ndarray]] = []
        dry = 0
        while len(items) < batch:
            it = _item(pool[int(rng.integers(len(pool)))], rng, cfg)
            if it is not None:
                items.append(it)
            dry = 0 if it is not None else dry + 1
            _check_dry(dry, "the steps no sample", cfg)
        out = {k: np.stack([it[k] for it in items]) for k in items[0]}
        if buf is not None:
            out["match_x"], out["match_y"] = buf.sample(rng, MATCH_BATCH)
        yield out


#: synthetic rigs in a row that give nothing to train on, after which the config is taken to make no such data
DRY_AFTER = 200


def _check_dry(dry: int, what: str, cfg: dict[str, Any]) -> None:
    """Stop with one line after :data:`DRY_AFTER` rigs in a row gave ``what`` nothing: a config whose groups never
    land in the image (``--set groups=2``: the few farthest-point centres lie at the scan's edges) spun at full CPU
    before the first step for as long as it was left."""
    if dry >= DRY_AFTER:
        raise ModelError(f"nativecross: {DRY_AFTER} synthetic rigs in a row gave {what} (groups={cfg['groups']}, "
                         f"points={cfg['points']}: no group in the camera's view); this config cannot be trained, "
                         "use more groups (the shipped configs use 32 or more)")


def _add_crops(buf: CropBuffer, rig: Any, rng: np.random.Generator, cfg: dict[str, Any]) -> None:
    got = match_crops(rig, rng, cfg)
    if got is not None:
        buf.add(*got)


def true_flows(uv: Any, centres: Any, T_true: np.ndarray, P: Any, cfg: dict[str, Any]) -> tuple[Any, Any]:
    """Where the true extrinsic puts each group's centre, relative to ``uv`` (where the current guess puts
    it): flows [B, G, 2] in patches, and ``ok`` [B, G, 1], the groups in front of the camera and inside the
    image under both (the only ones whose flow the image can show). Training supervises the predicted
    flows with these; ``benchmarks/nativecross_flows.py`` scores them against these."""
    import torch

    h, w = cfg["input_hw"]
    gh, gw = h // 8, w // 8
    dev = centres.device
    Tt = torch.from_numpy(T_true).float().to(dev)
    cam = torch.matmul(centres, Tt[:, :3, :3].transpose(1, 2)) + Tt[:, None, :3, 3]
    pix = torch.matmul(cam, P[:, :, :3].transpose(1, 2)) + P[:, None, :, 3]
    z = pix[..., 2:3]
    uv_true = pix[..., :2] / torch.clamp(z, min=0.5) / torch.tensor([float(w), float(h)], device=dev)
    ok = (cam[..., 2:3] > 0.5) & ((uv_true > 0) & (uv_true < 1) & (uv > 0) & (uv < 1)).all(-1, keepdim=True)
    return (uv_true - uv) * torch.tensor([float(gw), float(gh)], device=dev), ok


def _flow_loss(flow: Any, uv: Any, centres: Any, T_true: np.ndarray, P: Any, cfg: dict[str, Any]) -> Any:
    """Laplace NLL of each group's predicted flow (patches) against where the true extrinsic puts it.

    Dense supervision: 128 groups per sample say which way the image moved, where the 6 numbers of the
    increment say it once; the sigma it learns is the weight the translation solve gives the group.
    """
    import torch

    f, log_sigma = flow
    target, ok = true_flows(uv.detach(), centres, T_true, P, cfg)
    target = torch.clamp(target, -FLOW_CLIP, FLOW_CLIP)
    nll = (f - target).abs().sum(-1, keepdim=True) * torch.exp(-log_sigma) + 2.0 * log_sigma
    okf = ok.float()
    return (nll * okf).sum() / okf.sum().clamp(min=1.0)


def loss(model: Any, batch: dict[str, np.ndarray]) -> tuple[Any, dict[str, float]]:
    """The steps' loss (see the module doc), plus the matcher's when it has one that learns."""
    import torch

    if any(p.requires_grad for m in (model.encoder, model.step) for p in m.parameters()):
        total, parts = _steps_loss(model, batch)
    else:  # frozen (the matcher trained alone): their loss would change nothing
        total, parts = torch.zeros(()), {}
    matcher = getattr(model, "matcher", None)
    if matcher is not None and any(p.requires_grad for p in matcher.parameters()):
        lm = _match_loss(matcher, batch)
        total = total + lm
        parts["match"] = float(lm.detach())
    return total, parts


def _match_loss(matcher: Any, batch: dict[str, np.ndarray]) -> Any:
    """Laplace NLL of the matcher's landings on the batch's crops, in ``match_scale`` px."""
    from edge.models.training import batch_tensor

    x = batch_tensor(batch["match_x"].astype(np.float32)[None], matcher)
    y = batch_tensor(batch["match_y"], matcher)
    o = matcher(x)[0]
    ls = o[:, 2:3].clamp(-4.0, 3.0)
    return ((o[:, :2] - y).abs() / ls.exp() + ls).mean()


def _steps_loss(model: Any, batch: dict[str, np.ndarray]) -> tuple[Any, dict[str, float]]:
    """The unrolled steps' loss and its parts."""
    import torch
    import torch.nn.functional as F

    from edge.data.se3 import exp_se3, inverse, log_se3
    from edge.models.training import batch_tensor

    cfg = model.cfg
    n = int(cfg["iterations"])
    rs, ts = float(cfg["rot_scale"]), float(cfg["trans_scale"])
    img, pts = model.encoder(batch_tensor(batch["image"], model), batch_tensor(batch["groups"], model))
    centres, P = batch_tensor(batch["centres"], model), batch_tensor(batch["P"], model)
    T, T_true = batch["T"].astype(np.float64), batch["T_true"].astype(np.float64)
    total = torch.zeros((), device=centres.device)
    parts: dict[str, float] = {}
    for i in range(n):
        target = batch_tensor(log_se3(T_true @ inverse(T)).astype(np.float32), model)
        xi, flow, uv = model.step(img, pts, centres, batch_tensor(T.astype(np.float32), model), P, with_flow=True)
        lr = F.smooth_l1_loss(xi[:, :3] / rs, target[:, :3] / rs, beta=0.05)
        lt = F.smooth_l1_loss(xi[:, 3:] / ts, target[:, 3:] / ts, beta=0.05)
        li = lr + lt
        if flow is not None:
            lf = _flow_loss(flow, uv, centres, T_true, P, cfg)
            li = li + FLOW_WEIGHT * lf
            parts[f"flow{i}"] = float(lf.detach())
        total = total + (0.5 + 0.5 * (i + 1) / n) * li
        parts[f"rot{i}"], parts[f"trans{i}"] = float(lr.detach()), float(lt.detach())
        T = exp_se3(xi.detach().double().cpu().numpy()) @ T
    return total, parts
