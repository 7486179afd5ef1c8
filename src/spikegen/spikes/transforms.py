"""Augmentations of spike streams: spatial, temporal and noise ops that keep spikes binary.

Every op exists as a function and as an ``nn.Module`` (kornia's pairing). Inputs are spike
tensors ``[T, H, W]`` or ``[B, T, H, W]`` of {0, 1} in ``uint8``, ``bool``, any integer or
float dtype; the output has the same dtype and holds only 0 and 1.

* spatial: :func:`crop`, :func:`center_crop` / :class:`CenterCrop`, :func:`random_crop` /
  :class:`RandomCrop`, :func:`hflip` / :class:`HFlip`, :func:`vflip` / :class:`VFlip`,
  :func:`random_hflip` / :class:`RandomHFlip`, :func:`random_vflip` / :class:`RandomVFlip`,
  :func:`rot90` / :class:`Rot90`, :func:`random_rot90` / :class:`RandomRot90`,
  :func:`resize_nearest` / :class:`ResizeNearest`;
* temporal: :func:`temporal_crop`, :func:`center_temporal_crop` / :class:`CenterTemporalCrop`,
  :func:`random_temporal_crop` / :class:`RandomTemporalCrop`, :func:`temporal_reverse` /
  :class:`TemporalReverse`, :func:`temporal_subsample` / :class:`TemporalSubsample`;
* noise: :func:`spike_drop` / :class:`SpikeDrop` (each spike removed with probability ``p``),
  :func:`spike_add` / :class:`SpikeAdd` (a spurious spike added with probability ``q`` per
  pixel and frame);
* :class:`Compose` chains modules.

**Randomness.** Random ops draw from the ``torch.Generator`` passed as ``generator=`` (to the
function, to ``forward``, or stored in the module); the same generator state gives the same
output, on any device (draws are made on the generator's device and moved). For batched input
the random parameters (crop corner, flip, rotation, temporal start) are drawn per sample unless
``same_on_batch=True``. In a dataset, pass a per-sample generator to ``forward`` (as
:class:`spikegen.data.windows.SpikeWindows` does) rather than storing one in the module: a module
copied into data-loader workers would replay the same draws in every worker.

**Ground-truth images.** Every module's ``forward(spikes, image)`` also takes a float image
``[C, H, W]`` (``[B, C, H, W]`` with batched spikes) registered with the spikes, applies the same
geometry to it (crop, flip, rotation; resize is bilinear, antialiased when shrinking) and returns
``(spikes, image)``; temporal and noise ops leave the image unchanged.

Example:
    >>> import torch
    >>> from spikegen.spikes.transforms import Compose, RandomCrop, RandomHFlip, SpikeDrop
    >>> s = (torch.rand(16, 32, 32) < 0.3).to(torch.uint8)
    >>> aug = Compose([RandomCrop(24), RandomHFlip(), SpikeDrop(0.1)])
    >>> a = aug(s, generator=torch.Generator().manual_seed(0))
    >>> b = aug(s, generator=torch.Generator().manual_seed(0))
    >>> a.shape, a.dtype, bool(torch.equal(a, b)), int(a.max())
    (torch.Size([16, 24, 24]), torch.uint8, True, 1)
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from typing import Any, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikegen.errors import ShapeError

__all__ = [
    "CenterCrop",
    "CenterTemporalCrop",
    "Compose",
    "HFlip",
    "RandomCrop",
    "RandomHFlip",
    "RandomRot90",
    "RandomTemporalCrop",
    "RandomVFlip",
    "ResizeNearest",
    "Rot90",
    "SpikeAdd",
    "SpikeDrop",
    "SpikeTransform",
    "TemporalReverse",
    "TemporalSubsample",
    "VFlip",
    "center_crop",
    "center_temporal_crop",
    "crop",
    "hflip",
    "random_crop",
    "random_hflip",
    "random_rot90",
    "random_temporal_crop",
    "random_vflip",
    "resize_nearest",
    "rot90",
    "spike_add",
    "spike_drop",
    "temporal_crop",
    "temporal_reverse",
    "temporal_subsample",
    "vflip",
]

Size = Union[int, Sequence[int]]
PerSample = Union[int, Sequence[int], Tensor]


# --------------------------------------------------------------------------------------------
# checks and random draws
# --------------------------------------------------------------------------------------------


def _check_spikes(spikes: Any, name: str = "spikes") -> tuple[Tensor, bool]:
    """``spikes`` as ``[B, T, H, W]`` (a view) and whether it was batched; checks 0/1 values."""
    if not isinstance(spikes, Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor, got {type(spikes).__name__}")
    if spikes.ndim == 3:
        x, batched = spikes.unsqueeze(0), False
    elif spikes.ndim == 4:
        x, batched = spikes, True
    else:
        raise ShapeError(f"{name} must be [T, H, W] or [B, T, H, W], got shape {tuple(spikes.shape)}")
    if spikes.is_complex():
        raise ShapeError(f"{name} must be real 0/1 values, got dtype {spikes.dtype}")
    if spikes.dtype != torch.bool and spikes.numel() and bool(((x != 0) & (x != 1)).any()):
        raise ShapeError(f"{name} must hold only 0 and 1 (spikes), found other values")
    return x, batched


def _check_image(image: Any, x: Tensor, batched: bool) -> Tensor:
    """``image`` as ``[B, C, H, W]`` matching the spikes ``x`` ``[B, T, H, W]``."""
    if not isinstance(image, Tensor):
        raise ShapeError(f"image must be a torch.Tensor, got {type(image).__name__}")
    want = "[B, C, H, W]" if batched else "[C, H, W]"
    if image.ndim != (4 if batched else 3):
        raise ShapeError(
            f"image must be {want} with {'batched' if batched else 'unbatched'} spikes, got shape "
            f"{tuple(image.shape)}"
        )
    img = image if batched else image.unsqueeze(0)
    if img.shape[0] != x.shape[0] or tuple(img.shape[-2:]) != tuple(x.shape[-2:]):
        raise ShapeError(
            f"image {tuple(image.shape)} is not registered with the spikes "
            f"{tuple(x.shape) if batched else tuple(x.shape[1:])}: batch and H, W must match"
        )
    return img


def _as_size(size: Size, name: str = "size") -> tuple[int, int]:
    if isinstance(size, bool):
        raise ShapeError(f"{name} must be an int or (height, width), got {size!r}")
    if isinstance(size, int):
        size = (size, size)
    try:
        h, w = (operator.index(s) for s in size)
    except (TypeError, ValueError):
        raise ShapeError(f"{name} must be an int or (height, width), got {size!r}") from None
    if h < 1 or w < 1:
        raise ShapeError(f"{name} must be positive, got {(h, w)}")
    return h, w


def _pos_int(v: Any, name: str, minimum: int = 1) -> int:
    if isinstance(v, bool):
        raise ShapeError(f"{name} must be an int >= {minimum}, got {v!r}")
    try:
        iv = operator.index(v)
    except TypeError:
        raise ShapeError(f"{name} must be an int >= {minimum}, got {v!r}") from None
    if iv < minimum:
        raise ShapeError(f"{name} must be an int >= {minimum}, got {iv}")
    return iv


def _prob(p: Any, name: str) -> float:
    try:
        fp = float(p)
    except (TypeError, ValueError):
        raise ShapeError(f"{name} must be a probability in [0, 1], got {p!r}") from None
    if not 0.0 <= fp <= 1.0:
        raise ShapeError(f"{name} must be a probability in [0, 1], got {fp}")
    return fp


def _gen_device(g: torch.Generator | None) -> torch.device:
    return g.device if g is not None else torch.device("cpu")


def _rand(shape: Sequence[int], g: torch.Generator | None, device: torch.device) -> Tensor:
    """Uniform [0, 1) draws made on the generator's device, moved to ``device``."""
    gdev = g.device if g is not None else device
    return torch.rand(tuple(shape), generator=g, device=gdev).to(device)


def _draw_ints(high: int, n: int, g: torch.Generator | None, batch: int) -> list[int]:
    """``batch`` ints in ``[0, high]``: ``n`` draws (1 = same on batch), expanded to ``batch``."""
    v = torch.randint(0, high + 1, (n,), generator=g, device=_gen_device(g)).tolist()
    return v * batch if n == 1 else v


def _draw_flags(p: float, n: int, g: torch.Generator | None, batch: int) -> list[bool]:
    v = (torch.rand((n,), generator=g, device=_gen_device(g)) < p).tolist()
    return v * batch if n == 1 else v


def _per_sample(v: PerSample, batch: int, name: str) -> list[int]:
    if isinstance(v, Tensor):
        v = v.flatten().tolist() if v.ndim else int(v.item())
    if isinstance(v, bool):
        raise ShapeError(f"{name} must be an int or one int per sample, got {v!r}")
    if isinstance(v, int) or hasattr(v, "__index__"):
        return [operator.index(v)] * batch
    vals = [operator.index(a) for a in v]
    if len(vals) != batch:
        raise ShapeError(f"{name} must be an int or {batch} ints (one per sample), got {len(vals)}")
    return vals


def _select(x: Tensor, flags: list[bool], fn) -> Tensor:
    """``fn(x[i])`` where ``flags[i]``, ``x[i]`` elsewhere (per sample along dim 0)."""
    if all(flags):
        return fn(x)
    if not any(flags):
        return x
    mask = torch.tensor(flags, device=x.device).view(-1, *([1] * (x.ndim - 1)))
    return torch.where(mask, fn(x), x)


# --------------------------------------------------------------------------------------------
# cores on [B, ..., H, W] (spikes [B, T, H, W] or images [B, C, H, W]); no checks
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# module base and Compose
# --------------------------------------------------------------------------------------------


class SpikeTransform(nn.Module):
    """Base of the spike transforms: ``forward(spikes, image=None, *, generator=None)``.

    Subclasses implement ``_params(x, g)`` (random parameters for ``x`` ``[B, T, H, W]``),
    ``_spikes(x, params, g)`` and, for spatial ops, ``_image(img, params)``.

    Args:
        generator: default random source of the module (``forward(generator=...)`` overrides it).

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``, any dtype holding 0/1.
        - image (optional): ``[C, H, W]`` (``[B, C, H, W]`` with batched spikes), float.
        - output: the transformed spikes (same dtype), or ``(spikes, image)`` with an image.
    """

    def __init__(self, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.generator = generator

    def _params(self, x: Tensor, g: torch.Generator | None) -> Any:
        return None

    def _spikes(self, x: Tensor, params: Any, g: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def _image(self, img: Tensor, params: Any) -> Tensor:
        return img

    def _run(self, x: Tensor, img: Tensor | None, g: torch.Generator | None) -> tuple[Tensor, Tensor | None]:
        """Transform checked ``x`` ``[B, T, H, W]`` (and ``img`` ``[B, C, H, W]`` or None)."""
        params = self._params(x, g)
        y = self._spikes(x, params, g)
        return y, (self._image(img, params) if img is not None else None)

    def forward(self, spikes: Tensor, image: Tensor | None = None, *, generator: torch.Generator | None = None):
        x, batched = _check_spikes(spikes)
        img = _check_image(image, x, batched) if image is not None else None
        g = generator if generator is not None else self.generator
        y, im = self._run(x, img, g)
        y = y if batched else y[0]
        if image is None:
            return y
        return y, (im if batched else im[0])


class Compose(SpikeTransform):
    """Apply spike transforms one after the other (the input is checked once).

    Args:
        transforms: :class:`SpikeTransform` modules (e.g. :class:`RandomCrop`, :class:`SpikeDrop`).
        generator: default random source, passed to every transform (each transform's own
            generator is used when neither this nor ``forward(generator=...)`` is given).

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``; image (optional) ``[C, H, W]`` / ``[B, C, H, W]``.
        - output: as the last transform gives, same dtype.

    Example:
        >>> s = torch.ones(10, 8, 8, dtype=torch.bool)
        >>> aug = Compose([CenterCrop(4), TemporalSubsample(2), SpikeDrop(1.0)])
        >>> y = aug(s); y.shape, y.dtype, bool(y.any())
        (torch.Size([5, 4, 4]), torch.bool, False)
    """

    def __init__(self, transforms: Iterable[SpikeTransform], *, generator: torch.Generator | None = None) -> None:
        super().__init__(generator=generator)
        ts = list(transforms)
        for t in ts:
            if not isinstance(t, SpikeTransform):
                raise ShapeError(
                    f"Compose takes spikegen.spikes.transforms modules, got {type(t).__name__}"
                )
        self.transforms = nn.ModuleList(ts)

    def _run(self, x, img, g):  # type: ignore[override]
        for t in self.transforms:
            x, img = t._run(x, img, g if g is not None else t.generator)
        return x, img

    def __len__(self) -> int:
        return len(self.transforms)


# --------------------------------------------------------------------------------------------
# spatial ops
# --------------------------------------------------------------------------------------------


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
    x, batched = _check_spikes(spikes)
    h, w = _as_size(size)
    tops, lefts = _per_sample(top, x.shape[0], "top"), _per_sample(left, x.shape[0], "left")
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
        self.size = _as_size(size)
        self.align = _pos_int(align, "align")

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
        self.size = _as_size(size)
        self.align = _pos_int(align, "align")
        self.same_on_batch = bool(same_on_batch)

    def _params(self, x, g):
        h, w = self.size
        B, H, W = x.shape[0], x.shape[-2], x.shape[-1]
        if h > H or w > W:
            raise ShapeError(f"crop {h}x{w} does not fit in frames of {H}x{W}")
        n, a = (1 if self.same_on_batch else B), self.align
        tops = [t * a for t in _draw_ints((H - h) // a, n, g, B)]
        lefts = [left * a for left in _draw_ints((W - w) // a, n, g, B)]
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
        self.p = _prob(p, "p")
        self.same_on_batch = bool(same_on_batch)

    def _params(self, x, g):
        return _draw_flags(self.p, 1 if self.same_on_batch else x.shape[0], g, x.shape[0])

    def _spikes(self, x, params, g):
        return _select(x, params, lambda t: t.flip(self.dim))

    def _image(self, img, params):
        return _select(img, params, lambda t: t.flip(self.dim))

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
        idx = _draw_ints(len(self.ks) - 1, 1 if self.same_on_batch else B, g, B)
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
        self.size = _as_size(size)

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


# --------------------------------------------------------------------------------------------
# temporal ops
# --------------------------------------------------------------------------------------------


def temporal_crop(spikes: Tensor, start: PerSample, length: int) -> Tensor:
    """Frames ``start .. start + length - 1`` (``start`` an int or one per sample).

    Shape:
        - spikes: ``[T, H, W]`` or ``[B, T, H, W]``.
        - output: ``[length, H, W]`` or ``[B, length, H, W]``, same dtype.

    Example:
        >>> temporal_crop(torch.arange(6).view(6, 1, 1) % 2, 1, 3).flatten().tolist()
        [1, 0, 1]
    """
    x, batched = _check_spikes(spikes)
    length = _pos_int(length, "length")
    starts = _per_sample(start, x.shape[0], "start")
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
        self.length = _pos_int(length, "length")

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
        self.length = _pos_int(length, "length")
        self.same_on_batch = bool(same_on_batch)

    def _params(self, x, g):
        T = x.shape[1]
        _check_tcrop(T, self.length, [0])
        return _draw_ints(T - self.length, 1 if self.same_on_batch else x.shape[0], g, x.shape[0])

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
        self.factor = _pos_int(factor, "factor")
        self.offset = _pos_int(offset, "offset", 0)
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


# --------------------------------------------------------------------------------------------
# noise ops
# --------------------------------------------------------------------------------------------


class SpikeDrop(SpikeTransform):
    """Module form of :func:`spike_drop`.

    Example:
        >>> SpikeDrop(1.0)(torch.ones(3, 2, 2, dtype=torch.uint8)).sum().item()
        0
    """

    def __init__(self, p: float, *, generator: torch.Generator | None = None) -> None:
        super().__init__(generator=generator)
        self.p = _prob(p, "p")

    def _spikes(self, x, params, g):
        if self.p == 0.0:
            return x.clone()
        drop = _rand(x.shape, g, x.device) < self.p
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
        self.q = _prob(q, "q")

    def _spikes(self, x, params, g):
        if self.q == 0.0:
            return x.clone()
        add = _rand(x.shape, g, x.device) < self.q
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
