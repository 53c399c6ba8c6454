"""ETA-VLA's pruning inside the graph: shapes, the scoring rules on hand-made cases, ONNX parity with the
kept indices equal to PyTorch's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge.models.etavla.card import kept as kept_count  # noqa: E402
from edge.models.etavla.card import visual_tokens  # noqa: E402
from edge.models.etavla.net import ETAVLA, diverse, text_attention  # noqa: E402
from edge.models.etavla.tokens import default_vocabulary, tokenize  # noqa: E402

VOCAB = default_vocabulary()
CFG = {"image_hw": [32, 64], "views": 3, "frames": 4, "widths": [8, 16, 24], "dim": 32, "heads": 2, "layers": 3,
       "vocab_size": len(VOCAB), "readout": 1, "waypoints": 8, "prune_layer": 1, "prune_rule": "eta",
       "diversity": 0.5, "keep": 0.25}


def _instructions() -> torch.Tensor:
    return torch.from_numpy(np.stack([tokenize("left", "turn left at the next junction", VOCAB, 10),
                                      tokenize("stop", "come to a stop", VOCAB, 10)]))


def test_keep_count_is_static_and_rounded_up() -> None:
    assert visual_tokens(CFG) == 24
    assert [kept_count({**CFG, "keep": k}) for k in (1.0, 0.5, 0.25, 0.15, 0.0)] == [24, 12, 6, 4, 1]


@pytest.mark.parametrize("rule", ["eta", "fastv", "random"])
def test_every_rule_keeps_k_distinct_tokens(rule: str) -> None:
    torch.manual_seed(0)
    m = ETAVLA({**CFG, "prune_rule": rule}).eval()
    with torch.no_grad():
        wp, speed, kept = m(torch.randn(2, 4, 3, 3, 32, 64), _instructions())
    assert wp.shape == (2, 8, 2) and speed.shape == (2, 1) and kept.shape == (2, 6)
    assert all(len(set(row.tolist())) == 6 and min(row) >= 0 and max(row) < 24 for row in kept)


def test_keep_one_runs_every_token() -> None:
    torch.manual_seed(0)
    full = ETAVLA({**CFG, "keep": 1.0}).eval()
    never = ETAVLA({**CFG, "keep": 0.25, "prune_layer": 99}).eval()
    never.load_state_dict(full.state_dict())
    tok = torch.randn(2, 4, 3, 8, 32)
    with torch.no_grad():
        a, b = full.policy(tok, _instructions()), never.policy(tok, _instructions())
    assert torch.equal(a[2], torch.arange(24).expand(2, -1))
    assert torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1])


def test_text_attention_ranks_what_the_instruction_looks_at_and_ignores_padding() -> None:
    k = torch.zeros(1, 1, 4, 4)
    k[0, 0, :, :] = torch.eye(4) * 4.0  # token j's key points along axis j
    q = torch.zeros(1, 1, 3, 4)
    q[0, 0, 0, 2] = q[0, 0, 1, 2] = 4.0  # the two real words look at token 2
    q[0, 0, 2, 0] = 40.0  # a pad token looking hard at token 0
    ok = torch.tensor([[True, True, False]])
    imp = text_attention(q, k, ok)
    assert int(imp.argmax()) == 2 and float(imp.max()) == 1.0 and float(imp[0, 0]) < 0.05
    assert float(text_attention(q, k, torch.ones(1, 3, dtype=torch.bool))[0, 0]) > 0.4  # had the pad counted


def test_diversity_drops_a_copy_of_a_better_token() -> None:
    feats = torch.tensor([[[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]])
    imp = torch.tensor([[1.0, 0.9, 0.5, 0.2]])
    assert torch.topk(diverse(imp, feats, 0.0), 2).indices.sort().values.tolist() == [[0, 1]]
    assert torch.topk(diverse(imp, feats, 1.0), 2).indices.sort().values.tolist() == [[0, 2]]
    assert torch.equal(diverse(imp, feats, 1.0)[0, [0, 2, 3]], imp[0, [0, 2, 3]])  # no copy above them


# two of the six in the default run (each mode, two rules); every pair in the slow suite (~11 s each on a Zen 1)
@pytest.mark.parametrize(("mode", "rule"), [("onnx", "eta"), ("decomposed", "fastv"), *(
    pytest.param(m, r, marks=pytest.mark.slow)
    for m, r in (("onnx", "fastv"), ("onnx", "random"), ("decomposed", "eta"), ("decomposed", "random")))])
def test_the_pruned_policy_exports_with_static_topk_and_equal_indices(rule: str, mode: str, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    import onnx

    from edge.export.onnx_export import export_onnx
    from edge.ops.attention import export_mode
    from edge.spec import IOSpec, TensorSpec

    torch.manual_seed(1)
    m = ETAVLA({**CFG, "prune_rule": rule}).eval()
    tok, ins = torch.randn(2, 4, 3, 8, 32), _instructions()
    io = IOSpec((TensorSpec("tokens", "float32", (2, 4, 3, 8, 32), ""),
                 TensorSpec("instruction", "int64", (2, 10), "")),
                (TensorSpec("waypoints", "float32", (2, 8, 2), ""), TensorSpec("speed", "float32", (2, 1), ""),
                 TensorSpec("kept", "int64", (2, 6), "")))
    feeds = {"tokens": tok.numpy(), "instruction": ins.numpy()}
    with export_mode(mode):
        export_onnx(m.policy, feeds, io, tmp_path / "p.onnx", opset=23 if mode == "onnx" else 18)
    model = onnx.load(tmp_path / "p.onnx")
    ops = {n.op_type for n in model.graph.node}
    if rule != "random":
        assert "TopK" in ops
    assert "NonZero" not in ops and "Loop" not in ops  # nothing data-dependent in size
    got = ort.InferenceSession(str(tmp_path / "p.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)
    with torch.no_grad():
        want = m.policy(tok, ins)
    for g, w in zip(got[:2], want[:2], strict=True):
        assert np.abs(g - w.numpy()).max() <= 1e-4 * max(1.0, float(np.abs(w.numpy()).max()))
    assert np.array_equal(got[2], want[2].numpy())


def test_keep_mix_trains_pruned_batches_and_restores_the_config() -> None:
    from edge.models import get_card

    card = get_card("etavla")
    cfg = {**card.config("tiny"), "keep": 1.0, "keep_mix": 1.0}
    torch.manual_seed(0)
    m = card.build(cfg)
    batch = next(card.trainer.batches(cfg, 2, 0))
    seen = set()
    select = m.policy.select
    m.policy.select = lambda *a, **k: (r := select(*a, **k), seen.add(r.shape[1]))[0]
    for _ in range(12):
        card.trainer.loss(m, batch)
    assert seen == {12, 6, 4} and m.policy.k == 24  # keep 0.5 / 0.25 / 0.15 of 24, then back to the config's
    seen.clear()
    m.cfg["keep_mix"] = 0.0
    for _ in range(4):
        card.trainer.loss(m, batch)
    assert not seen  # keep 1.0 and no mixing: nothing is pruned
