"""Tests for the S3 spike encoder."""

from __future__ import annotations

import pytest
import torch

from spikegen.errors import ShapeError
from spikegen.models.s3 import S3Encoder, pad_time_mirror


@pytest.fixture(scope="module")
def enc():
    torch.manual_seed(0)
    return S3Encoder(32, channels=(4, 8, 8, 16)).eval()


@pytest.mark.parametrize("t,h,w", [(8, 64, 64), (5, 50, 70), (1, 16, 24), (13, 24, 16), (24, 9, 17)])
def test_output_grid_is_ceil_of_size_over_8(enc, t, h, w):
    x = (torch.rand(2, t, h, w) < 0.3).to(torch.uint8)
    with torch.no_grad():
        y = enc(x)
    assert y.shape == (2, 32, -(-h // 8), -(-w // 8))
    assert torch.isfinite(y).all()


def test_accepts_uint8_bool_float_and_5d(enc):
    x = torch.rand(1, 8, 32, 32) < 0.2
    with torch.no_grad():
        a = enc(x)
        assert torch.equal(a, enc(x.to(torch.uint8)))
        assert torch.equal(a, enc(x.float()))
        assert torch.equal(a, enc(x.float().unsqueeze(1)))


def test_time_padding_is_a_mirror():
    x = torch.arange(5.0).view(1, 1, 5, 1, 1)
    assert pad_time_mirror(x).flatten().tolist() == [0, 1, 2, 3, 4, 3, 2, 1]
    one = torch.ones(1, 1, 1, 2, 2)
    assert pad_time_mirror(one).shape[2] == 8
    three = torch.arange(3.0).view(1, 1, 3, 1, 1)  # pad longer than the stream: mirrored repeatedly
    assert pad_time_mirror(three).flatten().tolist() == [0, 1, 2, 1, 0, 1, 2, 1]
    eight = torch.rand(1, 1, 8, 2, 2)
    assert pad_time_mirror(eight) is eight


def test_odd_t_equals_explicit_mirror_padding(enc):
    x = (torch.rand(1, 5, 32, 32) < 0.3).float()
    padded = pad_time_mirror(x.unsqueeze(1), 8, dim=2)
    with torch.no_grad():
        assert torch.allclose(enc(x), enc(padded), atol=0)


def test_features_depend_on_spikes_and_time(enc):
    x = (torch.rand(1, 8, 32, 32) < 0.3).float()
    with torch.no_grad():
        a = enc(x)
        assert not torch.allclose(a, enc(1 - x))
        assert not torch.allclose(a, enc(x.flip(1)))  # order in time matters (3-D convolutions)


def test_gradients_reach_every_parameter():
    enc = S3Encoder(16, channels=(4, 4, 8, 8)).train()
    enc((torch.rand(2, 8, 32, 32) < 0.3)).square().mean().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_shapes_raise():
    enc = S3Encoder(16, channels=(4, 4, 8, 8))
    with pytest.raises(ShapeError, match="spikes"):
        enc(torch.zeros(8, 32, 32))
    with pytest.raises(ShapeError, match="spikes"):
        enc(torch.zeros(1, 2, 8, 32, 32))
    with pytest.raises(ValueError):
        S3Encoder(16, channels=(4, 8, 8))
