"""PSNR: peak signal-to-noise ratio, per image, then averaged.

``PSNR = 10 * log10(data_range^2 / MSE)`` with the MSE over all channels and pixels of one
image. Identical images give ``inf`` (no cap). Note that computing it on images mapped to
[-1, 1] while keeping ``data_range=1`` (as the official SpikeGen evaluation does) quadruples
the MSE and reads ``10 * log10(4) = 6.02`` dB low; images in [-1, 1] need ``data_range=2``.

Example:
    >>> import torch
    >>> x = torch.full((1, 3, 8, 8), 0.5)
    >>> round(float(psnr(x + 0.1, x)), 4)
    20.0
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from spikegen.errors import ShapeError
from spikegen.metrics._common import check_data_range, reduce_output, to_tensor_pair

__all__ = ["psnr", "PSNR"]


def _uint8_in(*xs: Any) -> bool:
    return any(str(getattr(x, "dtype", "")) in ("uint8", "torch.uint8") for x in xs)


def psnr(pred: Any, target: Any, *, data_range: float = 1.0, reduction: str = "mean") -> Any:
    """Peak signal-to-noise ratio in dB.

    Args:
        pred: ``[B, C, H, W]`` or ``[C, H, W]`` tensor (``[H, W]`` is read as one gray image),
            float in ``[0, data_range]``; ``uint8`` is divided by 255. numpy arrays are accepted
            (``[H, W, C]`` or ``[C, H, W]``, see ``docs/metrics.md``).
        target: same shape as ``pred``.
        data_range: the peak value (max - min of the value range), 1.0 for [0, 1] images.
        reduction: ``"mean"``: the mean of the per-image PSNRs (not the PSNR of the mean MSE);
            ``"none"``: per-image values ``[B]``.

    Returns:
        A tensor (scalar or ``[B]``) on the input's device, computed in float32 or wider
        (float64 for numpy input, which returns a float / numpy array). ``inf`` where the
        images are identical.

    Raises:
        ShapeError: shapes differ or are not images, bad dtype, ``data_range`` <= 0, or a
            ``data_range`` other than 1 with ``uint8`` input (which is scaled to [0, 1]).

    Example:
        >>> import torch
        >>> a = torch.rand(4, 3, 32, 32)
        >>> psnr(a, a.clone(), reduction="none")
        tensor([inf, inf, inf, inf])
    """
    dr = check_data_range(data_range, "psnr")
    if _uint8_in(pred, target) and dr != 1.0:
        raise ShapeError(f"psnr: uint8 inputs are scaled to [0, 1]; use data_range=1.0, got {data_range}")
    p, t, batched, from_numpy = to_tensor_pair(pred, target, "psnr")
    if from_numpy:
        p, t = p.double(), t.double()
    mse = (p - t).pow(2).flatten(1).mean(dim=1)
    values = 10.0 * torch.log10(dr * dr / mse)
    return reduce_output(values, reduction, batched, from_numpy, "psnr")


class PSNR(nn.Module):
    """Module form of :func:`psnr`.

    Example:
        >>> import torch
        >>> PSNR(data_range=1.0)(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.1))
        tensor(20.)
    """

    def __init__(self, data_range: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        self.data_range = data_range
        self.reduction = reduction

    def forward(self, pred: Any, target: Any) -> Any:
        return psnr(pred, target, data_range=self.data_range, reduction=self.reduction)
