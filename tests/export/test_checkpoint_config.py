"""`edge-export FAMILY --config NAME --checkpoint CK`: the checkpoint must be of that config, judged on the keys it
recorded; keys the card gained since take their "before" values (the model as trained), with a note."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import ModelError
from edge.models import get_card

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


def test_a_checkpoint_from_before_a_new_config_key_exports_as_trained(tmp_path: Path) -> None:
    """A tiny NativeCross checkpoint written before the matching stage's keys existed was refused as "trained with
    another config than 'tiny'" (its filled-in values, no matching stage, are not today's tiny's) while its record
    named tiny; ``edge train --init`` took it. It exports as trained now, and the note says which keys it predates."""
    import edge
    from edge.models.checkpoint import save_checkpoint

    card = get_card("nativecross")
    added = set(card.config_added)
    old = {k: v for k, v in card.config("tiny").items() if k not in added}
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "old.pt", "nativecross", old, card.build({**card.config_added, **old}),
                    {"config_name": "tiny"})
    said: list[str] = []
    b, _ = edge.export_card("nativecross", tmp_path / "b", config="tiny", checkpoint=tmp_path / "old.pt",
                            progress=said.append)
    assert b.manifest["model"]["config"]["match_rounds"] == card.config_added["match_rounds"] == 0
    assert list(b.manifest["programs"]) == [p.name for p in card.programs_for(b.manifest["model"]["config"])]
    note = next(m for m in said if m.startswith("note:"))
    assert "predates config option(s)" in note and "match_rounds" in note


def test_a_checkpoint_of_another_config_names_the_keys(tmp_path: Path) -> None:
    """The refusal named no key and no way out."""
    from edge.export.api import export_card
    from edge.models.checkpoint import save_checkpoint

    card = get_card("lane")
    cfg = card.config("tiny")
    other = next(n for n in card.configs if n != "tiny" and card.config(n)["dim"] != cfg["dim"])
    ocfg = card.config(other)
    save_checkpoint(tmp_path / "other.pt", "lane", ocfg, card.build(ocfg), {})
    with pytest.raises(ModelError, match=rf"other\.pt: checkpoint was trained with another config than 'tiny' \(.*"
                                         rf"dim: {ocfg['dim']} there, {cfg['dim']} in 'tiny'.*\); leave out --config "
                                         "to export it as it was trained$") as e:
        export_card("lane", tmp_path / "b", config="tiny", checkpoint=tmp_path / "other.pt")
    assert "\n" not in str(e.value) and not (tmp_path / "b").exists()
