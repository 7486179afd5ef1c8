"""Tests of spikegen.metrics.lpips against the LPIPS-alex v0.1 calibration values."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from spikegen.errors import CheckpointError, ShapeError
from spikegen.metrics import LPIPS, lpips
from spikegen.metrics.lpips import LPIPS_WEIGHTS

REPO = Path(__file__).resolve().parents[2]
# LPIPS-alex v0.1 (reference vs distorted, inputs in [-1, 1]) from the assets README
REFERENCE = {"I03": 0.7237, "I04": 0.2572, "I06": 0.0508, "I08": 0.0521, "I19": 0.4253}


@pytest.fixture(scope="module")
def assets(shared_data: Path) -> Path:
    path = shared_data.parent / "assets" / "metrics"
    if not (path / "calibration").is_dir():
        pytest.fail(f"metric assets not found at {path}")
    return path


def _load(path: Path) -> torch.Tensor:
    return torch.from_numpy(iio.imread(path)).permute(2, 0, 1).float() / 255.0


def test_calibration(assets: Path) -> None:
    names = list(REFERENCE)
    ref = torch.stack([_load(assets / "calibration" / "ref_dir" / f"{n}.bmp") for n in names])
    dist = torch.stack([_load(assets / "calibration" / "dist_dir" / f"{n}.bmp") for n in names])
    got = lpips(ref, dist, reduction="none")
    assert got.shape == (5,)
    for n, v in zip(names, got.tolist()):
        assert v == pytest.approx(REFERENCE[n], abs=1e-3), n
    assert lpips(ref, dist).item() == pytest.approx(got.mean().item(), abs=1e-7)


def test_identical_is_zero_and_symmetric() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 48, 40, generator=g), torch.rand(2, 3, 48, 40, generator=g)
    assert torch.all(lpips(a, a, reduction="none") == 0)
    assert torch.allclose(lpips(a, b, reduction="none"), lpips(b, a, reduction="none"), atol=1e-6)
    assert (lpips(a, b, reduction="none") > 0.05).all()


def test_normalize_flag_and_gray() -> None:
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(1, 3, 40, 40, generator=g), torch.rand(1, 3, 40, 40, generator=g)
    assert lpips(2 * a - 1, 2 * b - 1, normalize=False).item() == pytest.approx(lpips(a, b).item(), abs=1e-6)
    ga, gb = a[:, :1], b[:, :1]
    assert lpips(ga, gb).item() == pytest.approx(lpips(ga.repeat(1, 3, 1, 1), gb.repeat(1, 3, 1, 1)).item(), abs=1e-6)


def test_numpy_uint8_and_float64() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)
    got = lpips(a, b)
    assert isinstance(got, float)
    ta = torch.from_numpy(a).permute(2, 0, 1).float() / 255
    tb = torch.from_numpy(b).permute(2, 0, 1).float() / 255
    assert lpips(ta, tb).item() == pytest.approx(got, abs=1e-5)
    assert lpips(ta.double(), tb.double()).dtype == torch.float64


def test_module_is_frozen_and_gradient_flows() -> None:
    model = LPIPS()
    assert all(not p.requires_grad for p in model.parameters())
    model.train()
    assert not model.training
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    y = torch.rand(2, 3, 64, 64)
    loss = model(x, y)
    assert loss.shape == ()
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
    # a black image gives all-zero feature maps; the gradient must stay finite
    z = torch.zeros(1, 3, 64, 64, requires_grad=True)
    model(z, torch.rand(1, 3, 64, 64)).backward()
    assert torch.isfinite(z.grad).all()


def test_shipped_weights_are_the_converted_shared_weights(assets: Path, tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("convert_lpips_weights", REPO / "scripts" / "convert_lpips_weights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "alex.safetensors"
    mod.convert(assets / "lpips_alex.safetensors", out)
    shipped, fresh = load_file(str(LPIPS_WEIGHTS)), load_file(str(out))
    assert shipped.keys() == fresh.keys() and len(shipped) == 15
    for k in shipped:
        assert shipped[k].dtype == torch.float32 and torch.equal(shipped[k], fresh[k]), k
    assert shipped["features.0.weight"].shape == (64, 3, 11, 11)
    assert shipped["lins.4.weight"].shape == (1, 256, 1, 1)


def test_bad_weights_raise_checkpoint_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError):
        LPIPS(weights=bad)
    with pytest.raises(CheckpointError):
        LPIPS(weights=tmp_path / "missing.safetensors")


@pytest.mark.parametrize(
    "a,b,kw",
    [
        (torch.rand(1, 3, 40, 40), torch.rand(1, 3, 40, 41), {}),
        (torch.rand(1, 3, 30, 40), torch.rand(1, 3, 30, 40), {}),
        (torch.rand(1, 4, 40, 40), torch.rand(1, 4, 40, 40), {}),
        (torch.rand(1, 3, 40, 40), torch.rand(1, 3, 40, 40), {"net": "vgg"}),
        (torch.rand(1, 3, 40, 40), torch.rand(1, 3, 40, 40), {"reduction": "sum"}),
        (torch.zeros(1, 3, 40, 40, dtype=torch.uint8), torch.zeros(1, 3, 40, 40, dtype=torch.uint8), {"normalize": False}),
    ],
)
def test_bad_inputs_raise_shape_error(a, b, kw) -> None:
    with pytest.raises(ShapeError):
        lpips(a, b, **kw)


@pytest.mark.cuda
def test_follows_cuda_device() -> None:
    a, b = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    got = lpips(a.cuda(), b.cuda())
    assert got.device.type == "cuda"
    assert got.item() == pytest.approx(lpips(a, b).item(), abs=1e-4)
