"""BRISQUE, the Blind/Referenceless Image Spatial Quality Evaluator (Mittal, Moorthy & Bovik, 2012).

A no-reference metric: lower is better (about 0 for pristine photos, up to ~100 or more for
heavily distorted ones). Our own implementation of the published method, reproducing LIVE's
original MATLAB release (``brisquescore.m`` + libsvm):

1. the image is converted to 8-bit gray with MATLAB's ``rgb2gray``;
2. at two scales (the second after MATLAB's bicubic ``imresize(im, 0.5)`` in float64), MSCN
   coefficients are computed with a 7x7 Gaussian window (sigma 7/6, ``filter2(..., 'same')``,
   i.e. zero padding, C = 1 on [0, 255]);
3. per scale 18 features: a GGD fit of the MSCN coefficients (shape, variance) and, for the
   horizontal, vertical and two diagonal neighbour products (``circshift``, wrapping), AGGD
   fits (shape, mean, left variance, right variance) -- 36 features;
4. the features are written with 6 decimals (as ``fprintf('%f')`` does), scaled to [-1, 1] with
   the ``svm-scale`` range file ``brisque_allrange.txt`` (printed with 6 significant digits,
   as ``svm-scale`` does), and
5. scored by the epsilon-SVR of ``allmodel`` (RBF kernel, gamma 0.05, 774 support vectors):
   ``sum_i coef_i * exp(-gamma * ||x - sv_i||^2) - rho``.

Example:
    >>> import torch
    >>> score = brisque(torch.rand(3, 64, 64))
    >>> isinstance(score, float)
    True
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch
from scipy.ndimage import correlate
from scipy.special import gamma as gamma_fn

from spikegen.errors import ShapeError
from spikegen.metrics._common import ASSETS, fit_aggd, fit_ggd, gaussian_window_7, to_gray_u8_batch
from spikegen.metrics.resize import imresize

__all__ = ["brisque", "BRISQUE", "brisque_features"]

_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))
MIN_SIZE = 16


class _SVR:
    """A libsvm epsilon-SVR with an RBF kernel, parsed from the libsvm text model format."""

    def __init__(self, gamma: float, rho: float, coef: np.ndarray, sv: np.ndarray) -> None:
        self.gamma, self.rho, self.coef, self.sv = gamma, rho, coef, sv
        self.sv_sq = np.einsum("ij,ij->i", sv, sv)

    @classmethod
    def from_text(cls, text: str, n_features: int) -> _SVR:
        header: dict[str, str] = {}
        lines = text.splitlines()
        i = 0
        while i < len(lines) and lines[i].strip() != "SV":
            key, _, value = lines[i].strip().partition(" ")
            header[key] = value
            i += 1
        if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
            raise ValueError(f"unsupported libsvm model: {header.get('svm_type')}/{header.get('kernel_type')}")
        coefs, rows = [], []
        for line in lines[i + 1 :]:
            parts = line.split()
            if not parts:
                continue
            coefs.append(float(parts[0]))
            row = np.zeros(n_features, dtype=np.float64)
            for item in parts[1:]:
                idx, _, val = item.partition(":")
                row[int(idx) - 1] = float(val)
            rows.append(row)
        total = int(header["total_sv"])
        if len(rows) != total:
            raise ValueError(f"libsvm model lists {len(rows)} support vectors, header says {total}")
        return cls(float(header["gamma"]), float(header["rho"]), np.asarray(coefs), np.stack(rows))

    def predict(self, x: np.ndarray) -> float:
        d2 = self.sv_sq - 2.0 * (self.sv @ x) + float(x @ x)
        return float(self.coef @ np.exp(-self.gamma * np.maximum(d2, 0.0)) - self.rho)


@lru_cache(maxsize=1)
def _model() -> tuple[_SVR, np.ndarray, np.ndarray, float, float]:
    lines = (ASSETS / "brisque_allrange.txt").read_text().split("\n")
    rows = [ln.split() for ln in lines if ln.strip()]
    lower, upper = float(rows[0][0]), float(rows[0][1])
    rng = np.asarray([[float(a), float(b)] for a, b in rows[1:]], dtype=np.float64)
    svr = _SVR.from_text((ASSETS / "allmodel").read_text(), rng.shape[0])
    return svr, rng[:, 0], rng[:, 1], lower, upper


def _mscn_zero_pad(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    mu = correlate(img, window, mode="constant", cval=0.0)  # filter2(window, img, 'same')
    sigma = np.sqrt(np.abs(correlate(img * img, window, mode="constant", cval=0.0) - mu * mu))
    return (img - mu) / (sigma + 1.0)


def brisque_features(gray: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features of one gray ``[H, W]`` image in [0, 255] (float64)."""
    window = gaussian_window_7()
    im = np.asarray(gray, dtype=np.float64)
    feat: list[float] = []
    for scale in (1, 2):
        s = _mscn_zero_pad(im, window)
        alpha, sigma = fit_ggd(s)
        feat.extend([alpha, sigma * sigma])
        for shift in _SHIFTS:
            pair = s * np.roll(s, shift, axis=(0, 1))
            alpha, left, right = fit_aggd(pair)
            const = np.sqrt(gamma_fn(1.0 / alpha)) / np.sqrt(gamma_fn(3.0 / alpha))
            mean = (right - left) * (gamma_fn(2.0 / alpha) / gamma_fn(1.0 / alpha)) * const
            feat.extend([alpha, mean, left * left, right * right])
        if scale == 1:
            im = imresize(im, 0.5)
    return np.asarray(feat, dtype=np.float64)


def _scale_features(feat: np.ndarray) -> np.ndarray:
    _, fmin, fmax, lower, upper = _model()
    x = np.round(feat, 6)  # fprintf('%d:%f ') in brisquescore.m
    span = fmax - fmin
    y = lower + (upper - lower) * (x - fmin) / np.where(span == 0, 1.0, span)
    y = np.where(x == fmin, lower, np.where(x == fmax, upper, y))
    return np.asarray([float(f"{v:g}") for v in y])  # svm-scale prints with %g


def _score(gray: np.ndarray) -> float:
    svr = _model()[0]
    return svr.predict(_scale_features(brisque_features(gray)))


def brisque(img: Any) -> float | np.ndarray:
    """BRISQUE of an image (no reference; lower is better).

    Args:
        img: torch ``[H, W]``, ``[C, H, W]`` or ``[B, C, H, W]``; numpy ``[H, W]``,
            ``[H, W, C]``, ``[C, H, W]`` or a batch. C is 1 (gray) or 3 (RGB). Float values in
            [0, 1] (clipped, then quantised to 8 bits as MATLAB's ``im2uint8``) or ``uint8``.
            At least 16x16 pixels.

    Returns:
        A float for one image, a float64 numpy array ``[B]`` for a batch. NaN for an image
        without texture (e.g. constant), where BRISQUE is undefined.

    Raises:
        ShapeError: bad shape, dtype or value range, or an image smaller than 16x16.

    Example:
        >>> import numpy as np
        >>> img = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
        >>> brisque(img) > 50
        True
    """
    grays, batched = to_gray_u8_batch(img, "brisque: img")
    scores = []
    for g in grays:
        if min(g.shape) < MIN_SIZE:
            raise ShapeError(f"brisque: image must be at least {MIN_SIZE}x{MIN_SIZE} pixels, got {g.shape[0]}x{g.shape[1]}")
        scores.append(_score(g))
    if batched:
        return np.asarray(scores, dtype=np.float64)
    return scores[0]


class BRISQUE(torch.nn.Module):
    """Module form of :func:`brisque` (not differentiable; computed in float64 numpy).

    Example:
        >>> import torch
        >>> BRISQUE()(torch.rand(2, 3, 32, 32)).shape
        (2,)
    """

    def forward(self, img: Any) -> float | np.ndarray:
        return brisque(img)
