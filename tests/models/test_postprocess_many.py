"""Every family that decodes several steps at once (``ModelCard.postprocess_many``) gives each step the
record and payload its own ``postprocess`` gives: checked on the family's own evaluation samples through
its tiny model, so a new family's batch decoding is held to the same contract as lane's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.models import get_card

torch = pytest.importorskip("torch")

from tests.conftest import FAMILIES  # noqa: E402

BATCHED = [f for f in FAMILIES if get_card(f).postprocess_many is not None]


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and bool(np.allclose(a, b, rtol=0, atol=1e-9, equal_nan=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_some_family_decodes_in_batches() -> None:
    assert "lane" in BATCHED  # the stream loop's batch decoding is exercised by a shipped family


@pytest.mark.parametrize("family", BATCHED)
def test_postprocess_many_equals_postprocess_per_step(family: str) -> None:
    from edge.program import run_samples, torch_program

    card = get_card(family)
    cfg = card.config(card.test_config)
    torch.manual_seed(0)
    model = card.build(cfg).eval()
    samples = card.data.samples(cfg, "evaluation", 4, 0)
    with torch_program(card, model, cfg) as prog:
        runs = run_samples(prog, card, samples)
    outs, frames = [o for _, _, o in runs], [f for _, f, _ in runs]
    many = card.postprocess_many(outs, frames, cfg)
    assert len(many) == len(runs)
    for (rec, pay), o, f in zip(many, outs, frames, strict=True):
        want_rec, want_pay = card.postprocess(o, f, cfg)
        assert json.dumps(rec, sort_keys=True) == json.dumps(want_rec, sort_keys=True)
        assert _same(pay, want_pay)
