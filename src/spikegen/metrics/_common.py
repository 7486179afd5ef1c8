"""Shared helpers of :mod:`spikegen.metrics`: input checking/conversion, MATLAB's ``rgb2gray``,
the GGD/AGGD moment-matching fits used by NIQE and BRISQUE, and the package-data folder.

Layout rules (documented in ``docs/metrics.md``):

- torch tensors are channel-first: ``[H, W]``, ``[C, H, W]`` or ``[B, C, H, W]`` with C in {1, 3}.
- numpy arrays may be ``[H, W]``, ``[H, W, C]`` (as read by imageio/PIL) or ``[C, H, W]``; a 3-D
  array whose last axis is 1 or 3 is read as ``[H, W, C]``, otherwise one whose first axis is 1
  or 3 as ``[C, H, W]``. 4-D arrays: ``[B, H, W, C]`` or ``[B, C, H, W]`` by the same rule.
- values: float in [0, 1], or ``uint8`` in [0, 255].
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import gamma as gamma_fn

from spikegen.errors import ShapeError

ASSETS = Path(__file__).resolve().parent / "assets"

# MATLAB rgb2gray: the first row of inv([1 .956 .621; 1 -.272 -.647; 1 -1.106 1.703])
_NTSC = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]])
RGB2GRAY = np.linalg.inv(_NTSC)[0]  # [0.298936021293775, 0.587043074451121, 0.114020904255103]

# Float inputs outside this band are almost surely not [0, 1] images (e.g. [0, 255] floats).
_FLOAT_LO, _FLOAT_HI = -0.5, 1.5


def _round_half_up(x: np.ndarray) -> np.ndarray:
    """MATLAB's ``round`` for non-negative values (half away from zero)."""
    return np.floor(x + 0.5)


# ----------------------------------------------------------------------------- layouts


def _numpy_to_bchw(arr: np.ndarray, name: str) -> np.ndarray:
    """numpy image(s) -> ``[B, C, H, W]`` view following the layout rules above."""
    if arr.ndim == 2:
        return arr[None, None]
    if arr.ndim == 3:
        if arr.shape[-1] in (1, 3):
            return np.moveaxis(arr, -1, 0)[None]
        if arr.shape[0] in (1, 3):
            return arr[None]
    elif arr.ndim == 4:
        if arr.shape[-1] in (1, 3):
            return np.moveaxis(arr, -1, 1)
        if arr.shape[1] in (1, 3):
            return arr
    raise ShapeError(
        f"{name}: expected an image [H, W], [H, W, C], [C, H, W] or a batch [B, H, W, C] / "
        f"[B, C, H, W] with C in {{1, 3}}, got a numpy array of shape {tuple(arr.shape)}"
    )


def _tensor_to_bchw(t: torch.Tensor, name: str) -> torch.Tensor:
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[1] not in (1, 3):
        raise ShapeError(
            f"{name}: expected a tensor [H, W], [C, H, W] or [B, C, H, W] with C in {{1, 3}}, "
            f"got shape {tuple(t.shape)}"
        )
    return t


def _check_dtype_np(arr: np.ndarray, name: str) -> None:
    if arr.dtype == np.uint8 or np.issubdtype(arr.dtype, np.floating):
        return
    raise ShapeError(f"{name}: expected a float image in [0, 1] or a uint8 image, got dtype {arr.dtype}")


def _check_float_range_np(arr: np.ndarray, name: str) -> None:
    if arr.size == 0:
        raise ShapeError(f"{name}: empty image")
    if not np.all(np.isfinite(arr)):
        raise ShapeError(f"{name}: contains NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < _FLOAT_LO or hi > _FLOAT_HI:
        raise ShapeError(
            f"{name}: float images must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}] "
            "(pass uint8 for [0, 255] images, or divide by 255)"
        )


def to_gray_u8_batch(img: Any, name: str = "img") -> tuple[list[np.ndarray], bool]:
    """Convert an image or batch to MATLAB-style 8-bit gray planes in float64.

    Float input is clipped to [0, 1] and quantised as MATLAB's ``im2uint8`` (round half up);
    RGB is converted with MATLAB's ``rgb2gray`` on the 8-bit image (rounded again, as MATLAB
    returns ``uint8``). This is what MATLAB sees when it ``imread``s an 8-bit image file.

    Returns:
        (list of ``[H, W]`` float64 arrays with integer values in [0, 255], batched) where
        ``batched`` says whether the input had a batch axis.
    """
    if isinstance(img, torch.Tensor):
        batched = img.ndim == 4
        t = _tensor_to_bchw(img, name).detach()
        if t.dtype == torch.uint8:
            arr = t.cpu().numpy()
        elif t.is_floating_point():
            arr = t.to("cpu", torch.float64).numpy()
        else:
            raise ShapeError(f"{name}: expected a float image in [0, 1] or a uint8 image, got dtype {t.dtype}")
    elif isinstance(img, np.ndarray):
        _check_dtype_np(img, name)
        batched = img.ndim == 4
        arr = _numpy_to_bchw(img, name)
    else:
        raise ShapeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(img).__name__}")
    if arr.dtype == np.uint8:
        u8 = arr.astype(np.float64)
    else:
        arr = arr.astype(np.float64)
        _check_float_range_np(arr, name)
        u8 = _round_half_up(np.clip(arr, 0.0, 1.0) * 255.0)
    if u8.shape[-1] < 1 or u8.shape[-2] < 1:
        raise ShapeError(f"{name}: empty image of shape {tuple(u8.shape)}")
    out = []
    for im in u8:
        if im.shape[0] == 3:
            g = np.tensordot(RGB2GRAY, im, axes=(0, 0))
            g = np.clip(_round_half_up(g), 0.0, 255.0)
        else:
            g = im[0]
        out.append(np.ascontiguousarray(g, dtype=np.float64))
    return out, batched


def to_tensor_pair(pred: Any, target: Any, fname: str) -> tuple[torch.Tensor, torch.Tensor, bool, bool]:
    """Check and convert a (pred, target) pair to float ``[B, C, H, W]`` tensors.

    uint8 inputs are divided by 255. numpy inputs are converted with the layout rules above.

    Returns:
        (pred, target, batched, from_numpy)
    """
    from_numpy = isinstance(pred, np.ndarray) and isinstance(target, np.ndarray)
    ts = []
    ndims = []
    for arg, x in (("pred", pred), ("target", target)):
        label = f"{fname}: {arg}"
        u8_dtype = torch.float32
        if isinstance(x, np.ndarray):
            _check_dtype_np(x, label)
            ndims.append(x.ndim)
            x = torch.from_numpy(np.ascontiguousarray(_numpy_to_bchw(x, label)))
            u8_dtype = torch.float64
        elif isinstance(x, torch.Tensor):
            ndims.append(x.ndim)
            x = _tensor_to_bchw(x, label)
        else:
            raise ShapeError(f"{label}: expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
        if x.dtype == torch.uint8:
            x = x.to(u8_dtype) / 255.0
        elif not x.is_floating_point():
            raise ShapeError(f"{label}: expected a float image in [0, 1] or a uint8 image, got dtype {x.dtype}")
        ts.append(x)
    p, t = ts
    if p.shape != t.shape:
        raise ShapeError(f"{fname}: pred and target must have the same shape, got {tuple(p.shape)} and {tuple(t.shape)}")
    if p.numel() == 0:
        raise ShapeError(f"{fname}: empty images of shape {tuple(p.shape)}")
    if p.device != t.device:
        raise ShapeError(f"{fname}: pred is on {p.device} but target is on {t.device}")
    dtype = torch.promote_types(p.dtype, t.dtype)
    if dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32
    return p.to(dtype), t.to(dtype), ndims[0] == 4 or ndims[1] == 4, from_numpy


def reduce_output(values: torch.Tensor, reduction: str, batched: bool, from_numpy: bool, fname: str) -> Any:
    """Apply ``reduction`` to per-image ``values`` ``[B]`` and convert back to numpy if needed."""
    if reduction == "mean":
        out = values.mean()
    elif reduction == "none":
        out = values if batched else values[0]
    else:
        raise ShapeError(f"{fname}: reduction must be 'mean' or 'none', got {reduction!r}")
    if from_numpy:
        arr = out.detach().cpu().numpy()
        return float(arr) if arr.ndim == 0 else arr
    return out


def check_data_range(data_range: float, fname: str) -> float:
    try:
        dr = float(data_range)
    except (TypeError, ValueError):
        raise ShapeError(f"{fname}: data_range must be a positive number, got {data_range!r}") from None
    if not dr > 0 or not np.isfinite(dr):
        raise ShapeError(f"{fname}: data_range must be a positive number, got {data_range!r}")
    return dr


# ----------------------------------------------------------------------------- GGD / AGGD fits

# The search grid of the reference MATLAB code: gam = 0.2:0.001:10
GAM = np.linspace(0.2, 10.0, 9801)
_G1, _G2, _G3 = gamma_fn(1.0 / GAM), gamma_fn(2.0 / GAM), gamma_fn(3.0 / GAM)
_R_GGD = _G1 * _G3 / (_G2 * _G2)  # estimateggdparam: Gamma(1/a)Gamma(3/a)/Gamma(2/a)^2
_R_AGGD = (_G2 * _G2) / (_G1 * _G3)  # estimateaggdparam: Gamma(2/a)^2/(Gamma(1/a)Gamma(3/a))


def _nanmean(x: np.ndarray) -> np.float64:
    # MATLAB: mean of an empty vector is NaN (no warning)
    return np.float64(np.mean(x)) if x.size else np.float64("nan")


def fit_ggd(vec: np.ndarray) -> tuple[float, float]:
    """Moment-matching fit of a zero-mean generalised Gaussian (BRISQUE ``estimateggdparam``).

    Returns:
        (shape alpha, standard deviation sigma)
    """
    v = np.ravel(vec)
    sigma_sq = np.float64(np.mean(v * v))
    e = np.float64(np.mean(np.abs(v)))
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = sigma_sq / (e * e)
        diff = np.abs(rho - _R_GGD)
    pos = 0 if np.all(np.isnan(diff)) else int(np.nanargmin(diff))
    return float(GAM[pos]), float(np.sqrt(sigma_sq))


def fit_aggd(vec: np.ndarray) -> tuple[float, float, float]:
    """Moment-matching fit of an asymmetric generalised Gaussian (``estimateaggdparam``).

    Returns:
        (shape alpha, left standard deviation, right standard deviation); NIQE turns the two
        standard deviations into scale parameters, BRISQUE uses them directly.
    """
    v = np.ravel(vec)
    neg = v[v < 0]
    posv = v[v > 0]
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        left = np.sqrt(_nanmean(neg * neg))
        right = np.sqrt(_nanmean(posv * posv))
        gammahat = left / right
        rhat = np.float64(np.mean(np.abs(v))) ** 2 / np.float64(np.mean(v * v))
        rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / ((gammahat**2 + 1) ** 2)
        diff = (_R_AGGD - rhatnorm) ** 2
    # MATLAB's min() skips NaN and returns index 1 when all are NaN
    pos = 0 if np.all(np.isnan(diff)) else int(np.nanargmin(diff))
    return float(GAM[pos]), float(left), float(right)


def gaussian_window_7() -> np.ndarray:
    """``fspecial('gaussian', 7, 7/6)`` normalised to sum 1 (the MSCN window of NIQE/BRISQUE)."""
    x = np.arange(-3, 4, dtype=np.float64)
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2.0 * (7.0 / 6.0) ** 2))
    return g / g.sum()
