"""Lane model family, PyTorch side (imported only where torch is installed).

After "Lightweight Spatiotemporal Highway Lane Detection" (per-frame encoder + self-attention neck
over the clip's tokens) with an Ultra-Fast-Lane-Detection-style row-anchor head:

* ``LaneEncoder``: one frame [B, 3, H, W] -> tokens [B, N, D] at stride 32 and a stride-8 skip map.
  It sees one frame only, so a stream can keep its outputs in a ring buffer and pay one encoder
  pass per new frame.
* ``LaneTemporalHead``: the T frames' tokens -> self-attention over all T*N tokens (spatial + temporal
  embeddings; the last block computes only the newest frame's N outputs, the only ones read, against
  all T*N keys) -> the last frame's tokens, fused with its skip map, resampled at the row anchors ->
  row attention along the width -> per slot and row: ``loc`` logits over G grid cells and ``exist``.
* ``LaneNet``: whole-clip model = encoder on every frame + head; numerically the same function as
  the streaming pair (tested).

All attention goes through :func:`edge.ops.attention`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge.ops import attention, projected_heads


def _interp_weights(dst: np.ndarray, src_len: int) -> np.ndarray:
    """Linear-interpolation weights [len(dst), src_len] (float64) sampling positions ``dst`` (in source
    cells), clamped at the ends as ``F.interpolate`` does."""
    m = np.zeros((len(dst), src_len))
    for i, p in enumerate(np.clip(dst, 0, src_len - 1)):
        lo = int(np.floor(p))
        hi = min(lo + 1, src_len - 1)
        a = float(p - lo)
        m[i, lo] += 1 - a
        m[i, hi] += a
    return m


def _interp_matrix(dst: np.ndarray, src_len: int) -> torch.Tensor:
    """:func:`_interp_weights` as a float32 tensor."""
    return torch.from_numpy(_interp_weights(dst, src_len).astype(np.float32))


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, s: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = ConvBNAct(c, c)
        self.b = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.b(self.a(x)))


class MHSA(nn.Module):
    """Multi-head attention over [B, S, D] tokens (q from x, k/v from ``ctx`` or x)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, q_start: int = 0) -> torch.Tensor:
        """Attention outputs for tokens ``q_start:`` (keys/values: all of ``x``)."""
        b, s, d = x.shape
        xq = x[:, q_start:] if q_start else x
        # no 5-D permute in the graph: see projected_heads' doc
        q, k, v = projected_heads(self.qkv, x, 3, self.heads, inputs=(xq, x, x))
        out = attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, s - q_start, d))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, mlp: int = 2) -> None:
        super().__init__()
        self.n1 = nn.LayerNorm(dim)
        self.attn = MHSA(dim, heads)
        self.n2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp * dim), nn.GELU(), nn.Linear(mlp * dim, dim))

    def forward(self, x: torch.Tensor, q_start: int = 0) -> torch.Tensor:
        """The block's outputs for tokens ``q_start:`` (they attend to all tokens): a last block whose
        other outputs nobody reads computes only the ones read, the same values for a third of the work."""
        h = self.n1(x)
        x = (x[:, q_start:] if q_start else x) + self.attn(h, q_start)
        return x + self.mlp(self.n2(x))


def _shifted_interp(src_len: int, dst_len: int) -> np.ndarray:
    """[3 * src_len, dst_len] float64: block d (d = 0, 1, 2) is the bilinear resample (align_corners=False,
    as ``F.interpolate``) of a line of ``src_len`` to ``dst_len``, read at output position ``i + d - 1``
    (zero outside): the resample followed by a 3-tap convolution's shift d, transposed for a right MatMul."""
    a = _interp_weights((np.arange(dst_len) + 0.5) * (src_len / dst_len) - 0.5, src_len)  # [dst, src]
    out = np.zeros((3, src_len, dst_len))
    for d in range(3):
        rows = np.arange(dst_len) + d - 1
        ok = (rows >= 0) & (rows < dst_len)
        out[d][:, ok] = a[rows[ok]].T
    return out.reshape(3 * src_len, dst_len)


class UpConcatConv(ConvBNAct):
    """``ConvBNAct`` (3x3) of ``cat([bilinear_upsample(low), skip])`` without the upsampled map.

    Channel mixing commutes with a per-channel spatial resample, and a bilinear resample followed by a
    shift is one linear map per axis, so the 3x3 convolution's part on the upsampled channels is: nine
    1x1 products at the low resolution (one per tap), then per axis one MatMul that resamples and shifts
    and sums the three taps along it (zero padding as the convolution's). No tensor larger than the
    output is made. The same function and the same parameters as ``ConvBNAct(cin_low + cin_skip, cout,
    3)``, so checkpoints of either load into the other (``benchmarks/lane_fusion.py`` measures the gain).
    """

    def __init__(self, cin_low: int, cin_skip: int, cout: int) -> None:
        super().__init__(cin_low + cin_skip, cout, 3, 1)
        self.cin_low = cin_low
        self._mats: dict[tuple[int, int, int, int], tuple[np.ndarray, np.ndarray]] = {}

    def _resample(self, lo_hw: tuple[int, int], hi_hw: tuple[int, int], like: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        key = (*lo_hw, *hi_hw)
        if key not in self._mats:  # static sizes: constants of an exported graph
            self._mats[key] = (_shifted_interp(lo_hw[0], hi_hw[0]), _shifted_interp(lo_hw[1], hi_hw[1]))
        mh, mw = self._mats[key]
        return (torch.tensor(mh, dtype=like.dtype, device=like.device),
                torch.tensor(mw, dtype=like.dtype, device=like.device))

    def forward(self, low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        conv, bn, act = self[0], self[1], self[2]
        if conv._forward_pre_hooks or conv._forward_hooks:
            # hooked (quantization-aware training rounds the convolution's input and weight; the INT8 export's
            # probe reads its input): the plain form, through the layer's own call, so the hooks run (the taps
            # below read its weight directly and skipped them)
            up = F.interpolate(low, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            return act(bn(conv(torch.cat([up, skip], 1))))
        w = conv.weight
        cout, c = w.shape[0], self.cin_low
        (h_lo, w_lo), (h, wd) = low.shape[-2:], skip.shape[-2:]
        mh, mw = self._resample((h_lo, w_lo), (h, wd), low)
        # taps [B, (ky, o, kx), y, x] -> [B, ky, o, y, (kx, x)] -> along the width -> [B, ky, o, y, X]
        w_taps = w[:, :c].permute(2, 0, 3, 1).reshape(9 * cout, c, 1, 1)
        t = F.conv2d(low, w_taps).reshape(-1, 3, cout, 3, h_lo, w_lo).transpose(3, 4)
        t = torch.matmul(t.reshape(-1, 3, cout, h_lo, 3 * w_lo), mw)
        # -> [B, o, (ky, y), X] -> along the height (a left MatMul) -> [B, o, Y, X]
        t = torch.matmul(mh.transpose(0, 1), t.transpose(1, 2).reshape(-1, cout, 3 * h_lo, wd))
        return act(bn(t + F.conv2d(skip, w[:, c:], padding=1)))


class LaneEncoder(nn.Module):
    """Per-frame CNN: [B, 3, H, W] -> (tokens [B, N, D] at stride 32, skip [B, C, H/8, W/8])."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        c = cfg["channels"]
        self.stem = ConvBNAct(3, c[0], 3, 2)
        self.s4 = nn.Sequential(ConvBNAct(c[0], c[1], 3, 2), ResBlock(c[1]))
        self.s8 = nn.Sequential(ConvBNAct(c[1], c[2], 3, 2), ResBlock(c[2]))
        self.s16 = nn.Sequential(ConvBNAct(c[2], c[3], 3, 2), ResBlock(c[3]))
        self.s32 = nn.Sequential(ConvBNAct(c[3], cfg["dim"], 3, 2), ResBlock(cfg["dim"]))

    def forward(self, frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.s8(self.s4(self.stem(frame)))
        deep = self.s32(self.s16(skip))
        return deep.flatten(2).transpose(1, 2), skip


class LaneTemporalHead(nn.Module):
    """Fuse T frames' tokens with self-attention and decode row anchors for the last frame."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        h, w = cfg["input_hw"]
        d, f = cfg["dim"], cfg["head_dim"]
        self.t = cfg["frames"]
        self.h32, self.w32 = h // 32, w // 32
        self.h8, self.w8 = h // 8, w // 8
        self.slots, self.rows = cfg["slots"], len(cfg["row_anchors"])
        self.pos = nn.Parameter(torch.zeros(1, 1, self.h32 * self.w32, d))
        self.time = nn.Parameter(torch.zeros(1, self.t, 1, d))
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.time, std=0.02)
        self.blocks = nn.ModuleList(Block(d, cfg["heads"]) for _ in range(cfg["blocks"]))
        self.norm = nn.LayerNorm(d)
        self.fuse = UpConcatConv(d, cfg["channels"][2], f)
        # fixed resampling: stride-8 rows -> row anchors (given as fractions of the input height)
        rows_src = np.asarray(cfg["row_anchors"], np.float64) * self.h8 - 0.5
        self.register_buffer("row_w", _interp_matrix(rows_src, self.h8), persistent=False)
        self.xpos = nn.Parameter(torch.zeros(1, 1, self.w8, f))
        nn.init.normal_(self.xpos, std=0.02)
        self.row_block = Block(f, cfg["row_heads"])
        self.loc = nn.Linear(f, self.slots)
        self.exist = nn.Linear(f, self.slots)

    def forward(self, tokens: torch.Tensor, skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens [B, T, N, D] (oldest first), skip [B, C, H/8, W/8] of the newest frame."""
        b, t, n, d = tokens.shape
        x = (tokens + self.pos + self.time).reshape(b, t * n, d)
        for i, blk in enumerate(self.blocks):
            # only the newest frame's tokens leave the last block: it computes those alone (same values)
            x = blk(x, (t - 1) * n if i == len(self.blocks) - 1 else 0)
        last = self.norm(x).transpose(1, 2).reshape(b, d, self.h32, self.w32)
        # = ConvBNAct(3x3) of cat([bilinear upsample of last to stride 8, skip]): see UpConcatConv
        feat = self.fuse(last, skip)  # [B, F, h8, w8]
        # resample the rows at the anchors: row_w [R, H8] @ feat [B, F, H8, W8] -> [B, R, W8, F] (a
        # MatMul + permute exports cleaner than the einsum, which became a slow layout reorder)
        rows = torch.matmul(self.row_w, feat).permute(0, 2, 3, 1) + self.xpos
        r = rows.reshape(b * self.rows, self.w8, -1)
        r = self.row_block(r).reshape(b, self.rows, self.w8, -1)
        loc = self.loc(r).permute(0, 3, 1, 2)  # [B, S, R, G]
        exist = self.exist(r.amax(dim=2)).permute(0, 2, 1)  # [B, S, R]
        return loc, exist


class LaneNet(nn.Module):
    """Whole-clip model: clip [B, T, 3, H, W] -> (loc [B, S, R, G], exist [B, S, R])."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.cfg = dict(cfg)
        self.encoder = LaneEncoder(cfg)
        self.head = LaneTemporalHead(cfg)

    def forward(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t = clip.shape[:2]
        tokens, skip = self.encoder(clip.flatten(0, 1))
        tokens = tokens.reshape(b, t, *tokens.shape[1:])
        skip_last = skip.reshape(b, t, *skip.shape[1:])[:, -1]
        return self.head(tokens, skip_last)
