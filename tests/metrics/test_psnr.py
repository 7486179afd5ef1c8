"""Tests of spikegen.metrics.psnr."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spikegen.errors import ShapeError
from spikegen.metrics import PSNR, psnr


def test_identical_is_inf() -> None:
    x = torch.rand(2, 3, 16, 16)
    assert torch.isinf(psnr(x, x.clone()))
    assert torch.isinf(psnr(x, x.clone(), reduction="none")).all()


def test_constant_offset_is_exact() -> None:
    t = torch.full((1, 3, 8, 8), 0.5, dtype=torch.float64)
    assert psnr(t + 0.1, t).item() == pytest.approx(20.0, abs=1e-9)
    assert psnr(t + 0.01, t).item() == pytest.approx(40.0, abs=1e-9)


def test_gaussian_noise_matches_formula() -> None:
    g = torch.Generator().manual_seed(0)
    t = torch.rand(3, 3, 32, 40, generator=g, dtype=torch.float64)
    p = t + 0.05 * torch.randn(t.shape, generator=g, dtype=torch.float64)
    per = psnr(p, t, reduction="none")
    mse = ((p - t) ** 2).mean(dim=(1, 2, 3))
    assert torch.allclose(per, 10 * torch.log10(1.0 / mse))
    assert per.mean().item() == pytest.approx(20 * math.log10(1 / 0.05), abs=0.3)
    # the mean is the mean of per-image PSNRs, not the PSNR of the mean MSE
    assert psnr(p, t).item() == pytest.approx(per.mean().item())
    assert psnr(p, t).item() != pytest.approx(10 * math.log10(1 / mse.mean().item()), abs=1e-6)


def test_minus_one_one_pitfall_is_6_02_db() -> None:
    x, y = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    right = psnr(x, y)
    assert psnr(2 * x - 1, 2 * y - 1, data_range=2.0).item() == pytest.approx(right.item(), abs=1e-4)
    wrong = psnr(2 * x - 1, 2 * y - 1, data_range=1.0)  # what the official SpikeGen code does
    assert (right - wrong).item() == pytest.approx(10 * math.log10(4), abs=1e-4)


def test_data_range_255() -> None:
    x, y = torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8)
    assert psnr(x * 255, y * 255, data_range=255).item() == pytest.approx(psnr(x, y).item(), abs=1e-4)


def test_numpy_and_uint8_inputs() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    got = psnr(a, b)
    assert isinstance(got, float)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    assert got == pytest.approx(10 * np.log10(255.0**2 / mse), abs=1e-9)
    t = psnr(torch.from_numpy(a).permute(2, 0, 1), torch.from_numpy(b).permute(2, 0, 1))
    assert t.item() == pytest.approx(got, abs=1e-4)
    batch = psnr(np.stack([a, b]), np.stack([b, b]), reduction="none")
    assert isinstance(batch, np.ndarray) and batch.shape == (2,)
    assert batch[0] == pytest.approx(got) and np.isinf(batch[1])


def test_module_and_unbatched_shapes() -> None:
    x, y = torch.rand(3, 8, 8), torch.rand(3, 8, 8)
    assert PSNR()(x, y).shape == ()
    assert psnr(x, y, reduction="none").shape == ()
    assert psnr(x[None], y[None], reduction="none").shape == (1,)


@pytest.mark.parametrize(
    "a,b,kw",
    [
        (torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9), {}),
        (torch.rand(1, 4, 8, 8), torch.rand(1, 4, 8, 8), {}),
        (torch.rand(2, 1, 1, 3, 8, 8), torch.rand(2, 1, 1, 3, 8, 8), {}),
        (torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), {"data_range": 0}),
        (torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), {"reduction": "sum"}),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.zeros(1, 3, 8, 8, dtype=torch.uint8), {"data_range": 255}),
        (torch.zeros(1, 3, 8, 8, dtype=torch.int64), torch.zeros(1, 3, 8, 8, dtype=torch.int64), {}),
        ([[0.0]], [[0.0]], {}),
    ],
)
def test_bad_inputs_raise_shape_error(a, b, kw) -> None:
    with pytest.raises(ShapeError):
        psnr(a, b, **kw)
