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

One file per kind: :mod:`~spikegen.spikes.transforms.spatial`,
:mod:`~spikegen.spikes.transforms.temporal`, :mod:`~spikegen.spikes.transforms.noise`; the module
base :class:`SpikeTransform` and :class:`Compose` in :mod:`~spikegen.spikes.transforms.base`; the
checks and random draws they share in ``_common`` (package-private).

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

from spikegen.spikes.transforms._common import PerSample, Size  # noqa: F401  (the argument types, as before)
from spikegen.spikes.transforms.base import Compose, SpikeTransform
from spikegen.spikes.transforms.noise import SpikeAdd, SpikeDrop, spike_add, spike_drop
from spikegen.spikes.transforms.spatial import (
    CenterCrop,
    HFlip,
    RandomCrop,
    RandomHFlip,
    RandomRot90,
    RandomVFlip,
    ResizeNearest,
    Rot90,
    VFlip,
    center_crop,
    crop,
    hflip,
    random_crop,
    random_hflip,
    random_rot90,
    random_vflip,
    resize_nearest,
    rot90,
    vflip,
)
from spikegen.spikes.transforms.temporal import (
    CenterTemporalCrop,
    RandomTemporalCrop,
    TemporalReverse,
    TemporalSubsample,
    center_temporal_crop,
    random_temporal_crop,
    temporal_crop,
    temporal_reverse,
    temporal_subsample,
)

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
