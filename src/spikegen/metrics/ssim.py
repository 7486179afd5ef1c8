"""SSIM, the structural similarity index (Wang, Bovik, Sheikh & Simoncelli, 2004).

Two protocols:

- ``protocol="gaussian"`` (default): on the given images (float, [0, data_range]) with an
  11x11 Gaussian window (sigma 1.5, normalised), K1 = 0.01, K2 = 0.03, population
  (co)variances, averaged over the *valid* region (no padding) and then over channels; equal to
  ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=...)`` and to BasicSR's ``calculate_ssim`` on RGB.
  Differentiable.
- ``protocol="matlab"``: how the spike-reconstruction papers (SSIR/STIR on SREDS) evaluate:
  images are quantised to 8 bits, RGB is converted with MATLAB's ``rgb2gray``, and SSIM is
  computed on the gray [0, 255] plane with L = 255 and the same window (Wang's ``ssim_index.m``).
  With ``downsample=True`` it also applies the automatic downsampling of Wang's later
  ``ssim.m``: ``f = max(1, round(min(H, W) / 256))``, an ``f x f`` box filter (symmetric
  borders) and keeping every f-th pixel. Not differentiable.

Example:
    >>> import torch
    >>> x = torch.rand(1, 3, 32, 32)
    >>> float(ssim(x, x))
    1.0
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from spikegen import degrade
from spikegen.errors import ShapeError
from spikegen.metrics._common import check_data_range, reduce_output, to_gray_u8_batch, to_tensor_pair

__all__ = ["ssim", "SSIM", "gaussian_kernel1d"]

WIN = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03


def gaussian_kernel1d(size: int = WIN, sigma: float = SIGMA, *, dtype: torch.dtype = torch.float64,
                      device: torch.device | str | None = None) -> torch.Tensor:  # fmt: skip
    """Normalised 1-D Gaussian window ``[size]``; its outer product is ``fspecial('gaussian')``.

    :func:`spikegen.degrade.gaussian_kernel1d` with SSIM's window (11 taps, sigma 1.5) and float64.
    """
    return degrade.gaussian_kernel1d(sigma, size, device=device, dtype=dtype)


def _valid_filter(x: torch.Tensor, taps: list[float], dim: int) -> torch.Tensor:
    """Correlate along ``dim`` with a 1-D window, keeping only fully covered positions.

    A sum of shifted slices: fast in every dtype and on every device (grouped float64
    ``conv2d`` is very slow on CPU) and differentiable.
    """
    n = x.shape[dim] - len(taps) + 1
    out = x.narrow(dim, 0, n) * taps[0]
    for k in range(1, len(taps)):
        out = out.add(x.narrow(dim, k, n), alpha=taps[k])
    return out


def _ssim_per_image(x: torch.Tensor, y: torch.Tensor, peak: float) -> torch.Tensor:
    """Mean SSIM per image ``[B]`` of ``[B, C, H, W]`` tensors (valid window, channel mean)."""
    b, c, h, w = x.shape
    if h < WIN or w < WIN:
        raise ShapeError(f"ssim: images must be at least {WIN}x{WIN} pixels, got {h}x{w}")
    g = gaussian_kernel1d(dtype=torch.float64).tolist()
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # [B, 5C, H, W]
    filt = _valid_filter(_valid_filter(stack, g, dim=2), g, dim=3)
    mx, my, mxx, myy, mxy = filt.split(c, dim=1)
    vx, vy, vxy = mxx - mx * mx, myy - my * my, mxy - mx * my
    c1, c2 = (K1 * peak) ** 2, (K2 * peak) ** 2
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))


def _matlab_downsample(g: np.ndarray) -> np.ndarray:
    """Wang's ``ssim.m`` preprocessing: box-filter by f (symmetric borders) and subsample."""
    f = max(1, int(math.floor(min(g.shape) / 256.0 + 0.5)))
    if f == 1:
        return g
    c = (f + 1) // 2  # MATLAB's kernel centre (1-based) for imfilter 'same'
    p = np.pad(g, ((c - 1, f - c), (c - 1, f - c)), mode="symmetric")
    cs = np.cumsum(np.cumsum(np.pad(p, ((1, 0), (1, 0))), axis=0), axis=1)
    box = (cs[f:, f:] - cs[:-f, f:] - cs[f:, :-f] + cs[:-f, :-f]) / (f * f)
    return box[::f, ::f]


def _uint8_in(*xs: Any) -> bool:
    return any(str(getattr(x, "dtype", "")) in ("uint8", "torch.uint8") for x in xs)


def _matlab_ssim(pred: Any, target: Any, dr: float, downsample: bool) -> tuple[torch.Tensor, bool, bool, torch.device]:
    device = pred.device if isinstance(pred, torch.Tensor) else torch.device("cpu")
    from_numpy = isinstance(pred, np.ndarray) and isinstance(target, np.ndarray)
    if dr != 1.0:
        pred = pred if _uint8_in(pred) else pred / dr
        target = target if _uint8_in(target) else target / dr
    gp, batched = to_gray_u8_batch(pred, "ssim: pred")
    gt, _ = to_gray_u8_batch(target, "ssim: target")
    if len(gp) != len(gt) or any(a.shape != b.shape for a, b in zip(gp, gt)):
        raise ShapeError(f"ssim: pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    vals = []
    for a, b in zip(gp, gt):
        if downsample:
            a, b = _matlab_downsample(a), _matlab_downsample(b)
        ta = torch.from_numpy(np.ascontiguousarray(a))[None, None]
        tb = torch.from_numpy(np.ascontiguousarray(b))[None, None]
        vals.append(_ssim_per_image(ta, tb, 255.0))
    return torch.cat(vals).to(device), batched, from_numpy, device


def ssim(
    pred: Any,
    target: Any,
    *,
    data_range: float = 1.0,
    protocol: str = "gaussian",
    reduction: str = "mean",
    downsample: bool = False,
) -> Any:
    """Structural similarity (1 for identical images).

    Args:
        pred: ``[B, C, H, W]`` or ``[C, H, W]`` tensor (``[H, W]``: one gray image), C in
            {1, 3}, float in ``[0, data_range]`` or ``uint8`` (divided by 255). numpy arrays are
            accepted (``[H, W, C]`` or ``[C, H, W]``, see ``docs/metrics.md``). At least 11x11.
        target: same shape as ``pred``.
        data_range: the value range of float inputs (1.0 for [0, 1]). Must be 1 for uint8.
        protocol: ``"gaussian"`` (per channel on the given values, differentiable) or
            ``"matlab"`` (8-bit gray [0, 255] as the SREDS/STIR evaluations; RGB -> MATLAB
            ``rgb2gray``).
        reduction: ``"mean"`` over the batch, or ``"none"`` for ``[B]``.
        downsample: only for ``protocol="matlab"``: apply ``ssim.m``'s automatic
            downsampling by ``max(1, round(min(H, W) / 256))``.

    Returns:
        A tensor (scalar or ``[B]``) on the input's device; a float / numpy array for numpy
        inputs. The Gaussian protocol is computed in float32 or wider (float64 for numpy), the
        MATLAB protocol in float64.

    Raises:
        ShapeError: shapes differ or are not images, images smaller than 11x11, bad dtype,
            ``data_range``, ``protocol`` or ``reduction``.

    Example:
        >>> import torch
        >>> a = torch.rand(2, 3, 32, 32)
        >>> ssim(a, a, reduction="none")
        tensor([1., 1.])
    """
    dr = check_data_range(data_range, "ssim")
    if protocol not in ("gaussian", "matlab"):
        raise ShapeError(f"ssim: protocol must be 'gaussian' or 'matlab', got {protocol!r}")
    if reduction not in ("mean", "none"):
        raise ShapeError(f"ssim: reduction must be 'mean' or 'none', got {reduction!r}")
    if _uint8_in(pred, target) and dr != 1.0:
        raise ShapeError(f"ssim: uint8 inputs are scaled to [0, 1]; use data_range=1.0, got {data_range}")
    if downsample and protocol != "matlab":
        raise ShapeError("ssim: downsample=True is only defined for protocol='matlab'")
    if protocol == "matlab":
        # validate shapes and types with the same messages as the Gaussian path
        to_tensor_pair(pred, target, "ssim")
        values, batched, from_numpy, _ = _matlab_ssim(pred, target, dr, downsample)
        return reduce_output(values, reduction, batched, from_numpy, "ssim")
    p, t, batched, from_numpy = to_tensor_pair(pred, target, "ssim")
    if from_numpy:
        p, t = p.double(), t.double()
    return reduce_output(_ssim_per_image(p, t, dr), reduction, batched, from_numpy, "ssim")


class SSIM(nn.Module):
    """Module form of :func:`ssim`.

    Example:
        >>> import torch
        >>> x = torch.rand(1, 1, 16, 16)
        >>> float(SSIM()(x, x))
        1.0
    """

    def __init__(self, data_range: float = 1.0, protocol: str = "gaussian", reduction: str = "mean",
                 downsample: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.data_range, self.protocol, self.reduction, self.downsample = data_range, protocol, reduction, downsample

    def forward(self, pred: Any, target: Any) -> Any:
        return ssim(pred, target, data_range=self.data_range, protocol=self.protocol,
                    reduction=self.reduction, downsample=self.downsample)  # fmt: skip
