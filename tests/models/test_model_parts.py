"""Tests for the modules SpikeGen is assembled from: config, inputs, masking, generation,
persistence, and the names ``spikegen.models.spikegen`` keeps exporting."""

from __future__ import annotations

import math

import pytest
import torch

import spikegen.models.config as config_mod
import spikegen.models.generation as generation
import spikegen.models.masking as masking
import spikegen.models.persistence as persistence
import spikegen.models.spikegen as sg
from spikegen.errors import ShapeError
from spikegen.models import SpikeGen, SpikeGenConfig
from spikegen.models.inputs import as_images, check_gamma, check_inputs, patchify, tfp_frame, unpatchify


def test_spikegen_module_keeps_exporting_the_moved_names():
    assert sg.SpikeGenConfig is config_mod.SpikeGenConfig
    assert sg.TOKEN_STRIDE == config_mod.TOKEN_STRIDE == 8 and sg.MIN_SIZE == config_mod.MIN_SIZE == 16
    assert sg.SampleOutput is generation.SampleOutput
    assert sg.sample_gamma is masking.sample_gamma
    assert (sg.CONFIG_NAME, sg.WEIGHTS_NAME) == (persistence.CONFIG_NAME, persistence.WEIGHTS_NAME)
    assert (sg.CONFIG_NAME, sg.WEIGHTS_NAME) == ("config.json", "model.safetensors")
    assert set(sg.__all__) == {"SpikeGen", "SpikeGenConfig", "SampleOutput", "count_parameters", "sample_gamma",
                               "CONFIG_NAME", "WEIGHTS_NAME"}
    assert all(hasattr(sg, n) for n in sg.__all__)


def test_uniform_uses_the_generator_wherever_it_lives():
    a = masking.uniform((3, 4), torch.Generator().manual_seed(5), "cpu")
    b = torch.rand((3, 4), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert torch.equal(a, b)
    assert masking.uniform((2,), None, "cpu", dtype=torch.float32).dtype == torch.float32


@pytest.mark.parametrize("n,ratio,expect", [(10, 0.35, 4), (10, 1.0, 9), (10, 0.0, 1), (1, 1.0, 1)])
def test_random_mask_counts(n, ratio, expect):
    mask = masking.random_mask(3, n, ratio, generator=torch.Generator().manual_seed(0), device="cpu")
    assert mask.shape == (3, n) and mask.dtype == torch.float32
    assert mask.sum(dim=1).tolist() == [float(expect)] * 3


def test_random_mask_follows_the_random_order():
    mask = masking.random_mask(2, 8, 0.5, generator=torch.Generator().manual_seed(1), device="cpu")
    order = masking.random_order(2, 8, torch.Generator().manual_seed(1), "cpu")
    for row in range(2):
        assert set(torch.nonzero(mask[row]).flatten().tolist()) == set(order[row, :4].tolist())


def test_cosine_mask_len_schedule():
    n, k = 64, 5
    remaining, lens = n, []
    for step in range(k - 1):
        remaining = masking.cosine_mask_len(n, step, k, remaining)
        lens.append(remaining)
    assert lens == sorted(lens, reverse=True) and all(1 <= m < n for m in lens)
    assert lens[0] == math.floor(n * math.cos(math.pi / 2 / k))
    assert masking.cosine_mask_len(n, 0, 2, remaining=3) == 2  # never more than remaining - 1


def test_mask_ratio_distribution_is_mars():
    r = masking.sample_gamma(4000, mean=masking.MASK_RATIO_MEAN, std=masking.MASK_RATIO_STD, low=0.7,
                             generator=torch.Generator().manual_seed(0))
    assert float(r.min()) >= 0.7 and float(r.max()) <= 1.0
    assert 0.85 < float(r.mean()) < 0.9  # N(1, 0.25^2) on [0.7, 1]: mean ~0.868


def test_patchify_functions_match_the_model_methods():
    m = SpikeGen.from_config("tiny")
    z = torch.randn(2, 16, 6, 8)
    assert torch.equal(patchify(z, 2), m.patchify(z))
    assert torch.equal(unpatchify(patchify(z, 2), (3, 4), 2, 16), z)
    with pytest.raises(ShapeError, match="patch_size"):
        patchify(torch.randn(1, 16, 5, 8), 2)


def test_input_checks():
    with pytest.raises(ShapeError, match="neither"):
        check_inputs(None, None)
    with pytest.raises(ShapeError, match="at least 16x16"):
        check_inputs(torch.rand(1, 3, 8, 32), None)
    with pytest.raises(ShapeError, match="do not match"):
        check_inputs(torch.rand(1, 3, 32, 32), torch.zeros(1, 8, 32, 48))
    with pytest.raises(ShapeError, match="target"):
        check_inputs(torch.rand(1, 3, 32, 32), None, torch.rand(2, 3, 32, 32))
    with pytest.raises(ShapeError, match="float"):
        as_images(torch.zeros(1, 3, 16, 16, dtype=torch.uint8), "rgb")
    spikes = (torch.rand(1, 8, 32, 32) < 0.5).to(torch.uint8)
    rgb, spk, _, b, h, w = check_inputs(None, spikes, tfp_scale=2.0)
    assert torch.equal(rgb, tfp_frame(spikes, 2.0)) and spk.shape == (1, 1, 8, 32, 32) and (b, h, w) == (1, 32, 32)
    assert check_inputs(None, spikes)[0] is None
    with pytest.raises(ShapeError, match=r"\[0, 1\]"):
        check_gamma(1.5, 2, "cpu")
    with pytest.raises(ShapeError, match="per-sample"):
        check_gamma(torch.zeros(3), 2, "cpu")


def test_encode_inputs_and_decode_tokens_shapes():
    m = SpikeGen.from_config("tiny").eval()
    rgb = torch.rand(2, 3, 32, 40)
    with torch.no_grad():
        enc, grid, size = m.encode_inputs(rgb=rgb)
        z = m.decode_tokens(enc, grid)
        zm = m.decode_tokens(enc, grid, torch.ones(2, 20, dtype=torch.bool))
    assert enc.shape == (2, 20, m.config.encoder_width) and grid == (4, 5) and size == (32, 40)
    assert z.shape == (2, 20, m.config.decoder_width) and torch.equal(z, zm)


def test_auto_threads():
    cpu = torch.device("cpu")
    assert generation.auto_threads(torch.zeros(1, 3, 256, 256), None, 1, head_width=128, device=cpu) == 1
    assert generation.auto_threads(torch.zeros(1, 3, 256, 256), None, 1, head_width=1024, device=cpu) is None
    assert generation.auto_threads(None, torch.zeros(8, 64, 64), 1, head_width=128, device=cpu) == 1
    assert generation.auto_threads(None, None, 1, head_width=128, device=cpu) is None
    assert generation.auto_threads(torch.zeros(1, 3, 64, 64), None, 1, head_width=128, device=torch.device("meta")) is None


def test_persistence_functions_are_what_the_methods_call(tmp_path):
    torch.manual_seed(0)
    model = SpikeGen.from_config(SpikeGenConfig.preset("tiny"))
    out = persistence.save_pretrained(model, tmp_path / "ckpt")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "vae"]
    loaded = persistence.load_pretrained(SpikeGen, out)
    assert isinstance(loaded, SpikeGen) and not loaded.training
    own = persistence.own_state_dict(model)
    assert own and not any(k.startswith("vae.") for k in own)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in own.items())
