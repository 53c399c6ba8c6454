"""projected_heads: each part from its slice of a fused projection equals the reshape/permute split."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edge.ops import projected_heads  # noqa: E402


@pytest.mark.parametrize(("parts", "heads", "bias"), [(3, 4, True), (2, 2, True), (3, 1, False)])
def test_equals_the_fused_split(parts: int, heads: int, bias: bool) -> None:
    torch.manual_seed(parts * 10 + heads)
    d = 24
    proj = torch.nn.Linear(d, parts * d, bias=bias)
    x = torch.randn(2, 7, d)
    with torch.no_grad():
        want = proj(x).reshape(2, 7, parts, heads, d // heads).permute(2, 0, 3, 1, 4)
        got = projected_heads(proj, x, parts, heads)
    assert len(got) == parts
    for i in range(parts):
        assert got[i].shape == (2, heads, 7, d // heads)
        assert torch.allclose(got[i], want[i], rtol=0, atol=1e-5)


def test_a_projection_that_does_not_split_is_one_line() -> None:
    with pytest.raises(ValueError, match="does not split into 3 parts of 5 heads"):
        projected_heads(torch.nn.Linear(8, 24), torch.zeros(1, 2, 8), 3, 5)


def test_parts_from_their_own_inputs() -> None:
    """``inputs``: queries of some tokens against keys/values of all (cross or pruned self-attention)
    equal the rows of the full projection, and a count that does not match the parts is one line."""
    torch.manual_seed(3)
    proj = torch.nn.Linear(16, 48)
    x = torch.randn(2, 9, 16)
    with torch.no_grad():
        full = projected_heads(proj, x, 3, 4)
        q, k, v = projected_heads(proj, x, 3, 4, inputs=(x[:, 5:], x, x))
    assert q.shape == (2, 4, 4, 4) and k.shape == v.shape == (2, 4, 9, 4)
    assert torch.allclose(q, full[0][:, :, 5:], rtol=0, atol=1e-6)
    assert torch.allclose(k, full[1], rtol=0, atol=1e-6) and torch.allclose(v, full[2], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="2 inputs for 3 projected parts"):
        projected_heads(proj, x, 3, 4, inputs=(x, x))
