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
    model, _ = train(card, cfg, steps=1, batch=1, lr=1e-12, init_state=old, init_partial=True)
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
    cfg0 = {k: v for k, v in card.config("tiny").items() if k not in ("landing", "group_space")}
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "old.pt", "nativecross", cfg0, card.build({**cfg0, **card.config_added}), {})
    _, cfg, _ = load_model(tmp_path / "old.pt")
    assert cfg["landing"] == 0 and cfg["group_space"] == "xyz"
    edge.export_card("nativecross", tmp_path / "b", checkpoint=tmp_path / "old.pt", targets=("onnx",))
    loaded = edge.Bundle.load(tmp_path / "b")
    assert loaded.manifest["model"]["config"]["group_space"] == "xyz"
    assert loaded.manifest["preprocess"]["group_space"] == "xyz"
