"""A host-side local matcher for NativeCross's translation (the experiment that led to the family's matching stage,
which now holds its crops, matcher and solve: ``edge/models/nativecross/matching.py``, ``net.Matcher``; README,
NativeCross section): a small CNN looks at each point group's neighbourhood at the camera's full resolution and
says where the group's centre really lands; a weighted 6-DoF Gauss-Newton solve from those landings moves the
extrinsic, and the loop repeats under the new guess.

Why: the shipped ``step`` graph corrects rotation but not translation. A 25 cm error moves a group a few pixels of the
model's 384x128 input, and its per-group flows, read from stride-8 patch tokens, miss by more than that (benchmarks/
nativecross_flows.py). Here the matcher reads a 48x48 crop of the 768x256 rendering (image + the sparse inverse depth
of every scan point projected under the current guess) centred where the guess puts the group's centre, and
predicts the true landing (px) and a Laplace scale; it never sees the model's tokens.

Data: synthetic rigs (``rigsim.random_rig`` at 256x768), the truth perturbed within ``--deg`` / ``--cm`` per axis
(a residual such as the shipped loop leaves) plus as many rigs at half of that; groups as the card forms them
(``group_scan``, 128 of 64). Training: Laplace NLL, random mirroring, AdamW + one-cycle. Evaluation: held-out rigs
(other seeds), ``--iters`` rounds of crops -> flows -> solve from the surer half of the groups, rotation and
translation errors and the L1 / L2 rates per round; and the solve fed the true flows (a check of the solve).

    python benchmarks/experiments/nativecross_local_matcher.py [--rigs 800] [--test 60] [--epochs 8] [--iters 5]

Costs on the 2-core Zen 1: ~3 min of rendering, ~1 min an epoch per 400 rigs.
"""

from __future__ import annotations

import argparse
import time
from multiprocessing import Pool
from typing import Any

import numpy as np

HW = (256, 768)
CROP = 48


def _project(X: np.ndarray, T: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from edge.models.nativecross.matching import _project as project

    return project(X, T, P)


def crops(image: np.ndarray, xyz: np.ndarray, centres: np.ndarray, T: np.ndarray, P: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The family's crops (``matching.crops``) from the whole scan, only the centres inside the image."""
    from edge.models.nativecross.matching import crops as cut

    x, valid, base = cut(image, xyz, centres, T, P, CROP)
    good = np.flatnonzero(valid)
    return x[good], good, base[good]


def rig(seed: int, deg: float, cm: float) -> dict[str, Any] | None:
    """One rendered rig, its start guess and its groups' centres (None when too few points are in view)."""
    from edge.data.se3 import perturbation
    from edge.errors import DataError
    from edge.models import get_card
    from edge.models.nativecross.grouping import group_scan
    from edge.models.nativecross.rigsim import random_rig

    rng = np.random.default_rng(seed)
    r = random_rig(rng, HW)
    T, P = r.rig.T_lidar_to_cam, r.rig.P
    T0 = perturbation(rng, deg, cm / 100.0) @ T
    xyz = np.stack([r.points["x"], r.points["y"], r.points["z"]], 1).astype(np.float64)
    try:
        _, centres = group_scan(xyz, T0, P, HW, get_card("nativecross").config("default"))
    except DataError:
        return None
    return {"image": r.image, "xyz": xyz, "centres": centres.astype(np.float64), "T": T, "T0": T0, "P": P}


def _training_item(args: tuple[int, float, float]) -> tuple[np.ndarray, np.ndarray] | None:
    r = rig(*args)
    if r is None:
        return None
    x, good, base = crops(r["image"], r["xyz"], r["centres"], r["T0"], r["P"])
    flow = _project(r["centres"][good], r["T"], r["P"])[0] - base
    return x.astype(np.float16), flow.astype(np.float32)


def matcher() -> Any:
    """The family's matcher at the default config, called on [B, 4, 48, 48] crops."""
    import torch.nn as nn

    from edge.models import get_card
    from edge.models.nativecross.net import Matcher

    class Flat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = Matcher(get_card("nativecross").config("default"))

        def forward(self, x: Any) -> Any:
            return self.m(x[None])[0]

    return Flat()


def train(X: Any, Y: Any, epochs: int, seed: int = 0) -> Any:
    import torch

    torch.manual_seed(seed)
    m = matcher()
    bs = 256
    steps = epochs * (len(X) // bs)
    opt = torch.optim.AdamW(m.parameters(), 2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    t0 = time.time()
    for ep in range(epochs):
        perm, tot = torch.randperm(len(X)), 0.0
        m.train()
        for b in range(len(X) // bs):
            i = perm[b * bs:(b + 1) * bs]
            x, y = X[i].float(), Y[i] / 10.0
            if torch.rand(1) < 0.5:  # mirrored crops: x flow negated (the 1 px off-centre of an even crop ignored)
                x, y = x.flip(-1), y * torch.tensor([-1.0, 1.0])
            o = m(x)
            ls = o[:, 2:3].clamp(-4, 3)
            loss = ((o[:, :2] - y).abs() / ls.exp() + ls).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item()
        print(f"epoch {ep}: loss {tot / (len(X) // bs):.4f} ({time.time() - t0:.0f} s)", flush=True)
    return m.eval()


def solve(X: np.ndarray, target: np.ndarray, w: np.ndarray, T0: np.ndarray, P: np.ndarray) -> np.ndarray:
    from edge.models.nativecross.matching import solve as gauss_newton

    return gauss_newton(X, target, w, T0, P)


def evaluate(m: Any, seeds: range, deg: float, cm: float, iters: int, part: float) -> list[dict[str, float]]:
    import torch

    from edge.models.nativecross.metrics import pose_errors

    errs: list[list[tuple[float, float]]] = [[] for _ in range(iters + 2)]
    for s in seeds:
        r = rig(s, deg, cm)
        if r is None:
            continue
        T, P, xyz, cen = r["T"], r["P"], r["xyz"], r["centres"]
        Tk = r["T0"]
        errs[0].append(pose_errors(Tk, T))
        for it in range(iters):
            x, good, base = crops(r["image"], xyz, cen, Tk, P)
            with torch.no_grad():
                o = m(torch.from_numpy(x)).numpy()
            sig = np.exp(np.clip(o[:, 2], -4, 3)) * 10
            keep = sig <= np.quantile(sig, part)
            Tk = solve(cen[good][keep], (base + o[:, :2] * 10)[keep], 1 / sig[keep] ** 2, Tk, P)
            errs[it + 1].append(pose_errors(Tk, T))
        _, good, base = crops(r["image"], xyz, cen, r["T0"], P)  # the solve from the true flows, once
        errs[-1].append(pose_errors(solve(cen[good], _project(cen[good], T, P)[0], np.ones(len(good)), r["T0"], P),
                                    T))
    rows = []
    for i, e in enumerate(errs):
        a = np.asarray(e)
        rot, tr = a[:, 0], a[:, 1]
        rows.append({"round": "true flows" if i == len(errs) - 1 else i, "rigs": len(a),
                     "rot_median_deg": round(float(np.median(rot)), 2),
                     "rot_rmse_deg": round(float(np.sqrt((rot ** 2).mean())), 2),
                     "trans_median_cm": round(float(np.median(tr)), 1),
                     "trans_rmse_cm": round(float(np.sqrt((tr ** 2).mean())), 1),
                     "l2_rate": round(100 * float(np.mean((rot < 2) & (tr < 5))), 1),
                     "l1_rate": round(100 * float(np.mean((rot < 1) & (tr < 2.5))), 1)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rigs", type=int, default=800, help="training rigs at the full residual (as many at half)")
    ap.add_argument("--test", type=int, default=60)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--deg", type=float, default=1.5)
    ap.add_argument("--cm", type=float, default=25.0)
    ap.add_argument("--part", type=float, default=0.5, help="the share of groups (surest first) the solve uses")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(2)
    jobs = [(1000 + i, args.deg, args.cm) for i in range(args.rigs)]
    jobs += [(100000 + i, args.deg / 2, args.cm / 2) for i in range(args.rigs)]
    with Pool(2) as pool:
        items = [it for it in pool.map(_training_item, jobs, chunksize=8) if it is not None]
    X = torch.from_numpy(np.concatenate([x for x, _ in items]))
    Y = torch.from_numpy(np.concatenate([y for _, y in items]))
    print(f"{len(items)} rigs, {len(X)} crops", flush=True)
    m = train(X, Y, args.epochs)
    for row in evaluate(m, range(args.test), args.deg, args.cm, args.iters, args.part):
        print(row, flush=True)


if __name__ == "__main__":
    main()
