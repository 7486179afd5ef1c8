"""Bayer colour spike cameras: colour filter arrays, mosaicking, simulation and demosaicking.

A colour spike camera puts a Bayer colour filter array (CFA) over the pixels: each pixel
integrates the light of one colour, so its spike stream is a single-channel **mosaic**. The
four Bayer patterns are named by the colours of the top-left 2x2 block, row by row:

=========  ==========
pattern    2x2 block
=========  ==========
``RGGB``   ``R G / G B``
``BGGR``   ``B G / G R``
``GRBG``   ``G R / B G``
``GBRG``   ``G B / R G``
=========  ==========

The pattern refers to the frame as the readers return it (upright: a ``.dat`` file's rows are
flipped on read, see :mod:`spikegen.spikes.io`). A crop at an odd offset or a flip of an even
number of rows/columns changes the phase: :func:`crop_pattern` and :func:`flip_pattern` give
the pattern of the transformed frame.

* :func:`cfa_mask` / :func:`cfa_channels`: the per-pixel colour of a pattern;
* :func:`mosaic` / :class:`Mosaic`: RGB ``[..., 3, H, W]`` -> the intensity each pixel sees,
  ``[..., H, W]``;
* :func:`integrate_and_fire_cfa`: integrate-and-fire of a colour image or video through a CFA
  (:func:`spikegen.spikes.simulate.integrate_and_fire` of the mosaic);
* :func:`demosaic_bilinear` / :class:`DemosaicBilinear`: a single-channel mosaic
  ``[..., H, W]`` -> RGB ``[..., 3, H, W]`` (bilinear interpolation as normalised convolution,
  exact at the borders for a uniform colour);
* :func:`tfp_color` / :func:`tfi_color`: TFP / TFI of a Bayer spike stream, demosaicked.

Example:
    >>> import torch
    >>> rgb = torch.tensor([0.8, 0.4, 0.2]).view(3, 1, 1).expand(3, 8, 8)
    >>> s = integrate_and_fire_cfa(rgb, "RGGB", steps=500, gain=0.6, init="zero")
    >>> s.shape
    torch.Size([500, 8, 8])
    >>> [round(v, 2) for v in tfp_color(s, 500, "RGGB", centers=[250], scale=1 / 0.6)[0, :, 4, 4].tolist()]
    [0.8, 0.4, 0.2]
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikegen.errors import ShapeError
from spikegen.spikes.reconstruct import tfi, tfp
from spikegen.spikes.simulate import integrate_and_fire

__all__ = [
    "CFA_PATTERNS",
    "DemosaicBilinear",
    "Mosaic",
    "cfa_channels",
    "cfa_mask",
    "check_pattern",
    "crop_pattern",
    "demosaic_bilinear",
    "flip_pattern",
    "integrate_and_fire_cfa",
    "mosaic",
    "tfi_color",
    "tfp_color",
]

#: The supported Bayer patterns (colours of the top-left 2x2 block, row by row).
CFA_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")

_CHANNEL = {"R": 0, "G": 1, "B": 2}

# Bilinear demosaicking kernels (normalised convolution): green from its 4 neighbours, red and
# blue from 2 or 4 neighbours; the centre weight makes a measured pixel keep its value.
_K_G = torch.tensor([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]])
_K_RB = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])


def check_pattern(pattern: Any) -> str:
    """The pattern name in upper case, or a :class:`ShapeError` naming the valid ones.

    Example:
        >>> check_pattern("rggb")
        'RGGB'
    """
    if not isinstance(pattern, str) or pattern.upper() not in CFA_PATTERNS:
        raise ShapeError(f"unknown Bayer pattern {pattern!r}; expected one of {', '.join(CFA_PATTERNS)}")
    return pattern.upper()


def crop_pattern(pattern: str, top: int, left: int) -> str:
    """The pattern of a crop whose top-left corner is at ``(top, left)`` in a ``pattern`` frame.

    Example:
        >>> crop_pattern("RGGB", 1, 0), crop_pattern("RGGB", 0, 1), crop_pattern("RGGB", 2, 4)
        ('GBRG', 'GRBG', 'RGGB')
    """
    p = check_pattern(pattern)
    grid = [[p[0], p[1]], [p[2], p[3]]]
    return "".join(grid[(top + r) % 2][(left + c) % 2] for r in range(2) for c in range(2))


def flip_pattern(pattern: str, *, height: int | None = None, width: int | None = None) -> str:
    """The pattern after flipping the rows of a ``height``-row frame and/or the columns of a
    ``width``-column frame (pass the size of each flipped axis; ``None`` = not flipped).

    The new first row is the old row ``height - 1``: an even ``height`` swaps the pattern's rows.

    Example:
        >>> flip_pattern("RGGB", height=250), flip_pattern("RGGB", height=251), flip_pattern("RGGB", width=400)
        ('GBRG', 'RGGB', 'GRBG')
    """
    p = check_pattern(pattern)
    grid = [[p[0], p[1]], [p[2], p[3]]]
    rows = [(height - 1 - r) % 2 if height else r for r in range(2)]
    cols = [(width - 1 - c) % 2 if width else c for c in range(2)]
    return "".join(grid[rows[r]][cols[c]] for r in range(2) for c in range(2))


def cfa_channels(pattern: str, height: int, width: int, *, device: torch.device | str | None = None) -> Tensor:
    """The colour of every pixel, ``0`` = R, ``1`` = G, ``2`` = B.

    Shape:
        - output: long ``[H, W]``.

    Example:
        >>> cfa_channels("GRBG", 2, 4).tolist()
        [[1, 0, 1, 0], [2, 1, 2, 1]]
    """
    p = check_pattern(pattern)
    if int(height) < 1 or int(width) < 1:
        raise ShapeError(f"height and width must be positive, got {height}x{width}")
    block = torch.tensor([[_CHANNEL[p[0]], _CHANNEL[p[1]]], [_CHANNEL[p[2]], _CHANNEL[p[3]]]], device=device)
    h2, w2 = -(-int(height) // 2), -(-int(width) // 2)
    return block.repeat(h2, w2)[: int(height), : int(width)].contiguous()


def cfa_mask(
    pattern: str,
    height: int,
    width: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """One-hot colour masks of a Bayer pattern: ``mask[c, y, x] = 1`` where pixel ``(y, x)``
    sees colour ``c`` (R, G, B).

    Shape:
        - output: ``[3, H, W]`` of {0, 1} in ``dtype``; ``mask.sum(0)`` is all ones.

    Example:
        >>> m = cfa_mask("RGGB", 2, 2)
        >>> m[0].tolist(), m[1].tolist(), m[2].tolist()
        ([[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]])
    """
    ch = cfa_channels(pattern, height, width, device=device)
    return F.one_hot(ch, 3).permute(2, 0, 1).to(dtype).contiguous()


def _check_rgb(rgb: Any, name: str = "rgb") -> Tensor:
    if not isinstance(rgb, Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor, got {type(rgb).__name__}")
    if rgb.ndim < 3 or rgb.shape[-3] != 3:
        raise ShapeError(f"{name} must be RGB [..., 3, H, W], got shape {tuple(rgb.shape)}")
    return rgb if rgb.is_floating_point() else rgb.float()


def mosaic(rgb: Tensor, pattern: str = "RGGB") -> Tensor:
    """The intensity each pixel of a Bayer sensor sees: its own colour channel of ``rgb``.

    Args:
        rgb: float image(s) ``[..., 3, H, W]`` (an image, a batch, a video, ...).
        pattern: ``RGGB``, ``BGGR``, ``GRBG`` or ``GBRG``.

    Shape:
        - rgb: ``[..., 3, H, W]``.
        - output: ``[..., H, W]``, same dtype.

    Example:
        >>> rgb = torch.stack([torch.full((2, 2), v) for v in (0.75, 0.5, 0.25)])
        >>> mosaic(rgb, "RGGB").tolist()
        [[0.75, 0.5], [0.5, 0.25]]
    """
    x = _check_rgb(rgb)
    ch = cfa_channels(pattern, x.shape[-2], x.shape[-1], device=x.device)
    return x.gather(-3, ch.expand(*x.shape[:-3], 1, *ch.shape)).squeeze(-3)


class Mosaic(nn.Module):
    """Module form of :func:`mosaic`.

    Example:
        >>> Mosaic("BGGR")(torch.rand(4, 3, 6, 6)).shape
        torch.Size([4, 6, 6])
    """

    def __init__(self, pattern: str = "RGGB") -> None:
        super().__init__()
        self.pattern = check_pattern(pattern)

    def forward(self, rgb: Tensor) -> Tensor:
        return mosaic(rgb, self.pattern)

    def extra_repr(self) -> str:
        return f"pattern={self.pattern!r}"


def integrate_and_fire_cfa(rgb: Tensor, pattern: str = "RGGB", *, steps: int | None = None, **kwargs: Any):
    """Simulate a Bayer colour spike camera: integrate-and-fire of the mosaicked intensity.

    Each pixel integrates its own colour channel (see :func:`mosaic`), then
    :func:`spikegen.spikes.simulate.integrate_and_fire` fires the spikes; ``kwargs`` are its
    options (``v_th``, ``gain``, ``init``, ``noise``, ``generator``, ``return_state``). A pixel
    of channel value ``I`` fires at the rate ``min(gain * I / v_th, 1)``.

    Args:
        rgb: a still image ``[3, H, W]`` or a batch ``[B, 3, H, W]`` with ``steps``; a video
            ``[T, 3, H, W]`` or a batch of videos ``[B, T, 3, H, W]`` (one frame per step) with
            ``steps=None``. Values ``>= 0`` (images in [0, 1]).
        pattern: the CFA pattern of the simulated sensor.
        steps: number of spike frames for a still image.

    Shape:
        - output: uint8 spikes ``[T, H, W]`` (``[B, T, H, W]`` for batched input), the Bayer
          mosaic stream (and the state, with ``return_state=True``).

    Example:
        >>> s = integrate_and_fire_cfa(torch.ones(2, 3, 4, 4) * 0.5, "RGGB", steps=10, init="zero")
        >>> s.shape, s.dtype
        (torch.Size([2, 10, 4, 4]), torch.uint8)
    """
    x = _check_rgb(rgb)
    m = mosaic(x, pattern)
    if steps is not None:
        if x.ndim == 3:  # [3, H, W] -> [1, H, W]
            inp = m.unsqueeze(0)
        elif x.ndim == 4:  # [B, 3, H, W] -> [B, 1, H, W]
            inp = m.unsqueeze(1)
        else:
            raise ShapeError(
                f"with steps=..., rgb must be a still image [3, H, W] or [B, 3, H, W], got shape "
                f"{tuple(rgb.shape)} (pass a video [T, 3, H, W] with steps=None)"
            )
    else:
        if x.ndim not in (4, 5):
            raise ShapeError(
                f"with steps=None, rgb must be a video [T, 3, H, W] or [B, T, 3, H, W], got shape "
                f"{tuple(rgb.shape)} (for a still image pass steps=...)"
            )
        inp = m
    return integrate_and_fire(inp, steps=steps, **kwargs)


def demosaic_bilinear(x: Tensor, pattern: str = "RGGB") -> Tensor:
    """Bilinear demosaicking of single-channel Bayer mosaics to RGB.

    Each colour plane keeps its measured pixels and fills the others with the mean of the
    nearest measured neighbours (green: the 4-neighbours; red and blue: the 2 or 4 nearest).
    It is computed as a normalised convolution, so borders use the neighbours that exist and a
    uniform colour is reproduced exactly everywhere.

    Args:
        x: mosaics ``[..., H, W]`` (e.g. a TFP frame ``[H, W]``, frames ``[N, H, W]``, a spike
            stream ``[T, H, W]``), any real dtype.
        pattern: the CFA pattern of ``x``.

    Shape:
        - x: ``[..., H, W]``.
        - output: float ``[..., 3, H, W]`` (float64 for float64 input, else float32).

    Example:
        >>> rgb = torch.tensor([0.7, 0.3, 0.1]).view(3, 1, 1).expand(3, 5, 6)
        >>> bool(torch.allclose(demosaic_bilinear(mosaic(rgb, "GBRG"), "GBRG"), rgb))
        True
    """
    if not isinstance(x, Tensor):
        raise ShapeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise ShapeError(f"x must be a mosaic [..., H, W], got shape {tuple(x.shape)}")
    if x.is_complex():
        raise ShapeError(f"x must be real, got dtype {x.dtype}")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    lead, (H, W) = x.shape[:-2], x.shape[-2:]
    m = cfa_mask(pattern, H, W, device=x.device, dtype=dtype)  # [3, H, W]
    k = torch.stack([_K_RB, _K_G, _K_RB]).to(device=x.device, dtype=dtype).unsqueeze(1)  # [3, 1, 3, 3]
    den = F.conv2d(m.unsqueeze(0), k, padding=1, groups=3)  # [1, 3, H, W]
    flat = x.reshape(-1, 1, H, W).to(dtype)
    out = torch.empty((flat.shape[0], 3, H, W), dtype=dtype, device=x.device)
    step = max(1, (1 << 22) // max(1, 3 * H * W))  # bounded scratch for long streams
    for i in range(0, flat.shape[0], step):
        num = F.conv2d(flat[i : i + step] * m, k, padding=1, groups=3)
        torch.div(num, den, out=out[i : i + step])
    return out.reshape(*lead, 3, H, W)


class DemosaicBilinear(nn.Module):
    """Module form of :func:`demosaic_bilinear`.

    Example:
        >>> DemosaicBilinear("RGGB")(torch.rand(2, 6, 8)).shape
        torch.Size([2, 3, 6, 8])
    """

    def __init__(self, pattern: str = "RGGB") -> None:
        super().__init__()
        self.pattern = check_pattern(pattern)

    def forward(self, x: Tensor) -> Tensor:
        return demosaic_bilinear(x, self.pattern)

    def extra_repr(self) -> str:
        return f"pattern={self.pattern!r}"


def tfp_color(spikes: Any, window: int, pattern: str = "RGGB", *, centers: Any = None, scale: float = 1.0) -> Tensor:
    """TFP of a Bayer spike stream, demosaicked to colour.

    Runs :func:`spikegen.spikes.reconstruct.tfp` (``window``, ``centers``, ``scale``: as there;
    ``scale = v_th / gain`` maps the firing rate of a simulated stream back to intensity) and
    :func:`demosaic_bilinear`.

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]`` of {0, 1}.
        - output: float32 ``[N, 3, H, W]`` (``[B, N, 3, H, W]``), one colour frame per centre.

    Example:
        >>> s = torch.ones(20, 4, 4, dtype=torch.uint8)
        >>> tfp_color(s, 9, "BGGR", centers=[10]).shape
        torch.Size([1, 3, 4, 4])
    """
    pattern = check_pattern(pattern)
    return demosaic_bilinear(tfp(spikes, window, centers=centers, scale=scale), pattern)


def tfi_color(
    spikes: Any,
    pattern: str = "RGGB",
    *,
    v_th: float | Tensor = 1.0,
    centers: Any = None,
    max_half_window: int | None = None,
) -> Tensor:
    """TFI of a Bayer spike stream, demosaicked to colour.

    Runs :func:`spikegen.spikes.reconstruct.tfi` (options as there) and
    :func:`demosaic_bilinear`. For a simulated stream the result is about ``gain`` times the
    intensity (divide by the gain to compare with the scene).

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]`` of {0, 1}.
        - output: float32 ``[N, 3, H, W]`` (``[B, N, 3, H, W]``), one colour frame per centre.

    Example:
        >>> s = torch.zeros(20, 4, 4, dtype=torch.uint8); s[::4] = 1
        >>> tfi_color(s, "RGGB", centers=[9])[0, :, 0, 0].tolist()
        [0.25, 0.25, 0.25]
    """
    pattern = check_pattern(pattern)
    return demosaic_bilinear(
        tfi(spikes, v_th=v_th, centers=centers, max_half_window=max_half_window), pattern
    )
