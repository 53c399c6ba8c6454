"""NativeCross, PyTorch side: camera-LiDAR extrinsic refinement by cross-attention between image patch
tokens and LiDAR point-group tokens, each in its native domain (arXiv 2603.29414, at edge size).

Two graphs, so the expensive part runs once per frame and the loop stays on the host:

- ``encode`` (:class:`Encoder`): image [B, 3, H, W] -> patch tokens [B, (H/8)(W/8), D]; point groups
  [B, G, K, 3] (offsets from their centres, grouped on the host) -> one token per group [B, G, D]
  (a PointNet: shared MLP, max over the group);
- ``step`` (:class:`Step`): tokens, group centres [B, G, 3] (LiDAR frame), the current extrinsic
  T [B, 4, 4] and the projection P [B, 3, 4] (pixels of the model's input) -> an se(3) increment xi
  [B, 6] (rotation vector, translation part). The centres are moved by T and projected by P; a
  harmonic embedding of the projected (u, v) (+ in-front flag and log depth) is added to the point
  tokens, one of the fixed patch centres to the image tokens. With ``landing`` > 0 each point token also
  gets the image tokens where its centre lands (bilinear samples of the stride-8 token map at the
  projected centre and one patch left/right/up/down, a static GridSample): the point learns what the
  image shows where the current guess puts it and which way it matches better, a local cue for the
  few-pixel shifts a translation error causes. Two cross-attention branches (rotation,
  translation), queries = image tokens, keys/values = point tokens, RMS QK-norm, all through
  :func:`edge.ops.attention`; each branch pools its tokens (mean and max) into a small head.
  With QK-norm the logits are bounded by scale x head dim, so the scale is a config value
  (``qk_scale`` 0.5: logits within +-8 for 16-dim heads) instead of 1/sqrt(d) (+-4), which would keep
  a patch from ever attending sharply to the few groups that project onto it.

The host updates ``T <- exp(xi) T`` and calls ``step`` again (the card's runner; 3 iterations by default).
Outputs are scaled by ``rot_scale`` (rad) and ``trans_scale`` (m) so the heads work at unit size.

With ``match_rounds`` > 0 a third graph follows, ``match`` (:class:`Matcher`): crops around each group
centre's projection [B, G, 4, C, C] (image + the scan's inverse depth, cut on the host at ``match_hw``:
:mod:`edge.models.nativecross.matching`) -> each centre's true landing relative to the crop's centre
(px / ``match_scale``) and a log Laplace scale [B, G, 3]; the host solves the extrinsic from them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from edge.ops import attention


def conv_bn(cin: int, cout: int, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, s, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def harmonics(x: torch.Tensor, n: int) -> torch.Tensor:
    """[..., C] -> [..., 2 n C]: sin / cos of 2^k pi x, k < n."""
    freqs = (2.0 ** torch.arange(n, dtype=x.dtype, device=x.device)) * math.pi
    a = x[..., None] * freqs  # [..., C, n]
    return torch.cat([torch.sin(a), torch.cos(a)], -1).flatten(-2)


class Encoder(nn.Module):
    """(image, groups) -> (image tokens, point tokens)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        w0, w1, w2 = cfg["widths"]
        d = cfg["dim"]
        self.cnn = nn.Sequential(conv_bn(3, w0, 2), conv_bn(w0, w0), conv_bn(w0, w1, 2), conv_bn(w1, w1),
                                 conv_bn(w1, w2, 2), conv_bn(w2, w2), nn.Conv2d(w2, d, 1))
        p0, p1 = cfg["point_widths"]
        self.pmlp = nn.Sequential(nn.Linear(4, p0), nn.GELU(), nn.Linear(p0, p1), nn.GELU(), nn.Linear(p1, p1))
        self.pout = nn.Sequential(nn.LayerNorm(p1), nn.Linear(p1, d))
        self.inorm = nn.LayerNorm(d)

    def forward(self, image: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.cnn(image)  # [B, D, H/8, W/8]
        img = self.inorm(f.flatten(2).transpose(1, 2))
        dist = torch.sqrt((groups * groups).sum(-1, keepdim=True) + 1e-8)
        h = self.pmlp(torch.cat([groups, dist], -1))  # [B, G, K, p1]
        pts = self.pout(h.max(dim=2).values)
        return img, pts


class CrossBlock(nn.Module):
    """Image tokens attend to point tokens (RMS QK-norm), then an MLP; pre-norm residuals."""

    def __init__(self, dim: int, heads: int, qk_scale: float) -> None:
        super().__init__()
        self.heads = heads
        self.qk_scale = qk_scale
        self.nq, self.nk, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        return x.reshape(b, s, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        kv = self.nk(ctx)
        out = attention(self._heads(self.q(self.nq(x))), self._heads(self.k(kv)), self._heads(self.v(kv)),
                        qk_norm=True, scale=self.qk_scale)
        x = x + self.proj(out.transpose(1, 2).reshape(b, s, d))
        return x + self.mlp(self.n2(x))


class Branch(nn.Module):
    """Cross-attention blocks -> mean and max over image tokens -> 3 numbers."""

    def __init__(self, dim: int, heads: int, blocks: int, qk_scale: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(CrossBlock(dim, heads, qk_scale) for _ in range(blocks))
        self.head = nn.Sequential(nn.LayerNorm(2 * dim), nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, 3))

    def forward(self, img: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
        x = img
        for blk in self.blocks:
            x = blk(x, pts)
        return self.head(torch.cat([x.mean(1), x.max(1).values], -1))


class Step(nn.Module):
    """(image tokens, point tokens, centres, T, P) -> xi [B, 6]."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        d, n = cfg["dim"], cfg["harmonics"]
        self.n = n
        h, w = cfg["input_hw"]
        self.hw = (float(h), float(w))
        gh, gw = h // 8, w // 8
        v, u = torch.meshgrid((torch.arange(gh) + 0.5) / gh, (torch.arange(gw) + 0.5) / gw, indexing="ij")
        self.register_buffer("patch_uv", torch.stack([u, v], -1).reshape(1, gh * gw, 2), persistent=False)
        self.img_pos = nn.Linear(4 * n, d)
        self.pt_pos = nn.Sequential(nn.Linear(4 * n + 3, d), nn.GELU(), nn.Linear(d, d))
        self.grid = (gh, gw)
        # image features where each group lands: bilinear samples of the patch-token map at the projected
        # centre and one patch left/right/up/down of it (a local cost the heads can read a direction from)
        self.land = int(cfg["landing"])
        if self.land:
            off = [(0.0, 0.0), (-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0)][: self.land]
            self.register_buffer("land_off", torch.tensor(off).mul(torch.tensor([2.0 / gw, 2.0 / gh])),
                                 persistent=False)
            self.land_proj = nn.Sequential(nn.LayerNorm(self.land * d), nn.Linear(self.land * d, d))
            # starts near zero: the step begins almost as it was without the cue, so a checkpoint trained
            # before it existed continues from where it was (not exactly zero: an exported random model
            # must still carry the cue, or parity tests could not see a broken GridSample)
            nn.init.normal_(self.land_proj[1].weight, std=1e-3)
            nn.init.zeros_(self.land_proj[1].bias)
        # per-group flow: where each group's centre should land, relative to where it lands now (patch
        # units), and how sure (log sigma); the translation increment is then solved from those flows by
        # weighted least squares through the projection's Jacobian (see :func:`solve_translation`)
        self.flow = int(cfg["flow_solve"])
        if self.flow:
            self.flow_head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(), nn.Linear(d, 3))
            nn.init.zeros_(self.flow_head[3].weight)
            nn.init.constant_(self.flow_head[3].bias, 0.0)
            # how much of the solved translation the step applies: starts small, so a checkpoint from before
            # the solve keeps its behaviour while the flows learn (untrained flows are 0, and the solve would
            # then cancel the predicted rotation's motion); training opens it
            self.flow_gate = nn.Parameter(torch.tensor(0.05))
        # ``flow_attention``: each group searches the image for where it belongs: its token (with its
        # projected position) attends over the patch tokens (with theirs), and the values are the patch
        # centres, so the attention's output is the expected landing position (a soft argmax; position
        # harmonics on both sides make "near my projection" expressible, appearance decides where). The
        # MLP head above then only corrects that and gives the sigma.
        self.flow_attn = int(cfg["flow_attention"]) if self.flow else 0
        if self.flow_attn:
            self.fheads = int(cfg["heads"])
            dh = d // self.fheads
            self.fq_norm, self.fk_norm = nn.LayerNorm(d), nn.LayerNorm(d)
            self.fq, self.fk = nn.Linear(d, d), nn.Linear(d, d)
            pos = torch.zeros(1, 1, gh * gw, dh)
            pos[..., :2] = self.patch_uv[:, None]
            self.register_buffer("patch_value", pos, persistent=False)
        qk = float(cfg.get("qk_scale", 0.5))
        self.qk_scale = qk
        self.rot = Branch(d, cfg["heads"], cfg["blocks"], qk)
        self.trans = Branch(d, cfg["heads"], cfg["blocks"], qk)
        self.scales = (float(cfg["rot_scale"]), float(cfg["trans_scale"]))

    def forward(self, img_tokens: torch.Tensor, pt_tokens: torch.Tensor, centres: torch.Tensor, T: torch.Tensor,
                P: torch.Tensor, with_flow: bool = False) -> Any:
        """xi [B, 6]; with ``with_flow`` (training) also (flow, log sigma, uv) of every group."""
        cam = torch.matmul(centres, T[:, :3, :3].transpose(1, 2)) + T[:, None, :3, 3]  # [B, G, 3]
        pix = torch.matmul(cam, P[:, :, :3].transpose(1, 2)) + P[:, None, :, 3]
        z = cam[..., 2:3]
        front = (z > 0.5).to(cam.dtype)
        zz = torch.clamp(pix[..., 2:3], min=0.5)
        uv = pix[..., :2] / zz / torch.tensor([self.hw[1], self.hw[0]], dtype=cam.dtype, device=cam.device)
        uv = torch.clamp(uv, -0.5, 1.5)
        zc = torch.clamp(z, 0.5, 100.0)
        depth = torch.log(zc) / math.log(100.0)
        inv = 2.0 / zc  # a translation error moves a point's pixel by f t / z: inverse depth says how much
        pts = pt_tokens + self.pt_pos(torch.cat([harmonics(uv, self.n), front, depth, inv], -1))
        if self.land:
            pts = pts + self.land_proj(self._landing(img_tokens, uv))
        img = img_tokens + self.img_pos(harmonics(self.patch_uv, self.n))
        r = self.rot(img, pts) * self.scales[0]
        t = self.trans(img, pts) * self.scales[1]
        flow = None
        if self.flow:
            dt, flow = self._flow_translation(pts, img, cam, front, uv, r, P)
            t = t + self.flow_gate * dt
        xi = torch.cat([r, t], -1)
        return (xi, flow, uv) if with_flow else xi

    def _landing(self, img_tokens: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        """[B, G, land * D]: the token map sampled (bilinear, zeros outside) where each centre projects."""
        b, _, d = img_tokens.shape
        gh, gw = self.grid
        fmap = img_tokens.transpose(1, 2).reshape(b, d, gh, gw)
        at = (uv * 2.0 - 1.0)[:, :, None, :] + self.land_off  # [B, G, land, 2], GridSample's [-1, 1] frame
        s = nn.functional.grid_sample(fmap, at, mode="bilinear", padding_mode="zeros", align_corners=False)
        return s.permute(0, 2, 3, 1).reshape(b, uv.shape[1], self.land * d)  # [B, D, G, land] -> [B, G, land D]

    def flows(self, pts: torch.Tensor, img: torch.Tensor, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-group flow [B, G, 2] (patches) and its log sigma [B, G, 1] (training supervises both)."""
        gh, gw = self.grid
        f = self.flow_head(pts)
        flow = f[..., :2]
        if self.flow_attn:
            b, g, _d = pts.shape
            q = self.fq(self.fq_norm(pts)).reshape(b, g, self.fheads, -1).transpose(1, 2)
            k = self.fk(self.fk_norm(img)).reshape(b, img.shape[1], self.fheads, -1).transpose(1, 2)
            v = self.patch_value.expand(b, self.fheads, -1, -1)
            where = attention(q, k, v, qk_norm=True, scale=self.qk_scale)[..., :2].mean(1)  # [B, G, 2] uv
            flow = flow + (where - uv) * torch.tensor([float(gw), float(gh)], dtype=uv.dtype, device=uv.device)
        return flow, torch.clamp(f[..., 2:3], -3.0, 3.0)

    def _flow_translation(self, pts: torch.Tensor, img: torch.Tensor, cam: torch.Tensor, front: torch.Tensor,
                          uv: torch.Tensor, r: torch.Tensor, P: torch.Tensor) -> tuple[torch.Tensor, Any]:
        gh, gw = self.grid
        flow, log_sigma = self.flows(pts, img, uv)
        px = flow * torch.tensor([self.hw[1] / gw, self.hw[0] / gh], dtype=cam.dtype, device=cam.device)
        inside = ((uv > 0.0) & (uv < 1.0)).all(-1, keepdim=True).to(cam.dtype)
        return translation_from_flows(px, cam, r, P, front * inside * torch.exp(-2.0 * log_sigma)), (flow, log_sigma)


def translation_from_flows(px: torch.Tensor, cam: torch.Tensor, r: torch.Tensor, P: torch.Tensor,
                           w: torch.Tensor) -> torch.Tensor:
    """The translation increment [B, 3] (m) that moves the groups by ``px`` [B, G, 2] (pixels) after rotation r.

    ``cam`` [B, G, 3]: the group centres in the camera under the current guess; ``w`` [B, G, 1]: weights.
    The motion the rotation causes is removed exactly (a first-order rotation term is several pixels off
    at 10 deg, as large as a translation's whole signal), then the translation is linearised at the
    rotated points. From true flows this recovers a 30 cm translation to ~4 cm at 10 deg rotation.
    """
    pix = torch.matmul(cam, P[:, :, :3].transpose(1, 2)) + P[:, None, :, 3]
    rcam = torch.matmul(cam, rotation(r).transpose(1, 2))
    rpix = torch.matmul(rcam, P[:, :, :3].transpose(1, 2)) + P[:, None, :, 3]
    moved = rpix[..., :2] / torch.clamp(rpix[..., 2:3], min=0.5) - pix[..., :2] / torch.clamp(pix[..., 2:3], min=0.5)
    w = w * (rcam[..., 2:3] > 0.5).to(cam.dtype)
    return solve_translation(projection_jacobian(rpix, P), px - moved, w)


def rotation(r: torch.Tensor) -> torch.Tensor:
    """Rotation vectors [B, 3] -> matrices [B, 3, 3] (Rodrigues; static ops, exact at any angle)."""
    theta = torch.sqrt((r * r).sum(-1, keepdim=True) + 1e-12)[..., None]  # [B, 1, 1]
    k = skew(r)
    eye = torch.eye(3, dtype=r.dtype, device=r.device)
    return eye + torch.sin(theta) / theta * k + (1.0 - torch.cos(theta)) / (theta * theta) * torch.matmul(k, k)


def skew(v: torch.Tensor) -> torch.Tensor:
    """[..., 3] -> [..., 3, 3] cross-product matrices."""
    z = torch.zeros_like(v[..., 0])
    x, y, w = v[..., 0], v[..., 1], v[..., 2]
    return torch.stack([torch.stack([z, -w, y], -1), torch.stack([w, z, -x], -1), torch.stack([-y, x, z], -1)], -2)


def projection_jacobian(pix: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """d(u, v) / d(camera point) [B, G, 2, 3] for pixels ``pix`` [B, G, 3] (homogeneous) under P [B, 3, 4]."""
    w = torch.clamp(pix[..., 2:3], min=0.5)[..., None]  # [B, G, 1, 1]
    uv = (pix[..., :2] / w[..., 0])[..., None]  # [B, G, 2, 1]
    rows = P[:, None, :2, :3]  # [B, 1, 2, 3]
    return (rows - uv * P[:, None, 2:3, :3]) / w


def solve_translation(j: torch.Tensor, px: torch.Tensor, w: torch.Tensor, damping: float = 1e-2,
                      limit: float = 0.5) -> torch.Tensor:
    """Weighted least squares ``argmin_t sum w |J t - px|^2`` [B, 3], damped and bounded (m).

    A closed-form 3x3 inverse (cofactors), so the graph stays plain Mul/Sub/Div on every runtime. The
    damping is relative to the system's own scale: depth (z) is observed only through the spread of
    the points, and with few confident groups the answer shrinks towards zero instead of blowing up.
    """
    jw = j * w[..., None]  # [B, G, 2, 3]
    a = torch.matmul(jw.transpose(-1, -2), j).sum(1)  # [B, 3, 3]
    b = torch.matmul(jw.transpose(-1, -2), px[..., None]).sum(1)[..., 0]  # [B, 3]
    tr = (a[:, 0, 0] + a[:, 1, 1] + a[:, 2, 2])[:, None, None]
    a = a + (damping * tr + 1e-6) * torch.eye(3, dtype=a.dtype, device=a.device)
    c0 = torch.cross(a[:, 1], a[:, 2], dim=-1)
    c1 = torch.cross(a[:, 2], a[:, 0], dim=-1)
    c2 = torch.cross(a[:, 0], a[:, 1], dim=-1)
    det = (a[:, 0] * c0).sum(-1, keepdim=True)
    adj = torch.stack([c0, c1, c2], -1)  # inverse = adj / det (a is symmetric)
    t = torch.matmul(adj, b[..., None])[..., 0] / det
    return limit * torch.tanh(t / limit)


class Matcher(nn.Module):
    """[B, G, 4, C, C] crops -> [B, G, 3]: (du, dv) / ``match_scale`` of each centre's true landing from the
    crop's centre, and a log Laplace scale (of the same units) the solve weights it by. The image and the
    depth channel get their own first convolution (colour and sparse inverse depth differ in kind), then
    four stride-2 stages shrink the crop 16x before a small MLP head."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        wi, wd, w1, w2, w3 = cfg["match_widths"]
        c = int(cfg["match_crop"])
        self.crop = c
        self.img, self.dep = conv_bn(3, wi, 2), conv_bn(1, wd, 2)
        self.body = nn.Sequential(conv_bn(wi + wd, w1, 2), conv_bn(w1, w2, 2), conv_bn(w2, w3, 2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(w3 * (c // 16) ** 2, int(cfg["match_hidden"])),
                                  nn.ReLU(inplace=True), nn.Linear(int(cfg["match_hidden"]), 3))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        b, g = crops.shape[0], crops.shape[1]
        x = crops.reshape(b * g, 4, self.crop, self.crop)
        y = self.body(torch.cat([self.img(x[:, :3]), self.dep(x[:, 3:])], 1))
        return self.head(y).reshape(b, g, 3)


class NativeCross(nn.Module):
    """The whole model; ``encoder``, ``step`` (and with ``match_rounds`` > 0 ``matcher``) are the exported
    graphs."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.cfg = dict(cfg)
        self.encoder = Encoder(cfg)
        self.step = Step(cfg)
        if int(cfg.get("match_rounds", 0)) > 0:
            self.matcher = Matcher(cfg)

    def forward(self, image: torch.Tensor, groups: torch.Tensor, centres: torch.Tensor, T: torch.Tensor,
                P: torch.Tensor) -> torch.Tensor:
        """One refinement step from scratch (the training loop unrolls several with :func:`exp_se3`)."""
        img, pts = self.encoder(image, groups)
        return self.step(img, pts, centres, T, P)


def exp_se3(xi: torch.Tensor) -> torch.Tensor:
    """Torch twin of :func:`edge.data.se3.exp_se3` for [B, 6] (training's unrolled updates)."""
    w, v = xi[:, :3], xi[:, 3:]
    theta = torch.linalg.norm(w, dim=1, keepdim=True)[..., None]  # [B, 1, 1]
    small = theta < 1e-4
    t = torch.where(small, torch.ones_like(theta), theta)
    a = torch.where(small, 1 - theta**2 / 6, torch.sin(t) / t)
    b = torch.where(small, 0.5 - theta**2 / 24, (1 - torch.cos(t)) / t**2)
    c = torch.where(small, 1 / 6 - theta**2 / 120, (t - torch.sin(t)) / t**3)
    k = skew(w)
    kk = k @ k
    eye = torch.eye(3, dtype=xi.dtype, device=xi.device).expand_as(k)
    R = eye + a * k + b * kk
    V = eye + b * k + c * kk
    T = torch.zeros(xi.shape[0], 4, 4, dtype=xi.dtype, device=xi.device)
    T[:, :3, :3] = R
    T[:, :3, 3] = (V @ v[..., None])[..., 0]
    T[:, 3, 3] = 1
    return T

