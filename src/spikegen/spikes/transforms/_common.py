"""What the spike transforms share (package-private): argument checks and random draws.

Spike inputs are checked once and seen as ``[B, T, H, W]`` (:func:`check_spikes`), a paired
image as ``[B, C, H, W]`` (:func:`check_image`). The random draws are made on the generator's
device (the CPU without one) and moved, so the same generator state gives the same parameters on
any device; ``n = 1`` draws one value for the whole batch (``same_on_batch``).

Example:
    >>> x, batched = check_spikes(torch.ones(4, 2, 2, dtype=torch.uint8))
    >>> tuple(x.shape), batched, as_size(3), per_sample(1, 2, "top")
    ((1, 4, 2, 2), False, (3, 3), [1, 1])
    >>> draw_ints(5, 1, torch.Generator().manual_seed(0), 3)     # one draw, same on the batch of 3
    [2, 2, 2]
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, Union

import torch
from torch import Tensor

from spikegen.errors import ShapeError

__all__ = [
    "PerSample",
    "Size",
    "as_size",
    "check_image",
    "check_spikes",
    "draw_flags",
    "draw_ints",
    "per_sample",
    "pos_int",
    "prob",
    "rand",
    "select",
]

Size = Union[int, Sequence[int]]
PerSample = Union[int, Sequence[int], Tensor]


def check_spikes(spikes: Any, name: str = "spikes") -> tuple[Tensor, bool]:
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


def check_image(image: Any, x: Tensor, batched: bool) -> Tensor:
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


def as_size(size: Size, name: str = "size") -> tuple[int, int]:
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


def pos_int(v: Any, name: str, minimum: int = 1) -> int:
    if isinstance(v, bool):
        raise ShapeError(f"{name} must be an int >= {minimum}, got {v!r}")
    try:
        iv = operator.index(v)
    except TypeError:
        raise ShapeError(f"{name} must be an int >= {minimum}, got {v!r}") from None
    if iv < minimum:
        raise ShapeError(f"{name} must be an int >= {minimum}, got {iv}")
    return iv


def prob(p: Any, name: str) -> float:
    try:
        fp = float(p)
    except (TypeError, ValueError):
        raise ShapeError(f"{name} must be a probability in [0, 1], got {p!r}") from None
    if not 0.0 <= fp <= 1.0:
        raise ShapeError(f"{name} must be a probability in [0, 1], got {fp}")
    return fp


def _gen_device(g: torch.Generator | None) -> torch.device:
    return g.device if g is not None else torch.device("cpu")


def rand(shape: Sequence[int], g: torch.Generator | None, device: torch.device) -> Tensor:
    """Uniform [0, 1) draws made on the generator's device, moved to ``device``."""
    gdev = g.device if g is not None else device
    return torch.rand(tuple(shape), generator=g, device=gdev).to(device)


def draw_ints(high: int, n: int, g: torch.Generator | None, batch: int) -> list[int]:
    """``batch`` ints in ``[0, high]``: ``n`` draws (1 = same on batch), expanded to ``batch``."""
    v = torch.randint(0, high + 1, (n,), generator=g, device=_gen_device(g)).tolist()
    return v * batch if n == 1 else v


def draw_flags(p: float, n: int, g: torch.Generator | None, batch: int) -> list[bool]:
    v = (torch.rand((n,), generator=g, device=_gen_device(g)) < p).tolist()
    return v * batch if n == 1 else v


def per_sample(v: PerSample, batch: int, name: str) -> list[int]:
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


def select(x: Tensor, flags: list[bool], fn) -> Tensor:
    """``fn(x[i])`` where ``flags[i]``, ``x[i]`` elsewhere (per sample along dim 0)."""
    if all(flags):
        return fn(x)
    if not any(flags):
        return x
    mask = torch.tensor(flags, device=x.device).view(-1, *([1] * (x.ndim - 1)))
    return torch.where(mask, fn(x), x)
