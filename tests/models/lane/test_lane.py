"""Lane family: streaming == whole clip, decoding, targets, training, shipped checkpoint record."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from edge.models import get_card  # noqa: E402
from edge.models.lane import card as lane  # noqa: E402
from edge.models.training import train as _train  # noqa: E402
from tests.models.lane.outputs import sharp_loc  # noqa: E402


def train(cfg, **kw):  # type: ignore[no-untyped-def]
    return _train(get_card("lane"), cfg, **kw)


@pytest.fixture(scope="module")
def tiny():
    cfg = lane.CONFIGS["tiny"]
    torch.manual_seed(0)
    m = lane.build(cfg).eval()
    # make BatchNorm statistics non-trivial so the streaming check covers them
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    return cfg, m


def test_streaming_equals_whole_clip(tiny) -> None:
    """Encoder once per frame + temporal head on the buffer == the whole-clip model."""
    cfg, m = tiny
    t = cfg["frames"]
    video = torch.randn(t + 3, 3, *cfg["input_hw"])
    ring = []
    with torch.no_grad():
        for i in range(len(video)):
            tok, skip = m.encoder(video[i : i + 1])
            ring = [*ring, tok][-t:]
            if len(ring) < t:
                continue
            loc_s, ex_s = m.head(torch.stack(ring, 1), skip)
            loc_w, ex_w = m(video[i - t + 1 : i + 1][None])
            assert torch.allclose(loc_s, loc_w, atol=1e-5, rtol=1e-5)
            assert torch.allclose(ex_s, ex_w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("train_mode", [False, True])
def test_up_concat_conv_is_the_conv_of_the_upsampled_concatenation(train_mode: bool) -> None:
    """The head's fusion (nine low-resolution taps, upsampled and shifted) is the 3x3 ConvBNAct of
    cat([bilinear upsample, skip]) it replaces, in float64 to 1e-10 relative, the same BatchNorm batch
    statistics in training and the same gradients, at sizes whose borders and odd scales matter."""
    from torch.nn import functional as F

    from edge.models.lane.net import ConvBNAct, UpConcatConv

    torch.manual_seed(3)
    new = UpConcatConv(5, 3, 4).double()
    ref = ConvBNAct(8, 4, 3, 1).double()
    for m in (new, ref):
        m.train(train_mode)
    with torch.no_grad():
        new[0].weight.normal_()
        new[1].weight.uniform_(0.5, 2)
        new[1].bias.normal_()
        new[1].running_mean.normal_()
        new[1].running_var.uniform_(0.5, 2)
    ref.load_state_dict(new.state_dict())  # same keys, same parameters
    for lo_hw, hi_hw in (((4, 6), (16, 24)), ((3, 5), (7, 9))):
        low = torch.randn(2, 5, *lo_hw, dtype=torch.double, requires_grad=True)
        skip = torch.randn(2, 3, *hi_hw, dtype=torch.double)
        a = new(low, skip)
        b = ref(torch.cat([F.interpolate(low, size=hi_hw, mode="bilinear", align_corners=False), skip], 1))
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10 * b.abs().max().item())
        ga = torch.autograd.grad(a.square().sum(), [low, new[0].weight])
        gb = torch.autograd.grad(b.square().sum(), [low, ref[0].weight])
        for x, y in zip(ga, gb, strict=True):
            assert torch.allclose(x, y, rtol=1e-8, atol=1e-8 * y.abs().max().item())


def test_temporal_order_matters(tiny) -> None:
    """The head really uses all frames: reversing the clip changes the output."""
    cfg, m = tiny
    clip = torch.randn(1, cfg["frames"], 3, *cfg["input_hw"])
    with torch.no_grad():
        a = m(clip)[0]
        b = m(torch.cat([clip[:, :1].flip(1), clip[:, 1:]], 1).flip(1))[0]
    assert not torch.allclose(a, b, atol=1e-4)


def test_output_shapes_match_spec() -> None:
    for name in ("tiny", "default"):
        cfg = lane.CONFIGS[name]
        m = lane.build(cfg).eval()
        spec = lane.io_full(cfg)
        with torch.no_grad():
            loc, ex = m(torch.zeros(spec.inputs[0].concrete(batch=2)))
        assert tuple(loc.shape) == spec.outputs[0].concrete(batch=2)
        assert tuple(ex.shape) == spec.outputs[1].concrete(batch=2)


def test_attention_is_the_textbook_function() -> None:
    """The export-friendly form (q, k, v from slices of the fused projection) computes what one fused
    [b, s, 3, heads, d/heads] split does, so checkpoints trained with either load into the other."""
    from edge.models.lane.net import MHSA
    from edge.ops import attention

    torch.manual_seed(0)
    m = MHSA(48, 4).eval()
    x = torch.randn(3, 64, 48)
    with torch.no_grad():
        qkv = m.qkv(x).reshape(3, 64, 3, 4, 12).permute(2, 0, 3, 1, 4)
        want = m.proj(attention(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape(3, 64, 48))
        assert torch.allclose(m(x), want, rtol=0, atol=1e-5)


def test_last_block_computes_only_the_newest_frames_tokens(tiny) -> None:
    """The head's last block computes outputs for the newest frame's tokens only (the rest is never
    read): the same values as every block over all T*N tokens, sliced afterwards, for a block at any
    depth of the clip (q_start) and for the whole head."""
    from edge.models.lane.net import Block

    cfg, m = tiny
    torch.manual_seed(1)
    blk = Block(32, 2).eval()
    x = torch.randn(2, 30, 32)
    with torch.no_grad():
        for start in (0, 1, 10, 29):
            assert torch.allclose(blk(x, start), blk(x)[:, start:], rtol=0, atol=1e-6)
        h = m.head
        t, n = cfg["frames"], h.h32 * h.w32
        tokens = torch.randn(2, t, n, cfg["dim"])
        full = (tokens + h.pos + h.time).reshape(2, t * n, -1)
        for b in h.blocks:
            full = b(full)
        pruned = (tokens + h.pos + h.time).reshape(2, t * n, -1)
        for i, b in enumerate(h.blocks):
            pruned = b(pruned, (t - 1) * n if i == len(h.blocks) - 1 else 0)
        assert pruned.shape == (2, n, cfg["dim"])
        assert torch.allclose(pruned, full[:, (t - 1) * n:], rtol=0, atol=1e-6)
        # and the pruned tokens are what the rest of the head reads: older frames still matter
        skip = torch.randn(2, cfg["channels"][2], *(s // 8 for s in cfg["input_hw"]))
        other = tokens.clone()
        other[:, 0] = torch.randn_like(other[:, 0])  # (a constant shift would vanish in LayerNorm)
        assert not torch.allclose(h(tokens, skip)[0], h(other, skip)[0], atol=1e-4)


def test_decode_recovers_positions() -> None:
    """Sharp logits at known cells decode to those cells' centres in original pixels."""
    cfg = lane.CONFIGS["default"]
    s, r, g = cfg["slots"], len(cfg["row_anchors"]), cfg["grid"]
    rng = np.random.default_rng(0)
    cells = rng.integers(0, g, (s, r))
    loc = np.full((s, r, g), -30.0, np.float32)
    np.put_along_axis(loc, cells[..., None], 30.0, axis=-1)
    exist = np.full((s, r), -10.0, np.float32)
    exist[1, 10:40] = 10.0
    exist[4, :] = 10.0
    exist[2, :2] = 10.0  # too few points: not a lane
    out = lane.decode(loc, exist, cfg, (720, 1280), np.arange(160, 720, 10), outlier_tol=None,
                      complete=False)  # random x per row
    assert out["slots"] == [1, 4]
    want = (cells[4] + 0.5) / g * 1280
    assert np.allclose(out["lanes"][1], np.round(want, 1), atol=0.051)
    row1 = np.asarray(out["lanes"][0])
    assert (row1[:10] == -2).all() and (row1[40:] == -2).all() and (row1[10:40] >= 0).all()
    # confidence: the mean existence probability over each lane's own rows
    assert out["confidence"] == pytest.approx([1 / (1 + np.exp(-10.0))] * 2)
    exist[4, :28] = 0.5  # half the rows barely on: sigmoid(0.5) there
    want = np.mean([1 / (1 + np.exp(-0.5))] * 28 + [1 / (1 + np.exp(-10.0))] * 28)
    assert lane.decode(loc, exist, cfg, (720, 1280), outlier_tol=None)["confidence"][1] == pytest.approx(want)


def test_grid_expectation_is_the_softmax_mean_cell() -> None:
    """Uniform logits give the image's centre; the product form equals the textbook softmax expectation."""
    assert lane.grid_expectation(np.zeros((2, 3, 64), np.float32), 1280) == pytest.approx(np.full((2, 3), 640.0))
    loc = np.random.default_rng(5).normal(0, 4, (6, 56, 64)).astype(np.float32)
    z = loc.astype(np.float64) - loc.max(-1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    want = ((prob * np.arange(64)).sum(-1) + 0.5) / 64 * 1280
    assert np.allclose(lane.grid_expectation(loc, 1280), want, rtol=1e-12, atol=0)


def test_grid_expectation_rows_far_apart_and_non_finite_logits() -> None:
    """The shared shift must not lose a row whose logits sit far below the others' (it would underflow
    to 0/0), and a NaN in one row must not reach the other rows."""
    loc = np.random.default_rng(6).normal(0, 3, (5, 64)).astype(np.float32)
    loc[1] -= 3000.0
    loc[3] += 800.0
    z = loc.astype(np.float64) - loc.max(-1, keepdims=True)
    want = ((np.exp(z) * np.arange(64)).sum(-1) / np.exp(z).sum(-1) + 0.5) / 64 * 1280
    assert np.allclose(lane.grid_expectation(loc, 1280), want, rtol=1e-12, atol=0)
    loc[2, 7] = np.nan
    got = lane.grid_expectation(loc, 1280)
    assert np.isnan(got[2]) and np.allclose(np.delete(got, 2), np.delete(want, 2), rtol=1e-12, atol=0)


def test_decode_without_h_samples_skips_only_the_tusimple_rows() -> None:
    """The stream loop decodes without labels: same points, slots and confidence, no TuSimple rows."""
    cfg = lane.CONFIGS["default"]
    rng = np.random.default_rng(7)
    loc = rng.normal(0, 3, (cfg["slots"], len(cfg["row_anchors"]), cfg["grid"])).astype(np.float32)
    exist = rng.normal(1, 3, (cfg["slots"], len(cfg["row_anchors"]))).astype(np.float32)
    full = lane.decode(loc, exist, cfg, (720, 1280), np.arange(160, 720, 10))
    bare = lane.decode(loc, exist, cfg, (720, 1280))
    assert full["slots"] and bare["slots"] == full["slots"] and bare["confidence"] == full["confidence"]
    assert all(np.array_equal(a, b) for a, b in zip(bare["points"], full["points"], strict=True))
    assert bare["lanes"] == [] and bare["h_samples"] == [] and len(full["lanes"]) == len(full["slots"])


def test_decode_turns_off_rows_off_the_lanes_curve() -> None:
    """A lane on a parabola with a spur at its top (into the sky) and one row jumped onto a car: those rows
    are off (points and TuSimple rows), every other row is kept; a lane left with too few rows is dropped;
    ``outlier_tol=None`` (with ``converge_slack=None``) keeps everything."""
    cfg = lane.CONFIGS["default"]
    s, r, g = cfg["slots"], len(cfg["row_anchors"]), cfg["grid"]
    yn = np.asarray(cfg["row_anchors"])
    cells = np.zeros((s, r), np.int64)
    cells[1] = np.round(10 + 20 * yn + 15 * yn * yn)  # 20 px cells at 1280
    bad = {0, 1, 2, 20}
    for k in (0, 1, 2):
        cells[1, k] += 15 + 2 * k  # the spur: 300+ px off the curve
    cells[1, 20] -= 8
    cells[3] = np.round(50 - 20 * yn)
    exist = np.full((s, r), -10.0, np.float32)
    exist[1] = 10.0
    exist[3, 30:34] = 10.0  # a short lane: too few rows for a fit, kept as it is
    exist[5, [4, 5, 6, 40, 41, 42, 43]] = 10.0
    cells[5, [4, 5, 6]] = 5
    cells[5, [40, 41, 42, 43]] = [60, 10, 60, 10]  # zig-zag: the fit cannot hold both sides
    loc = sharp_loc(cells, g)
    hs = np.round(yn * 720)
    out = lane.decode(loc, exist, cfg, (720, 1280), hs, complete=False)
    raw = lane.decode(loc, exist, cfg, (720, 1280), hs, outlier_tol=None, complete=False,
                      converge_slack=None)
    i = out["slots"].index(1)
    ys = out["points"][i][:, 1]
    assert sorted(np.round(yn * 720)[sorted(set(range(r)) - bad)].tolist()) == sorted(np.round(ys).tolist())
    row = np.asarray(out["lanes"][i])
    assert (row[sorted(bad)] == -2).all() and (row[[k for k in range(3, r) if k not in (19, 20, 21)]] >= 0).all()
    assert len(raw["points"][raw["slots"].index(1)]) == r and (np.asarray(raw["lanes"][i]) >= 0).all()
    assert 3 in out["slots"] and len(out["points"][out["slots"].index(3)]) == 4
    assert 5 in raw["slots"] and 5 not in out["slots"]


def test_targets_roundtrip_through_decode() -> None:
    cfg = lane.CONFIGS["default"]
    w = cfg["input_hw"][1]
    lanes_px = np.full((cfg["slots"], len(cfg["row_anchors"])), -2.0, np.float32)
    lanes_px[2] = np.linspace(100, 300, lanes_px.shape[1])
    cell, ex = lane.targets(lanes_px, cfg, w)
    assert (cell[0] == -100).all() and (ex[0] == 0).all()
    assert np.all(np.abs((cell[2] + 0.5) / cfg["grid"] * w - lanes_px[2]) <= w / cfg["grid"] / 2 + 1e-6)


def test_short_training_lowers_loss_and_is_deterministic() -> None:
    cfg = lane.CONFIGS["tiny"]
    _, losses, _ = train(cfg, steps=30, batch=4, seed=3, threads=2)
    assert np.mean(losses[-6:]) < 0.7 * np.mean(losses[:4])
    _, a, _ = train(cfg, steps=3, batch=2, seed=3, threads=2)
    _, b, _ = train(cfg, steps=3, batch=2, seed=3, threads=2)
    _, c, _ = train(cfg, steps=3, batch=2, seed=4, threads=2)
    assert a == b  # same seed: bit-identical losses
    assert a != c


def test_shipped_checkpoint_record() -> None:
    """The packaged default weights carry the command that made them and a >= 90% held-out score."""
    card = get_card("lane")
    if card.default_checkpoint is None:
        pytest.skip("no shipped checkpoint in this checkout")
    rec = json.loads(card.default_checkpoint.with_suffix(".json").read_text())
    assert rec["command"].startswith("edge train lane")
    assert rec["eval"]["accuracy"] >= 0.90
    assert card.default_checkpoint.stat().st_size < 5_500_000


def test_renderer_error_reaches_the_training_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure in the background renderer is raised in train(), not a hang: one line naming the family's batches,
    the renderer's own exception chained."""
    from edge.errors import ModelError
    from edge.models.lane import train as lane_train

    def boom(*a, **k):  # type: ignore[no-untyped-def]
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(lane_train, "generate_clip", boom)
    with pytest.raises(ModelError, match=r"^model 'lane': trainer's batches raised RuntimeError: renderer broke$") as e:
        train(lane.CONFIGS["tiny"], steps=2, batch=1)
    assert isinstance(e.value.__cause__, RuntimeError)


def _decode_lanes_loop(loc: np.ndarray, exist: np.ndarray, cfg: dict, oh: int, ow: int, hs: np.ndarray) -> list:
    """The straightforward per-anchor loop that lane.decode's vectorized form must equal exactly."""
    import itertools

    x = lane.grid_expectation(loc, ow)  # what is checked here is the interpolation (x: its own test)
    on = 1.0 / (1.0 + np.exp(-exist.astype(np.float64))) > 0.5
    ys = np.asarray(cfg["row_anchors"], np.float64) * oh
    lanes = []
    for s in range(loc.shape[0]):
        idx = np.flatnonzero(on[s])
        if idx.size < 3:
            continue
        row = np.full(hs.shape, -2.0)
        for a, b in itertools.pairwise(idx):
            if b == a + 1:
                sel = (hs >= ys[a]) & (hs <= ys[b])
                row[sel] = np.interp(hs[sel], [ys[a], ys[b]], [x[s, a], x[s, b]])
        for a in idx:
            row[np.isclose(hs, ys[a], atol=0.5)] = x[s, a]
        lanes.append([float(round(v, 1)) if v >= 0 else -2.0 for v in row])
    return lanes


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), oh=st.sampled_from([360, 590, 720, 1080]), shift=st.floats(-40, 40),
       p_on=st.floats(0.0, 1.0))
def test_decode_vectorized_equals_loop(seed: int, oh: int, shift: float, p_on: float) -> None:
    cfg = lane.CONFIGS["tiny"]
    assert np.all(np.diff(cfg["row_anchors"]) > 0)
    rng = np.random.default_rng(seed)
    s, r, g = cfg["slots"], len(cfg["row_anchors"]), cfg["grid"]
    loc = rng.normal(0, 3, (s, r, g)).astype(np.float32)
    exist = np.where(rng.random((s, r)) < p_on, 5.0, -5.0).astype(np.float32)
    ys = np.asarray(cfg["row_anchors"]) * oh
    # h_samples: some on anchors, some between, some shifted off (and outside the anchor span)
    hs = np.unique(np.round(np.concatenate([ys[::3], ys[1::4] + shift, rng.uniform(0, oh, 20)])))
    out = lane.decode(loc, exist, cfg, (oh, 1280), hs, outlier_tol=None, complete=False,
                      converge_slack=None)
    assert out["lanes"] == _decode_lanes_loop(loc, exist, cfg, oh, 1280, hs)


def test_preprocess_frame_equals_the_plain_formula() -> None:
    """The in-place per-channel normalization is bitwise the textbook HWC formula."""
    cfg = lane.CONFIGS["tiny"]
    h, w = cfg["input_hw"]
    img = np.random.default_rng(3).integers(0, 256, (h, w, 3), dtype=np.uint8)
    rgb = img[..., ::-1].astype(np.float32) * (1.0 / 255.0)
    want = np.ascontiguousarray(((rgb - lane.MEAN) / lane.STD).transpose(2, 0, 1))
    got = lane.preprocess_frame(img, cfg)
    assert got.dtype == np.float32 and got.flags.c_contiguous and np.array_equal(got, want)


def test_a_refit_with_too_few_rows_never_brings_rejected_rows_back() -> None:
    """A lane whose first fit keeps 3 rows or fewer (too few to refit) keeps those on later passes, alone
    or beside a lane that still fits (the rule must not depend on the other lanes in the frame)."""
    from edge.models.lane.card import _robust_quadratic

    yn = np.linspace(0.3, 1.0, 7)
    bad = np.array([0, 0, 0, 0, 0, 300.0, -300.0])
    good = 100 + 50 * yn + 20 * yn * yn
    ons = np.ones((2, 7), bool)
    alone = _robust_quadratic(bad[None], yn, ons[:1], 40.0, iters=3)
    beside = _robust_quadratic(np.stack([bad, good]), yn, ons, 40.0, iters=3)
    assert alone.sum() <= 3 and not alone[0, 5:].any()
    assert (beside[0] == alone[0]).all() and beside[1].all()


def test_decode_completes_lanes_across_gaps_and_a_little_below() -> None:
    """A lane with a hole in its rows: the hole is filled by linear interpolation, and below its last row
    it continues along the straight line through its 6 lowest rows for TAIL_REACH of the image height;
    a lane running out of the side of the image stops there; a lane's first row stays its first (no
    extension upward), and confidence is still over the rows the model turned on. ``complete=False``
    keeps the model's rows as they are."""
    cfg = lane.CONFIGS["default"]
    s, r, g = cfg["slots"], len(cfg["row_anchors"]), cfg["grid"]
    ys = np.asarray(cfg["row_anchors"]) * 720
    cells = np.zeros((s, r), np.int64)
    cells[2] = np.round(30 - 0.05 * np.arange(r))
    cells[4] = 30 + 3 * (np.arange(r) - 5)  # runs right 3 cells (60 px) per row
    exist = np.full((s, r), -10.0, np.float32)
    exist[2, 8:30] = 10.0
    exist[2, 15:18] = -10.0  # a hole
    exist[4, 5:16] = 10.0  # last row at cell 60; the next at 63 is inside (x 1270), the one after is not
    loc = sharp_loc(cells, g)
    x = (np.clip(cells, 0, g - 1) + 0.5) / g * 1280
    out = lane.decode(loc, exist, cfg, (720, 1280), np.round(ys), outlier_tol=None)
    raw = lane.decode(loc, exist, cfg, (720, 1280), np.round(ys), outlier_tol=None, complete=False)
    assert out["slots"] == raw["slots"] == [2, 4] and out["confidence"] == raw["confidence"]
    a, b = out["points"]
    more = int((ys[30:] <= ys[29] + lane.TAIL_REACH * 720 + 1e-9).sum())
    assert more == 3  # 10 px between anchors at 720
    assert np.array_equal(a[:, 1], ys[8:30 + more])
    hole = np.interp(ys[15:18], ys[[14, 18]], x[2, [14, 18]])
    assert np.allclose(a[7:10, 0], hole, rtol=0, atol=1e-9)
    k, c = np.polyfit(ys[24:30], x[2, 24:30], 1)
    assert np.allclose(a[22:, 0], k * ys[30:30 + more] + c, rtol=0, atol=1e-6)
    assert np.allclose(a[:7, 0], x[2, 8:15]) and np.allclose(a[10:22, 0], x[2, 18:30])
    assert np.array_equal(b[:, 1], ys[5:17]) and b[-1, 0] == pytest.approx(1270.0)
    # the TuSimple rows say the same
    row, raw_row = np.asarray(out["lanes"][0]), np.asarray(raw["lanes"][0])
    assert (row[:8] == -2).all() and (row[8:30 + more] >= 0).all() and (row[30 + more:] == -2).all()
    assert (raw_row[15:18] == -2).all() and (raw_row[30:] == -2).all()


def _complete_loop(xs: np.ndarray, ons: np.ndarray, ys: np.ndarray, height: float, width: float,
                   tail: int, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """The rule of ``_complete`` written plainly, one lane at a time (np.interp, np.polyfit)."""
    xs, ons = xs.copy(), ons.copy()
    for k in range(len(xs)):
        on = np.flatnonzero(ons[k])
        if on.size < 2:
            continue
        gap = on[0] + np.flatnonzero(~ons[k, on[0]:on[-1] + 1])
        xs[k, gap] = np.interp(ys[gap], ys[on], xs[k, on])
        ons[k, gap] = True
        for j in range(on[-1] + 1, len(ys)):
            if ys[j] > ys[on[-1]] + reach * height + 1e-9:
                break
            slope, icpt = np.polyfit(ys[on[-tail:]], xs[k, on[-tail:]], 1)
            v = slope * ys[j] + icpt
            if not 0 <= v < width:
                break
            xs[k, j], ons[k, j] = v, True
    return xs, ons


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), p_on=st.floats(0.0, 1.0), tail=st.integers(2, 8),
       reach=st.floats(0.0, 0.5), lanes=st.integers(0, 6))
def test_complete_vectorized_equals_loop(seed: int, p_on: float, tail: int, reach: float, lanes: int) -> None:
    """All lanes at once (accumulated row indices, masked least squares) equals the plain per-lane loop."""
    rng = np.random.default_rng(seed)
    ys = np.sort(rng.choice(np.arange(100, 720), 30, replace=False)).astype(np.float64)
    xs = rng.uniform(-50, 1330, (lanes, 30)) if seed % 2 else np.cumsum(rng.normal(0, 40, (lanes, 30)), 1) + 640
    ons = rng.random((lanes, 30)) < p_on
    got = lane._complete(xs, ons, ys, 720.0, 1280.0, tail=tail, reach=reach)
    want = _complete_loop(xs, ons, ys, 720.0, 1280.0, tail, reach)
    assert np.array_equal(got[1], want[1])
    assert np.allclose(got[0][want[1]], want[0][want[1]], rtol=0, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 60), max_size=6), seed=st.integers(0, 2**31 - 1))
def test_rounded_lists_equal_rounding_each_lane(sizes: list[int], seed: int) -> None:
    from edge.models.lane.card import _rounded_lists

    rng = np.random.default_rng(seed)
    points = [rng.uniform(-5, 1300, (k, 2)) for k in sizes]
    assert _rounded_lists(points) == [np.round(p, 1).tolist() for p in points]


class _Cam:
    def __init__(self, hw: tuple[int, int], gt: dict | None = None) -> None:
        self.data = np.zeros((*hw, 3), np.uint8)
        self.meta = {"gt": gt} if gt else {}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 6), p_on=st.floats(0.0, 1.0), labelled=st.booleans(),
       mixed=st.booleans())
def test_postprocess_many_equals_postprocess_of_each_step(seed: int, n: int, p_on: float, labelled: bool,
                                                          mixed: bool) -> None:
    """Several steps decoded at once give each step's own record (exactly) and points (to 1e-9 px), with
    steps of another image size decoded on their own."""
    from edge.models.lane.card import postprocess, postprocess_many

    cfg = lane.CONFIGS["tiny"]
    rng = np.random.default_rng(seed)
    s, r, g = cfg["slots"], len(cfg["row_anchors"]), cfg["grid"]
    outs = []
    for _ in range(n):  # lanes: a peaked softmax along a drifting cell, rows on with probability p_on
        centre = rng.uniform(0, g, (s, 1)) + np.cumsum(rng.normal(0, 0.5, (s, r)), 1)
        loc = -((np.arange(g) - centre[..., None]) ** 2) / 8.0 + rng.normal(0, 0.3, (s, r, g))
        exist = np.where(rng.random((s, r)) < p_on, 4.0, -4.0) + rng.normal(0, 1, (s, r))
        outs.append({"loc": loc[None].astype(np.float32), "exist": exist[None].astype(np.float32)})
    gt = {"h_samples": list(range(160, 720, 10)), "lanes": []} if labelled else None
    frames = [{"camera": _Cam((540, 960) if mixed and k == n - 1 else (720, 1280), gt)} for k in range(n)]
    many = postprocess_many(outs, frames, cfg)
    assert len(many) == n
    for (rec, pay), o, f in zip(many, outs, frames, strict=True):
        want_rec, want = postprocess(o, f, cfg)
        assert rec == want_rec
        assert pay["slots"] == want["slots"] and len(pay["points"]) == len(want["points"])
        for a, b in zip(pay["points"], want["points"], strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


def test_a_non_finite_logit_in_a_row_turned_off_does_not_touch_the_lane() -> None:
    """Only the rows the model turned on are decoded, so NaN/inf in the grid logits of a row whose
    existence is off changes nothing (it used to reach the lane's fit and drop the whole lane)."""
    cfg = lane.CONFIGS["tiny"]
    s, r, g = cfg["slots"], len(cfg["row_anchors"]), cfg["grid"]
    loc = (-((np.arange(g) - np.linspace(20, 40, r)[:, None]) ** 2) / 4.0)[None].repeat(s, 0).astype(np.float32)
    exist = np.full((s, r), -5.0, np.float32)
    exist[2, 4:] = 5.0  # one lane, on from row 4 down
    clean = lane.decode(loc, exist, cfg, (720, 1280))
    for bad in (np.nan, np.inf, -np.inf):
        dirty = loc.copy()
        dirty[2, 1, 7] = bad  # row 1 is off
        out = lane.decode(dirty, exist, cfg, (720, 1280))
        assert out["slots"] == clean["slots"] == [2]
        np.testing.assert_array_equal(out["points"][0], clean["points"][0])


def test_the_synthetic_sources_slots_option_is_parsed_from_the_spec() -> None:
    """Options reach a family's generator as the spec's text: `synthetic:3,slots=4` failed with "'str'
    object cannot be interpreted as an integer"; a bad value is one line."""
    from edge.errors import DataError
    from edge.models.registry import get_card
    from edge.stream.sources import open_source

    src = open_source("synthetic:2:72x128,slots=4", card=get_card("lane"))
    src.open()
    assert len(list(src)) == 2
    for bad, says in (("x", "a whole number"), ("40", "use 2..12")):
        with pytest.raises(DataError, match=says):
            src = open_source(f"synthetic:2:72x128,slots={bad}", card=get_card("lane"))
            src.open()
            list(src)


def test_kitti_source_fps_must_be_a_usable_rate(tmp_path) -> None:
    from edge.errors import DataError
    from edge.stream.sources.kitti import KittiSource

    for fps in (float("nan"), 1e-320, 0.0, -1.0, 1e6):
        with pytest.raises(DataError, match=r"fps .* must be in \[0.001, 1000\]"):
            KittiSource(tmp_path, fps=fps)


def test_the_clip_program_steps_one_frame_at_a_time(tiny) -> None:
    """A review: the clip program given two frames in one step returned the first one's result, without an error
    (and an empty batch was an IndexError); the stream program refused both already."""
    from edge.errors import SpecError
    from edge.program import torch_program

    cfg, m = tiny
    card = get_card("lane")
    frame = np.random.default_rng(0).standard_normal((1, 3, *cfg["input_hw"])).astype(np.float32)
    for program in card.programs:
        with torch_program(card, m, cfg, program) as prog:
            for bad in (np.concatenate([frame, frame]), frame[:0]):
                with pytest.raises(SpecError):
                    prog.step({"frame": bad})
            assert prog.step({"frame": frame})["exist"].shape[0] == 1
