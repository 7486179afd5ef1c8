"""The PCA patch autoencoder (spikegen.models.patch_ae): the PCA is what it claims, it speaks
the VAE interface every SpikeGen path uses, it survives save/load, and training fits it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spikegen.errors import CheckpointError, ShapeError
from spikegen.models import SpikeGen, SpikeGenConfig
from spikegen.models.patch_ae import PatchAutoencoder, fit_patch_autoencoder
from spikegen.models.vae import (
    build_vae,
    decode_latents,
    encode_images,
    estimate_latent_scale,
    load_vae,
    set_latent_scale,
    vae_downsample_factor,
)


def _smooth_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Images with spatially correlated content (so a few components carry most variance)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, size // 8, size // 8, generator=g)
    img = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    return (img + 0.03 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1)


def _fitted(latent: int = 16, seed: int = 0) -> PatchAutoencoder:
    ae = PatchAutoencoder(patch=4, latent_channels=latent)
    fit_patch_autoencoder(ae, [_smooth_images(8, seed=seed)])
    return ae


def test_shapes_preset_and_downsample_factor():
    ae = build_vae("pca-f4-d16")
    assert isinstance(ae, PatchAutoencoder) and vae_downsample_factor(ae) == 4
    z = ae.encode(torch.zeros(2, 3, 16, 24)).latent_dist.mean
    assert z.shape == (2, 16, 4, 6)
    assert ae.decode(z).sample.shape == (2, 3, 16, 24)
    with pytest.raises(ShapeError, match="multiples of 4"):
        ae.encode(torch.zeros(1, 3, 18, 24))
    with pytest.raises(ShapeError, match=r"\[B,16,H,W\]"):
        ae.decode(torch.zeros(1, 8, 4, 4))
    with pytest.raises(ValueError, match="latent_channels"):
        PatchAutoencoder(patch=2, latent_channels=13)  # 2x2x3 = 12 values per block


def test_fit_is_the_pca():
    # all components kept: encode -> decode is exact; 16 of 48: the squared error per block is
    # the variance of the components left out (PCA's optimality), and the basis is orthonormal
    imgs = _smooth_images(8)
    full = PatchAutoencoder(patch=4, latent_channels=48)
    assert fit_patch_autoencoder(full, [imgs]) == pytest.approx(1.0)
    x = imgs * 2 - 1
    assert torch.allclose(full.decode(full.encode(x).latent_dist.mean).sample, x, atol=1e-5)

    ae = PatchAutoencoder(patch=4, latent_channels=16)
    kept = fit_patch_autoencoder(ae, [imgs])
    v = ae.dec_weight.detach().double()
    assert torch.allclose(v.T @ v, torch.eye(16, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(ae.enc_weight.detach(), ae.dec_weight.detach().T)
    with torch.no_grad():
        rec = ae.decode(ae.encode(x).latent_dist.mean).sample
    err = ((rec - x) ** 2).sum() / (x.numel() / 48)  # per block
    blocks = torch.nn.functional.pixel_unshuffle(x.double(), 4).permute(0, 2, 3, 1).reshape(-1, 48)
    ev = torch.linalg.eigvalsh(torch.cov(blocks.T))
    n = blocks.shape[0]
    assert float(err) == pytest.approx(float(ev[:-16].sum()) * (n - 1) / n, rel=1e-3)
    assert kept == pytest.approx(float(ev[-16:].sum() / ev.sum()), rel=1e-6)
    assert 0.9 < kept < 1.0
    # deterministic: the same data gives the same (sign-fixed) basis
    again = PatchAutoencoder(patch=4, latent_channels=16)
    fit_patch_autoencoder(again, [imgs])
    assert torch.equal(again.enc_weight, ae.enc_weight)


def test_fit_needs_blocks():
    with pytest.raises(ShapeError, match="no image blocks"):
        fit_patch_autoencoder(PatchAutoencoder(), [])


def test_save_load_identity_and_errors(tmp_path):
    ae = _fitted()
    set_latent_scale(ae, 0.8)
    ae.save_pretrained(tmp_path / "ae", safe_serialization=True)
    cfg = json.loads((tmp_path / "ae" / "config.json").read_text())
    assert cfg["_class_name"] == "PatchAutoencoder" and cfg["scaling_factor"] == pytest.approx(0.8)
    assert not list((tmp_path / "ae").glob("*.bin"))  # safetensors only
    back = load_vae(tmp_path / "ae")
    assert isinstance(back, PatchAutoencoder) and back.config.scaling_factor == pytest.approx(0.8)
    x = torch.rand(1, 3, 250, 400)  # the PKU camera's frame size: padded to 252 x 400 and back
    z = encode_images(ae, x)
    assert z.shape == (1, 16, 63, 100)
    assert torch.equal(z, encode_images(back, x))
    assert torch.equal(decode_latents(ae, z, size=(250, 400)), decode_latents(back, z, size=(250, 400)))
    (tmp_path / "ae" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(CheckpointError, match="PatchAutoencoder"):
        load_vae(tmp_path / "ae")


def test_latent_scale_is_one_over_std():
    ae = _fitted()
    imgs = _smooth_images(4, seed=1)
    s = estimate_latent_scale(ae, imgs)
    set_latent_scale(ae, s, 0.0)
    assert float(encode_images(ae, imgs).detach().std()) == pytest.approx(1.0, rel=0.02)


def _tiny_cfg(**kw) -> SpikeGenConfig:
    base = dict(vae="pca-f4-d16", vae_stride=4, patch_size=2, latent_channels=16, encoder_width=32, encoder_depth=1,
                encoder_heads=2, decoder_width=32, decoder_depth=1, decoder_heads=2, head_width=32, head_depth=1,
                s3_channels=(8, 8, 8, 8), sample_steps=2)
    base.update(kw)
    return SpikeGenConfig.preset("tiny", **base)


def test_spikegen_on_the_patch_latent(tmp_path):
    # the whole model path on this VAE: a training step reaches every trainable parameter, the
    # sample has the image's shape, save/load keeps the outputs
    torch.manual_seed(0)
    ae = _fitted()
    model = SpikeGen(_tiny_cfg(), vae=ae)
    assert not any(p.requires_grad for p in model.vae.parameters())
    rgb, spikes = torch.rand(2, 3, 32, 48), (torch.rand(2, 8, 32, 48) < 0.3).float()
    out = model(rgb=rgb, spikes=spikes, target=torch.rand(2, 3, 32, 48))
    out["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    model.eval()
    g = torch.Generator().manual_seed(1)
    a = model.sample(rgb=rgb, spikes=spikes, gamma=0.5, generator=g)
    assert a.shape == (2, 3, 32, 48)
    model.save_pretrained(tmp_path / "m")
    back = SpikeGen.from_pretrained(tmp_path / "m")
    assert isinstance(back.vae, PatchAutoencoder)
    b = back.sample(rgb=rgb, spikes=spikes, gamma=0.5, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(a, b, atol=1e-6)


def test_vae_stage_fits_then_refines(tmp_path):
    # `spikegen train vae` with the pca preset: the PCA of the training crops, refined by L1
    # steps that move the decoder; decoder_only keeps the encoding side bit-identical
    from PIL import Image
    from safetensors.torch import load_file

    from spikegen.train import Trainer, load_config

    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        arr = (np.clip(rng.random((1, 1, 3)) * np.linspace(0, 1, 48)[:, None, None] + 0.2 * rng.random((48, 48, 3)), 0, 1)
               * 255).astype(np.uint8)
        Image.fromarray(arr).save(d / f"im{i}.png")
    common = [f"data.root={d}", "data.size=32", "data.blur=false", "data.frames=1", "train.batch_size=2",
              "train.steps=3", "train.lr=1e-3", "train.ema=0", "log.every=1", "log.checkpoint_every=100",
              "train.mixed_precision=no", "train.losses={kl: 0.0}"]
    run = tmp_path / "run"
    cfg = load_config(None, ["stage=vae", "model.vae=preset:pca-f4-d16", "train.fit_images=12", f"log.dir={run}", *common])
    Trainer(cfg, progress=False).fit()
    fitted = load_vae(run / "final")
    assert isinstance(fitted, PatchAutoencoder)
    v = fitted.dec_weight.double()
    assert torch.allclose(v.T @ v, torch.eye(16, dtype=torch.float64), atol=0.05)  # near the PCA basis
    assert float(encode_images(fitted, torch.rand(1, 3, 32, 32)).abs().max()) > 0
    run2 = tmp_path / "run2"
    cfg = load_config(None, ["stage=vae", f"model.init={run / 'final'}", "train.decoder_only=true", f"log.dir={run2}", *common])
    Trainer(cfg, progress=False).fit()
    a = load_file(run / "final" / "diffusion_pytorch_model.safetensors")
    b = load_file(run2 / "final" / "diffusion_pytorch_model.safetensors")
    assert torch.equal(a["enc_weight"], b["enc_weight"]) and torch.equal(a["mean"], b["mean"])
    assert not torch.equal(a["dec_weight"], b["dec_weight"])


def test_per_channel_clip_bounds_each_latent_channel():
    # sample_clip_x0 as a list: every sampled latent channel stays inside its own bound (the
    # token layout is channel-major); a list of the wrong length is refused
    torch.manual_seed(0)
    model = SpikeGen(_tiny_cfg(sample_steps=3), vae=_fitted()).eval()
    with torch.no_grad():
        for p in model.head.parameters():  # an untrained head's estimates, made large
            p.add_(torch.randn_like(p))
    rgb, spikes = torch.rand(1, 3, 32, 32), (torch.rand(1, 8, 32, 32) < 0.3).float()
    bounds = [0.5 + 0.25 * c for c in range(16)]
    z, _ = model.sample_latents(rgb=rgb, spikes=spikes, gamma=0.5, clip_x0=bounds, temperature=1.0,
                                generator=torch.Generator().manual_seed(0))
    top = z.abs().amax(dim=(0, 2, 3))
    assert bool((top <= torch.tensor(bounds) + 1e-5).all())
    assert bool((top > torch.tensor(bounds) - 1e-3).sum() >= 8)  # the bounds bind (the estimates are wild)
    with pytest.raises(ValueError, match="16 positive per-channel bounds"):
        model.sample_latents(rgb=rgb, spikes=spikes, clip_x0=[1.0, 2.0])
    with pytest.raises(ValueError, match="16 positive per-channel bounds"):
        _tiny_cfg(sample_clip_x0=[1.0] * 15).validate()


def test_whitened_fit_has_unit_variance_channels_and_the_same_reconstruction():
    imgs = _smooth_images(8)
    plain, white = build_vae("pca-f4-d16"), build_vae("pcaw-f4-d16")
    fit_patch_autoencoder(plain, [imgs])
    fit_patch_autoencoder(white, [imgs])
    x = imgs * 2 - 1
    with torch.no_grad():
        zp, zw = plain.encode(x).latent_dist.mean, white.encode(x).latent_dist.mean
        assert torch.allclose(white.decode(zw).sample, plain.decode(zp).sample, atol=1e-4)
    std = zw.transpose(0, 1).flatten(1).std(dim=1)
    assert torch.allclose(std, torch.ones(16), atol=0.02)
    assert float(zp.transpose(0, 1).flatten(1).std(dim=1)[0]) > 5 * float(zp.transpose(0, 1).flatten(1).std(dim=1)[-1])


def test_residual_model_generates_the_change_from_its_rgb_input(monkeypatch):
    # config.residual: the head is trained on target - input latent where the RGB branch is
    # used (g < 1) and on the target itself at g = 1; sampling adds the input latent back, so a
    # head that generates nothing returns the input (through the PCA round trip) at g < 1
    torch.manual_seed(0)
    model = SpikeGen(_tiny_cfg(residual=True), vae=_fitted())
    rgb, spikes = torch.rand(2, 3, 32, 48), (torch.rand(2, 8, 32, 48) < 0.3).float()
    seen = {}
    real_loss = model.head.loss

    def spy(target, z, *a, **kw):
        seen["target"] = target.detach().clone()
        return real_loss(target, z, *a, **kw)

    monkeypatch.setattr(model.head, "loss", spy)
    out = model(rgb=rgb, spikes=spikes, target=rgb, gamma=torch.tensor([0.0, 1.0]), return_latents=True)
    t = seen["target"].reshape(2, -1, seen["target"].shape[-1])
    assert float(t[0].abs().max()) < 1e-5  # g = 0, target = input: nothing to generate
    assert float(t[1].abs().max()) > 0.1  # g = 1: the RGB branch is unused, the whole latent
    assert torch.allclose(out["target_latent"][0], model.encode_images(rgb[:1])[0], atol=1e-5)
    model.eval()
    monkeypatch.setattr(model.head, "sample", lambda z, **kw: torch.zeros(z.shape[0], model.config.token_channels))
    a = model.sample(rgb=rgb, spikes=spikes, gamma=0.5)
    assert torch.allclose(a, model.decode_latents(model.encode_images(rgb), (32, 48)), atol=1e-5)
    plain = SpikeGen(_tiny_cfg(), vae=model.vae).eval()
    monkeypatch.setattr(plain.head, "sample", lambda z, **kw: torch.zeros(z.shape[0], plain.config.token_channels))
    assert not torch.allclose(plain.sample(rgb=rgb, spikes=spikes, gamma=0.5), a, atol=1e-2)
    only_spikes = model.sample(rgb=rgb, spikes=spikes, gamma=1.0)  # no RGB branch: nothing added
    assert torch.allclose(only_spikes, plain.sample(rgb=rgb, spikes=spikes, gamma=1.0), atol=1e-6)


def test_g0_residual_scales_the_change_at_rgb_only_and_nowhere_else(monkeypatch):
    # config.sample_g0_residual: at g = 0 (RGB only) the generated change is scaled before the
    # input latent is added back; at g > 0 the change is left as generated, per sample
    torch.manual_seed(1)
    model = SpikeGen(_tiny_cfg(residual=True), vae=_fitted()).eval()
    rgb, spikes = torch.rand(2, 3, 32, 48), (torch.rand(2, 8, 32, 48) < 0.3).float()
    monkeypatch.setattr(model.head, "sample", lambda z, **kw: torch.ones(z.shape[0], model.config.token_channels))
    lat = lambda **kw: model.sample_latents(rgb=rgb, spikes=spikes, **kw)[0]
    base = model.encode_images(rgb)
    full = {g: lat(gamma=g) for g in (0.0, 0.5)}
    assert torch.allclose(full[0.0] - base, torch.ones_like(base), atol=1e-5)  # the change, as generated
    model.config.sample_g0_residual = 0.25
    assert torch.allclose(lat(gamma=0.0) - base, torch.full_like(base, 0.25), atol=1e-5)
    assert torch.allclose(lat(gamma=0.5), full[0.5], atol=1e-6)  # g > 0: untouched
    mixed = lat(gamma=torch.tensor([0.0, 0.5]))
    assert torch.allclose(mixed[0] - base[0], torch.full_like(base[0], 0.25), atol=1e-5)
    assert torch.allclose(mixed[1], full[0.5][1], atol=1e-6)
    two = model.sample_latents(rgb=rgb, spikes=spikes, gamma=0.0, num_samples=2)[0]  # sample-minor order
    assert torch.allclose(two[1] - base[0], torch.full_like(base[0], 0.25), atol=1e-5)
