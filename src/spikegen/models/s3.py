"""The S3 (spatial-temporal separable spike) encoder of SpikeGen (paper section 3.2).

A binary spike stream ``[B, T, H, W]`` becomes one feature map per token position,
``[B, C, ceil(H/8), ceil(W/8)]``, on the same grid as the RGB VAE latents:

1. **Spatio-temporal down-sampling** -- a Conv3d stem ``1 -> c0`` and three stride-2 Conv3d
   blocks ``c0 -> c1 -> c2 -> c3`` (default ``32 -> 64 -> 128 -> 256``), each followed by
   LeakyReLU(0.2) and InstanceNorm, then a 1x1x1 Conv3d to ``C`` (the transformer width) and
   LeakyReLU: ``[B, C, T/8, H/8, W/8]``.
2. **Temporal attention** -- two 1x1x1 Conv3d with a LeakyReLU between and a sigmoid after
   give per-feature weights in (0, 1); the weighted features are **summed** over time:
   ``[B, C, H/8, W/8]``.
3. **Spatial refinement** -- a 3x3 Conv2d, LayerNorm over channels, LeakyReLU.

Sizes that are not multiples of 8 are padded first (and the token grid is ``ceil(size/8)``):

* ``H`` and ``W`` are padded at the bottom/right with reflect padding, exactly as the VAE
  helpers pad the RGB image, so the spike tokens and the RGB tokens describe the same pixels.
* ``T`` is padded up to a multiple of 8 by **mirroring the stream in time** (frames
  ``T-2, T-3, ...`` are appended; a stream shorter than the pad is mirrored repeatedly, and a
  1-frame stream is repeated). Mirroring keeps the firing rate and the motion statistics of
  the window, where zero padding would look like darkness and edge replication would
  over-weight the last frame. Because the temporal fusion is a *sum*, the feature magnitude
  grows with ``ceil(T/8)``: train and run with the same ``T`` (the paper: 8 frames for
  deblurring, 24 for SREDS).

Example:
    >>> import torch
    >>> from spikegen.models.s3 import S3Encoder
    >>> enc = S3Encoder(out_channels=64, channels=(8, 16, 32, 64))
    >>> spikes = (torch.rand(2, 8, 50, 70) < 0.1).to(torch.uint8)
    >>> enc(spikes).shape
    torch.Size([2, 64, 7, 9])
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from spikegen.errors import ShapeError

__all__ = ["S3Encoder", "pad_time_mirror", "prepare_spikes"]


def pad_time_mirror(x: torch.Tensor, multiple: int = 8, dim: int = 2) -> torch.Tensor:
    """Pad dimension ``dim`` of ``x`` up to a multiple by mirroring (without repeating the edge).

    Index ``T + k`` maps to the mirrored index of a period-``2T-2`` reflection, so any amount
    of padding works (a single frame is simply repeated).

    Example:
        >>> x = torch.arange(5.0).view(1, 1, 5, 1, 1)
        >>> pad_time_mirror(x).flatten().tolist()
        [0.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0]
    """
    t = x.shape[dim]
    pad = (-t) % multiple
    if pad == 0:
        return x
    if t == 1:
        idx = torch.zeros(t + pad, dtype=torch.long, device=x.device)
    else:
        period = 2 * t - 2
        k = torch.arange(t + pad, device=x.device) % period
        idx = torch.where(k < t, k, period - k)
    return x.index_select(dim, idx)


def prepare_spikes(spikes: torch.Tensor, *, dtype: torch.dtype | None = None, name: str = "spikes") -> torch.Tensor:
    """Check a spike batch and return it as float ``[B, 1, T, H, W]``.

    Accepts ``[B, T, H, W]`` or ``[B, 1, T, H, W]`` of {0,1} in any dtype (uint8, bool, float).
    """
    if not isinstance(spikes, torch.Tensor):
        raise ShapeError(f"{name}: expected a torch.Tensor [B,T,H,W], got {type(spikes).__name__}")
    if spikes.ndim == 5:
        if spikes.shape[1] != 1:
            raise ShapeError(f"{name}: expected [B,T,H,W] or [B,1,T,H,W], got shape {tuple(spikes.shape)}")
    elif spikes.ndim == 4:
        spikes = spikes.unsqueeze(1)
    else:
        raise ShapeError(f"{name}: expected [B,T,H,W] or [B,1,T,H,W], got shape {tuple(spikes.shape)}")
    if min(spikes.shape) == 0:
        raise ShapeError(f"{name}: empty spike tensor of shape {tuple(spikes.shape)}")
    if dtype is None:
        dtype = spikes.dtype if spikes.is_floating_point() else torch.float32
    return spikes.to(dtype)


class S3Encoder(nn.Module):
    """Spatial-temporal separable spike encoder: ``[B, T, H, W] -> [B, C, ceil(H/8), ceil(W/8)]``.

    Args:
        out_channels: ``C``, the output width (SpikeGen uses the transformer width).
        channels: widths of the stem and the three stride-2 blocks (default ``(32, 64, 128, 256)``
            as the paper; the ``tiny`` preset uses narrower ones).
        negative_slope: LeakyReLU slope (0.2).

    Shape:
        - Input: ``[B, T, H, W]`` or ``[B, 1, T, H, W]`` spikes (uint8/bool/float {0,1}).
        - Output: ``[B, C, ceil(H/8), ceil(W/8)]``.

    Example:
        >>> enc = S3Encoder(32, channels=(8, 8, 16, 16))
        >>> enc(torch.zeros(1, 8, 64, 64)).shape
        torch.Size([1, 32, 8, 8])
    """

    stride: int = 8

    def __init__(self, out_channels: int, channels: Sequence[int] = (32, 64, 128, 256), negative_slope: float = 0.2):
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"channels must list 4 widths (stem + 3 stride-2 blocks), got {channels}")
        self.out_channels = int(out_channels)
        self.channels = tuple(int(c) for c in channels)
        act = lambda: nn.LeakyReLU(negative_slope, inplace=True)  # noqa: E731
        c0, c1, c2, c3 = self.channels
        self.stem = nn.Sequential(nn.Conv3d(1, c0, 3, padding=1), act(), nn.InstanceNorm3d(c0))
        self.down = nn.Sequential(
            *(
                nn.Sequential(nn.Conv3d(ci, co, 3, stride=2, padding=1), act(), nn.InstanceNorm3d(co))
                for ci, co in ((c0, c1), (c1, c2), (c2, c3))
            )
        )
        self.proj = nn.Sequential(nn.Conv3d(c3, out_channels, 1), act())
        self.temporal_attn = nn.Sequential(
            nn.Conv3d(out_channels, out_channels, 1),
            act(),
            nn.Conv3d(out_channels, out_channels, 1),
            nn.Sigmoid(),
        )
        self.refine_conv = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.refine_norm = nn.LayerNorm(out_channels)
        self.refine_act = act()

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        p = self.refine_conv.weight
        x = prepare_spikes(spikes, dtype=p.dtype).to(p.device)
        # pad H, W (reflect, as the VAE helpers) and T (mirror) to multiples of 8
        b, _, t, h, w = x.shape
        ph, pw = (-h) % self.stride, (-w) % self.stride
        if ph or pw:
            mode = "reflect" if (ph < h and pw < w) else "replicate"
            x = F.pad(x.reshape(b, t, h, w), (0, pw, 0, ph), mode=mode).reshape(b, 1, t, h + ph, w + pw)
        x = pad_time_mirror(x, self.stride, dim=2)
        x = self.proj(self.down(self.stem(x)))  # [B, C, T/8, H/8, W/8]
        x = (x * self.temporal_attn(x)).sum(dim=2)  # [B, C, H/8, W/8]
        x = self.refine_conv(x)
        x = self.refine_norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.refine_act(x)
