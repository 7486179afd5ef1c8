"""Spatial spike transforms: crops, flips, rotations by 90 degrees and nearest-neighbour resizing.

Each applies the same geometry to a paired ground-truth image (resize: bilinear, antialiased
when shrinking).

* :func:`crop`, :func:`center_crop` / :class:`CenterCrop`, :func:`random_crop` /
  :class:`RandomCrop`;
* :func:`hflip` / :class:`HFlip`, :func:`vflip` / :class:`VFlip`, :func:`random_hflip` /
  :class:`RandomHFlip`, :func:`random_vflip` / :class:`RandomVFlip`;
* :func:`rot90` / :class:`Rot90`, :func:`random_rot90` / :class:`RandomRot90`;
* :func:`resize_nearest` / :class:`ResizeNearest`.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from spikegen.errors import ShapeError
from spikegen.spikes.transforms._common import (
    PerSample,
    Size,
    as_size,
    check_spikes,
    draw_flags,
    draw_ints,
    per_sample,
    pos_int,
    prob,
    select,
)
from spikegen.spikes.transforms.base import SpikeTransform

__all__ = [
    "CenterCrop",
    "HFlip",
    "RandomCrop",
    "RandomHFlip",
    "RandomRot90",
    "RandomVFlip",
    "ResizeNearest",
    "Rot90",
    "VFlip",
    "center_crop",
    "crop",
    "hflip",
    "random_crop",
    "random_hflip",
    "random_rot90",
    "random_vflip",
    "resize_nearest",
    "rot90",
    "vflip",
]


# cores on [B, ..., H, W] (spikes [B, T, H, W] or images [B, C, H, W]); no checks


def _crop_core(x: Tensor, tops: list[int], lefts: list[int], h: int, w: int) -> Tensor:
    if len(set(tops)) == 1 and len(set(lefts)) == 1:
        t, left = tops[0], lefts[0]
        return x[..., t : t + h, left : left + w].contiguous()
    return torch.stack([x[i, ..., t : t + h, left : left + w] for i, (t, left) in enumerate(zip(tops, lefts))])


def _check_crop(H: int, W: int, h: int, w: int, tops: list[int], lefts: list[int]) -> None:
    if h > H or w > W:
        raise ShapeError(f"crop {h}x{w} does not fit in frames of {H}x{W}")
    for t, left in zip(tops, lefts):
        if not (0 <= t <= H - h and 0 <= left <= W - w):
            raise ShapeError(f"crop {h}x{w} at (top={t}, left={left}) leaves frames of {H}x{W}")


def _rot_core(x: Tensor, ks: list[int]) -> Tensor:
    ks = [k % 4 for k in ks]
    if len(set(ks)) == 1:
        return torch.rot90(x, ks[0], dims=(-2, -1)).contiguous()
    return torch.stack([torch.rot90(x[i], k, dims=(-2, -1)) for i, k in enumerate(ks)])


def _resize_spikes(x: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == size:
        return x.clone()
    y = F.interpolate(x.to(torch.uint8), size=size, mode="nearest-exact")
    return y.to(x.dtype)


def _resize_image(img: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(img.shape[-2:]) == size:
        return img.clone()
    shrink = size[0] < img.shape[-2] or size[1] < img.shape[-1]
    y = F.interpolate(img.float(), size=size, mode="bilinear", align_corners=False, antialias=shrink)
    return y.to(img.dtype) if img.is_floating_point() else y


def crop(spikes: Tensor, top: PerSample, left: PerSample, size: Size) -> Tensor:
    """Crop a ``size`` window with top-left corner ``(top, left)`` from every frame.

    Args:
        spikes: spikes of {0, 1}.
        top, left: the corner, an int or one int per sample of a batch.
        size: crop size, an int or ``(height, width)``.

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``.
        - output: ``[T, h, w]`` or ``[B, T, h, w]``, same dtype.

    Example:
        >>> s = torch.arange(16).reshape(1, 4, 4) % 2
        >>> crop(s, 1, 2, 2).tolist()
        [[[0, 1], [0, 1]]]
    """
    x, batched = check_spikes(spikes)
    h, w = as_size(size)
    tops, lefts = per_sample(top, x.shape[0], "top"), per_sample(left, x.shape[0], "left")
    _check_crop(x.shape[-2], x.shape[-1], h, w, tops, lefts)
    y = _crop_core(x, tops, lefts, h, w)
    return y if batched else y[0]


class CenterCrop(SpikeTransform):
    """Module form of :func:`center_crop`.

    Example:
        >>> CenterCrop((2, 4))(torch.ones(3, 8, 8)).shape
        torch.Size([3, 2, 4])
    """

    def __init__(self, size: Size, *, align: int = 1) -> None:
        super().__init__()
        self.size = as_size(size)
        self.align = pos_int(align, "align")

    def _params(self, x, g):
        h, w = self.size
        H, W = x.shape[-2:]
        if h > H or w > W:
            raise ShapeError(f"crop {h}x{w} does not fit in frames of {H}x{W}")
        a = self.align
        return [((H - h) // a // 2) * a] * x.shape[0], [((W - w) // a // 2) * a] * x.shape[0]

    def _spikes(self, x, params, g):
        return _crop_core(x, *params, *self.size)

    def _image(self, img, params):
        return _crop_core(img, *params, *self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}, align={self.align}"


def center_crop(spikes: Tensor, size: Size, *, align: int = 1) -> Tensor:
    """Crop the centre ``size`` window of every frame (top/left ``(H - h) // 2``, ``(W - w) // 2``;
    with ``align``, rounded down to multiples of ``align``).

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``.
        - output: ``[T, h, w]`` or ``[B, T, h, w]``, same dtype.

    Example:
        >>> s = torch.zeros(2, 5, 5, dtype=torch.uint8); s[:, 2, 2] = 1
        >>> center_crop(s, 3)[0].tolist()
        [[0, 0, 0], [0, 1, 0], [0, 0, 0]]
    """
    return CenterCrop(size, align=align)(spikes)


class RandomCrop(SpikeTransform):
    """Module form of :func:`random_crop`.

    Example:
        >>> RandomCrop(4)(torch.ones(2, 3, 8, 8), generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 3, 4, 4])
    """

    def __init__(
        self,
        size: Size,
        *,
        align: int = 1,
        same_on_batch: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(generator=generator)
        self.size = as_size(size)
        self.align = pos_int(align, "align")
        self.same_on_batch = bool(same_on_batch)

    def _params(self, x, g):
        h, w = self.size
        B, H, W = x.shape[0], x.shape[-2], x.shape[-1]
        if h > H or w > W:
            raise ShapeError(f"crop {h}x{w} does not fit in frames of {H}x{W}")
        n, a = (1 if self.same_on_batch else B), self.align
        tops = [t * a for t in draw_ints((H - h) // a, n, g, B)]
        lefts = [left * a for left in draw_ints((W - w) // a, n, g, B)]
        return tops, lefts

    def _spikes(self, x, params, g):
        return _crop_core(x, *params, *self.size)

    def _image(self, img, params):
        return _crop_core(img, *params, *self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}, align={self.align}, same_on_batch={self.same_on_batch}"


def random_crop(
    spikes: Tensor,
    size: Size,
    *,
    align: int = 1,
    generator: torch.Generator | None = None,
    same_on_batch: bool = False,
) -> Tensor:
    """Crop a ``size`` window at a uniformly random position (per sample of a batch).

    The draws (top, then left) are those of :func:`spikegen.data.common.random_crop_box`, so a
    dataset switching to this op keeps its samples bit for bit.

    Args:
        spikes: spikes of {0, 1}.
        size: crop size, an int or ``(height, width)``; must fit in the frames.
        align: corners on multiples of ``align`` (e.g. 2 to keep a Bayer pattern, 4 for spikes
            registered with images 4x their size).
        generator: random source (the same state gives the same crop).
        same_on_batch: one position for the whole batch.

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``.
        - output: ``[T, h, w]`` or ``[B, T, h, w]``, same dtype.

    Example:
        >>> s = (torch.rand(4, 16, 16) < 0.5).to(torch.uint8)
        >>> a = random_crop(s, 8, generator=torch.Generator().manual_seed(1))
        >>> b = random_crop(s, 8, generator=torch.Generator().manual_seed(1))
        >>> a.shape, bool(torch.equal(a, b))
        (torch.Size([4, 8, 8]), True)
    """
    return RandomCrop(size, align=align, same_on_batch=same_on_batch)(spikes, generator=generator)


class HFlip(SpikeTransform):
    """Module form of :func:`hflip`.

    Example:
        >>> HFlip()(torch.tensor([[[1, 0, 0]]])).tolist()
        [[[0, 0, 1]]]
    """

    def _spikes(self, x, params, g):
        return x.flip(-1)

    def _image(self, img, params):
        return img.flip(-1)


def hflip(spikes: Tensor) -> Tensor:
    """Mirror every frame left-right.

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``; output: the same shape and dtype.

    Example:
        >>> hflip(torch.tensor([[[1, 0], [1, 1]]], dtype=torch.bool)).int().tolist()
        [[[0, 1], [1, 1]]]
    """
    return HFlip()(spikes)


class VFlip(SpikeTransform):
    """Module form of :func:`vflip`.

    Example:
        >>> VFlip()(torch.tensor([[[1], [0]]])).tolist()
        [[[0], [1]]]
    """

    def _spikes(self, x, params, g):
        return x.flip(-2)

    def _image(self, img, params):
        return img.flip(-2)


def vflip(spikes: Tensor) -> Tensor:
    """Mirror every frame upside down.

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``; output: the same shape and dtype.

    Example:
        >>> vflip(torch.tensor([[[1, 0], [0, 0]]])).tolist()
        [[[0, 0], [1, 0]]]
    """
    return VFlip()(spikes)


class _RandomFlip(SpikeTransform):
    dim = -1

    def __init__(self, p: float = 0.5, *, same_on_batch: bool = False, generator: torch.Generator | None = None) -> None:
        super().__init__(generator=generator)
        self.p = prob(p, "p")
        self.same_on_batch = bool(same_on_batch)

    def _params(self, x, g):
        return draw_flags(self.p, 1 if self.same_on_batch else x.shape[0], g, x.shape[0])

    def _spikes(self, x, params, g):
        return select(x, params, lambda t: t.flip(self.dim))

    def _image(self, img, params):
        return select(img, params, lambda t: t.flip(self.dim))

    def extra_repr(self) -> str:
        return f"p={self.p}, same_on_batch={self.same_on_batch}"


class RandomHFlip(_RandomFlip):
    """Module form of :func:`random_hflip`.

    Example:
        >>> RandomHFlip(p=1.0)(torch.tensor([[[1, 0]]])).tolist()
        [[[0, 1]]]
    """

    dim = -1


class RandomVFlip(_RandomFlip):
    """Module form of :func:`random_vflip`.

    Example:
        >>> RandomVFlip(p=1.0)(torch.tensor([[[1], [0]]])).tolist()
        [[[0], [1]]]
    """

    dim = -2


def random_hflip(
    spikes: Tensor, p: float = 0.5, *, generator: torch.Generator | None = None, same_on_batch: bool = False
) -> Tensor:
    """Mirror left-right with probability ``p`` (drawn per sample of a batch).

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``; output: the same shape and dtype.

    Example:
        >>> s = torch.tensor([[[1, 0]]], dtype=torch.uint8)
        >>> random_hflip(s, 1.0).tolist(), random_hflip(s, 0.0).tolist()
        ([[[0, 1]]], [[[1, 0]]])
    """
    return RandomHFlip(p, same_on_batch=same_on_batch)(spikes, generator=generator)


def random_vflip(
    spikes: Tensor, p: float = 0.5, *, generator: torch.Generator | None = None, same_on_batch: bool = False
) -> Tensor:
    """Mirror upside down with probability ``p`` (drawn per sample of a batch).

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``; output: the same shape and dtype.

    Example:
        >>> random_vflip(torch.tensor([[[1], [0]]]), 1.0).tolist()
        [[[0], [1]]]
    """
    return RandomVFlip(p, same_on_batch=same_on_batch)(spikes, generator=generator)


class Rot90(SpikeTransform):
    """Module form of :func:`rot90`.

    Example:
        >>> Rot90(1)(torch.ones(2, 3, 5)).shape
        torch.Size([2, 5, 3])
    """

    def __init__(self, k: int = 1) -> None:
        super().__init__()
        if isinstance(k, bool):
            raise ShapeError(f"k must be an int, got {k!r}")
        self.k = operator.index(k) % 4

    def _spikes(self, x, params, g):
        return _rot_core(x, [self.k])

    def _image(self, img, params):
        return _rot_core(img, [self.k])

    def extra_repr(self) -> str:
        return f"k={self.k}"


def rot90(spikes: Tensor, k: int = 1) -> Tensor:
    """Rotate every frame by ``k`` x 90 degrees counter-clockwise (as ``numpy.rot90``).

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``.
        - output: ``[T, W, H]`` for odd ``k`` (else ``[T, H, W]``), same dtype.

    Example:
        >>> rot90(torch.tensor([[[1, 2], [3, 4]]]) % 2).tolist()
        [[[0, 0], [1, 1]]]
    """
    return Rot90(k)(spikes)


class RandomRot90(SpikeTransform):
    """Module form of :func:`random_rot90`.

    Example:
        >>> RandomRot90()(torch.ones(2, 3, 4, 4), generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 3, 4, 4])
    """

    def __init__(
        self,
        ks: Sequence[int] = (0, 1, 2, 3),
        *,
        same_on_batch: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(generator=generator)
        ks = tuple(operator.index(k) % 4 for k in ks)
        if not ks:
            raise ShapeError("ks must hold at least one rotation (0, 1, 2 or 3)")
        self.ks = ks
        self.same_on_batch = bool(same_on_batch)

    def _params(self, x, g):
        B, H, W = x.shape[0], x.shape[-2], x.shape[-1]
        odd = any(k % 2 for k in self.ks)
        if odd and H != W and B > 1 and not self.same_on_batch and len(set(k % 2 for k in self.ks)) > 1:
            raise ShapeError(
                f"random rotations by 90 degrees of non-square frames ({H}x{W}) would give samples of "
                f"different shapes in one batch; pass same_on_batch=True or ks=(0, 2)"
            )
        idx = draw_ints(len(self.ks) - 1, 1 if self.same_on_batch else B, g, B)
        return [self.ks[i] for i in idx]

    def _spikes(self, x, params, g):
        return _rot_core(x, params)

    def _image(self, img, params):
        return _rot_core(img, params)

    def extra_repr(self) -> str:
        return f"ks={self.ks}, same_on_batch={self.same_on_batch}"


def random_rot90(
    spikes: Tensor,
    ks: Sequence[int] = (0, 1, 2, 3),
    *,
    generator: torch.Generator | None = None,
    same_on_batch: bool = False,
) -> Tensor:
    """Rotate by ``k`` x 90 degrees, ``k`` drawn uniformly from ``ks`` (per sample of a batch).

    Non-square frames in a batch need ``same_on_batch=True`` (or only even ``ks``), since an
    odd ``k`` swaps ``H`` and ``W``.

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``.
        - output: ``[T, H, W]`` or ``[T, W, H]`` (batched: ``[B, T, ., .]``), same dtype.

    Example:
        >>> s = torch.tensor([[[1, 0], [0, 0]]], dtype=torch.uint8)
        >>> random_rot90(s, ks=(2,)).tolist()
        [[[0, 0], [0, 1]]]
    """
    return RandomRot90(ks, same_on_batch=same_on_batch)(spikes, generator=generator)


class ResizeNearest(SpikeTransform):
    """Module form of :func:`resize_nearest` (a paired image is resized bilinearly).

    Example:
        >>> ResizeNearest((4, 6))(torch.ones(2, 2, 3, dtype=torch.bool)).shape
        torch.Size([2, 4, 6])
    """

    def __init__(self, size: Size) -> None:
        super().__init__()
        self.size = as_size(size)

    def _spikes(self, x, params, g):
        return _resize_spikes(x, self.size)

    def _image(self, img, params):
        return _resize_image(img, self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}"


def resize_nearest(spikes: Tensor, size: Size) -> Tensor:
    """Resize every frame to ``size`` by nearest neighbour (pixel centres, ``nearest-exact``).

    Spikes stay binary: each output pixel copies one input pixel (so up-sampling repeats spikes
    and down-sampling drops pixels; the firing rate of each region is kept on average).

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``.
        - output: ``[T, h, w]`` or ``[B, T, h, w]``, same dtype.

    Example:
        >>> resize_nearest(torch.tensor([[[1, 0]]], dtype=torch.uint8), (2, 4)).tolist()
        [[[1, 1, 0, 0], [1, 1, 0, 0]]]
    """
    return ResizeNearest(size)(spikes)
