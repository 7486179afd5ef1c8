"""SpikeGen's random draws: the truncated normal behind the modality ratio and MAR's mask ratio, token masks, the K-step schedule.

* :func:`sample_gamma`: N(mean, std^2) truncated to ``[low, high]``, exact (inverse CDF). The
  modality ratio g of training is ``sample_gamma(B)`` (N(0.5, 1) on [0, 1]); MAR's mask ratio
  is ``sample_gamma(1, mean=MASK_RATIO_MEAN, std=MASK_RATIO_STD, low=config.mask_ratio_min)``.
* :func:`random_order`, :func:`random_mask`: a random token order per sample, and the training
  mask that hides its first ``ceil(N * ratio)`` tokens.
* :func:`cosine_mask_len`: how many tokens stay masked after each step of K-step generation
  (MaskGIT / MAGE's cosine schedule).

Every draw takes an optional ``torch.Generator``, used on the device it lives on, so that a CPU
generator reproduces the same numbers whatever device the model is on.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> random_mask(2, 6, 0.5, generator=g, device="cpu").sum(dim=1)
    tensor([3., 3.])
    >>> [cosine_mask_len(16, step, 4, remaining=16) for step in range(3)]
    [14, 11, 6]
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = ["uniform", "sample_gamma", "MASK_RATIO_MEAN", "MASK_RATIO_STD", "random_order", "random_mask", "cosine_mask_len"]

#: MAR's mask-ratio distribution: N(1, 0.25^2), truncated to ``[config.mask_ratio_min, 1]``.
MASK_RATIO_MEAN = 1.0
MASK_RATIO_STD = 0.25


def uniform(
    shape: Sequence[int],
    generator: torch.Generator | None,
    device: torch.device | str,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Uniform draws in [0, 1), made on the generator's device and moved to ``device``.

    Shape:
        Output: ``shape``, on ``device``.

    Example:
        >>> a = uniform((2, 3), torch.Generator().manual_seed(0), "cpu")
        >>> b = uniform((2, 3), torch.Generator().manual_seed(0), "cpu")
        >>> a.shape, a.dtype, torch.equal(a, b)
        (torch.Size([2, 3]), torch.float64, True)
    """
    device = torch.device(device)
    dev = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=dev, dtype=dtype).to(device)


def sample_gamma(
    batch: int,
    *,
    mean: float = 0.5,
    std: float = 1.0,
    low: float = 0.0,
    high: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``batch`` draws of N(mean, std^2) truncated to ``[low, high]`` (exact, by inverse CDF).

    Shape:
        Output: ``[batch]`` float32, on ``device``.

    Example:
        >>> g = sample_gamma(1000, generator=torch.Generator().manual_seed(0))
        >>> bool((g >= 0).all() and (g <= 1).all())
        True
    """
    device = torch.device(device)
    a = torch.special.ndtr(torch.tensor((low - mean) / std, dtype=torch.float64))
    b = torch.special.ndtr(torch.tensor((high - mean) / std, dtype=torch.float64))
    u = uniform((batch,), generator, device).to(torch.float64)
    p = a.to(device) + (b - a).to(device) * u
    g = mean + std * torch.special.ndtri(p)
    return g.clamp(low, high).to(torch.float32)


def random_order(batch: int, n: int, generator: torch.Generator | None, device: torch.device | str) -> torch.Tensor:
    """A random permutation of the ``n`` token indices for each of ``batch`` samples.

    Shape:
        Output: ``[batch, n]`` int64, each row a permutation of ``0 .. n-1``.

    Example:
        >>> sorted(random_order(1, 5, torch.Generator().manual_seed(0), "cpu")[0].tolist())
        [0, 1, 2, 3, 4]
    """
    return torch.argsort(uniform((batch, n), generator, device), dim=1)


def random_mask(
    batch: int, n: int, ratio: float, *, generator: torch.Generator | None, device: torch.device | str
) -> torch.Tensor:
    """MAR's training mask: ``ceil(n * ratio)`` tokens per sample, at random, but at least one
    masked and (when ``n > 1``) at least one known; one ratio for the whole batch.

    Shape:
        Output: ``[batch, n]`` float, 1 = masked (to generate), 0 = known.

    Example:
        >>> random_mask(1, 4, 1.0, generator=torch.Generator().manual_seed(0), device="cpu").sum()
        tensor(3.)
    """
    n_mask = min(max(int(math.ceil(n * ratio)), 1), max(n - 1, 1))
    order = random_order(batch, n, generator, device)
    mask = torch.zeros(batch, n, device=device)
    mask.scatter_(1, order[:, :n_mask], 1.0)
    return mask


def cosine_mask_len(n: int, step: int, steps: int, remaining: int) -> int:
    """Tokens still masked after generation step ``step`` (0-based) of ``steps``: MaskGIT's
    cosine schedule ``floor(n cos(pi/2 (step+1)/steps))``, kept between 1 and ``remaining - 1``
    so every step generates at least one token and leaves one for the next (the last step
    generates all that remain whatever this says).

    Example:
        >>> cosine_mask_len(100, 0, 2, remaining=100)
        70
    """
    mask_len = int(math.floor(n * math.cos(math.pi / 2 * (step + 1) / steps)))
    return max(1, min(remaining - 1, mask_len))
