"""The base of the spike transforms, :class:`SpikeTransform`, and :class:`Compose`, which chains them.

A transform checks its input once in :meth:`SpikeTransform.forward` and works on ``[B, T, H, W]``
spikes (and a ``[B, C, H, W]`` image) through ``_params`` / ``_spikes`` / ``_image``; the
kinds of transform are in :mod:`~spikegen.spikes.transforms.spatial`,
:mod:`~spikegen.spikes.transforms.temporal` and :mod:`~spikegen.spikes.transforms.noise`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from spikegen.errors import ShapeError
from spikegen.spikes.transforms._common import check_image, check_spikes

__all__ = ["Compose", "SpikeTransform"]


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
        x, batched = check_spikes(spikes)
        img = check_image(image, x, batched) if image is not None else None
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
        >>> from spikegen.spikes.transforms import CenterCrop, SpikeDrop, TemporalSubsample
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
