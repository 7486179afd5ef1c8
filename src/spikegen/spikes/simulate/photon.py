"""SpikeGen's photon-sampling converter (the pretraining spikes): :func:`photon_probability`,
the intensity map, and :func:`photon_sampling`, the spike frames drawn from it.

Example:
    >>> import torch
    >>> from spikegen.spikes.simulate.photon import photon_sampling
    >>> s = photon_sampling(torch.rand(1, 3, 16, 16), frames=2, coverage=0.0)
    >>> s.shape, int(s.sum())
    (torch.Size([1, 2, 16, 16]), 0)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from spikegen.checks import positive_int
from spikegen.degrade import gaussian_blur, rgb_to_gray
from spikegen.errors import ShapeError
from spikegen.spikes.simulate._common import light_tensor

__all__ = ["photon_probability", "photon_sampling"]


def photon_probability(rgb: Tensor, *, sigma: float = 1.0, gamma: float = 1.0) -> Tensor:
    r"""The photon-sampling intensity map before noise (differentiable).

    ``gray = 0.2989 R + 0.5870 G + 0.1140 B``, min-max normalised per sample (a constant image
    gives zeros), Gaussian smoothing (``sigma``, kernel ``2 * round(3 sigma) + 1``, reflect
    borders), then the power ``gamma``. Not yet normalised to sum 1.

    Args:
        rgb: ``[B, 3, H, W]``, ``[3, H, W]`` or 1-channel images in [0, 1].

    Returns:
        ``[B, 1, H, W]`` (``[1, H, W]`` unbatched), values in [0, 1].

    Example:
        >>> photon_probability(torch.rand(2, 3, 16, 16)).shape
        torch.Size([2, 1, 16, 16])
    """
    x = light_tensor(rgb, "rgb")
    if x.ndim not in (3, 4) or x.shape[-3] not in (1, 3):
        raise ShapeError(
            f"rgb must be [B, 3, H, W], [3, H, W] or 1-channel, got shape {tuple(x.shape)}"
        )
    batched = x.ndim == 4
    x = x if batched else x[None]
    gray = rgb_to_gray(x)
    lo = gray.amin(dim=(1, 2, 3), keepdim=True)
    hi = gray.amax(dim=(1, 2, 3), keepdim=True)
    rng = hi - lo
    gray = torch.where(rng > 0, (gray - lo) / torch.where(rng > 0, rng, torch.ones_like(rng)),
                       torch.zeros_like(gray))
    if sigma > 0:
        gray = gaussian_blur(gray, sigma)
    if gamma != 1.0:
        gray = gray.clamp_min(0).pow(gamma)
    return gray if batched else gray[0]


def photon_sampling(
    rgb: Tensor,
    *,
    frames: int = 8,
    coverage: float = 0.1,
    sigma: float = 1.0,
    gamma: float = 1.0,
    noise: float = 0.1,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""The official SpikeGen pretraining converter (DESIGN.md section 2).

    :func:`photon_probability` (gray, min-max, Gaussian ``sigma``, power ``gamma``), plus
    ``U(0, noise)`` drawn per pixel and per frame, normalised to a probability map; then each
    frame draws ``round(coverage * H * W)`` pixel positions with replacement and sets them to 1.
    Because of collisions, the expected density is
    ``mean_i 1 - (1 - p_i) ** round(coverage * H * W)``, a little below ``coverage``.

    Args:
        rgb: ``[B, 3, H, W]`` / ``[3, H, W]`` (or 1-channel) images in [0, 1].
        frames: spike frames per image.
        coverage: draws per frame as a fraction of the pixels.
        sigma, gamma, noise: see above.
        generator: random source (noise and draws).

    Returns:
        uint8 ``[B, frames, H, W]`` of {0, 1} (``[frames, H, W]`` unbatched).

    Example:
        >>> s = photon_sampling(torch.rand(3, 64, 64), generator=torch.Generator().manual_seed(0))
        >>> s.shape, 0.08 < float(s.float().mean()) < 0.1
        (torch.Size([8, 64, 64]), True)
    """
    positive_int(frames, "frames")
    if not (0 <= coverage) or not math.isfinite(coverage):
        raise ShapeError(f"coverage must be a finite value >= 0, got {coverage}")
    if noise < 0:
        raise ShapeError(f"noise must be >= 0, got {noise}")
    base = photon_probability(rgb, sigma=sigma, gamma=gamma)
    batched = base.ndim == 4
    base = base if batched else base[None]
    b, _, h, w = base.shape
    dev = base.device
    n = int(round(coverage * h * w))
    out = torch.zeros((b * frames, h * w), dtype=torch.uint8, device=dev)
    if n > 0 and b > 0:
        p = base.detach().to(torch.float32).expand(b, frames, h, w).reshape(b * frames, h * w)
        if noise > 0:
            gen_dev = generator.device if generator is not None else dev
            u = torch.rand((b * frames, h * w), generator=generator, device=gen_dev).to(dev)
            p = p + noise * u
        s = p.sum(dim=1, keepdim=True)
        p = torch.where(s > 0, p / torch.where(s > 0, s, torch.ones_like(s)),
                        torch.full_like(p, 1.0 / (h * w)))
        if generator is not None and generator.device != dev:
            idx = torch.multinomial(p.to(generator.device), n, replacement=True,
                                    generator=generator).to(dev)
        else:
            idx = torch.multinomial(p, n, replacement=True, generator=generator)
        out.scatter_(1, idx, 1)
    out = out.view(b, frames, h, w)
    return out if batched else out[0]
