"""Temporal spike transforms: crops in time, playing backwards, lower frame rates.

A paired ground-truth image is left unchanged.

* :func:`temporal_crop`, :func:`center_temporal_crop` / :class:`CenterTemporalCrop`,
  :func:`random_temporal_crop` / :class:`RandomTemporalCrop`;
* :func:`temporal_reverse` / :class:`TemporalReverse`;
* :func:`temporal_subsample` / :class:`TemporalSubsample`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spikegen.errors import ShapeError
from spikegen.spikes.transforms._common import PerSample, check_spikes, draw_ints, per_sample, pos_int
from spikegen.spikes.transforms.base import SpikeTransform

__all__ = [
    "CenterTemporalCrop",
    "RandomTemporalCrop",
    "TemporalReverse",
    "TemporalSubsample",
    "center_temporal_crop",
    "random_temporal_crop",
    "temporal_crop",
    "temporal_reverse",
    "temporal_subsample",
]


# cores on [B, T, H, W]; no checks


def _tcrop_core(x: Tensor, starts: list[int], length: int) -> Tensor:
    if len(set(starts)) == 1:
        s = starts[0]
        return x[:, s : s + length].contiguous()
    return torch.stack([x[i, s : s + length] for i, s in enumerate(starts)])


def _check_tcrop(T: int, length: int, starts: list[int]) -> None:
    if length > T:
        raise ShapeError(f"temporal crop of {length} frames does not fit in {T} frames")
    for s in starts:
        if not 0 <= s <= T - length:
            raise ShapeError(f"temporal crop of {length} frames at start={s} leaves the {T} frames")


def _subsample_core(x: Tensor, factor: int, offset: int, mode: str) -> Tensor:
    if mode == "pick":
        return x[:, offset::factor].contiguous()
    T = x.shape[1]
    n = (T - offset) // factor
    if n == 0:
        raise ShapeError(f"temporal_subsample(mode='any'): {T} frames give no whole group of {factor} after offset {offset}")
    g = x[:, offset : offset + n * factor]
    g = g.reshape(x.shape[0], n, factor, *x.shape[2:])
    return g.amax(dim=2) if g.dtype != torch.bool else g.any(dim=2)


def temporal_crop(spikes: Tensor, start: PerSample, length: int) -> Tensor:
    """Frames ``start .. start + length - 1`` (``start`` an int or one per sample).

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``.
        - output: ``[length, H, W]`` or ``[B, length, H, W]``, same dtype.

    Example:
        >>> temporal_crop(torch.arange(6).view(6, 1, 1) % 2, 1, 3).flatten().tolist()
        [1, 0, 1]
    """
    x, batched = check_spikes(spikes)
    length = pos_int(length, "length")
    starts = per_sample(start, x.shape[0], "start")
    _check_tcrop(x.shape[1], length, starts)
    y = _tcrop_core(x, starts, length)
    return y if batched else y[0]


class CenterTemporalCrop(SpikeTransform):
    """Module form of :func:`center_temporal_crop`.

    Example:
        >>> CenterTemporalCrop(3)(torch.zeros(7, 2, 2)).shape
        torch.Size([3, 2, 2])
    """

    def __init__(self, length: int) -> None:
        super().__init__()
        self.length = pos_int(length, "length")

    def _spikes(self, x, params, g):
        T = x.shape[1]
        _check_tcrop(T, self.length, [0])
        return _tcrop_core(x, [(T - self.length) // 2], self.length)

    def extra_repr(self) -> str:
        return f"length={self.length}"


def center_temporal_crop(spikes: Tensor, length: int) -> Tensor:
    """The middle ``length`` frames (start ``(T - length) // 2``).

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``.
        - output: ``[length, H, W]`` or ``[B, length, H, W]``, same dtype.

    Example:
        >>> center_temporal_crop(torch.eye(5).view(5, 5, 1), 1)[0, :, 0].tolist()
        [0.0, 0.0, 1.0, 0.0, 0.0]
    """
    return CenterTemporalCrop(length)(spikes)


class RandomTemporalCrop(SpikeTransform):
    """Module form of :func:`random_temporal_crop`.

    Example:
        >>> RandomTemporalCrop(4)(torch.zeros(2, 9, 3, 3), generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 4, 3, 3])
    """

    def __init__(self, length: int, *, same_on_batch: bool = False, generator: torch.Generator | None = None) -> None:
        super().__init__(generator=generator)
        self.length = pos_int(length, "length")
        self.same_on_batch = bool(same_on_batch)

    def _params(self, x, g):
        T = x.shape[1]
        _check_tcrop(T, self.length, [0])
        return draw_ints(T - self.length, 1 if self.same_on_batch else x.shape[0], g, x.shape[0])

    def _spikes(self, x, params, g):
        return _tcrop_core(x, params, self.length)

    def extra_repr(self) -> str:
        return f"length={self.length}, same_on_batch={self.same_on_batch}"


def random_temporal_crop(
    spikes: Tensor, length: int, *, generator: torch.Generator | None = None, same_on_batch: bool = False
) -> Tensor:
    """``length`` consecutive frames at a uniformly random start (per sample of a batch).

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``.
        - output: ``[length, H, W]`` or ``[B, length, H, W]``, same dtype.

    Example:
        >>> s = torch.arange(10).view(10, 1, 1) % 2
        >>> random_temporal_crop(s, 4, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([4, 1, 1])
    """
    return RandomTemporalCrop(length, same_on_batch=same_on_batch)(spikes, generator=generator)


class TemporalReverse(SpikeTransform):
    """Module form of :func:`temporal_reverse`.

    Example:
        >>> TemporalReverse()(torch.tensor([1, 0, 0]).view(3, 1, 1)).flatten().tolist()
        [0, 0, 1]
    """

    def _spikes(self, x, params, g):
        return x.flip(1)


def temporal_reverse(spikes: Tensor) -> Tensor:
    """Play the stream backwards (frame ``t`` becomes frame ``T - 1 - t``).

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``; output: the same shape and dtype.

    Example:
        >>> temporal_reverse(torch.tensor([1, 1, 0]).view(3, 1, 1)).flatten().tolist()
        [0, 1, 1]
    """
    return TemporalReverse()(spikes)


class TemporalSubsample(SpikeTransform):
    """Module form of :func:`temporal_subsample`.

    Example:
        >>> TemporalSubsample(3)(torch.zeros(10, 2, 2)).shape
        torch.Size([4, 2, 2])
    """

    def __init__(self, factor: int, offset: int = 0, *, mode: str = "pick") -> None:
        super().__init__()
        self.factor = pos_int(factor, "factor")
        self.offset = pos_int(offset, "offset", 0)
        if self.offset >= self.factor:
            raise ShapeError(f"offset must be in [0, factor={self.factor}), got {self.offset}")
        if mode not in ("pick", "any"):
            raise ShapeError(f"mode must be 'pick' or 'any', got {mode!r}")
        self.mode = mode

    def _spikes(self, x, params, g):
        if self.offset >= x.shape[1]:
            raise ShapeError(f"offset {self.offset} leaves a stream of {x.shape[1]} frames")
        return _subsample_core(x, self.factor, self.offset, self.mode)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, offset={self.offset}, mode={self.mode!r}"


def temporal_subsample(spikes: Tensor, factor: int, offset: int = 0, *, mode: str = "pick") -> Tensor:
    """Keep one frame in ``factor``: a ``factor`` x lower frame rate.

    Args:
        spikes: spikes of {0, 1}.
        factor: keep every ``factor``-th frame.
        offset: the first frame kept, in ``[0, factor)``.
        mode: ``"pick"`` keeps frames ``offset, offset + factor, ...`` (``ceil((T - offset) /
            factor)`` frames); ``"any"`` ORs each group of ``factor`` frames from ``offset``
            (a pixel fires if it fired in any frame of its group; incomplete last groups are
            dropped: ``(T - offset) // factor`` frames).

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``.
        - output: ``[T', H, W]`` or ``[B, T', H, W]``, same dtype.

    Example:
        >>> s = torch.tensor([0, 1, 0, 0, 1, 0, 1]).view(7, 1, 1)
        >>> temporal_subsample(s, 2).flatten().tolist(), temporal_subsample(s, 2, mode="any").flatten().tolist()
        ([0, 0, 1, 1], [1, 0, 1])
    """
    return TemporalSubsample(factor, offset, mode=mode)(spikes)
