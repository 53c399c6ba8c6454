"""ETA-VLA at edge size, PyTorch side: a driving policy that prunes its own visual tokens in the graph.

After arXiv 2603.25766 (temporal fusion + attention-guided sparse token aggregation inside the language
model), with FastV (rank by attention received at layer K) and a fixed random choice as the baselines:

- ``encode`` (:class:`PatchEncoder`): one camera view [B, 3, H, W] -> patch tokens [B, P, D] (stride 16);
  shared by every view and frame, so a stream encodes each new frame once and keeps a ring buffer;
- ``policy`` (:class:`Policy`): the ring buffer's tokens [B, T, V, P, D] + an instruction [B, L] (int64
  ids) -> waypoints [B, W, 2] (m, ego frame), speed [B, 1] (m/s) and the kept visual tokens' indices.
  :class:`TemporalFusion` compresses T x V x P tokens to V x P (each position's newest token attends over
  its own history); a causal transformer with rotary positions runs over [instruction; visual; readout];
  before layer ``prune_layer`` the visual tokens are scored and only ``ceil(keep * V * P)`` of them go on.

Scoring (``prune_rule``):
- ``eta``: how much the instruction tokens attend to each visual token, from that layer's q/k projections
  *without* rotary terms (position must not decide relevance), averaged over heads and the instruction's
  real (non-pad) tokens; then a diversity term: a token is penalised by its largest cosine similarity to
  any token that scored higher (a one-pass, static-shape relative of maximal marginal relevance), so the
  kept set is not ten copies of the same road patch;
- ``fastv``: the attention each visual token receives from the last token (the readout) in that layer's
  real attention map (with rotary), as FastV ranks them;
- ``random``: a fixed seeded permutation (the floor any rule must beat).

The keep count is static (``TopK`` with a constant k, then ``Gather``), positions travel with the kept
tokens (rotary and the causal mask are rebuilt from them), so the graph has static shapes on every runtime.
All attention goes through :func:`edge.ops.attention`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from edge.models.etavla.card import check_pruning, visual_tokens
from edge.models.etavla.card import kept as kept_count
from edge.ops import attention, projected_heads


def conv_bn(cin: int, cout: int, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, s, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class PatchEncoder(nn.Module):
    """One view [B, 3, H, W] -> patch tokens [B, (H/16)(W/16), D]."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        w0, w1, w2 = cfg["widths"]
        d = cfg["dim"]
        self.cnn = nn.Sequential(conv_bn(3, w0, 2), conv_bn(w0, w1, 2), conv_bn(w1, w1), conv_bn(w1, w2, 2),
                                 conv_bn(w2, w2), conv_bn(w2, w2, 2), nn.Conv2d(w2, d, 1))
        self.norm = nn.LayerNorm(d)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.norm(self.cnn(image).flatten(2).transpose(1, 2))


class TemporalFusion(nn.Module):
    """[B, T, V, P, D] -> [B, V P, D]: each position's newest token attends over its T frames (T x fewer
    tokens for the language model; the views stay apart, so pruning still chooses where to look)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        d, t, n = cfg["dim"], cfg["frames"], visual_tokens(cfg)
        self.heads = cfg["heads"]
        self.time = nn.Parameter(torch.randn(t, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(n, d) * 0.02)
        # no MLP here: it would run on every position before pruning (12 % of a default step) and the
        # language model's layers that follow transform the tokens anyway
        self.nq, self.nk = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.kv, self.proj = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, t, v, p, d = tokens.shape
        x = tokens.reshape(b, t, v * p, d) + self.time[None, :, None] + self.pos[None, None]
        x = x.transpose(1, 2).reshape(b * v * p, t, d)
        h = self.heads
        q = self.q(self.nq(x[:, -1:])).reshape(b * v * p, 1, h, d // h).transpose(1, 2)
        k, val = projected_heads(self.kv, self.nk(x), 2, h)
        out = attention(q, k, val).transpose(1, 2).reshape(b * v * p, 1, d)
        return (x[:, -1:] + self.proj(out)).reshape(b, v * p, d)


def rotary(pos: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [B, 1, S, dim] for float positions [B, S]."""
    inv = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=pos.dtype, device=pos.device) / dim))
    a = pos[..., None] * inv  # [B, S, dim/2]
    a = torch.cat([a, a], -1)[:, None]
    return torch.cos(a), torch.sin(a)


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rot * sin


def causal_mask(pos: torch.Tensor, key_ok: torch.Tensor) -> torch.Tensor:
    """bool [B, 1, S, S]: query i may see key j when pos_j <= pos_i and j is a real token (or j is i)."""
    earlier = pos[:, None, :] <= pos[:, :, None]
    same = pos[:, None, :] == pos[:, :, None]
    return ((earlier & key_ok[:, None, :]) | same)[:, None]


class Layer(nn.Module):
    """Pre-norm causal self-attention with rotary positions, then an MLP."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v [B, H, S, dh] before rotary."""
        q, k, v = projected_heads(self.qkv, self.n1(x), 3, self.heads)
        return q, k, v

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = self.qkv_heads(x)
        out = attention(rope(q, cos, sin), rope(k, cos, sin), v, mask=mask)
        x = x + self.proj(out.transpose(1, 2).reshape(b, s, d))
        return x + self.mlp(self.n2(x))


class Policy(nn.Module):
    """(tokens [B, T, V, P, D], instruction [B, L]) -> (waypoints [B, W, 2], speed [B, 1], kept [B, k])."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        d = cfg["dim"]
        self.cfg = dict(cfg)
        self.fusion = TemporalFusion(cfg)
        self.embed = nn.Embedding(int(cfg["vocab_size"]), d)
        self.readout = nn.Parameter(torch.randn(int(cfg["readout"]), d) * 0.02)
        self.layers = nn.ModuleList(Layer(d, cfg["heads"]) for _ in range(cfg["layers"]))
        self.norm = nn.LayerNorm(d)
        self.waypoints = int(cfg["waypoints"])
        self.head = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, 2 * self.waypoints + 1))
        self.n_vis, self.k = visual_tokens(cfg), kept_count(cfg)
        self.at = int(cfg["prune_layer"])
        check_pruning(cfg)
        self.rule = str(cfg["prune_rule"])
        self.diversity = float(cfg["diversity"])
        g = torch.Generator().manual_seed(int(cfg.get("random_seed", 0)))
        self.register_buffer("random_score", torch.rand(self.n_vis, generator=g), persistent=False)

    def forward(self, tokens: torch.Tensor, instruction: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b = tokens.shape[0]
        vis = self.fusion(tokens)  # [B, N, D]
        txt = self.embed(instruction)  # [B, L, D]
        n_txt, n_vis, n_out = instruction.shape[1], vis.shape[1], self.readout.shape[0]
        ro = self.readout[None].expand(b, -1, -1)
        x = torch.cat([txt, vis, ro], 1)
        pos = torch.arange(n_txt + n_vis + n_out, dtype=vis.dtype, device=vis.device)[None].expand(b, -1)
        txt_ok = instruction != 0
        key_ok = torch.cat([txt_ok, torch.ones(b, n_vis + n_out, dtype=torch.bool, device=vis.device)], 1)
        kept = torch.arange(n_vis, device=vis.device)[None].expand(b, -1)
        dh = x.shape[-1] // self.layers[0].heads
        cos, sin = rotary(pos, dh)
        mask = causal_mask(pos, key_ok)
        for i, layer in enumerate(self.layers):
            if i == self.at and self.k < n_vis:
                kept = self.select(layer, x, n_txt, n_vis, txt_ok, cos, sin, mask)
                idx = kept[..., None].expand(-1, -1, x.shape[-1])
                x = torch.cat([x[:, :n_txt], torch.gather(x[:, n_txt:n_txt + n_vis], 1, idx), x[:, n_txt + n_vis:]], 1)
                pos = torch.cat([pos[:, :n_txt], torch.gather(pos[:, n_txt:n_txt + n_vis], 1, kept),
                                 pos[:, n_txt + n_vis:]], 1)
                key_ok = torch.cat([txt_ok, torch.ones(b, self.k + n_out, dtype=torch.bool, device=vis.device)], 1)
                cos, sin = rotary(pos, dh)
                mask = causal_mask(pos, key_ok)
            x = layer(x, cos, sin, mask)
        out = self.head(self.norm(x[:, -n_out:]).mean(1))
        return out[:, :-1].reshape(b, self.waypoints, 2), out[:, -1:], kept

    def scores(self, layer: Layer, x: torch.Tensor, n_txt: int, n_vis: int, txt_ok: torch.Tensor,
               cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Importance of each visual token [B, N] under this model's rule (higher = keep)."""
        b = x.shape[0]
        if self.rule == "random":
            return self.random_score[None].expand(b, -1)
        q, k, _ = layer.qkv_heads(x)
        scale = 1.0 / math.sqrt(q.shape[-1])
        if self.rule == "fastv":
            q, k = rope(q, cos, sin), rope(k, cos, sin)
            logits = torch.matmul(q[:, :, -1:], k.transpose(-1, -2)) * scale  # the last token's row
            logits = logits.masked_fill(~mask[:, :, -1:], float("-inf"))
            return torch.softmax(logits, -1)[:, :, 0, n_txt:n_txt + n_vis].mean(1)
        imp = text_attention(q[:, :, :n_txt], k[:, :, n_txt:n_txt + n_vis], txt_ok)
        return diverse(imp, x[:, n_txt:n_txt + n_vis], self.diversity)

    def select(self, layer: Layer, x: torch.Tensor, n_txt: int, n_vis: int, txt_ok: torch.Tensor,
               cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Indices [B, k] of the kept visual tokens (static k: TopK + Gather in the graph)."""
        return torch.topk(self.scores(layer, x, n_txt, n_vis, txt_ok, cos, sin, mask), self.k, dim=-1).indices


def text_attention(q_txt: torch.Tensor, k_vis: torch.Tensor, txt_ok: torch.Tensor) -> torch.Tensor:
    """[B, N] in (0, 1]: the instruction's attention to each visual token (q [B, H, L, dh], k [B, H, N, dh],
    no rotary), averaged over heads and real instruction tokens, divided by its maximum."""
    scale = 1.0 / math.sqrt(q_txt.shape[-1])
    att = torch.softmax(torch.matmul(q_txt, k_vis.transpose(-1, -2)) * scale, -1).mean(1)  # [B, L, N]
    w = txt_ok.to(att.dtype)[..., None]
    imp = (att * w).sum(1) / w.sum(1).clamp(min=1.0)
    return imp / imp.max(-1, keepdim=True).values


def diverse(imp: torch.Tensor, feats: torch.Tensor, weight: float) -> torch.Tensor:
    """Scores [B, N] minus ``weight`` x each token's largest cosine similarity to a higher-scoring token.

    One pass and static shapes (a greedy maximal-marginal-relevance loop would unroll k steps): the best
    token of every cluster of near-duplicates keeps its score, its copies lose up to ``weight``.
    """
    if weight <= 0:
        return imp
    v = feats / torch.sqrt((feats * feats).sum(-1, keepdim=True) + 1e-12)
    sim = torch.matmul(v, v.transpose(1, 2))  # [B, N, N]
    higher = imp[:, None, :] > imp[:, :, None]  # [i, j]: j scored higher than i
    penalty = torch.where(higher, sim, torch.full_like(sim, -1.0)).max(-1).values.clamp(min=0.0)
    return imp - weight * penalty


class ETAVLA(nn.Module):
    """The whole model for training: every view of every frame through the encoder, then the policy."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.cfg = dict(cfg)
        self.encoder = PatchEncoder(cfg)
        self.policy = Policy(cfg)

    def forward(self, images: torch.Tensor, instruction: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """images [B, T, V, 3, H, W] -> as :class:`Policy`."""
        b, t, v, c, h, w = images.shape
        tok = self.encoder(images.reshape(b * t * v, c, h, w))
        return self.policy(tok.reshape(b, t, v, tok.shape[1], tok.shape[2]), instruction)
