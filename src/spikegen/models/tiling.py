"""Sampling large images in overlapping tiles, one sample at a time: bounded memory.

:meth:`SpikeGen.sample` attends over every token of the image and runs all samples as one
batch, so its memory grows with ``H x W x samples`` (and attention with its square). For
photos of a few megapixels :func:`sample_tiled` splits the image into the fewest overlapping
tiles of at most ``tile`` pixels a side (sizes in whole multiples of 8, the token size), samples each
tile and each of the ``num_samples`` samples separately, and blends the overlaps with linear
ramps. Peak memory is then that of one tile and one sample, whatever the image size.

An image that fits in one tile with one sample makes exactly one ``model.sample`` call, so
the result is the same as calling the model directly.

Example:
    >>> import torch
    >>> boxes = tile_boxes(644, 1024, tile=512, overlap=32)
    >>> len(boxes), boxes[0], boxes[-1]
    (6, (0, 0, 344, 368), (300, 656, 344, 368))
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from spikegen.errors import SpikeGenError

__all__ = ["tile_boxes", "ramp_weights", "sample_tiled"]

#: Tile sizes are multiples of this (the token size in pixels).
ALIGN = 8


def _axis(n: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """``(start, size)`` of the fewest tiles of at most ``tile`` covering ``[0, n)``, each pair of
    neighbours overlapping by at least ``overlap``; sizes rounded up to a multiple of 8."""
    if n <= tile:
        return [(0, n)]
    k = math.ceil((n - overlap) / (tile - overlap))
    size = min(n, ALIGN * math.ceil((n + (k - 1) * overlap) / k / ALIGN))
    starts = [round(i * (n - size) / (k - 1)) for i in range(k)]
    return [(s, size) for s in starts]


def tile_boxes(height: int, width: int, *, tile: int = 512, overlap: int = 32) -> list[tuple[int, int, int, int]]:
    """``(top, left, h, w)`` boxes covering an image, row-major.

    Args:
        height, width: image size.
        tile: largest tile side (a multiple of 8, at least ``2 * overlap + 8``).
        overlap: least overlap between neighbouring tiles, in pixels.

    Example:
        >>> tile_boxes(100, 120, tile=512)
        [(0, 0, 100, 120)]
    """
    if tile % ALIGN or tile < 2 * overlap + ALIGN or overlap < 0:
        raise SpikeGenError(f"--tile must be a multiple of {ALIGN} and at least 2 x overlap + {ALIGN} "
                            f"(got tile {tile}, overlap {overlap})")
    return [(t, l, h, w) for t, h in _axis(height, tile, overlap) for l, w in _axis(width, tile, overlap)]


def ramp_weights(box: tuple[int, int, int, int], height: int, width: int, overlap: int) -> torch.Tensor:
    """``[h, w]`` blending weights of a tile: 1 inside, falling linearly to near 0 over
    ``overlap`` pixels on every side that has a neighbour (not on the image border)."""
    t, l, h, w = box

    def ramp(n: int, lo_open: bool, hi_open: bool) -> torch.Tensor:
        r = torch.ones(n)
        if overlap > 0:
            x = (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap
            m = min(overlap, n)
            if lo_open:
                r[:m] = torch.minimum(r[:m], x[:m])
            if hi_open:
                r[n - m:] = torch.minimum(r[n - m:], x[:m].flip(0))
        return r

    ry = ramp(h, t > 0, t + h < height)
    rx = ramp(w, l > 0, l + w < width)
    return ry[:, None] * rx[None, :]


def sample_tiled(model: Any, rgb: torch.Tensor | None, spikes: torch.Tensor | None, *, num_samples: int = 1,
                 tile: int | None = 512, overlap: int = 32, temperature: float | None = None,
                 progress: Callable[[int], None] | None = None, **sample_kwargs: Any) -> torch.Tensor:
    """``num_samples`` samples of :meth:`SpikeGen.sample`, tile by tile and one sample at a time.

    Args:
        model: a :class:`spikegen.models.SpikeGen` (anything with its ``sample`` and ``config``).
        rgb: ``[B, 3, H, W]`` or ``None``.
        spikes: ``[B, T, H, W]`` or ``None`` (at least one of the two).
        num_samples: samples per input ``S``.
        tile: largest tile side in pixels (multiple of 8); ``None`` = the whole image at once.
        overlap: least overlap of neighbouring tiles (blended with linear ramps).
        temperature: as ``model.sample``; with ``S > 1`` and a stored temperature of 0 it
            becomes 1, so that the samples differ (as ``model.sample(num_samples=S)`` does).
        progress: called with ``1`` after each (tile, sample) pass.
        **sample_kwargs: passed to ``model.sample`` (gamma, steps, generator, tfp_rgb, ...).

    Returns:
        ``[B, S, 3, H, W]`` float32 on the CPU.

    Shape:
        - rgb: ``(B, 3, H, W)``; spikes: ``(B, T, H, W)``
        - output: ``(B, S, 3, H, W)``
    """
    ref = rgb if rgb is not None else spikes
    if ref is None:
        raise SpikeGenError("give rgb, spikes or both")
    b, (height, width) = ref.shape[0], ref.shape[-2:]
    s = int(num_samples)
    if s < 1:
        raise SpikeGenError(f"samples must be >= 1, got {num_samples}")
    if temperature is None and s > 1 and float(getattr(model.config, "sample_temperature", 1.0)) == 0.0:
        temperature = 1.0
    boxes = tile_boxes(height, width, tile=tile, overlap=overlap) if tile else [(0, 0, height, width)]
    out = torch.zeros(b, s, 3, height, width)
    norm = torch.zeros(height, width)
    for box in boxes:
        t, l, h, w = box
        r = rgb[..., t:t + h, l:l + w] if rgb is not None else None
        sp = spikes[..., t:t + h, l:l + w] if spikes is not None else None
        wgt = ramp_weights(box, height, width, overlap) if len(boxes) > 1 else torch.ones(h, w)
        for k in range(s):
            y = model.sample(rgb=r, spikes=sp, num_samples=1, temperature=temperature, **sample_kwargs)
            out[:, k, :, t:t + h, l:l + w] += y.float().cpu() * wgt
            if progress is not None:
                progress(1)
        norm[t:t + h, l:l + w] += wgt
    return out / norm
