"""Noise spike transforms: spikes dropped (missed detections) or added (dark current), at random.

A paired ground-truth image is left unchanged.

* :func:`spike_drop` / :class:`SpikeDrop`: each spike removed with probability ``p``;
* :func:`spike_add` / :class:`SpikeAdd`: a spurious spike added with probability ``q`` per
  pixel and frame.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spikegen.spikes.transforms._common import prob, rand
from spikegen.spikes.transforms.base import SpikeTransform

__all__ = ["SpikeAdd", "SpikeDrop", "spike_add", "spike_drop"]


class SpikeDrop(SpikeTransform):
    """Module form of :func:`spike_drop`.

    Example:
        >>> SpikeDrop(1.0)(torch.ones(3, 2, 2, dtype=torch.uint8)).sum().item()
        0
    """

    def __init__(self, p: float, *, generator: torch.Generator | None = None) -> None:
        super().__init__(generator=generator)
        self.p = prob(p, "p")

    def _spikes(self, x, params, g):
        if self.p == 0.0:
            return x.clone()
        drop = rand(x.shape, g, x.device) < self.p
        return x.masked_fill(drop, 0)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def spike_drop(spikes: Tensor, p: float, *, generator: torch.Generator | None = None) -> Tensor:
    """Remove each spike independently with probability ``p`` (missed detections).

    The expected firing rate becomes ``(1 - p)`` times the input's.

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``; output: the same shape and dtype.

    Example:
        >>> s = torch.ones(100, 10, 10, dtype=torch.uint8)
        >>> y = spike_drop(s, 0.3, generator=torch.Generator().manual_seed(0))
        >>> round(float(y.float().mean()), 1)
        0.7
    """
    return SpikeDrop(p)(spikes, generator=generator)


class SpikeAdd(SpikeTransform):
    """Module form of :func:`spike_add`.

    Example:
        >>> SpikeAdd(1.0)(torch.zeros(3, 2, 2)).sum().item()
        12.0
    """

    def __init__(self, q: float, *, generator: torch.Generator | None = None) -> None:
        super().__init__(generator=generator)
        self.q = prob(q, "q")

    def _spikes(self, x, params, g):
        if self.q == 0.0:
            return x.clone()
        add = rand(x.shape, g, x.device) < self.q
        return x.masked_fill(add, 1)

    def extra_repr(self) -> str:
        return f"q={self.q}"


def spike_add(spikes: Tensor, q: float, *, generator: torch.Generator | None = None) -> Tensor:
    """Add a spurious spike with probability ``q`` per pixel and frame (dark-current noise).

    A pixel-frame that already holds a spike keeps it, so the rate becomes ``r + q (1 - r)``.

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``; output: the same shape and dtype.

    Example:
        >>> s = torch.zeros(100, 10, 10, dtype=torch.bool)
        >>> y = spike_add(s, 0.2, generator=torch.Generator().manual_seed(0))
        >>> y.dtype, round(float(y.float().mean()), 1)
        (torch.bool, 0.2)
    """
    return SpikeAdd(q)(spikes, generator=generator)
