"""Tests of spikegen.degrade: gray conversion, colour fade, motion blur and video blur."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spikegen.degrade import (
    MotionBlur,
    color_fade,
    gaussian_blur,
    motion_blur,
    motion_kernel,
    motion_kernel_bank,
    rgb_to_gray,
    video_blur,
)
from spikegen.errors import ShapeError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- gray / fade
def test_rgb_to_gray_weights_and_shapes():
    img = torch.zeros(2, 3, 4, 5)
    img[:, 0] = 1.0
    assert torch.allclose(rgb_to_gray(img), torch.full((2, 1, 4, 5), 0.2989))
    img = torch.rand(3, 4, 5, generator=gen())
    expected = 0.2989 * img[0] + 0.5870 * img[1] + 0.1140 * img[2]
    assert torch.allclose(rgb_to_gray(img)[0], expected)
    one = torch.rand(1, 4, 5)
    assert rgb_to_gray(one) is one
    assert rgb_to_gray(img.double()).dtype == torch.float64
    with pytest.raises(ShapeError, match="1 or 3 channels"):
        rgb_to_gray(torch.rand(2, 4, 5, 5))
    with pytest.raises(ShapeError, match=r"\[C, H, W\] or \[B, C, H, W\]"):
        rgb_to_gray(torch.rand(4, 5))
    with pytest.raises(ShapeError, match="floating-point"):
        rgb_to_gray(torch.zeros(3, 4, 5, dtype=torch.uint8))


def test_color_fade():
    x = torch.rand(3, 3, 6, 7, generator=gen())
    gray = rgb_to_gray(x)
    assert torch.allclose(color_fade(x, 0.0), x)
    assert torch.allclose(color_fade(x, 1.0), gray.expand_as(x))
    g = torch.tensor([0.0, 0.5, 1.0])
    out = color_fade(x, g)
    assert torch.allclose(out[1], 0.5 * x[1] + 0.5 * gray[1].expand(3, -1, -1))
    assert torch.allclose(out[2], gray[2].expand(3, -1, -1))
    assert color_fade(x[0], 0.3).shape == (3, 6, 7)
    with pytest.raises(ShapeError, match="per-sample"):
        color_fade(x, torch.rand(2))
    with pytest.raises(ShapeError, match=r"\[0, 1\]"):
        color_fade(x, 1.5)


# ----------------------------------------------------------------------------- motion blur
def test_kernel_bank_sums_to_one_and_follows_the_angle():
    bank = motion_kernel_bank(8, 40, generator=gen())
    assert bank.shape == (8, 40, 40)
    assert torch.allclose(bank.sum(dim=(1, 2)), torch.ones(8), atol=1e-6)
    assert bool((bank >= 0).all())
    # angle 0, no spread: a horizontal line through the centre row, symmetric about pixel 20
    flat = motion_kernel_bank(3, 40, angle=0.0, spread=0.0, generator=gen())
    rows = (flat[0] > 0).nonzero()[:, 0].unique()
    assert rows.tolist() == [20]
    assert torch.allclose(flat[0, 20, 1:40], flat[0, 20, 1:40].flip(0), atol=1e-7)
    # 90 degrees: a vertical line
    vert = motion_kernel_bank(1, 21, angle=90.0, spread=0.0, generator=gen())
    assert (vert[0] > 0).nonzero()[:, 1].unique().tolist() == [10]
    # weights fall off from the centre
    assert flat[0, 20, 20] > flat[0, 20, 30] > flat[0, 20, 39]
    # the spread bounds the per-kernel angles: second moments give each kernel's direction
    bank = motion_kernel_bank(16, 41, angle=45.0, spread=30.0, generator=gen(1)).double()
    yy, xx = torch.meshgrid(torch.arange(41.0), torch.arange(41.0), indexing="ij")
    dx, dy = (xx - 20).double(), -(yy - 20).double()
    for k in bank:
        cxx, cyy, cxy = (k * dx * dx).sum(), (k * dy * dy).sum(), (k * dx * dy).sum()
        ang = 0.5 * math.degrees(math.atan2(2 * cxy, cxx - cyy))
        assert 15 - 1 <= ang <= 75 + 1
    one = motion_kernel_bank(2, 1)
    assert torch.equal(one, torch.ones(2, 1, 1))


def test_motion_kernel_average_is_normalised_and_point_symmetric():
    k = motion_kernel(8, 41, generator=gen(3))
    assert k.shape == (41, 41)
    assert abs(float(k.sum()) - 1) < 1e-6
    assert torch.allclose(k, k.flip(0, 1), atol=1e-7)
    assert torch.equal(motion_kernel(generator=gen(4)), motion_kernel(generator=gen(4)))


def test_motion_blur_preserves_constants_and_applies_the_kernel():
    const = torch.full((2, 3, 50, 60), 0.37)
    out = motion_blur(const, generator=gen())
    assert torch.allclose(out, const, atol=1e-6)
    # a point source becomes the (centred) kernel: no shift
    img = torch.zeros(1, 1, 81, 81)
    img[0, 0, 40, 40] = 1.0
    out, k = motion_blur(img, kernels=8, size=21, generator=gen(1), return_kernel=True)
    assert k.shape == (1, 21, 21)
    assert torch.allclose(out[0, 0, 30:51, 30:51], k[0], atol=1e-7)
    # equals an FFT convolution away from the borders, for an asymmetric explicit kernel
    x = torch.rand(1, 2, 64, 64, generator=gen(2))
    kern = torch.rand(7, 7, generator=gen(3))
    kern /= kern.sum()
    blurred = motion_blur(x, kernels=kern)
    from scipy.signal import convolve2d

    ref = convolve2d(x[0, 1].double().numpy(), kern.double().numpy(), mode="same")
    np.testing.assert_allclose(blurred[0, 1, 5:-5, 5:-5].numpy(), ref[5:-5, 5:-5], atol=1e-5)
    # mean is kept on a real image (reflect borders), each sample gets its own kernel
    x = torch.rand(3, 3, 64, 80, generator=gen(4))
    out, k = motion_blur(x, generator=gen(5), return_kernel=True)
    assert out.shape == x.shape and k.shape == (3, 40, 40)
    assert not torch.equal(k[0], k[1])
    assert torch.allclose(out.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=0.02)
    assert float(out.std()) < float(x.std())  # blur removes detail
    assert motion_blur(x[0], generator=gen(5)).shape == (3, 64, 80)
    # smaller than the kernel: replicate padding, still well defined
    tiny = motion_blur(torch.rand(1, 3, 12, 12, generator=gen()), generator=gen())
    assert torch.isfinite(tiny).all()


def test_motion_blur_module_and_errors():
    m = MotionBlur(kernels=4, size=9)
    x = torch.rand(2, 3, 20, 20, generator=gen())
    assert torch.equal(m(x, generator=gen(1)), motion_blur(x, kernels=4, size=9, generator=gen(1)))
    assert "size=9" in repr(m)
    with pytest.raises(ShapeError, match="kernels must be"):
        motion_blur(x, kernels=torch.ones(3, 5, 5))
    with pytest.raises(ShapeError, match="size"):
        motion_kernel_bank(8, 0)
    with pytest.raises(ShapeError, match=r"\[C, H, W\] or \[B, C, H, W\]"):
        motion_blur(torch.rand(20, 20))


def test_gaussian_blur():
    x = torch.zeros(1, 1, 21, 21)
    x[0, 0, 10, 10] = 1
    y = gaussian_blur(x, 1.0)
    assert abs(float(y.sum()) - 1) < 1e-6
    assert y[0, 0].argmax().item() == 10 * 21 + 10
    assert (y[0, 0] > 0).sum() == 49  # kernel 2 * round(3 sigma) + 1 = 7
    assert gaussian_blur(x, 0.0) is x


# ----------------------------------------------------------------------------- video blur
def test_video_blur():
    frames = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1).expand(10, 3, 2, 2)
    out = video_blur(frames, 4)
    assert out.shape == (7, 3, 2, 2)
    assert out[:, 0, 0, 0].tolist() == [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5]
    out = video_blur(frames, 5, stride=5)
    assert out[:, 0, 0, 0].tolist() == [2.0, 7.0]
    batched = video_blur(frames.unsqueeze(0).expand(2, -1, -1, -1, -1), 3)
    assert batched.shape == (2, 8, 3, 2, 2)
    assert torch.equal(video_blur(frames, 1), frames)
    with pytest.raises(ShapeError, match="n must be"):
        video_blur(frames, 11)
    with pytest.raises(ShapeError, match="frames must be"):
        video_blur(torch.rand(3, 4, 4), 2)


def test_docstring_examples_run():
    import doctest

    import spikegen.degrade

    result = doctest.testmod(spikegen.degrade, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 5


def test_take_chroma_is_luma_of_one_chroma_of_other():
    from spikegen.degrade import rgb_to_gray, take_chroma

    g = torch.Generator().manual_seed(0)
    a = 0.3 + 0.4 * torch.rand(2, 3, 16, 16, generator=g)
    b = 0.3 + 0.4 * torch.rand(2, 3, 16, 16, generator=g)
    out = take_chroma(a, b)
    assert torch.allclose(rgb_to_gray(out), rgb_to_gray(a), atol=1e-6)

    def chroma(x):  # BT.601 Cb, Cr (unscaled)
        y = rgb_to_gray(x)
        return torch.cat([x[:, 2:3] - y, x[:, 0:1] - y], 1)

    assert torch.allclose(chroma(out), chroma(b), atol=1e-4)
    assert take_chroma(a[:, :1], b).shape == b.shape  # a gray luminance source
    assert torch.equal(take_chroma(b, b), b.clamp(0, 1)) or torch.allclose(take_chroma(b, b), b, atol=1e-6)
    with pytest.raises(Exception, match="differ in size"):
        take_chroma(a[..., :8], b)
