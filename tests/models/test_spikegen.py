"""Tests for the assembled SpikeGen model: shapes, determinism, modality control, gradients,
save/load, parameter counts."""

from __future__ import annotations

import json

import pytest
import scipy.stats
import torch

from spikegen.errors import CheckpointError, OutputExistsError, ShapeError
from spikegen.models import SampleOutput, SpikeGen, SpikeGenConfig, count_parameters, sample_gamma
from spikegen.models.vae import latent_scale, set_latent_scale


@pytest.fixture(autouse=True)
def one_thread():
    # many small ops: one thread is much faster than two on a shared 2-core machine
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _randomize_zero_init(model: SpikeGen, seed: int = 0) -> SpikeGen:
    """Replace the zero-initialised parts (adaLN modulations, output layer) by small random
    values, as after some training, so that every input can influence every output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("vae."):
                continue
            if torch.count_nonzero(p) == 0:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model


def _tiny(**overrides) -> SpikeGen:
    torch.manual_seed(0)
    model = SpikeGen.from_config(SpikeGenConfig.preset("tiny", **overrides))
    set_latent_scale(model.vae, 0.8)
    return _randomize_zero_init(model).eval()


@pytest.fixture(scope="module")
def model() -> SpikeGen:
    return _tiny()


def _data(b=2, h=64, w=64, t=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand(b, 3, h, w, generator=g)
    spikes = (torch.rand(b, t, h, w, generator=g) < 0.2).to(torch.uint8)
    return rgb, spikes


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------ config
def test_config_presets_and_json_round_trip():
    base = SpikeGenConfig.preset("base")
    assert (base.encoder_width, base.encoder_depth, base.encoder_heads) == (768, 12, 12)
    assert (base.decoder_width, base.decoder_depth, base.decoder_heads) == (768, 12, 12)
    assert (base.head_depth, base.head_width, base.mlp_ratio, base.norm_eps, base.rope_base) == (6, 1024, 4.0, 1e-6, 10000.0)
    large = SpikeGenConfig.preset("large")
    assert (large.encoder_width, large.encoder_depth, large.encoder_heads, large.decoder_depth) == (1024, 16, 16, 16)
    assert (large.head_depth, large.head_width) == (8, 1280)
    tiny = SpikeGenConfig.preset("tiny")
    assert (tiny.vae, tiny.vae_stride, tiny.patch_size, tiny.token_channels) == ("tiny-f4-d16", 4, 2, 64)
    assert (tiny.head_depth, tiny.head_width) == (3, 256)  # room for 64 values per token
    for cfg in (base, large, tiny):
        d = json.loads(cfg.to_json())
        assert SpikeGenConfig.from_dict(d) == cfg
    with pytest.raises(ValueError, match="unknown SpikeGenConfig"):
        SpikeGenConfig.from_dict({"nope": 1})
    with pytest.raises(ValueError, match="unknown SpikeGen preset"):
        SpikeGenConfig.preset("huge")
    with pytest.raises(ValueError, match="divisible by 4"):
        SpikeGen.from_config(SpikeGenConfig.preset("tiny", encoder_heads=3, encoder_width=129))


def test_parameter_counts_next_to_mar():
    base, large = count_parameters("base"), count_parameters("large")
    # written in docs/model.md; MAR-B is 208M and MAR-L 479M (without the VAE)
    assert base == 214_893_904
    assert large == 490_378_064
    assert abs(base / 208e6 - 1) < 0.05 and abs(large / 479e6 - 1) < 0.05
    assert count_parameters("base", include_vae=True) > base + 80e6  # + the kl-f8-d16 VAE


def test_sample_gamma_is_the_truncated_normal():
    g = sample_gamma(20000, generator=_gen(0))
    assert float(g.min()) >= 0 and float(g.max()) <= 1
    ref = scipy.stats.truncnorm(-0.5, 0.5, loc=0.5, scale=1.0)
    assert float(g.mean()) == pytest.approx(ref.mean(), abs=0.01)
    assert float(g.std()) == pytest.approx(ref.std(), abs=0.01)
    ks = scipy.stats.kstest(g.double().numpy(), ref.cdf)
    assert ks.pvalue > 1e-3
    assert not torch.equal(g[:10], sample_gamma(10, generator=_gen(1)))


# ------------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("h,w", [(64, 64), (50, 70)])
def test_training_forward_and_sample_shapes(model, h, w):
    rgb, spikes = _data(2, h, w, t=8 if h == 64 else 5)
    model.train()
    losses = model(rgb=rgb, spikes=spikes, target=rgb, generator=_gen())
    assert set(losses) == {"loss", "diffusion"}
    assert losses["loss"].ndim == 0 and torch.isfinite(losses["loss"]) and losses["loss"].requires_grad
    model.eval()
    out = model.sample(rgb=rgb, spikes=spikes, steps=4, generator=_gen())
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3, h, w) and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_unbatched_inputs_and_gray(model):
    rgb, spikes = _data(1, 32, 40)
    a = model.sample(rgb=rgb[0], spikes=spikes[0], steps=3, generator=_gen())
    b = model.sample(rgb=rgb, spikes=spikes, steps=3, generator=_gen())
    assert a.shape == (1, 3, 32, 40) and torch.equal(a, b)
    gray = model.sample(rgb=rgb[:, :1], spikes=spikes, steps=3, generator=_gen())
    assert gray.shape == (1, 3, 32, 40)


def test_return_latents_for_fine_tuning_losses(model):
    rgb, spikes = _data(2, 48, 64)
    model.train()
    out = model(rgb=rgb, spikes=spikes, target=rgb, gamma=0.3, return_latents=True, generator=_gen())
    model.eval()
    # tiny preset: a 4x VAE, 2x2-patch tokens -> a 12x16 latent for a 6x8 token grid
    assert out["pred_latent"].shape == out["target_latent"].shape == (2, 16, 12, 16)
    assert out["pred_latent"].requires_grad
    assert torch.allclose(out["gamma"], torch.full((2,), 0.3))
    img = model.decode_latents(out["pred_latent"], size=(48, 64))
    assert img.shape == (2, 3, 48, 64) and img.requires_grad


# ------------------------------------------------------------------------------ determinism
def test_determinism_under_a_seed(model):
    rgb, spikes = _data(2, 40, 56)
    for sampler in ("ddim", "ddpm"):
        a = model.sample(rgb=rgb, spikes=spikes, steps=5, sampler=sampler, generator=_gen(7))
        b = model.sample(rgb=rgb, spikes=spikes, steps=5, sampler=sampler, generator=_gen(7))
        c = model.sample(rgb=rgb, spikes=spikes, steps=5, sampler=sampler, generator=_gen(8))
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


def test_training_loss_reproducible_with_generator(model):
    rgb, spikes = _data(2, 32, 32)
    model.train()
    l1 = model(rgb=rgb, spikes=spikes, target=rgb, generator=_gen(3))["loss"]
    l2 = model(rgb=rgb, spikes=spikes, target=rgb, generator=_gen(3))["loss"]
    model.eval()
    assert torch.equal(l1, l2)


# ------------------------------------------------------------------------ modality control
def test_gamma_0_ignores_spikes_and_gamma_1_ignores_rgb(model):
    rgb, spikes = _data(2, 48, 56, seed=0)
    rgb2, spikes2 = _data(2, 48, 56, seed=1)
    kw = dict(steps=5, generator=None)

    def run(**inputs):
        return model.sample(**inputs, **{**kw, "generator": _gen(5)})

    g0 = run(rgb=rgb, spikes=spikes, gamma=0.0)
    assert torch.equal(g0, run(rgb=rgb, spikes=spikes2, gamma=0.0))
    assert torch.equal(g0, run(rgb=rgb, spikes=None, gamma=0.0))
    assert not torch.equal(g0, run(rgb=rgb2, spikes=spikes, gamma=0.0))  # the RGB does matter
    g1 = run(rgb=rgb, spikes=spikes, gamma=1.0)
    assert torch.equal(g1, run(rgb=rgb2, spikes=spikes, gamma=1.0))
    assert torch.equal(g1, run(rgb=None, spikes=spikes))  # missing RGB forces g = 1
    assert not torch.equal(g1, run(rgb=rgb, spikes=spikes2, gamma=1.0))  # the spikes do matter
    mid = run(rgb=rgb, spikes=spikes, gamma=0.5)
    assert not torch.equal(mid, g0) and not torch.equal(mid, g1)
    # per-sample gamma: the sample with g = 0 ignores its spikes
    per = run(rgb=rgb, spikes=spikes, gamma=torch.tensor([0.0, 0.5]))
    per2 = run(rgb=rgb, spikes=spikes2, gamma=torch.tensor([0.0, 0.5]))
    assert torch.allclose(per[0], per2[0], atol=1e-5) and not torch.allclose(per[1], per2[1])


def test_tfp_pseudo_frame(model):
    _, spikes = _data(1, 32, 32)
    spikes_only = model.sample(spikes=spikes, steps=4, generator=_gen())
    with_tfp = model.sample(spikes=spikes, tfp_rgb=True, steps=4, generator=_gen())
    tfp = spikes.float().mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    explicit = model.sample(rgb=tfp, spikes=spikes, steps=4, generator=_gen())
    assert torch.equal(with_tfp, explicit)
    assert not torch.equal(with_tfp, spikes_only)


def test_gamma_validation_and_missing_inputs(model):
    rgb, spikes = _data(2, 32, 32)
    with pytest.raises(ShapeError, match="gamma"):
        model.sample(rgb=rgb, spikes=spikes, gamma=1.5, steps=2)
    with pytest.raises(ShapeError, match="gamma"):
        model.sample(rgb=rgb, spikes=spikes, gamma=torch.tensor([0.1, 0.2, 0.3]), steps=2)
    with pytest.raises(ShapeError, match="neither"):
        model.sample(steps=2)
    with pytest.raises(ShapeError, match="spikes"):
        model.sample(rgb=rgb, spikes=spikes[:, :, :16], steps=2)
    with pytest.raises(ShapeError, match="target"):
        model(rgb=rgb, spikes=spikes)
    with pytest.raises(ValueError, match="sampler"):
        model.sample(rgb=rgb, steps=2, sampler="heun")


# ------------------------------------------------------------------------------ uncertainty
def test_num_samples_gives_mean_and_std(model):
    rgb, spikes = _data(2, 32, 48)
    out = model.sample(rgb=rgb, spikes=spikes, steps=4, num_samples=3, generator=_gen())
    assert isinstance(out, SampleOutput)
    assert out.samples.shape == (2, 3, 3, 32, 48)
    for t in (out.images, out.mean, out.std):
        assert t.shape == (2, 3, 32, 48)
    assert torch.equal(out.images, out.samples[:, 0])
    assert torch.allclose(out.mean, out.samples.mean(1)) and torch.allclose(out.std, out.samples.std(1))
    assert float(out.std.max()) > 0  # samples differ
    images, mean, std, samples = out  # a NamedTuple unpacks


# ------------------------------------------------------------------------ K-step generation
def test_k_step_generation_needs_a_masked_model(model):
    rgb, spikes = _data(1, 32, 32)
    with pytest.raises(ValueError, match="mask_ratio_min"):
        model.sample(rgb=rgb, spikes=spikes, steps=2, ar_steps=4)
    masked = _tiny(mask_ratio_min=0.7)
    a = masked.sample(rgb=rgb, spikes=spikes, steps=3, ar_steps=4, generator=_gen(1))
    b = masked.sample(rgb=rgb, spikes=spikes, steps=3, ar_steps=4, generator=_gen(1))
    one = masked.sample(rgb=rgb, spikes=spikes, steps=3, ar_steps=1, generator=_gen(1))
    assert a.shape == (1, 3, 32, 32) and torch.equal(a, b) and not torch.equal(a, one)
    many = masked.sample(rgb=rgb, spikes=spikes, steps=2, ar_steps=100, num_samples=2)  # K > N tokens
    assert many.samples.shape == (1, 2, 3, 32, 32)


# ------------------------------------------------------------------------------ patch size
def test_patchify_round_trip_and_token_order(model):
    z = torch.randn(2, 16, 10, 14, generator=_gen())
    tok = model.patchify(z)
    assert tok.shape == (2, 35, 64)
    assert torch.equal(model.unpatchify(tok, (5, 7)), z)
    # token (row 1, col 2) holds latent pixels rows 2-3, cols 4-5, channel-major (MAR's order)
    assert torch.equal(tok[0, 1 * 7 + 2].reshape(16, 2, 2), z[0, :, 2:4, 4:6])
    with pytest.raises(ShapeError, match="multiple of patch_size"):
        model.patchify(torch.zeros(1, 16, 5, 6))


def test_patch_size_must_match_the_vae_stride():
    with pytest.raises(ValueError, match="vae_stride x patch_size must be 8"):
        SpikeGenConfig.preset("tiny", patch_size=1).validate()
    with pytest.raises(ValueError, match="patch_size=1"):
        SpikeGenConfig.preset("tiny", vae="tiny-f8-d16", vae_stride=8).validate()


def test_camera_frames_250x400_with_patch_tokens(model):
    # the PKU camera's size: not a multiple of 8, so the 4x latent grid (63x100) would not split
    # into 2x2 patches; images are padded to a multiple of 8 before encoding
    rgb, spikes = _data(1, 250, 400, t=8)
    lat = model.encode_images(rgb)
    assert lat.shape == (1, 16, 64, 100)
    model.train()
    out = model(rgb=rgb, spikes=spikes, target=rgb, return_latents=True, generator=_gen())
    model.eval()
    assert out["pred_latent"].shape == (1, 16, 64, 100) and torch.isfinite(out["loss"])
    img = model.sample(rgb=rgb, spikes=spikes, steps=2, generator=_gen())
    assert img.shape == (1, 3, 250, 400)


def test_old_f8_checkpoints_still_load(tmp_path):
    # weights saved before patch_size existed have no such key: they load as patch_size 1
    torch.manual_seed(0)
    old = SpikeGen.from_config(SpikeGenConfig.preset("tiny", vae="tiny-f8-d16", vae_stride=8, patch_size=1)).eval()
    old.save_pretrained(tmp_path / "old")
    cfg = json.loads((tmp_path / "old" / "config.json").read_text())
    del cfg["patch_size"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(cfg))
    back = SpikeGen.from_pretrained(tmp_path / "old")
    assert back.config.patch_size == 1 and back.config.token_channels == 16
    rgb, spikes = _data(1, 32, 32)
    assert torch.equal(old.sample(rgb=rgb, spikes=spikes, steps=2, generator=_gen()),
                       back.sample(rgb=rgb, spikes=spikes, steps=2, generator=_gen()))


# -------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("overrides", [{}, {"mask_ratio_min": 0.7}, {"vae": "tiny-f8-d16", "vae_stride": 8, "patch_size": 1}])
def test_one_training_step_reaches_every_parameter(overrides):
    rgb, spikes = _data(2, 32, 32)
    torch.manual_seed(0)
    fresh = SpikeGen.from_config(SpikeGenConfig.preset("tiny", **overrides)).train()
    fresh(rgb=rgb, spikes=spikes, target=rgb, generator=_gen())["loss"].backward()
    trainable = dict((n, p) for n, p in fresh.named_parameters() if p.requires_grad)
    assert all(not n.startswith("vae.") for n in trainable)
    # at initialisation (zero adaLN / output layer) every parameter is in the graph: DDP needs
    # no find_unused_parameters
    assert [n for n, p in trainable.items() if p.grad is None] == []
    # once the zero-initialised layers have moved (as after one optimiser step), every
    # gradient is non-zero
    m = _randomize_zero_init(SpikeGen.from_config(SpikeGenConfig.preset("tiny", **overrides))).train()
    m(rgb=rgb, spikes=spikes, target=rgb, generator=_gen())["loss"].backward()
    dead = [n for n, p in m.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert dead == []
    assert all(p.grad is None for p in m.vae.parameters())


def test_missing_modality_keeps_every_parameter_in_the_graph():
    m = _tiny()
    m.train()
    rgb, spikes = _data(2, 32, 32)
    m(spikes=spikes, target=rgb, generator=_gen())["loss"].backward()
    assert all(p.grad is not None for p in m.trainable_parameters())
    assert float(m.proj_rgb.weight.grad.abs().sum()) == 0.0  # joined with an exact zero


# -------------------------------------------------------------------------------- save/load
def test_save_load_identical_samples(model, tmp_path):
    rgb, spikes = _data(1, 40, 48)
    before = model.sample(rgb=rgb, spikes=spikes, steps=4, generator=_gen(11))
    path = model.save_pretrained(tmp_path / "ckpt")
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    assert (path / "vae" / "config.json").is_file()
    loaded = SpikeGen.from_pretrained(path)
    assert loaded.config == model.config and not loaded.training
    assert latent_scale(loaded.vae) == latent_scale(model.vae) == (0.8, 0.0)
    after = loaded.sample(rgb=rgb, spikes=spikes, steps=4, generator=_gen(11))
    assert torch.equal(before, after)
    with pytest.raises(OutputExistsError):
        model.save_pretrained(path)
    model.save_pretrained(path, overwrite=True)
    bf16 = SpikeGen.from_pretrained(path, dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16


def test_half_precision_weights_load_as_float32(model, tmp_path):
    from safetensors.torch import load_file, save_file

    path = model.save_pretrained(tmp_path / "ckpt")
    w = path / "model.safetensors"
    state = load_file(str(w))
    save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, str(w))
    loaded = SpikeGen.from_pretrained(path)
    assert loaded.dtype == torch.float32
    ref = dict(model.named_parameters())
    for name, p in loaded.named_parameters():
        if not name.startswith("vae."):
            assert p.dtype == torch.float32 and torch.equal(p, ref[name].half().float())
    assert SpikeGen.from_pretrained(path, dtype=torch.float16).dtype == torch.float16


def test_load_errors(model, tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        SpikeGen.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json"):
        SpikeGen.from_pretrained(tmp_path / "empty")
    path = model.save_pretrained(tmp_path / "ok")
    cfg = json.loads((path / "config.json").read_text())

    bad = tmp_path / "badjson"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="invalid SpikeGen config"):
        SpikeGen.from_pretrained(bad)

    mism = model.save_pretrained(tmp_path / "mismatch")
    (mism / "config.json").write_text(json.dumps({**cfg, "encoder_depth": 3}))
    with pytest.raises(CheckpointError, match="do not match"):
        SpikeGen.from_pretrained(mism)
    wide = model.save_pretrained(tmp_path / "wide")
    (wide / "config.json").write_text(json.dumps({**cfg, "head_width": 64}))
    with pytest.raises(CheckpointError, match="do not match"):
        SpikeGen.from_pretrained(wide)

    trunc = model.save_pretrained(tmp_path / "trunc")
    w = trunc / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cannot read weights"):
        SpikeGen.from_pretrained(trunc)

    novae = model.save_pretrained(tmp_path / "novae", save_vae=False)
    with pytest.raises(CheckpointError, match="vae"):
        SpikeGen.from_pretrained(novae)
    assert SpikeGen.from_pretrained(novae, vae=model.vae).config == model.config
    # config.vae may name a VAE folder relative to the checkpoint (never to the working dir)
    model.vae.save_pretrained(novae / "rgb_vae", safe_serialization=True)
    (novae / "config.json").write_text(json.dumps({**cfg, "vae": "rgb_vae"}))
    assert SpikeGen.from_pretrained(novae).config.vae == "rgb_vae"


def test_config_temperature_default_and_uncertainty_needs_noise():
    import torch

    from spikegen.models import SpikeGen, SpikeGenConfig
    from spikegen.models.vae import build_vae

    torch.manual_seed(0)
    m = SpikeGen(SpikeGenConfig.preset("tiny", sample_temperature=0.0, sample_steps=3), vae=build_vae("tiny-f4-d16"))
    rgb = torch.rand(1, 3, 32, 32)
    a = m.sample(rgb=rgb, generator=torch.Generator().manual_seed(1))
    b = m.sample(rgb=rgb, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)  # temperature 0 from the config: deterministic whatever the seed
    c = m.sample(rgb=rgb, generator=torch.Generator().manual_seed(2), temperature=1.0)
    assert not torch.equal(a, c)
    out = m.sample(rgb=rgb, num_samples=3, generator=torch.Generator().manual_seed(3))
    assert float(out.std.max()) > 0  # several samples fall back to temperature 1


def test_saved_weights_are_readable_by_others(model, tmp_path):
    # safetensors creates 0600 files; shipped and shared weights must follow the umask
    import os
    import stat

    mask = os.umask(0o022)
    try:
        model.save_pretrained(tmp_path / "w")
    finally:
        os.umask(mask)
    for f in (tmp_path / "w").rglob("*.safetensors"):
        assert f.stat().st_mode & stat.S_IROTH, f


def test_tfp_window_is_a_non_negative_frame_count():
    from spikegen.models import SpikeGenConfig

    assert SpikeGenConfig.preset("tiny").tfp_window == 0  # 0: the caller's window
    SpikeGenConfig.preset("tiny", tfp_window=21).validate()
    for bad in (-1, 2.5):
        with pytest.raises(ValueError, match="tfp_window"):
            SpikeGenConfig.preset("tiny", tfp_window=bad).validate()
