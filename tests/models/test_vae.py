"""Tests for spikegen.models.vae: presets, any-size encode/decode, latent scale, loading."""

from __future__ import annotations

import json

import pytest
import torch

from spikegen.errors import CheckpointError, ShapeError
from spikegen.models.vae import (
    VAE_PRESETS,
    build_vae,
    decode_latents,
    encode_images,
    estimate_latent_clip,
    estimate_latent_scale,
    latent_scale,
    load_vae,
    pad_to_multiple,
    set_latent_scale,
    vae_downsample_factor,
)


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return build_vae("tiny-f8-d16")


def test_presets():
    assert set(VAE_PRESETS) == {"kl-f8-d16", "tiny-f8-d16", "tiny-f4-d16", "small-f8-d16", "pca-f4-d16", "pcaw-f4-d16"}
    f4 = build_vae("tiny-f4-d16")
    assert f4.config.latent_channels == 16 and vae_downsample_factor(f4) == 4
    assert not f4.config.mid_block_add_attention  # fully convolutional: tiles, linear memory
    assert encode_images(f4, torch.rand(1, 3, 50, 70)).shape == (1, 16, 13, 18)
    with torch.device("meta"):
        big = build_vae("kl-f8-d16")
    assert tuple(big.config.block_out_channels) == (128, 256, 512, 512)
    assert big.config.latent_channels == 16 and vae_downsample_factor(big) == 8
    n_big = sum(p.numel() for p in big.parameters())
    assert 80e6 < n_big < 90e6  # the SD VAE layout with 16 latent channels (~84M)
    tiny = build_vae("tiny-f8-d16")
    assert tiny.config.latent_channels == 16 and vae_downsample_factor(tiny) == 8
    assert sum(p.numel() for p in tiny.parameters()) < 2e6
    with pytest.raises(ValueError, match="unknown VAE preset"):
        build_vae("kl-f16")


def test_new_vae_has_unit_scale_not_a_borrowed_constant():
    v = build_vae("tiny-f8-d16")
    assert latent_scale(v) == (1.0, 0.0)


@pytest.mark.parametrize("size", [(64, 64), (50, 70), (8, 13), (3, 5)])
def test_encode_decode_any_size(vae, size):
    h, w = size
    img = torch.rand(2, 3, h, w)
    with torch.no_grad():
        z = encode_images(vae, img)
        assert z.shape == (2, 16, -(-h // 8), -(-w // 8))
        out = decode_latents(vae, z, size=(h, w))
    assert out.shape == (2, 3, h, w)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_pad_to_multiple_reflects_and_crops_back():
    x = torch.arange(50 * 70, dtype=torch.float32).view(1, 1, 50, 70)
    y, size = pad_to_multiple(x, 8)
    assert y.shape == (1, 1, 56, 72) and size == (50, 70)
    assert torch.equal(y[..., :50, :70], x)
    assert torch.equal(y[..., 50, :70], x[..., 48, :])  # reflect (not replicate) at the bottom
    y2, _ = pad_to_multiple(torch.rand(1, 3, 64, 64), 8)
    assert y2.shape == (1, 3, 64, 64)


def test_gray_input_is_expanded(vae):
    g = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(encode_images(vae, g), encode_images(vae, g.expand(-1, 3, -1, -1)))


def test_bad_inputs_raise_shape_error(vae):
    with pytest.raises(ShapeError, match="images"):
        encode_images(vae, torch.rand(1, 4, 16, 16))
    with pytest.raises(ShapeError, match="float"):
        encode_images(vae, torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ShapeError, match="latents"):
        decode_latents(vae, torch.zeros(1, 4, 2, 2))


def test_estimate_and_store_latent_scale(vae, tmp_path):
    imgs = torch.rand(6, 3, 32, 32)
    s = estimate_latent_scale(vae, imgs, batch_size=4)
    with torch.no_grad():
        raw = encode_images(vae, imgs)  # current scale is 1.0
    assert s == pytest.approx(1.0 / float(raw.double().std()), rel=1e-4)
    # the same figure from an iterable of batches
    assert estimate_latent_scale(vae, [imgs[:3], imgs[3:]]) == pytest.approx(s, rel=1e-6)
    v = build_vae("tiny-f8-d16")
    v.load_state_dict(vae.state_dict())
    set_latent_scale(v, s)
    with torch.no_grad():
        scaled = encode_images(v, imgs)
    assert float(scaled.double().std()) == pytest.approx(1.0, rel=1e-3)
    assert torch.allclose(scaled, raw * s, atol=1e-5)
    # the scale is saved with the VAE and used after loading
    v.save_pretrained(tmp_path / "vae", safe_serialization=True)
    assert json.loads((tmp_path / "vae" / "config.json").read_text())["scaling_factor"] == pytest.approx(s)
    loaded = load_vae(tmp_path / "vae")
    assert loaded.config.scaling_factor == pytest.approx(s)
    with torch.no_grad():
        assert torch.allclose(encode_images(loaded, imgs), scaled, atol=1e-5)
    with pytest.raises(ValueError):
        set_latent_scale(v, 0.0)


def test_estimate_latent_clip(vae):
    imgs = torch.rand(5, 3, 32, 32)
    with torch.no_grad():
        a = encode_images(vae, imgs).abs().flatten().double()
    # the 99.9 % quantile of |z|, rounded up to a multiple of 0.5
    want = float(torch.sort(a).values[int(-(-0.999 * a.numel() // 1)) - 1])
    clip = estimate_latent_clip(vae, imgs, batch_size=2)
    assert clip % 0.5 == 0 and want <= clip < want + 0.5
    assert estimate_latent_clip(vae, imgs, q=1.0, step=0.25) == pytest.approx(-(-float(a.max()) // 0.25) * 0.25)
    # a larger latent scale widens the clip by the same factor (before rounding)
    v = build_vae("tiny-f8-d16")
    v.load_state_dict(vae.state_dict())
    set_latent_scale(v, 4.0)
    assert estimate_latent_clip(v, imgs, q=1.0, step=1e-6) == pytest.approx(4 * float(a.max()), rel=1e-4)
    with pytest.raises(ValueError, match="q="):
        estimate_latent_clip(vae, imgs, q=0.0)
    with pytest.raises(ShapeError):
        estimate_latent_clip(vae, imgs[:0])


def test_load_vae_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such VAE folder"):
        load_vae(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json"):
        load_vae(tmp_path / "empty")
    bad = tmp_path / "bad"
    build_vae("tiny-f8-d16").save_pretrained(bad, safe_serialization=True)
    weights = next(bad.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    with pytest.raises(CheckpointError, match="cannot load"):
        load_vae(bad)
