"""The step's landing cue samples the token map exactly where a centre projects (GridSample's frame is
easy to get half a patch wrong), and a checkpoint from before the cue existed continues training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge.cli.main import _invoke, app  # noqa: E402
from edge.errors import ModelError  # noqa: E402
from edge.models import get_card  # noqa: E402
from edge.models.checkpoint import save_checkpoint  # noqa: E402
from edge.models.nativecross.net import Step  # noqa: E402


def test_landing_reads_the_patch_a_centre_projects_onto() -> None:
    cfg = get_card("nativecross").config("tiny")
    step = Step(cfg).eval()
    gh, gw = step.grid
    d = cfg["dim"]
    tokens = torch.randn(1, gh * gw, d)
    grid = tokens.reshape(gh, gw, d)
    # centres of patches (row 2, col 5) and (row 4, col 10), and halfway between (3, 7) and (3, 8)
    uv = torch.tensor([[[(5 + 0.5) / gw, (2 + 0.5) / gh], [(10 + 0.5) / gw, (4 + 0.5) / gh],
                        [8.0 / gw, (3 + 0.5) / gh]]])
    s = step._landing(tokens, uv).reshape(3, step.land, d)
    torch.testing.assert_close(s[0, 0], grid[2, 5])
    torch.testing.assert_close(s[0, 1], grid[2, 4])  # one patch left
    torch.testing.assert_close(s[0, 2], grid[2, 6])  # right
    torch.testing.assert_close(s[0, 3], grid[1, 5])  # up
    torch.testing.assert_close(s[0, 4], grid[3, 5])  # down
    torch.testing.assert_close(s[1, 0], grid[4, 10])
    torch.testing.assert_close(s[2, 0], (grid[3, 7] + grid[3, 8]) / 2)
    # outside the image: zeros, not the border patch repeated
    far = step._landing(tokens, torch.tensor([[[-0.5, 0.5]]]))
    assert float(far[0, 0, :d].abs().max()) == 0.0


def _old_checkpoint(path: Path) -> dict:
    """A tiny checkpoint whose config predates ``landing`` (as the first shipped weights did)."""
    card = get_card("nativecross")
    cfg0 = {k: v for k, v in card.config("tiny").items() if k != "landing"}
    torch.manual_seed(3)
    model = card.build({**cfg0, "landing": card.config_added["landing"]})
    save_checkpoint(path, "nativecross", cfg0, model, {})
    return model.state_dict()


def test_a_checkpoint_from_before_an_option_continues(tmp_path: Path) -> None:
    from edge.models.training import train

    old = _old_checkpoint(tmp_path / "old.pt")
    card = get_card("nativecross")
    cfg = card.config("tiny")
    with pytest.raises(ModelError, match="do not fit"):
        train(card, cfg, steps=1, batch=1, init_state=old)
    model, _, _ = train(card, cfg, steps=1, batch=1, lr=1e-12, init_state=old, init_partial=True)
    new = model.state_dict()
    assert any(k.startswith("step.land_proj") for k in new) and not any("land_proj" in k for k in old)
    for k, v in old.items():
        if v.is_floating_point() and "running" not in k:  # BatchNorm statistics move in train mode
            assert np.allclose(new[k].numpy(), v.numpy(), atol=1e-6), k


def test_edge_train_init_names_the_new_options_and_refuses_other_differences(tmp_path: Path, capsys) -> None:
    _old_checkpoint(tmp_path / "old.pt")
    rc = _invoke(app, ["train", "nativecross", "--config", "tiny", "--steps", "1", "--batch", "1",
                       "--eval-samples", "0", "--init", str(tmp_path / "old.pt"), "--out", str(tmp_path / "n.pt")],
                 "edge")
    assert rc == 0 and (tmp_path / "n.pt").is_file()
    assert "predates config option(s) landing" in " ".join(capsys.readouterr().err.split())
    rc = _invoke(app, ["train", "nativecross", "--config", "default", "--steps", "1", "--eval-samples", "0",
                       "--init", str(tmp_path / "old.pt"), "--out", str(tmp_path / "m.pt")], "edge")
    err = capsys.readouterr().err
    assert rc == 2 and "checkpoint config differs from --config default" in err and "Traceback" not in err
    assert not (tmp_path / "m.pt").exists()


def test_a_checkpoint_from_before_an_option_exports_a_bundle_that_loads(tmp_path: Path) -> None:
    """Its config gets the card's ``config_added`` values (what it meant), so the bundle states them and
    passes the manifest's config check instead of being refused for lacking the newest keys."""
    pytest.importorskip("onnxruntime")
    import edge
    from edge.models.checkpoint import load_model

    card = get_card("nativecross")
    cfg0 = {k: v for k, v in card.config("tiny").items() if k not in card.config_added}
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "old.pt", "nativecross", cfg0, card.build({**cfg0, **card.config_added}), {})
    _, cfg, _ = load_model(tmp_path / "old.pt")
    assert cfg["landing"] == 0 and cfg["group_space"] == "xyz" and cfg["flow_solve"] == 0
    edge.export_card("nativecross", tmp_path / "b", checkpoint=tmp_path / "old.pt", targets=("onnx",))
    loaded = edge.Bundle.load(tmp_path / "b")
    # no matching stage before it existed: only the program without it
    assert list(loaded.manifest["programs"]) == ["refine", "refine_edges"] and "match" not in loaded.graphs
    with pytest.raises(ModelError, match="program 'refine_match' is not available for this config"):
        edge.export_card("nativecross", tmp_path / "c", checkpoint=tmp_path / "old.pt", programs=["refine_match"])
    assert not (tmp_path / "c").exists()
    assert loaded.manifest["model"]["config"]["group_space"] == "xyz"
    assert loaded.manifest["preprocess"]["group_space"] == "xyz"
    from edge.program import load_program

    with load_program(loaded) as prog:  # the manifest's config check takes the 'before' values too
        assert prog.cfg["landing"] == 0 and prog.cfg["flow_solve"] == 0


def _scene(seed: int, rot_deg: float, trans_m: float) -> tuple:
    """Group centres in the camera, a KITTI-like projection at the default input, and a (r, t) increment."""
    rng = np.random.default_rng(seed)
    b, g = 4, 96
    cam = np.stack([rng.uniform(-8, 8, (b, g)), rng.uniform(-1.5, 2.0, (b, g)), rng.uniform(4, 40, (b, g))], -1)
    P = np.tile(np.array([[230.0, 0, 192, 0], [0, 230.0, 64, 0], [0, 0, 1, 0]]), (b, 1, 1))
    axis = rng.normal(size=(b, 3))
    r = axis / np.linalg.norm(axis, axis=1, keepdims=True) * np.radians(rot_deg)
    t = rng.uniform(-trans_m, trans_m, (b, 3))
    return cam, P, r, t


def _project(cam: np.ndarray, P: np.ndarray) -> np.ndarray:
    pix = cam @ P[:, :, :3].transpose(0, 2, 1) + P[:, None, :, 3]
    return pix[..., :2] / pix[..., 2:3]


def test_rotation_is_the_exponential_map() -> None:
    from edge.data.se3 import exp_se3
    from edge.models.nativecross.net import rotation

    rng = np.random.default_rng(0)
    r = np.concatenate([rng.normal(size=(5, 3)) * 0.3, np.zeros((1, 3)), np.full((1, 3), 1e-7)])
    got = rotation(torch.from_numpy(r)).numpy()
    want = np.stack([exp_se3(np.concatenate([x, np.zeros(3)]))[:3, :3] for x in r])
    assert np.allclose(got, want, atol=1e-9)


@pytest.mark.parametrize("rot_deg", [0.0, 3.0, 10.0])
def test_true_flows_give_the_translation(rot_deg: float) -> None:
    """What the step's translation solve must do once the flows are right: recover t within a few cm at
    any rotation (the rotation's motion removed exactly), where the first-order version missed by 20+ cm.
    One linearised, damped step: the few cm left are what the next iteration takes off."""
    from edge.data.se3 import exp_se3
    from edge.models.nativecross.net import translation_from_flows

    cam, P, r, t = _scene(1, rot_deg, 0.3)
    moved = np.stack([cam[i] @ exp_se3(np.concatenate([r[i], t[i]]))[:3, :3].T
                      + exp_se3(np.concatenate([r[i], t[i]]))[:3, 3] for i in range(len(cam))])
    flow = _project(moved, P) - _project(cam, P)
    true_t = np.stack([exp_se3(np.concatenate([r[i], t[i]]))[:3, 3] for i in range(len(cam))])
    f = torch.from_numpy
    got = translation_from_flows(f(flow), f(cam), f(r), f(P), torch.ones(cam.shape[0], cam.shape[1], 1,
                                                                        dtype=torch.float64)).numpy()
    err = np.linalg.norm(got - true_t, axis=1)
    assert err.max() < 0.06, (err, np.linalg.norm(true_t, axis=1))
    # and the weights matter: groups with zero weight (here: all but the far ones) cannot pin depth
    w = torch.from_numpy((cam[..., 2:3] > 35).astype(np.float64))
    far = translation_from_flows(f(flow), f(cam), f(r), f(P), w).numpy()
    assert np.linalg.norm(far - true_t, axis=1).max() > err.max()


def test_the_flow_loss_is_lowest_at_the_true_flow() -> None:
    from edge.models.nativecross.train import _flow_loss

    card = get_card("nativecross")
    cfg = card.config("tiny")
    cam, P, _r, t = _scene(2, 2.0, 0.2)
    h, w = cfg["input_hw"]
    P = P.copy()
    P[:, 0, 2], P[:, 1, 2] = w / 2, h / 2
    T_true = np.tile(np.eye(4), (len(cam), 1, 1))
    T_true[:, :3, 3] = t
    uv = _project(cam, P) / np.array([w, h])
    true_uv = _project(cam + t[:, None], P) / np.array([w, h])
    exact = torch.from_numpy((true_uv - uv) * np.array([w / 8, h / 8])).float()
    f32 = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32))  # noqa: E731
    sigma = torch.full((*exact.shape[:-1], 1), -1.0)
    args = (f32(uv), f32(cam), T_true, f32(P), cfg)
    best = _flow_loss((exact, sigma), *args)
    assert float(_flow_loss((exact + 0.5, sigma), *args)) > float(best) + 0.4
    assert float(_flow_loss((torch.zeros_like(exact), sigma), *args)) > float(best)


def test_the_matcher_trains_alone_on_a_trained_model() -> None:
    """``--freeze encoder,step``: the matching stage added to a checkpoint that predates it learns, while the
    encoder and step keep their weights and BatchNorm statistics (frozen modules stay in eval mode)."""
    from edge.models.nativecross import train as T
    from edge.models.training import train

    card = get_card("nativecross")
    cfg = card.config("tiny")
    torch.manual_seed(1)
    init = {k: v for k, v in card.build(cfg).state_dict().items() if not k.startswith("matcher.")}
    model, losses, _ = train(card, cfg, steps=2, batch=2, init_state=init, init_partial=True,
                          freeze=("encoder", "step"))
    got = model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in init.items()), "a frozen weight or statistic moved"
    batch = next(T.batch_stream(cfg, 2, 0))
    c = cfg["match_crop"]
    assert batch["match_x"].shape == (T.MATCH_BATCH, 4, c, c) and batch["match_y"].shape == (T.MATCH_BATCH, 2)
    _, parts = T.loss(model.train(), batch)
    assert list(parts) == ["match"] and np.isfinite(parts["match"]) and len(losses) == 2
    # the loop tells the stream what is frozen: it then renders only the crops, which are all the loss reads
    alone = next(T.batch_stream(cfg, 2, 0, frozen=("encoder", "step")))
    assert set(alone) == {"match_x", "match_y"} and alone["match_x"].shape == batch["match_x"].shape
    _, parts = T.loss(model.train(), alone)
    assert list(parts) == ["match"] and np.isfinite(parts["match"])
    assert "image" in next(T.batch_stream(cfg, 2, 0, frozen=("encoder",)))  # the step still learns: its samples


def test_the_matchers_targets_are_where_the_truth_puts_each_centre() -> None:
    """With no perturbation the crops are cut where the truth puts each centre: every target is within half
    a pixel (the rounding of the crop's centre), and a mirrored crop's x target is negated."""
    from edge.models.nativecross import matching as M
    from edge.models.nativecross import train as T
    from edge.models.nativecross.rigsim import random_rig

    cfg = {**get_card("nativecross").config("tiny"), "match_train_deg": 0.0, "match_train_m": 0.0}
    rig = random_rig(np.random.default_rng(4), tuple(cfg["match_hw"]))
    x, y = T.match_crops(rig, np.random.default_rng(0), cfg)
    assert len(x) > 10 and np.abs(y).max() <= 0.5 / cfg["match_scale"] + 1e-6
    moved = {**cfg, "match_train_deg": 2.0, "match_train_m": 0.3}
    _, y2 = T.match_crops(rig, np.random.default_rng(0), moved)
    assert np.abs(y2).max() > 0.2  # > 2 px somewhere (4x the rounding): a perturbed start is corrected
    # each crop is the one cut at the truth, or it mirrored with its x target negated; both kinds occur
    from edge.models.nativecross.card import match_feeds
    from edge.models.nativecross.grouping import group_view, view_points

    T, P = rig.rig.T_lidar_to_cam, rig.rig.P
    xyz = np.stack([rig.points["x"], rig.points["y"], rig.points["z"]], 1).astype(np.float64)
    view = view_points(xyz, T, P, rig.image.shape[:2], cfg)
    _, centres = group_view(view, cfg)
    f = match_feeds(rig.image, view, P, cfg)
    ref, valid, base = M.crops(f["match_image"][0], f["scan"][0], centres, T, f["match_P"][0], cfg["match_crop"])
    ref = ref[valid].astype(np.float16)
    ry = (M._project(centres[valid].astype(np.float64), T, f["match_P"][0])[0] - base[valid]) / cfg["match_scale"]
    assert len(ref) == len(x)
    kinds = []
    for i in range(len(x)):
        same, flipped = np.array_equal(x[i], ref[i]), np.array_equal(x[i], ref[i][..., ::-1])
        assert same or flipped
        kinds.append(same)
        if same != flipped:  # (a crop equal to its mirror says nothing about the flip)
            assert y[i, 0] == pytest.approx(ry[i, 0] if same else -ry[i, 0], abs=1e-6)
        assert y[i, 1] == pytest.approx(ry[i, 1], abs=1e-6)
    assert 0 < sum(kinds) < len(kinds)


def test_the_crop_buffer_keeps_the_last_crops_in_a_ring() -> None:
    from edge.models.nativecross.train import CropBuffer

    buf = CropBuffer(5, 16)
    for start, n in ((0, 3), (3, 4), (7, 9)):  # the last add is more than the ring holds
        buf.add(np.arange(start, start + n, dtype=np.float16)[:, None, None, None] * np.ones((1, 4, 16, 16)),
                np.arange(start, start + n, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32))
        assert buf.n == min(start + n, 5)
    assert buf.y[:, 0].tolist() == [15.0, 11.0, 12.0, 13.0, 14.0]  # where one by one they would have gone
    assert buf.at == 1
    assert all(float(buf.x[i, 0, 0, 0]) == buf.y[i, 0] for i in range(5))
    x, y = buf.sample(np.random.default_rng(0), 50)
    assert set(y[:, 0].tolist()) <= {11.0, 12.0, 13.0, 14.0, 15.0} and x.shape == (50, 4, 16, 16)


def test_a_config_that_makes_no_training_data_stops_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a review: `edge train nativecross --set groups=2` spun at full CPU before its first step for as long
    as it was left (the two farthest-point centres never land in the image, so the matcher got no crop). After
    DRY_AFTER rigs in a row with nothing, one line says so."""
    import edge
    from edge.errors import ModelError
    from edge.models.nativecross import train

    monkeypatch.setattr(train, "DRY_AFTER", 5)
    cfg = dict(edge.get_card("nativecross").config("tiny"), groups=2)
    with pytest.raises(ModelError, match=r"5 synthetic rigs in a row gave the matching stage no crop \(groups=2, "):
        next(train.batch_stream(cfg, 1, seed=0))
