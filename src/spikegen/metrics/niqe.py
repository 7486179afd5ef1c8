"""NIQE, the Natural Image Quality Evaluator (Mittal, Soundararajan & Bovik, 2013).

A no-reference metric: lower is better. Our own implementation of the published method with
the parameters of the authors' MATLAB release (``niqe_release``): the image is converted to
8-bit gray with MATLAB's ``rgb2gray``, cropped to a whole number of 96x96 blocks, normalised
to MSCN coefficients with a 7x7 Gaussian window (sigma 7/6, replicate borders, C = 1 on the
[0, 255] scale); per block, 18 features (an AGGD fit of the MSCN coefficients, and AGGD fits of
the products of horizontal, vertical and the two diagonal neighbours) are computed at two scales
(the second after MATLAB's bicubic ``imresize(im, 0.5)`` in float64, blocks 48x48); a
multivariate Gaussian fitted to the block features is compared with the pristine model
(``mu``, ``cov`` from the MATLAB release) by

    NIQE = sqrt((mu_p - mu_d)^T pinv((cov_p + cov_d) / 2) (mu_p - mu_d)).

Example:
    >>> import torch
    >>> score = niqe(torch.rand(3, 192, 192))
    >>> isinstance(score, float)
    True
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch
from scipy.ndimage import correlate, maximum_filter, minimum_filter
from scipy.special import gamma as gamma_fn

from spikegen.errors import ShapeError
from spikegen.metrics._common import ASSETS, fit_aggd, to_gray_u8_batch
from spikegen.metrics.resize import imresize

__all__ = ["niqe", "NIQE", "niqe_features"]

BLOCK = 96
# neighbour offsets (rows, cols) of the paired products: horizontal, vertical, two diagonals
_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))


@lru_cache(maxsize=1)
def _pristine() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(ASSETS / "niqe_pris_params.npz") as d:
        mu = np.asarray(d["mu_pris_param"], dtype=np.float64).reshape(-1)
        cov = np.asarray(d["cov_pris_param"], dtype=np.float64)
        win = np.asarray(d["gaussian_window"], dtype=np.float64)
    return mu, cov, win


def _mscn(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """MSCN coefficients with replicate borders; exactly 0 where the 7x7 window is constant.

    In a constant window the coefficient is 0 mathematically, but the filter's rounding leaves
    +-1e-14 values whose *signs* decide whether a pixel counts on the left or right side of the
    AGGD fits. Images with flat (e.g. saturated) areas then move by tenths; making them exact
    zeros reproduces the MATLAB reference (``imfilter``) on such images (I19: 0.39 -> 0.03).
    """
    mu = correlate(img, window, mode="nearest")
    sigma = np.sqrt(np.abs(correlate(img * img, window, mode="nearest") - mu * mu))
    out = (img - mu) / (sigma + 1.0)
    size = window.shape
    flat = maximum_filter(img, size=size, mode="nearest") == minimum_filter(img, size=size, mode="nearest")
    out[flat] = 0.0
    return out


def _block_features(block: np.ndarray) -> list[float]:
    def betas(alpha: float, left: float, right: float) -> tuple[float, float]:
        k = np.sqrt(gamma_fn(1.0 / alpha) / gamma_fn(3.0 / alpha))
        return left * k, right * k

    alpha, left, right = fit_aggd(block)
    bl, br = betas(alpha, left, right)
    feat = [alpha, (bl + br) / 2.0]
    for shift in _SHIFTS:
        pair = block * np.roll(block, shift, axis=(0, 1))  # MATLAB circshift within the block
        alpha, left, right = fit_aggd(pair)
        bl, br = betas(alpha, left, right)
        mean = (br - bl) * (gamma_fn(2.0 / alpha) / gamma_fn(1.0 / alpha))
        feat.extend([alpha, mean, bl, br])
    return feat


def niqe_features(gray: np.ndarray) -> np.ndarray:
    """The ``[n_blocks, 36]`` NIQE feature matrix of one gray ``[H, W]`` image in [0, 255].

    The image is cropped to whole 96x96 blocks first (top-left kept, as MATLAB does).
    """
    _, _, window = _pristine()
    h, w = gray.shape
    nh, nw = h // BLOCK, w // BLOCK
    if nh < 1 or nw < 1:
        raise ShapeError(f"niqe: image must be at least {BLOCK}x{BLOCK} pixels (after crop_border), got {h}x{w}")
    im = np.asarray(gray, dtype=np.float64)[: nh * BLOCK, : nw * BLOCK]
    scales = []
    for scale in (1, 2):
        bs = BLOCK // scale
        s = _mscn(im, window)
        feats = [
            _block_features(s[i * bs : (i + 1) * bs, j * bs : (j + 1) * bs]) for j in range(nw) for i in range(nh)
        ]
        scales.append(np.asarray(feats, dtype=np.float64))
        if scale == 1:
            im = imresize(im, 0.5)
    return np.concatenate(scales, axis=1)


def _niqe_from_features(feat: np.ndarray) -> float:
    mu_p, cov_p, _ = _pristine()
    if np.isnan(feat).all(axis=0).any():
        return float("nan")  # no textured block at all (e.g. a constant image): undefined
    mu_d = np.nanmean(feat, axis=0)
    rows = feat[~np.isnan(feat).any(axis=1)]  # MATLAB nancov: complete rows only
    if rows.shape[0] >= 2:
        cov_d = np.cov(rows, rowvar=False)
    else:
        cov_d = np.zeros_like(cov_p)
    inv = np.linalg.pinv((cov_p + cov_d) / 2.0)
    d = mu_p - mu_d
    return float(np.sqrt(d @ inv @ d))


def niqe(img: Any, *, crop_border: int = 0) -> float | np.ndarray:
    """NIQE of an image (no reference; lower is better).

    Args:
        img: torch ``[H, W]``, ``[C, H, W]`` or ``[B, C, H, W]``; numpy ``[H, W]``,
            ``[H, W, C]``, ``[C, H, W]`` or a batch. C is 1 (gray) or 3 (RGB). Float values in
            [0, 1] (clipped, then quantised to 8 bits as MATLAB's ``im2uint8``) or ``uint8``.
            At least 96x96 pixels after cropping.
        crop_border: pixels removed from each edge before evaluation.

    Returns:
        A float for one image, a float64 numpy array ``[B]`` for a batch. NaN for an image
        without texture (e.g. constant), where NIQE is undefined.

    Raises:
        ShapeError: bad shape, dtype or value range, or an image smaller than 96x96.

    Example:
        >>> import numpy as np
        >>> img = (np.random.default_rng(0).random((192, 192)) * 255).astype(np.uint8)
        >>> niqe(img) > 0
        True
    """
    if not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise ShapeError(f"niqe: crop_border must be a non-negative int, got {crop_border!r}")
    grays, batched = to_gray_u8_batch(img, "niqe: img")
    scores = []
    for g in grays:
        if crop_border:
            g = g[crop_border:-crop_border, crop_border:-crop_border]
        scores.append(_niqe_from_features(niqe_features(g)))
    if batched:
        return np.asarray(scores, dtype=np.float64)
    return scores[0]


class NIQE(torch.nn.Module):
    """Module form of :func:`niqe` (not differentiable; computed in float64 numpy).

    Example:
        >>> import torch
        >>> NIQE()(torch.rand(2, 1, 96, 96)).shape
        (2,)
    """

    def __init__(self, crop_border: int = 0) -> None:
        super().__init__()
        self.crop_border = crop_border

    def forward(self, img: Any) -> float | np.ndarray:
        return niqe(img, crop_border=self.crop_border)
