"""Tests for the RoPE ViT blocks."""

from __future__ import annotations

import math

import pytest
import torch

from spikegen.errors import ShapeError
from spikegen.models.transformer import Attention, Block, RoPE2D, Transformer, apply_rope_2d


def _rope(h, w, d=16, base=10000.0):
    return RoPE2D(d, base)((h, w), torch.device("cpu"), torch.float64)


def test_rope_preserves_norm_and_is_identity_at_origin():
    cos, sin = _rope(3, 5)
    x = torch.randn(2, 3, 15, 16, dtype=torch.float64)
    y = apply_rope_2d(x, cos, sin)
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1))
    assert torch.allclose(y[:, :, 0], x[:, :, 0])  # position (0, 0) is not rotated
    assert not torch.allclose(y[:, :, 1:], x[:, :, 1:])


def test_rope_scores_depend_only_on_relative_2d_offset():
    h, w, d = 4, 6, 16
    cos, sin = _rope(h, w, d)
    q = torch.randn(d, dtype=torch.float64).expand(1, 1, h * w, d)
    k = torch.randn(d, dtype=torch.float64).expand(1, 1, h * w, d)
    s = apply_rope_2d(q, cos, sin)[0, 0] @ apply_rope_2d(k, cos, sin)[0, 0].T  # [N, N]
    idx = lambda r, c: r * w + c  # noqa: E731
    # the same offset (+1 row, +2 cols) at two different places gives the same score
    assert s[idx(0, 0), idx(1, 2)] == pytest.approx(s[idx(2, 3), idx(3, 5)].item(), rel=1e-5)  # tables are built in float32
    # rows and columns are distinct axes: (+1, 0) differs from (0, +1)
    assert abs(s[idx(0, 0), idx(1, 0)] - s[idx(0, 0), idx(0, 1)]) > 1e-6


def test_rope_frequencies_match_the_2d_definition():
    d, base = 8, 10000.0
    cos, sin = _rope(2, 3, d, base)
    # token (1, 2): rows rotate by 1 * base**(-2i/(d/2)), columns by 2 * the same frequencies
    freqs = torch.tensor([base ** (-2 * i / (d // 2)) for i in range(d // 4)], dtype=torch.float64)
    tok = 1 * 3 + 2
    assert torch.allclose(cos[tok, 0], torch.cos(1 * freqs))
    assert torch.allclose(sin[tok, 1], torch.sin(2 * freqs))


def test_rope_tables_are_cached_per_grid():
    r = RoPE2D(8)
    a = r((3, 4), torch.device("cpu"), torch.float32)
    assert r((3, 4), torch.device("cpu"), torch.float32) is a
    assert r((4, 3), torch.device("cpu"), torch.float32)[0].shape == (12, 2, 2)
    with torch.inference_mode():
        r((5, 5), torch.device("cpu"), torch.float32)
    # a table first built under inference_mode is usable for training afterwards
    x = torch.randn(1, 1, 25, 8, requires_grad=True)
    apply_rope_2d(x, *r((5, 5), torch.device("cpu"), torch.float32)).sum().backward()
    assert x.grad is not None
    with pytest.raises(ValueError, match="divisible by 4"):
        RoPE2D(6)


def test_attention_without_rope_matches_reference():
    torch.manual_seed(0)
    att = Attention(16, 2).eval()
    x = torch.randn(2, 5, 16)
    q, k, v = att.qkv(x).view(2, 5, 3, 2, 8).permute(2, 0, 3, 1, 4)
    ref = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1) @ v
    ref = att.proj(ref.transpose(1, 2).reshape(2, 5, 16))
    assert torch.allclose(att(x), ref, atol=1e-5)
    assert att.qkv.bias is not None


def test_block_is_prenorm_with_eps_1e6_and_mlp_ratio_4():
    blk = Block(32, 4)
    assert blk.norm1.eps == 1e-6 and blk.norm2.eps == 1e-6
    assert blk.mlp.fc1.out_features == 128


@pytest.mark.parametrize("grid", [(8, 8), (7, 9), (1, 5)])
def test_transformer_any_grid(grid):
    net = Transformer(32, 2, 2).eval()
    x = torch.randn(2, grid[0] * grid[1], 32)
    with torch.no_grad():
        assert net(x, grid).shape == x.shape


def test_transformer_uses_position():
    torch.manual_seed(0)
    net = Transformer(32, 1, 2).eval()
    x = torch.randn(1, 12, 32)
    with torch.no_grad():
        a, b = net(x, (3, 4)), net(x, (4, 3))
        # permuting tokens does not simply permute the output (RoPE breaks permutation symmetry)
        perm = torch.randperm(12)
        c = net(x[:, perm], (3, 4))
    assert not torch.allclose(a, b)
    assert not torch.allclose(a[:, perm], c)


def test_transformer_shape_error():
    net = Transformer(32, 1, 2)
    with pytest.raises(ShapeError, match="tokens"):
        net(torch.randn(1, 10, 32), (3, 4))
