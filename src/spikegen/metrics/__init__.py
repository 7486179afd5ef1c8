"""Image-quality metrics, computed offline (no downloads, no CUDA needed).

Full-reference: :func:`psnr`, :func:`ssim` (Gaussian on [0, 1], or the MATLAB-style gray
[0, 255] protocol of the spike-reconstruction papers), :func:`lpips` (v0.1 AlexNet, weights
shipped). No-reference: :func:`niqe`, :func:`brisque` (MATLAB reference parameters, MATLAB-style
bicubic resizing in float64). Each has a module form (:class:`PSNR`, :class:`SSIM`,
:class:`LPIPS`, :class:`NIQE`, :class:`BRISQUE`). Definitions, conventions and the calibration
against the reference implementations are in ``docs/metrics.md``.

Example:
    >>> import torch
    >>> from spikegen.metrics import psnr, ssim
    >>> a = torch.rand(1, 3, 32, 32)
    >>> b = (a + 0.05 * torch.randn_like(a)).clamp(0, 1)
    >>> bool(psnr(a, b) > 20) and bool(ssim(a, b) < 1)
    True
"""

from __future__ import annotations

from spikegen.metrics.brisque import BRISQUE, brisque
from spikegen.metrics.lpips import LPIPS, lpips
from spikegen.metrics.niqe import NIQE, niqe
from spikegen.metrics.psnr import PSNR, psnr
from spikegen.metrics.resize import imresize
from spikegen.metrics.ssim import SSIM, ssim

__all__ = ["psnr", "ssim", "lpips", "niqe", "brisque", "PSNR", "SSIM", "LPIPS", "NIQE", "BRISQUE", "imresize"]
