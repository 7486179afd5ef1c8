"""Tests of the MATLAB-style bicubic imresize."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spikegen.errors import ShapeError
from spikegen.metrics.resize import cubic, imresize, resize_weights


def _matlab_loop(x: np.ndarray, scale: float, antialiasing: bool = True) -> np.ndarray:
    """A literal per-output-pixel transcription of MATLAB's contributions()/resize along axis 0."""
    n = x.shape[0]
    m = int(math.ceil(scale * n))
    width = 4.0
    if scale < 1 and antialiasing:
        def h(t):
            return scale * cubic(scale * t)
        width /= scale
    else:
        h = cubic
    out = np.zeros((m,) + x.shape[1:])
    for j in range(1, m + 1):
        u = j / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        idx = [left + k for k in range(int(math.ceil(width)) + 2)]
        w = np.array([h(u - i) for i in idx], dtype=np.float64)
        w /= w.sum()
        acc = np.zeros(x.shape[1:])
        for wi, i in zip(w, idx):
            i0 = i - 1  # 0-based, mirrored as [1..n, n..1]
            i0 = i0 % (2 * n)
            if i0 >= n:
                i0 = 2 * n - 1 - i0
            acc = acc + wi * x[i0]
        out[j - 1] = acc
    return out


@pytest.mark.parametrize("shape,scale", [((17, 9), 0.5), ((12, 7), 0.5), ((10, 6), 2.0), ((9, 5), 0.3), ((8, 8), 1.5)])
def test_matches_literal_matlab_algorithm(shape, scale) -> None:
    x = np.random.default_rng(0).random(shape) * 255
    expected = _matlab_loop(_matlab_loop(x, scale).T, scale).T
    got = imresize(x, scale)
    assert got.shape == expected.shape == (math.ceil(scale * shape[0]), math.ceil(scale * shape[1]))
    assert np.allclose(got, expected, atol=1e-10)


def test_preserves_constants_and_linear_ramps() -> None:
    assert np.allclose(imresize(np.full((20, 30), 7.0), 0.5), 7.0)
    ramp = np.tile(np.arange(1, 41, dtype=np.float64)[:, None], (1, 6))  # value = 1-based row
    out = imresize(ramp, 0.5)
    rows = np.arange(1, 21)
    interior = slice(3, -3)  # away from the mirrored borders
    # output pixel x samples the input at u = x / 0.5 + 0.5 * (1 - 2) = 2x - 0.5
    assert np.allclose(out[interior, 2], (2 * rows - 0.5)[interior], atol=1e-12)


def test_antialiasing_widens_the_kernel() -> None:
    w_aa = resize_weights(32, 16, 0.5, True)
    w_no = resize_weights(32, 16, 0.5, False)
    assert np.allclose(w_aa.sum(1), 1) and np.allclose(w_no.sum(1), 1)
    assert (np.count_nonzero(w_aa[8]) == 8) and (np.count_nonzero(w_no[8]) == 4)


def test_color_and_output_shape() -> None:
    x = np.random.default_rng(1).random((16, 12, 3))
    out = imresize(x, output_shape=(8, 6))
    assert out.shape == (8, 6, 3)
    for c in range(3):
        assert np.allclose(out[..., c], imresize(x[..., c], 0.5))


def test_bad_arguments() -> None:
    with pytest.raises(ShapeError):
        imresize(np.zeros((2, 2, 2, 2)), 0.5)
    with pytest.raises(ShapeError):
        imresize(np.zeros((4, 4)))
    with pytest.raises(ShapeError):
        imresize(np.zeros((4, 4)), 0.5, output_shape=(2, 2))
    with pytest.raises(ShapeError):
        imresize(np.zeros((4, 4)), -1.0)
