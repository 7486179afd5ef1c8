"""Tests of the no-reference metrics NIQE and BRISQUE against the MATLAB calibration values."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from spikegen.errors import ShapeError
from spikegen.metrics import BRISQUE, NIQE, brisque, niqe
from spikegen.metrics._common import RGB2GRAY
from spikegen.metrics.brisque import _model

# From shared/assets/metrics/README.md (MATLAB reference implementations, distorted images)
NIQE_REF = {"I03": 15.7536, "I04": 3.6549, "I06": 3.2355, "I08": 3.1840, "I19": 8.6352}
BRISQUE_REF = {"I03": 94.6421, "I04": -0.1076, "I06": 0.9929, "I08": 5.3583, "I19": 72.2617}
TIGHT = ("I03", "I04", "I06", "I08")


@pytest.fixture(scope="module")
def dist(shared_data: Path) -> dict[str, np.ndarray]:
    path = shared_data.parent / "assets" / "metrics" / "calibration" / "dist_dir"
    if not path.is_dir():
        pytest.fail(f"calibration images not found at {path}")
    return {n: iio.imread(path / f"{n}.bmp") for n in NIQE_REF}


def test_niqe_calibration(dist) -> None:
    for n in TIGHT:
        assert niqe(dist[n]) == pytest.approx(NIQE_REF[n], abs=0.15), n
    assert niqe(dist["I19"]) == pytest.approx(NIQE_REF["I19"], abs=1.0)


def test_brisque_calibration(dist) -> None:
    for n in TIGHT:
        assert brisque(dist[n]) == pytest.approx(BRISQUE_REF[n], abs=0.5), n
    assert brisque(dist["I19"]) == pytest.approx(BRISQUE_REF["I19"], abs=10.0)


def test_input_forms_agree(dist) -> None:
    img = dist["I04"]
    chw = torch.from_numpy(img).permute(2, 0, 1)
    want_n, want_b = niqe(img), brisque(img)
    for form in (chw, chw.float() / 255, (chw.double() / 255).numpy(), np.moveaxis(img, 2, 0)):
        assert niqe(form) == pytest.approx(want_n, abs=1e-9)
        assert brisque(form) == pytest.approx(want_b, abs=1e-9)
    gray = np.floor(img.astype(np.float64) @ RGB2GRAY + 0.5).astype(np.uint8)  # MATLAB rgb2gray
    assert niqe(gray) == pytest.approx(want_n, abs=1e-9)
    assert brisque(torch.from_numpy(gray)[None]) == pytest.approx(want_b, abs=1e-9)
    batch = torch.stack([chw, torch.from_numpy(dist["I08"]).permute(2, 0, 1)])
    nb, bb = NIQE()(batch), BRISQUE()(batch)
    assert isinstance(nb, np.ndarray) and nb.shape == (2,) and nb[0] == pytest.approx(want_n)
    assert isinstance(bb, np.ndarray) and bb.shape == (2,) and bb[1] == pytest.approx(brisque(dist["I08"]))


def test_niqe_crop_border(dist) -> None:
    img = dist["I06"]
    assert niqe(img, crop_border=8) == pytest.approx(niqe(img[8:-8, 8:-8]), abs=1e-12)
    assert niqe(img, crop_border=8) != pytest.approx(niqe(img), abs=1e-6)


def test_quality_ordering() -> None:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:192, 0:192] / 192.0
    clean = 0.5 + 0.25 * np.sin(12 * x) * np.cos(9 * y) + 0.02 * rng.standard_normal((192, 192))
    noisy = clean + 0.2 * rng.standard_normal(clean.shape)
    clean, noisy = np.clip(clean, 0, 1), np.clip(noisy, 0, 1)
    assert brisque(noisy) > brisque(clean) + 10
    assert niqe(noisy) > niqe(clean)


def test_svr_model_parsed() -> None:
    svr, fmin, fmax, lower, upper = _model()
    assert svr.sv.shape == (774, 36) and svr.coef.shape == (774,)
    assert svr.gamma == 0.05 and svr.rho == pytest.approx(-153.591)
    assert (lower, upper) == (-1.0, 1.0) and fmin.shape == fmax.shape == (36,) and np.all(fmax > fmin)


@pytest.mark.parametrize("fn", [niqe, brisque])
@pytest.mark.parametrize(
    "img",
    [
        np.zeros((10, 10), dtype=np.uint8),  # too small
        np.zeros((100, 100, 4), dtype=np.uint8),  # 4 channels
        np.zeros((100, 100), dtype=np.int32),  # dtype
        np.full((100, 100), 200.0),  # float outside [0, 1]
        np.full((100, 100), np.nan),
        torch.zeros(2, 2, 3, 100, 100),
        [[0.0]],
    ],
)
def test_bad_inputs_raise_shape_error(fn, img) -> None:
    with pytest.raises(ShapeError):
        fn(img)


def test_niqe_needs_a_block_and_valid_crop() -> None:
    with pytest.raises(ShapeError):
        niqe(np.zeros((95, 200), dtype=np.uint8))
    with pytest.raises(ShapeError):
        niqe(np.zeros((100, 100), dtype=np.uint8), crop_border=-1)


def test_textureless_image_is_nan_without_warnings() -> None:
    import warnings

    flat = np.full((120, 130), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(niqe(flat)) and np.isnan(brisque(flat))
        part = flat.copy()
        part[:96, :96] = np.random.default_rng(0).random((96, 96))
        assert np.isfinite(niqe(part)) and np.isfinite(brisque(part))
