"""Input checks shared across spikegen: image batches, per-sample values, float tensors, positive ints.

The bottom of the package: it imports only torch, numpy and :mod:`spikegen.errors`. Every check
raises a :class:`~spikegen.errors.ShapeError` whose message names the argument, so a caller's
errors read alike wherever the check runs.

Example:
    >>> import torch
    >>> from spikegen.checks import check_image, per_sample, positive_int
    >>> x, batched = check_image(torch.rand(3, 8, 8))
    >>> x.shape, batched
    (torch.Size([1, 3, 8, 8]), False)
    >>> per_sample(0.5, 2, "g", device=x.device, dtype=x.dtype).shape
    torch.Size([2, 1, 1, 1])
    >>> positive_int(4, "frames")
    4
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from spikegen.errors import ShapeError

__all__ = ["as_float_tensor", "check_image", "per_sample", "plain_number", "positive_int"]


def check_image(img: object, name: str = "img") -> tuple[Tensor, bool]:
    """``img`` as a ``[B, C, H, W]`` float tensor and whether the input had a batch dimension.

    Args:
        img: a floating-point torch tensor, ``[C, H, W]`` or ``[B, C, H, W]`` (values in [0, 1]
            by convention; not checked).
        name: the argument's name in error messages.

    Returns:
        ``(x, batched)``: ``x`` is ``img`` itself when batched, else ``img.unsqueeze(0)``.

    Raises:
        ShapeError: not a tensor, not floating point, or not 3-D / 4-D.

    Shape:
        - img: ``(B, C, H, W)`` or ``(C, H, W)``
        - output: ``(B, C, H, W)`` (``B = 1`` for an unbatched input)

    Example:
        >>> x, batched = check_image(torch.zeros(2, 3, 4, 4))
        >>> x.shape, batched
        (torch.Size([2, 3, 4, 4]), True)
        >>> check_image(torch.zeros(3, 4, 4, dtype=torch.uint8))
        Traceback (most recent call last):
            ...
        spikegen.errors.ShapeError: img must be a floating-point image in [0, 1], got dtype torch.uint8 ...
    """
    if not isinstance(img, Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor, got {type(img).__name__}")
    if not img.is_floating_point():
        raise ShapeError(
            f"{name} must be a floating-point image in [0, 1], got dtype {img.dtype} "
            "(convert uint8 images with img.float() / 255)"
        )
    if img.ndim == 3:
        return img.unsqueeze(0), False
    if img.ndim == 4:
        return img, True
    raise ShapeError(f"{name} must be [C, H, W] or [B, C, H, W], got shape {tuple(img.shape)}")


def per_sample(
    value: float | Tensor,
    batch: int,
    name: str,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    ndim: int = 4,
    bound: Literal["> 0", ">= 0"] | None = None,
    flatten: bool = False,
    detach: bool = False,
) -> Tensor:
    """One value per sample: a number, or a tensor of 1 or ``batch`` values, as ``[B, 1, ...]``.

    Args:
        value: a Python number (or anything ``float()`` takes), or a tensor holding one value
            (broadcast to every sample) or ``batch`` values.
        batch: the batch size ``B``.
        name: the argument's name in error messages.
        device, dtype: of the result.
        ndim: dimensions of the result, ``[B]`` followed by ``ndim - 1`` ones.
        bound: also check that every value is finite and ``> 0`` or ``>= 0`` (``None``: no
            check). A Python ``int`` or ``float`` is checked without a device sync.
        flatten: accept a tensor of any shape holding ``batch`` values (default: a 1-D tensor
            of ``batch`` values, or one value of any shape).
        detach: detach a tensor ``value`` from the autograd graph (default: gradients flow).

    Raises:
        ShapeError: a tensor with the wrong number of values, or a value outside ``bound``.

    Shape:
        - value: a scalar, ``(1,)`` (any shape of one element) or ``(B,)`` (any shape of ``B``
          elements with ``flatten=True``)
        - output: ``(B, 1, ..., 1)`` with ``ndim`` dimensions

    Example:
        >>> per_sample(torch.tensor([1.0, 2.0]), 2, "v_th", ndim=3, bound="> 0").flatten().tolist()
        [1.0, 2.0]
        >>> per_sample(torch.tensor(3.0), 2, "g").shape
        torch.Size([2, 1, 1, 1])
        >>> per_sample(0.0, 2, "v_th", bound="> 0")
        Traceback (most recent call last):
            ...
        spikegen.errors.ShapeError: v_th must be finite and > 0, got 0.0
    """
    if bound not in (None, "> 0", ">= 0"):
        raise ValueError(f"bound must be '> 0', '>= 0' or None, got {bound!r}")
    shape = (batch,) + (1,) * (ndim - 1)
    if isinstance(value, Tensor):
        t = value.detach() if detach else value
        if flatten:
            t = t.to(device=device, dtype=dtype).reshape(-1)
            if t.numel() == 1:
                t = t.expand(batch)
            if t.numel() != batch:
                raise ShapeError(
                    f"{name} must be a float or a tensor of {batch} per-sample values, "
                    f"got shape {tuple(value.shape)}"
                )
        else:
            if t.numel() == 1:
                t = t.reshape(1).expand(batch)
            if t.ndim != 1 or t.shape[0] != batch:
                raise ShapeError(
                    f"{name} must be a float or a tensor of {batch} per-sample values, "
                    f"got shape {tuple(value.shape)}"
                )
            t = t.to(device=device, dtype=dtype)
    else:
        if bound is None:
            return torch.full(shape, float(value), device=device, dtype=dtype)
        fv = plain_number(value, bound)  # no device sync
        if fv is not None:
            return torch.full(shape, fv, device=device, dtype=dtype)
        t = torch.full((batch,), float(value), device=device, dtype=dtype)
    if bound is not None:
        bad = ~torch.isfinite(t) | ((t <= 0) if bound == "> 0" else (t < 0))
        if bool(bad.any()):
            raise ShapeError(f"{name} must be finite and {bound}, got {value}")
    return t.view(shape)


def plain_number(value: object, bound: Literal["> 0", ">= 0"]) -> float | None:
    """``float(value)`` when ``value`` is a Python ``int`` or ``float`` (not ``bool``), finite
    and within ``bound``; ``None`` for anything else (a tensor, an array, a bad value).

    Example:
        >>> plain_number(2, "> 0"), plain_number(0.0, "> 0"), plain_number(True, ">= 0")
        (2.0, None, None)
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    fv = float(value)
    return fv if math.isfinite(fv) and (fv > 0 if bound == "> 0" else fv >= 0) else None


def as_float_tensor(x: object, name: str, *, hint: str | None = None) -> Tensor:
    """``x`` as a floating-point torch tensor (a numpy array is wrapped, not copied, when it
    is contiguous).

    Args:
        x: a floating-point torch tensor or numpy array.
        name: the argument's name in error messages.
        hint: what the values mean, added to the error message of a non-float input.

    Raises:
        ShapeError: neither a tensor nor an array, or not floating point.

    Shape:
        - x: any
        - output: as ``x``

    Example:
        >>> as_float_tensor(np.zeros((2, 2), np.float32), "img").dtype
        torch.float32
        >>> as_float_tensor(torch.zeros(2, dtype=torch.uint8), "img", hint="an image in [0, 1]")
        Traceback (most recent call last):
            ...
        spikegen.errors.ShapeError: img must be a floating-point tensor (an image in [0, 1]), got ...
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if not x.is_floating_point():
        what = f" ({hint})" if hint else ""
        raise ShapeError(
            f"{name} must be a floating-point tensor{what}, got dtype {x.dtype}; "
            "convert uint8 images with x.float() / 255"
        )
    return x


def positive_int(value: Any, name: str) -> int:
    """``value`` when it is an ``int >= 1``.

    A ``bool`` counts as an ``int`` (Python's rule) and numpy integers do not.

    Raises:
        ShapeError: not an ``int``, or below 1.

    Example:
        >>> positive_int(8, "block")
        8
        >>> positive_int(0, "block")
        Traceback (most recent call last):
            ...
        spikegen.errors.ShapeError: block must be a positive int, got 0
    """
    if not isinstance(value, int) or value < 1:
        raise ShapeError(f"{name} must be a positive int, got {value!r}")
    return value
