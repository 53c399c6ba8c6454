"""NativeCross's local matching stage on the host: crops cut where the guess puts each centre, the pose solve
(exact from exact landings, robust to wrong ones), the surest-half update, and the program's rounds: an
oracle matcher (the true landings) brings the runner's guess onto the truth."""

from __future__ import annotations

import numpy as np
import pytest

from edge.data import se3
from edge.models.nativecross import card as C
from edge.models.nativecross import matching as M
from edge.models.nativecross.metrics import pose_errors

CFG = C.CONFIGS["tiny"]
P = np.array([[300.0, 0, 192, 0], [0, 300.0, 64, 0], [0, 0, 1, 0]])


def _scene(seed: int, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Points in front of a forward camera (LiDAR axes) and the true extrinsic."""
    from edge.models.nativecross.rigsim import LIDAR_TO_CAM_AXES

    rng = np.random.default_rng(seed)
    x = rng.uniform(4, 40, n)
    X = np.stack([x, rng.uniform(-0.5, 0.5, n) * x, rng.uniform(-0.15, 0.15, n) * x], 1)
    T = np.eye(4)
    T[:3, :3] = LIDAR_TO_CAM_AXES
    T[:3, 3] = [0.05, -0.08, -0.27]
    return X, T


def test_crops_are_cut_around_each_centres_projection() -> None:
    img = np.zeros((128, 384, 3), np.uint8)
    img[40, 100] = (255, 128, 0)
    T = np.eye(4)  # camera axes: a point (u - cx) z / f, ...
    scan = np.array([[(101 - 192) * 10 / 300, (41 - 64) * 10 / 300, 10.0],   # lands at (101, 41), 10 m
                     [(101 - 192) * 5 / 300, (41 - 64) * 5 / 300, 5.0],      # the same pixel, nearer: on top
                     [0.0, 0.0, -5.0]])                                      # behind the camera
    centres = np.array([[(100 - 192) * 8 / 300, (40 - 64) * 8 / 300, 8.0],  # at (100, 40)
                        [0.0, 0.0, -3.0],                                    # behind: no crop
                        [5000.0, 0.0, 1.5]])                                 # outside the image
    x, valid, base = M.crops(img, scan.astype(np.float32), centres, T, P, 16)
    assert x.shape == (3, 4, 16, 16) and valid.tolist() == [True, False, False]
    assert base[0].tolist() == [100.0, 40.0] and not x[1:].any()
    c = 8  # the crop's centre pixel is the projection's (row/col index crop // 2)
    assert x[0, :3, c, c].tolist() == pytest.approx([1.0, 128 / 255, 0.0])
    assert x[0, 3, c + 1, c + 1] == pytest.approx(4 / 5)  # the nearer point's inverse depth
    assert np.count_nonzero(x[0, 3]) == 1 and np.count_nonzero(x[0, :3]) == 2


def test_crops_at_the_border_are_padded_with_zeros() -> None:
    img = np.full((128, 384, 3), 255, np.uint8)
    centres = np.array([[(0 - 192) * 8 / 300, (0 - 64) * 8 / 300, 8.0]])  # pixel (0, 0)
    x, valid, _ = M.crops(img, np.zeros((1, 3), np.float32), centres, np.eye(4), P, 16)
    assert valid[0] and x[0, 0, 8:, 8:].min() == 1.0 and x[0, 0, :8].max() == 0 and x[0, 0, :, :8].max() == 0


@pytest.mark.parametrize("seed", range(4))
def test_solve_is_exact_from_exact_landings_and_robust_to_wrong_ones(seed: int) -> None:
    X, T = _scene(seed)
    rng = np.random.default_rng(seed)
    T0 = se3.perturbation(rng, 3.0, 0.3) @ T
    uv = M._project(X, T, P)[0]
    got = M.solve(X, uv, np.ones(len(X)), T0, P)
    assert se3.rotation_error_deg(got, T) < 1e-6 and np.abs(got[:3, 3] - T[:3, 3]).max() < 1e-6
    wrong = uv.copy()
    wrong[:10] += rng.uniform(20, 60, (10, 2))  # a sixth of the landings 20-60 px off
    plain = M.solve(X, wrong, np.ones(len(X)), T0, P, huber=1e9)
    robust = M.solve(X, wrong, np.ones(len(X)), T0, P)
    assert pose_errors(robust, T)[1] < 0.3 * pose_errors(plain, T)[1]
    weighted = M.solve(X, wrong, np.r_[np.zeros(10), np.ones(len(X) - 10)], T0, P)  # weight 0: ignored
    assert np.abs(weighted - got).max() < 1e-6


def test_update_trusts_the_surest_share_and_needs_six_groups() -> None:
    X, T = _scene(7, 40)
    T0 = se3.perturbation(np.random.default_rng(7), 2.0, 0.2) @ T
    base = np.round(M._project(X, T0, P)[0])
    flow = (M._project(X, T, P)[0] - base) / CFG["match_scale"]
    out = np.concatenate([flow, np.full((40, 1), -2.0)], 1)
    out[:15, :2] += 3.0  # 30 px wrong, and unsure of it
    out[:15, 2] = 2.0
    valid = np.ones(40, bool)
    got = M.update(out, valid, base, X, T0, P, CFG)
    assert se3.rotation_error_deg(got, T) < 1e-5 and np.abs(got[:3, 3] - T[:3, 3]).max() < 1e-5
    few = np.zeros(40, bool)
    few[20:25] = True
    assert np.array_equal(M.update(out, few, base, X, T0, P, CFG), T0)


def test_an_oracle_matcher_brings_the_program_onto_the_truth() -> None:
    """The runner's rounds: crops under each new guess, the match graph's landings, the solve. A match graph
    that answers with the true landings (read from the feeds it was given) lands on the truth in one round."""
    from edge.models.nativecross.samples import samples

    frames = samples({**CFG, "eval_max_deg": 3, "eval_max_m": 0.25}, "evaluation", 1, 3)[0][0]
    truth = frames["camera"].meta["rig_true"].T_lidar_to_cam
    feeds = C.preprocess(frames, CFG)
    seen: list[np.ndarray] = []

    def match(f: dict) -> dict:
        T = seen[-1]
        x, _, base = M.crops(feeds["match_image"][0], feeds["scan"][0], feeds["centres"][0], T,
                             feeds["match_P"][0], CFG["match_crop"])
        assert np.array_equal(f["crops"][0], x)  # the runner cut the crops under the current guess
        flow = (M._project(feeds["centres"][0].astype(np.float64), truth, feeds["match_P"][0])[0] - base)
        return {"flow": np.concatenate([flow / CFG["match_scale"], np.zeros((len(x), 1))], 1)[None]}

    def step(f: dict) -> dict:
        seen.append(np.asarray(f["T"][0], np.float64))
        return {"xi": np.zeros((1, 6), np.float32)}

    runner = C.RefineRunner({"encode": lambda f: {"img_tokens": 0, "pt_tokens": 0}, "step": step,
                             "match": lambda f: match(f)}, CFG)
    real_round = runner._match_round

    def round_(f: dict, T: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seen.append(T[0])
        return real_round(f, T, active)

    runner._match_round = round_
    out = runner.step(feeds)
    assert out["T_iters"].shape == (1, 1 + CFG["iterations"] + CFG["match_rounds"], 4, 4)
    before = pose_errors(out["T_iters"][0, 0], truth)
    assert before[0] > 0.5 and before[1] > 3
    rot, cm = pose_errors(out["T"][0], truth)
    assert rot < 1e-3 and cm < 1e-2
    rec, _ = C.postprocess(out, frames, CFG)
    assert rec["iterations"] == CFG["iterations"] and rec["match_rounds"] == CFG["match_rounds"]
    assert len(rec["eval"]["per_iter"]) == CFG["iterations"] + CFG["match_rounds"]


def test_each_program_gets_only_the_feeds_its_graphs_read() -> None:
    """``refine`` does not pay for the matching stage's feeds (the image at match_hw, the scan sample): a program
    makes its feeds under ``feeds_for`` its graphs, and the refine result is the same as from every feed."""
    import torch

    from edge.models import get_card
    from edge.models.nativecross.samples import samples
    from edge.program import torch_program

    card = get_card("nativecross")
    torch.manual_seed(0)
    model = card.build(CFG).eval()
    frames = samples(CFG, "evaluation", 1, 5)[0][0]
    full = C.preprocess(frames, CFG)  # no program named: every feed
    match, edges = {"match_image", "match_P", "scan"}, {"edge_image", "edge_P", "edge_points"}
    assert match | edges <= set(full)
    with torch_program(card, model, CFG, card.program("refine")) as prog:
        own = prog.preprocess(card, frames)
        assert set(own) == set(full) - match - edges
        np.testing.assert_array_equal(prog.step(own)["T"], prog.step(full)["T"])
    with torch_program(card, model, CFG, card.program("refine_match")) as prog:
        assert set(prog.preprocess(card, frames)) == set(full) - edges
    with torch_program(card, model, CFG, card.program("refine_edges")) as prog:  # a host stage's feeds too
        assert set(prog.preprocess(card, frames)) == set(full) - match


def test_confident_reads_the_surest_shares_median_scale() -> None:
    out = np.zeros((40, 3))
    out[:, 2] = np.log(np.linspace(1.0, 8.0, 40) / CFG["match_scale"])  # scales 1..8 px
    valid = np.ones(40, bool)
    med = float(np.median(np.linspace(1.0, 8.0, 40)[:20]))  # the surest half's median: ~2.8 px
    assert M.confident(out, valid, {**CFG, "match_max_sigma": 0.0})  # 0: the rule is off
    assert M.confident(out, valid, {**CFG, "match_max_sigma": med + 0.05})
    assert not M.confident(out, valid, {**CFG, "match_max_sigma": med - 0.05})
    few = np.zeros(40, bool)
    few[:5] = True
    assert not M.confident(out, few, {**CFG, "match_max_sigma": 0.0})  # too few groups to fix 6 DoF


@pytest.mark.parametrize("log_scale, applied", [(np.log(0.1), 2), (np.log(3.0), 0)])
def test_the_rounds_stop_at_the_first_unsure_one(log_scale: float, applied: int) -> None:
    """A match graph that always answers 'one pixel right': with sure landings (1 px scale) every round moves
    the guess; with unsure ones (30 px, over ``match_max_sigma``) none does, the guess stays the steps' and the
    graph is not called again; the record says how many rounds moved it."""
    from edge.models.nativecross.samples import samples

    cfg = {**CFG, "match_max_sigma": 5.0}
    frames = samples(cfg, "evaluation", 1, 3)[0][0]
    feeds = C.preprocess(frames, cfg)
    calls = []

    def match(f: dict) -> dict:
        calls.append(1)
        g = f["crops"].shape[1]
        o = np.zeros((1, g, 3))
        o[..., 0] = 1.0 / cfg["match_scale"]
        o[..., 2] = log_scale
        return {"flow": o}

    runner = C.RefineRunner({"encode": lambda f: {"img_tokens": 0, "pt_tokens": 0},
                             "step": lambda f: {"xi": np.zeros((1, 6), np.float32)}, "match": match}, cfg)
    out = runner.step(feeds)
    n = cfg["iterations"]
    assert out["T_iters"].shape[1] == 1 + n + cfg["match_rounds"]
    assert int(out["match_applied"][0]) == applied and len(calls) == (cfg["match_rounds"] if applied else 1)
    rounds = cfg["match_rounds"]
    moved = [not np.allclose(out["T_iters"][0, n + k + 1], out["T_iters"][0, n + k]) for k in range(rounds)]
    assert moved == [True] * applied + [False] * (cfg["match_rounds"] - applied)
    rec, _ = C.postprocess(out, frames, cfg)
    assert rec["match_rounds_applied"] == applied and rec["match_rounds"] == cfg["match_rounds"]


def test_a_stopped_item_of_a_batch_gets_no_more_crops(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two items in one batch: the first's landings are sure, the second's not. The second stops after the first
    round: no crops are cut for it afterwards (its rows of the graph's batch are blank) and its guess stays,
    while the first moves every round."""
    from edge.models.nativecross.samples import samples

    cfg = {**CFG, "match_max_sigma": 5.0}
    one = [C.preprocess(s[0], cfg) for s in samples(cfg, "evaluation", 2, 3)]
    feeds = {k: np.concatenate([f[k] for f in one]) for k in one[0]}
    cut: list[int] = []
    real = M.crops
    monkeypatch.setattr(M, "crops", lambda *a, **k: cut.append(1) or real(*a, **k))
    seen = []

    def match(f: dict) -> dict:
        seen.append(f["crops"].copy())
        o = np.zeros((2, f["crops"].shape[1], 3))
        o[..., 0] = 1.0 / cfg["match_scale"]
        o[0, :, 2], o[1, :, 2] = np.log(0.1), np.log(3.0)
        return {"flow": o}

    runner = C.RefineRunner({"encode": lambda f: {"img_tokens": 0, "pt_tokens": 0},
                             "step": lambda f: {"xi": np.zeros((2, 6), np.float32)}, "match": match}, cfg)
    out = runner.step(feeds)
    rounds = cfg["match_rounds"]
    assert out["match_applied"].tolist() == [rounds, 0]
    assert len(cut) == 2 + (rounds - 1)  # both items in the first round, then the first only
    assert all(np.abs(s[0]).max() > 0 for s in seen) and all(not np.abs(s[1]).any() for s in seen[1:])
    n = cfg["iterations"]
    assert np.array_equal(out["T_iters"][1, n], out["T_iters"][1, -1])
    assert not np.allclose(out["T_iters"][0, n], out["T_iters"][0, -1])


def test_the_stop_rule_is_an_export_option() -> None:
    """The same weights with another stop rule: ``--set match_max_sigma=4.25`` (a config key the card declares)."""
    from edge.errors import ModelError

    assert C.card().with_options(CFG, {"match_max_sigma": 4.25})["match_max_sigma"] == 4.25
    with pytest.raises(ModelError, match="--set match_rounds is not an export option"):
        C.card().with_options(CFG, {"match_rounds": 2})
