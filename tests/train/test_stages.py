"""Training modules: the "TFP & Spike" samples of fine-tuning."""

from __future__ import annotations

import pytest
import torch

from spikegen.errors import SpikeGenError
from spikegen.models import SpikeGen, SpikeGenConfig
from spikegen.models.vae import build_vae
from spikegen.train.stages import SpikeGenTrainModule


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SpikeGen(SpikeGenConfig.preset("tiny", tfp_scale=2.0), vae=build_vae("tiny-f4-d16"))


def test_tfp_samples_replace_rgb_and_target_of_the_first_quarter(model):
    m = SpikeGenTrainModule(model, tfp_fraction=0.25)
    g = torch.Generator().manual_seed(0)
    rgb, clean = torch.rand(4, 3, 16, 16, generator=g), torch.rand(4, 3, 16, 16, generator=g)
    spikes = (torch.rand(4, 8, 16, 16, generator=g) < 0.3).to(torch.uint8)
    new_rgb, new_clean = m._tfp_samples(rgb, spikes, clean)
    tfp = (spikes[0].float().mean(0) * 2.0).clamp(0, 1)
    gray = 0.2989 * clean[0, 0] + 0.5870 * clean[0, 1] + 0.1140 * clean[0, 2]
    for c in range(3):
        assert torch.allclose(new_rgb[0, c], tfp) and torch.allclose(new_clean[0, c], gray, atol=1e-6)
    assert torch.equal(new_rgb[1:], rgb[1:]) and torch.equal(new_clean[1:], clean[1:])
    # what sample(tfp_rgb=True) feeds the model is the same pseudo-frame
    ref, *_ = model._inputs(None, spikes[:1], True)
    assert torch.allclose(ref[0], new_rgb[0])


def test_tfp_fraction_runs_a_finetune_step_and_is_checked(model):
    m = SpikeGenTrainModule(model, tfp_fraction=0.5, pixel_weight=0.5)
    g = torch.Generator().manual_seed(1)
    batch = {"blurry": torch.rand(2, 3, 32, 32, generator=g), "clean": torch.rand(2, 3, 32, 32, generator=g),
             "spikes": (torch.rand(2, 8, 32, 32, generator=g) < 0.3).to(torch.uint8)}
    out = m(batch)
    assert torch.isfinite(out["loss"]) and "pixel" in out
    with pytest.raises(SpikeGenError, match="tfp_fraction"):
        SpikeGenTrainModule(model, tfp_fraction=1.5)


def test_export_records_the_spike_frames_it_was_trained_on(model, tmp_path):
    from spikegen.train.stages import SpikeGenStage

    m = SpikeGenTrainModule(model)
    g = torch.Generator().manual_seed(2)
    m({"blurry": torch.rand(1, 3, 16, 16, generator=g), "clean": torch.rand(1, 3, 16, 16, generator=g),
       "spikes": (torch.rand(1, 12, 16, 16, generator=g) < 0.3).to(torch.uint8)})
    SpikeGenStage({"stage": "pretrain"}).export(m, tmp_path / "w")
    assert SpikeGen.from_pretrained(tmp_path / "w").config.spike_frames == 12
    with pytest.raises(ValueError, match="spike_frames"):
        SpikeGenConfig.preset("tiny", spike_frames=0).validate()


def test_gamma_ends_trains_that_share_at_exactly_0_and_1(model):
    torch.manual_seed(3)
    m = SpikeGenTrainModule(model, gamma_ends=0.5)
    g = torch.cat([m._gamma(torch.zeros(1000, 3, 2, 2))])
    ends0, ends1 = (g == 0).float().mean().item(), (g == 1).float().mean().item()
    assert 0.2 < ends0 < 0.3 and 0.2 < ends1 < 0.3  # a quarter each
    assert SpikeGenTrainModule(model)._gamma(torch.zeros(4, 3, 2, 2)) is None
    batch = {"blurry": torch.rand(2, 3, 16, 16), "clean": torch.rand(2, 3, 16, 16),
             "spikes": (torch.rand(2, 8, 16, 16) < 0.3).to(torch.uint8)}
    out = SpikeGenTrainModule(model, gamma_ends=1.0, pixel_weight=1.0)(batch)
    assert torch.isfinite(out["loss"])
    with pytest.raises(SpikeGenError, match="gamma_ends"):
        SpikeGenTrainModule(model, gamma_ends=2.0)


def test_init_takes_behaviour_overrides_and_refuses_shape_ones(model, tmp_path):
    from spikegen.train import load_config
    from spikegen.train.stages import build_stage

    model.save_pretrained(tmp_path / "w")
    base = ["stage=finetune", f"model.init={tmp_path / 'w'}"]
    m = build_stage(load_config(None, base + ["model.overrides={residual: true, tfp_window: 21}"])).build_model().model
    assert m.config.residual and m.config.tfp_window == 21 and m.config.tfp_scale == 2.0  # the rest: the init's
    with pytest.raises(SpikeGenError, match="head_width"):
        build_stage(load_config(None, base + ["model.overrides={head_width: 64}"])).build_model()
    with pytest.raises(SpikeGenError, match="tfp_window"):
        build_stage(load_config(None, base + ["model.overrides={tfp_window: -3}"])).build_model()
