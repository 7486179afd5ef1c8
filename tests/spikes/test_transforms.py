"""Tests of spikegen.spikes.transforms: every op keeps shape rules, dtype and binarity, is
reproducible by seed, and pairs images with the same geometry."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from spikegen.errors import ShapeError
from spikegen.spikes import transforms as T

DTYPES = [torch.uint8, torch.bool, torch.float32, torch.int64]


def spikes(shape=(12, 10, 14), dtype=torch.uint8, seed=0, rate=0.3):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < rate).to(dtype)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def is_binary(x: torch.Tensor) -> bool:
    return x.dtype == torch.bool or bool(((x == 0) | (x == 1)).all())


# Every module, constructed for a [B=3, T=12, H=10, W=14] input, with the expected output shape.
CASES = [
    (lambda: T.CenterCrop((6, 8)), (3, 12, 6, 8)),
    (lambda: T.RandomCrop(5), (3, 12, 5, 5)),
    (lambda: T.HFlip(), (3, 12, 10, 14)),
    (lambda: T.VFlip(), (3, 12, 10, 14)),
    (lambda: T.RandomHFlip(), (3, 12, 10, 14)),
    (lambda: T.RandomVFlip(), (3, 12, 10, 14)),
    (lambda: T.Rot90(1), (3, 12, 14, 10)),
    (lambda: T.RandomRot90(same_on_batch=True, ks=(1,)), (3, 12, 14, 10)),
    (lambda: T.ResizeNearest((20, 7)), (3, 12, 20, 7)),
    (lambda: T.CenterTemporalCrop(5), (3, 5, 10, 14)),
    (lambda: T.RandomTemporalCrop(5), (3, 5, 10, 14)),
    (lambda: T.TemporalReverse(), (3, 12, 10, 14)),
    (lambda: T.TemporalSubsample(5), (3, 3, 10, 14)),
    (lambda: T.TemporalSubsample(5, mode="any"), (3, 2, 10, 14)),
    (lambda: T.SpikeDrop(0.5), (3, 12, 10, 14)),
    (lambda: T.SpikeAdd(0.2), (3, 12, 10, 14)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("make,shape", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_every_op_keeps_dtype_binary_and_shape(make, shape, dtype):
    x = spikes((3, 12, 10, 14), dtype)
    y = make()(x, generator=gen(1))
    assert y.dtype == dtype
    assert tuple(y.shape) == shape
    assert is_binary(y)
    # unbatched input gives the unbatched shape
    y1 = make()(x[0], generator=gen(1))
    assert tuple(y1.shape) == shape[1:] and y1.dtype == dtype


@pytest.mark.parametrize("make,shape", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_same_seed_same_output(make, shape):
    x = spikes((3, 12, 10, 14))
    op = make()
    a, b = op(x, generator=gen(7)), op(x, generator=gen(7))
    assert torch.equal(a, b)


def test_different_seeds_differ_and_per_sample_draws():
    x = spikes((8, 4, 20, 20))
    a = T.random_crop(x, 6, generator=gen(0))
    b = T.random_crop(x, 6, generator=gen(1))
    assert not torch.equal(a, b)
    # per-sample crops: the 8 samples are cropped at several positions; with same_on_batch,
    # every sample is cropped at the same place (check against the functional crop).
    op = T.RandomCrop(6)
    tops, lefts = op._params(x, gen(3))
    assert len(set(zip(tops, lefts))) > 1
    assert torch.equal(op(x, generator=gen(3)), T.crop(x, tops, lefts, 6))
    same = T.RandomCrop(6, same_on_batch=True)
    t2, l2 = same._params(x, gen(3))
    assert len(set(t2)) == 1 and len(set(l2)) == 1


def test_generator_stored_in_module_and_override():
    x = spikes()
    op = T.SpikeDrop(0.5, generator=gen(5))
    a = op(x)
    b = T.SpikeDrop(0.5)(x, generator=gen(5))
    assert torch.equal(a, b)
    c = op(x)  # the stored generator advanced: a new draw
    assert not torch.equal(a, c)
    assert pickle.loads(pickle.dumps(T.SpikeDrop(0.5, generator=gen(2)))).p == 0.5


def test_spatial_ops_match_numpy():
    x = spikes((2, 3, 5, 7))
    xn = x.numpy()
    assert np.array_equal(T.hflip(x).numpy(), xn[..., ::-1])
    assert np.array_equal(T.vflip(x).numpy(), xn[..., ::-1, :])
    for k in range(4):
        assert np.array_equal(T.rot90(x, k).numpy(), np.rot90(xn, k, axes=(-2, -1)))
    assert np.array_equal(T.center_crop(x, (3, 3)).numpy(), xn[..., 1:4, 2:5])
    assert np.array_equal(T.crop(x, [0, 2], [1, 4], (3, 3))[1].numpy(), xn[1, :, 2:5, 4:7])
    assert np.array_equal(T.temporal_reverse(x).numpy(), xn[:, ::-1])
    assert np.array_equal(T.temporal_crop(x, 1, 2).numpy(), xn[:, 1:3])
    assert np.array_equal(T.temporal_subsample(x, 2, 1).numpy(), xn[:, 1::2])
    assert np.array_equal(T.temporal_subsample(x, 3, mode="any").numpy(), xn[:, :3].max(axis=1, keepdims=True))


def test_random_flip_probability_and_per_sample():
    x = spikes((64, 2, 4, 4))
    y = T.random_hflip(x, 0.5, generator=gen(0))
    flipped = [bool(torch.equal(y[i], x[i].flip(-1))) for i in range(64)]
    kept = [bool(torch.equal(y[i], x[i])) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 16 < sum(flipped) < 48  # roughly half, drawn per sample
    assert torch.equal(T.random_vflip(x, 1.0), x.flip(-2))
    assert torch.equal(T.random_vflip(x, 0.0), x)


def test_resize_nearest_keeps_rate_and_upsamples_exactly():
    x = spikes((50, 16, 16), rate=0.25)
    up = T.resize_nearest(x, 32)
    assert torch.equal(up, x.repeat_interleave(2, -1).repeat_interleave(2, -2))
    down = T.resize_nearest(x, 8)
    assert abs(down.float().mean() - x.float().mean()) < 0.03


def test_noise_rates():
    ones = torch.ones(200, 20, 20, dtype=torch.uint8)
    zeros = torch.zeros(200, 20, 20, dtype=torch.float32)
    assert abs(float(T.spike_drop(ones, 0.25, generator=gen(0)).float().mean()) - 0.75) < 0.01
    assert abs(float(T.spike_add(zeros, 0.1, generator=gen(0)).mean()) - 0.1) < 0.01
    # drop only removes spikes, add only adds
    x = spikes((50, 10, 10))
    d, a = T.spike_drop(x, 0.5, generator=gen(1)), T.spike_add(x, 0.5, generator=gen(1))
    assert bool((d <= x).all()) and bool((a >= x).all())
    assert torch.equal(T.spike_drop(x, 0.0), x) and torch.equal(T.spike_add(x, 0.0), x)


def test_compose_reproducible_and_image_pairing():
    x = spikes((2, 16, 24, 24))
    # an image that encodes its own coordinates, so the geometry applied to it can be read back
    yy, xx = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    img = torch.stack([yy / 23, xx / 23, torch.zeros_like(yy)])[None].repeat(2, 1, 1, 1)
    # spikes carrying the same coordinates: spike at (y, x) in frame 0 where image has it
    marker = torch.zeros(2, 16, 24, 24, dtype=torch.uint8)
    marker[:, 0, 5, 7] = 1
    aug = T.Compose([T.RandomCrop(16), T.RandomHFlip(), T.RandomRot90(), T.RandomTemporalCrop(8), T.SpikeAdd(0.01)])
    a_s, a_i = aug(x, img, generator=gen(4))
    b_s, b_i = aug(x, img, generator=gen(4))
    assert torch.equal(a_s, b_s) and torch.equal(a_i, b_i)
    assert a_s.shape == (2, 8, 16, 16) and a_i.shape == (2, 3, 16, 16)
    # spatial registration: transform the marker with the same draws, find where it went, and
    # check the image there holds the marker's original coordinates
    spatial = T.Compose([T.RandomCrop(16), T.RandomHFlip(), T.RandomRot90()])
    checked = 0
    for seed in range(6):
        m_s, m_i = spatial(marker, img, generator=gen(seed))
        for b in range(2):
            pos = (m_s[b, 0] == 1).nonzero()
            if len(pos) == 0:
                continue  # cropped away
            y, x_ = pos[0].tolist()
            assert abs(float(m_i[b, 0, y, x_]) * 23 - 5) < 1e-4
            assert abs(float(m_i[b, 1, y, x_]) * 23 - 7) < 1e-4
            checked += 1
    assert checked >= 4
    # resize pairs a bilinear image of the new size
    s2, i2 = T.ResizeNearest(12)(x[0], img[0])
    assert s2.shape == (16, 12, 12) and i2.shape == (3, 12, 12) and i2.dtype == torch.float32


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ShapeError, match=r"\[T, H, W\]"):
        T.hflip(torch.zeros(4, 4))
    with pytest.raises(ShapeError, match="only 0 and 1"):
        T.hflip(torch.full((2, 2, 2), 2, dtype=torch.uint8))
    with pytest.raises(ShapeError, match="torch.Tensor"):
        T.hflip(np.zeros((2, 2, 2)))
    with pytest.raises(ShapeError, match="does not fit"):
        T.random_crop(torch.zeros(2, 4, 4), 5)
    with pytest.raises(ShapeError, match="leaves"):
        T.crop(torch.zeros(2, 4, 4), 3, 0, 2)
    with pytest.raises(ShapeError, match="probability"):
        T.SpikeDrop(1.5)
    with pytest.raises(ShapeError, match="same_on_batch"):
        T.random_rot90(torch.zeros(2, 3, 4, 6))
    with pytest.raises(ShapeError, match="registered"):
        T.HFlip()(torch.zeros(2, 4, 4), torch.zeros(3, 5, 4))
    with pytest.raises(ShapeError, match="does not fit"):
        T.temporal_crop(torch.zeros(3, 2, 2), 0, 4)
    with pytest.raises(ShapeError, match="Compose takes"):
        T.Compose([lambda s: s])


def test_generator_on_other_device_is_used_for_draws():
    # draws are made on the generator's device (CPU here) and moved; output on the input's device
    x = spikes()
    a = T.spike_drop(x, 0.5, generator=gen(0))
    b = T.spike_drop(x, 0.5, generator=gen(0))
    assert torch.equal(a, b) and a.device == x.device


def test_crops_align_and_match_the_dataset_helpers():
    from spikegen.data.common import coin, random_crop_box

    x = spikes((4, 50, 70))
    img = torch.rand(3, 50, 70)
    for seed in range(20):
        # aligned crops land on multiples of align (Bayer phase, 4x image/spike ratios)
        top, left = T.RandomCrop(16, align=4)._params(x[None], gen(seed))
        assert top[0] % 4 == 0 and left[0] % 4 == 0 and top[0] <= 34 and left[0] <= 54
        # the same draws as the datasets' private helpers (a switch keeps the samples)
        g = gen(seed)
        t, l_ = random_crop_box(50, 70, (32, 32), g, align=2)
        f = coin(g)
        ref = x[:, t : t + 32, l_ : l_ + 32]
        ref_i = img[:, t : t + 32, l_ : l_ + 32]
        ref, ref_i = (ref.flip(-1), ref_i.flip(-1)) if f else (ref, ref_i)
        got, got_i = T.Compose([T.RandomCrop(32, align=2), T.RandomHFlip()])(x, img, generator=gen(seed))
        assert torch.equal(got, ref) and torch.equal(got_i, ref_i)
    assert T.CenterCrop(16, align=4)._params(x[None], None) == ([16], [24])
    assert T.center_crop(x, 16, align=4).shape == (4, 16, 16)
