"""edge.ops.attention against the float64 numpy reference, in eager and decomposed modes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge.ops import attention, attention_numpy, export_mode  # noqa: E402

CASES = [
    # (B, H, Sq, Sk, D, Dv)
    (1, 1, 1, 1, 4, 4),
    (2, 3, 5, 5, 8, 8),  # odd lengths
    (2, 2, 7, 13, 16, 8),  # cross-attention, different q/kv lengths and value dim
    (1, 4, 33, 17, 32, 32),
]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-12))  # all zeros: one query attending nowhere


@pytest.mark.parametrize("mode", ["eager", "decomposed"])
@pytest.mark.parametrize("shape", CASES)
@pytest.mark.parametrize("mask_kind", [None, "bool", "float", "bool_empty_rows"])
def test_matches_numpy(mode: str, shape: tuple[int, ...], mask_kind: str | None) -> None:
    b, h, sq, sk, d, dv = shape
    g = torch.Generator().manual_seed(sum(shape))
    q, k = torch.randn(b, h, sq, d, generator=g), torch.randn(b, h, sk, d, generator=g)
    v = torch.randn(b, h, sk, dv, generator=g)
    mask = None
    if mask_kind == "bool":
        mask = torch.rand(b, 1, sq, sk, generator=g) > 0.4
        mask[..., 0] = True  # every query attends somewhere
    elif mask_kind == "bool_empty_rows":  # a review: a query with no key allowed was NaN in the decomposed form
        mask = torch.rand(b, 1, sq, sk, generator=g) > 0.4
        mask[..., 0] = True
        mask[0, :, 0] = False  # the first sample's first query attends nowhere: zeros, as SDPA gives
    elif mask_kind == "float":
        mask = torch.randn(1, h, sq, sk, generator=g)
    scale = 0.3 if mask_kind == "float" else None
    with export_mode(mode):
        out = attention(q, k, v, scale=scale, mask=mask)
    ref = attention_numpy(q.numpy(), k.numpy(), v.numpy(), scale=scale,
                          mask=None if mask is None else mask.numpy())
    assert out.shape == (b, h, sq, dv)
    assert _rel(out.numpy(), ref) < 1e-5
    if mask_kind == "bool_empty_rows":
        assert np.all(ref[0, :, 0] == 0) and np.all(out.numpy()[0, :, 0] == 0)


def test_mask_changes_result() -> None:
    """A mask that blocks a key must remove its contribution (guards against ignoring the mask)."""
    q = torch.randn(1, 1, 2, 4)
    k = torch.randn(1, 1, 3, 4)
    v = torch.zeros(1, 1, 3, 4)
    v[..., 2, :] = 100.0
    mask = torch.tensor([True, True, False]).view(1, 1, 1, 3).expand(1, 1, 2, 3)
    assert attention(q, k, v, mask=mask).abs().max() == 0
    assert attention(q, k, v).abs().max() > 1


def test_gradients_match_sdpa() -> None:
    q, k, v = (torch.randn(2, 2, 5, 8, requires_grad=True) for _ in range(3))
    attention(q, k, v).square().sum().backward()
    grads = [t.grad.clone() for t in (q, k, v)]
    q2, k2, v2 = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    torch.nn.functional.scaled_dot_product_attention(q2, k2, v2).square().sum().backward()
    for a, b in zip(grads, (q2.grad, k2.grad, v2.grad)):
        assert torch.allclose(a, b, atol=1e-5)


def test_rejects_wrong_rank() -> None:
    with pytest.raises(ValueError, match="B, H, S, D"):
        attention(torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4))


def test_unknown_mode() -> None:
    with pytest.raises(ValueError), export_mode("nope"):
        pass
