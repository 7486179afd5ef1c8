"""Tests of spikegen.metrics.ssim against scikit-image and the MATLAB-style protocol."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity as sk_ssim

from spikegen.errors import ShapeError
from spikegen.metrics import SSIM, ssim
from spikegen.metrics._common import RGB2GRAY

SK = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


@pytest.fixture(scope="module")
def calib(shared_data: Path) -> Path:
    path = shared_data.parent / "assets" / "metrics" / "calibration"
    if not path.is_dir():
        pytest.fail(f"calibration images not found at {path}")
    return path


def _pair(calib: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    return iio.imread(calib / "ref_dir" / f"{name}.bmp"), iio.imread(calib / "dist_dir" / f"{name}.bmp")


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(2, 0, 1).float() / 255.0


def test_identical_is_one() -> None:
    x = torch.rand(2, 3, 20, 24)
    assert torch.allclose(ssim(x, x, reduction="none"), torch.ones(2))
    assert float(ssim(x, x, protocol="matlab")) == pytest.approx(1.0)


def test_matches_skimage_on_calibration_rgb(calib: Path) -> None:
    for name in ("I04", "I08"):
        ref, dist = _pair(calib, name)
        expected = sk_ssim(ref.astype(np.float64) / 255, dist.astype(np.float64) / 255, channel_axis=2,
                           data_range=1.0, **SK)  # fmt: skip
        got = ssim(_chw(dist)[None], _chw(ref)[None])  # float32 torch
        assert got.dtype == torch.float32
        assert got.item() == pytest.approx(expected, abs=1e-4)
        assert ssim(dist, ref) == pytest.approx(expected, abs=1e-9)  # numpy HWC uint8, float64


def test_matches_skimage_gray_and_batch() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((2, 1, 30, 41))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    per = ssim(torch.from_numpy(a), torch.from_numpy(b), reduction="none")
    assert per.shape == (2,) and per.dtype == torch.float64
    for i in range(2):
        assert per[i].item() == pytest.approx(sk_ssim(a[i, 0], b[i, 0], data_range=1.0, **SK), abs=1e-10)
    assert ssim(torch.from_numpy(a), torch.from_numpy(b)).item() == pytest.approx(per.mean().item())


def test_data_range_scales() -> None:
    x, y = torch.rand(1, 3, 16, 16, dtype=torch.float64), torch.rand(1, 3, 16, 16, dtype=torch.float64)
    assert ssim(x * 255, y * 255, data_range=255).item() == pytest.approx(ssim(x, y).item(), abs=1e-10)


def test_matlab_protocol_is_8bit_gray(calib: Path) -> None:
    ref, dist = _pair(calib, "I06")

    def gray(a: np.ndarray) -> np.ndarray:  # MATLAB rgb2gray on uint8
        return np.floor(a.astype(np.float64) @ RGB2GRAY + 0.5)

    expected = sk_ssim(gray(dist), gray(ref), data_range=255.0, **SK)
    assert ssim(dist, ref, protocol="matlab") == pytest.approx(expected, abs=1e-10)
    got = ssim(_chw(dist), _chw(ref), protocol="matlab")
    assert isinstance(got, torch.Tensor) and got.item() == pytest.approx(expected, abs=1e-10)
    # it differs from the per-channel float protocol
    assert abs(ssim(dist, ref) - expected) > 1e-3
    # float input is quantised to 8 bits first: tiny perturbations below 1/510 do not change it
    assert ssim(_chw(dist) + 1e-4, _chw(ref), protocol="matlab").item() == pytest.approx(expected, abs=1e-10)


def test_matlab_downsample(calib: Path) -> None:
    ref, dist = _pair(calib, "I04")
    a = np.floor(dist.astype(np.float64) @ RGB2GRAY + 0.5).astype(np.uint8)
    b = np.floor(ref.astype(np.float64) @ RGB2GRAY + 0.5).astype(np.uint8)
    # 384x512: f = round(384 / 256) = 2: 2x2 mean over [i, i+1] (MATLAB centre for even kernels),
    # symmetric border at the bottom/right, then every 2nd pixel
    def down(x: np.ndarray) -> np.ndarray:
        p = np.pad(x.astype(np.float64), ((0, 1), (0, 1)), mode="symmetric")
        box = (p[:-1, :-1] + p[1:, :-1] + p[:-1, 1:] + p[1:, 1:]) / 4
        return box[::2, ::2]

    expected = sk_ssim(down(a), down(b), data_range=255.0, **SK)
    assert ssim(a, b, protocol="matlab", downsample=True) == pytest.approx(expected, abs=1e-10)
    assert ssim(a, b, protocol="matlab") != pytest.approx(expected, abs=1e-3)
    small = a[:300, :300]  # round(300 / 256) = 1: no downsampling
    assert ssim(small, b[:300, :300], protocol="matlab", downsample=True) == pytest.approx(
        ssim(small, b[:300, :300], protocol="matlab"), abs=1e-12
    )


def test_gradient_flows() -> None:
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    y = torch.rand(1, 3, 16, 16)
    loss = 1 - SSIM()(x, y)
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "a,b,kw",
    [
        (torch.rand(1, 3, 10, 30), torch.rand(1, 3, 10, 30), {}),
        (torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17), {}),
        (torch.rand(1, 2, 16, 16), torch.rand(1, 2, 16, 16), {}),
        (torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), {"protocol": "skimage"}),
        (torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), {"downsample": True}),
        (torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), {"data_range": -1}),
        (torch.rand(1, 3, 16, 16) * 255, torch.rand(1, 3, 16, 16), {"protocol": "matlab"}),
        (torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17), {"protocol": "matlab"}),
    ],
)
def test_bad_inputs_raise_shape_error(a, b, kw) -> None:
    with pytest.raises(ShapeError):
        ssim(a, b, **kw)


@pytest.mark.cuda
def test_follows_cuda_device() -> None:
    x, y = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    got = ssim(x.cuda(), y.cuda())
    assert got.device.type == "cuda"
    assert got.item() == pytest.approx(ssim(x, y).item(), abs=1e-5)
