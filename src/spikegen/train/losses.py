"""Fine-tuning losses: the differentiable spike-alignment loss and a pixel loss.

The paper's spike-alignment loss turns the decoded prediction into a spike probability map
(gray, min-max, Gaussian smoothing, power) and compares it with the ground-truth spike stream.
The official release samples binary spikes from that map, which cuts the gradient. We compare
**expected firing rates** instead: under photon sampling a pixel's expected spike count is
proportional to its probability, so the smoothed, min-max normalised probability map of the
prediction is compared (L1) with the smoothed, min-max normalised firing rate of the real
stream. It is the same comparison the sampled version makes in expectation, without the
sampling noise, and every operation is differentiable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spikegen.degrade import gaussian_kernel1d, rgb_to_gray
from spikegen.errors import ShapeError


def gaussian_smooth(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian smoothing of ``[B,1,H,W]`` (kernel 2*round(3 sigma)+1, reflect borders)."""
    if sigma <= 0:
        return x
    radius = max(int(round(3 * sigma)), 1)  # at least 3 taps, also for sigma < 1/6
    k = gaussian_kernel1d(sigma, 2 * radius + 1, device=x.device, dtype=x.dtype)
    r = k.numel() // 2
    pad_mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    x = F.pad(x, (r, r, 0, 0), mode=pad_mode)
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, r, r), mode=pad_mode)
    return F.conv2d(x, k.view(1, 1, -1, 1))


def _minmax(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    return (x - lo) / (hi - lo + eps)


def spike_probability_map(rgb: torch.Tensor, *, sigma: float = 1.0, gamma: float = 1.0) -> torch.Tensor:
    """Prediction ``[B,3,H,W]`` in [0,1] -> spike probability map ``[B,1,H,W]`` in [0,1]."""
    p = _minmax(rgb_to_gray(rgb))
    p = gaussian_smooth(p, sigma).clamp_min(0)
    if gamma != 1.0:
        p = (p + 1e-6).pow(gamma)
    return _minmax(p)


def spike_alignment_loss(pred_rgb: torch.Tensor, spikes: torch.Tensor, *, sigma: float = 1.0,
                         gamma: float = 1.0) -> torch.Tensor:
    """L1 between the prediction's spike probability map and the stream's firing rate.

    Args:
        pred_rgb: ``[B,3,H,W]`` decoded prediction in [0,1] (gradient flows into it).
        spikes: ``[B,T,H,W]`` ground-truth spikes {0,1} at the same resolution.

    Returns:
        A scalar tensor.

    Example:
        >>> x = torch.rand(2, 3, 16, 16, requires_grad=True)
        >>> s = (torch.rand(2, 8, 16, 16) < 0.3).to(torch.uint8)
        >>> spike_alignment_loss(x, s).backward(); x.grad.abs().sum() > 0
        tensor(True)
    """
    if pred_rgb.ndim != 4 or spikes.ndim != 4:
        raise ShapeError(f"expected pred [B,3,H,W] and spikes [B,T,H,W], got {tuple(pred_rgb.shape)} and {tuple(spikes.shape)}")
    if pred_rgb.shape[0] != spikes.shape[0] or pred_rgb.shape[-2:] != spikes.shape[-2:]:
        raise ShapeError(f"batch or size differ: pred {tuple(pred_rgb.shape)}, spikes {tuple(spikes.shape)}")
    p = spike_probability_map(pred_rgb.float(), sigma=sigma, gamma=gamma)
    rate = spikes.float().mean(dim=1, keepdim=True)
    r = _minmax(gaussian_smooth(rate, sigma))
    return F.l1_loss(p, r)


def pixel_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Charbonnier-free plain L1 in pixel space (used where clean ground truth exists)."""
    return F.l1_loss(pred.float(), target.float())
