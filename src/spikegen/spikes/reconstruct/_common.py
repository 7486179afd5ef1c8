"""What TFP, TFI and their streamed forms share (package-private): the input checks (spike
arrays, windows, centres, per-sample values) and the CPU / accelerator switch of the kernels.

Example:
    >>> import torch
    >>> from spikegen.spikes.reconstruct._common import check_spikes, resolve_centers
    >>> s, batched = check_spikes(torch.zeros(10, 4, 4, dtype=torch.bool))
    >>> s.shape, s.dtype, batched
    (torch.Size([1, 10, 4, 4]), torch.uint8, False)
    >>> resolve_centers([3, 1], 10, "all", None).tolist()
    [3, 1]
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal, Union

import numpy as np
import torch
from torch import Tensor

from spikegen.errors import ShapeError

#: The centres argument of every reconstruction: ``None``, ``"all"``, ``"valid"``, frame indices.
Centers = Union[None, Literal["all", "valid"], int, Sequence[int], Tensor, np.ndarray]


def small_ops(device: torch.device) -> bool:
    """Whether to split work into many small single-threaded ops (CPU) rather than a few large
    ones (accelerators). See :func:`tiled`.

    The kernels look this function up on this module at each call (``_common.small_ops``), so
    replacing it forces the accelerator code path on the CPU (the tests do)."""
    return device.type == "cpu"


def tiled(core, s: Tensor, n: int) -> Tensor:
    """Apply a per-pixel ``core(s, out)`` to ``s [B, L, H, W]``, filling a float32
    ``[B, n, H, W]`` output.

    On CPU the cores run numpy kernels (single-threaded, about a microsecond per op, so the
    result does not depend on torch's thread count nor on a busy core), on the whole frame; the
    output is allocated by numpy, which puts large arrays on transparent huge pages (half the
    page-fault cost of ``torch.empty``). Elsewhere the cores are a few large torch ops.
    """
    b, _, h, w = s.shape
    if small_ops(s.device):
        out = torch.from_numpy(np.empty((b, n, h, w), dtype=np.float32))
    else:
        out = torch.empty((b, n, h, w), dtype=torch.float32, device=s.device)
    core(s, out)
    return out


# ---------------------------------------------------------------------------- input checks
def to_tensor(x: Any, name: str) -> Tensor:
    """``x`` as a torch tensor: a numpy array is wrapped (bool viewed as uint8), not copied."""
    if isinstance(x, np.ndarray):
        if x.dtype == np.bool_:
            x = x.view(np.uint8)
        with warnings.catch_warnings():  # read-only (memory-mapped) arrays: we never write
            warnings.simplefilter("ignore", UserWarning)
            x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    return x


def binary_uint8(x: Tensor, name: str) -> Tensor:
    """Return ``x`` as uint8 {0, 1}, raising if it holds other values."""
    if x.dtype == torch.bool:
        return x.view(torch.uint8)
    if x.numel() == 0:
        return x.to(torch.uint8)
    if x.is_floating_point() or x.is_complex():
        if not bool(((x == 0) | (x == 1)).all()):
            raise ShapeError(f"{name} must hold only 0 and 1 (spikes), found other values")
        return x.to(torch.uint8)
    if x.dtype == torch.uint8 and x.device.type == "cpu":
        hi = int(np.max(x.numpy()))  # numpy's reduction: several times faster than aminmax
        if hi > 1:
            raise ShapeError(f"{name} must hold only 0 and 1 (spikes), found values in [0, {hi}]")
        return x
    lo, hi = torch.aminmax(x)
    if int(lo) < 0 or int(hi) > 1:
        raise ShapeError(
            f"{name} must hold only 0 and 1 (spikes), found values in [{int(lo)}, {int(hi)}]"
        )
    return x if x.dtype == torch.uint8 else x.to(torch.uint8)


def check_spikes(spikes: Any, name: str = "spikes", *, defer: bool = False) -> tuple[Tensor, bool]:
    """``spikes`` as uint8 ``[B, T, H, W]`` and whether the input was batched.

    With ``defer=True`` a uint8 CPU input is returned unchecked (the caller checks it, see
    :func:`nonbinary`)."""
    x = to_tensor(spikes, name)
    if x.ndim == 3:
        x, batched = x.unsqueeze(0), False
    elif x.ndim == 4:
        batched = True
    else:
        raise ShapeError(f"{name} must be [T, H, W] or [B, T, H, W], got shape {tuple(x.shape)}")
    if x.shape[1] == 0:
        raise ShapeError(f"{name} is empty (0 frames)")
    if defer and x.dtype == torch.uint8 and x.device.type == "cpu":
        return x, batched
    return binary_uint8(x, name), batched


def nonbinary(hi: int, name: str = "spikes") -> ShapeError:
    """The error of a spike array whose largest value ``hi`` is above 1."""
    return ShapeError(f"{name} must hold only 0 and 1 (spikes), found values in [0, {hi}]")


def check_window(window: Any) -> int:
    """The TFP window as an ``int >= 1`` (numpy integers too, not ``bool``)."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ShapeError(f"window must be a positive int (frames), got {window!r}")
    return int(window)


def check_half(h: Any) -> int | None:
    """The TFI ``max_half_window``: ``None`` or an ``int >= 1`` (numpy integers too, not ``bool``)."""
    if h is None:
        return None
    if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
        raise ShapeError(f"max_half_window must be a positive int or None, got {h!r}")
    return int(h)


def explicit_centers(centers: Any) -> np.ndarray:
    """Explicit centres (an int, a sequence, an array or a tensor) as int64 frame indices ``>= 0``."""
    if isinstance(centers, (int, np.integer)) and not isinstance(centers, bool):
        arr = np.asarray([int(centers)], dtype=np.int64)
    else:
        if isinstance(centers, Tensor):
            centers = centers.detach().cpu().numpy()
        arr = np.asarray(centers)
        if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise ShapeError(f"centers must be 'all', 'valid', an int or a 1-D sequence of ints, "
                             f"got {centers!r}")
        arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ShapeError(f"centers must be frame indices >= 0, got {int(arr.min())}")
    return arr


def resolve_centers(centers: Centers, t: int, default: str, valid) -> np.ndarray:
    """The centres of a stream of ``t`` frames as int64 indices; ``None`` means ``default``, and
    ``valid()`` gives the centres of ``"valid"``."""
    if centers is None:
        centers = default
    if isinstance(centers, str):
        if centers == "all":
            return np.arange(t, dtype=np.int64)
        if centers == "valid":
            return valid()
        raise ShapeError(f"centers must be 'all', 'valid', an int or a sequence, got {centers!r}")
    arr = explicit_centers(centers)
    if arr.size and arr.max() >= t:
        raise ShapeError(f"center {int(arr.max())} is outside the stream of {t} frames")
    return arr


def per_sample_positive(v: float | Tensor, b: int, name: str, device) -> Tensor:
    """A float or ``b`` values, finite and ``> 0``, as float32 ``[B, 1, 1, 1]`` on ``device``."""
    if isinstance(v, Tensor):
        t = v.detach().to(device=device, dtype=torch.float32).reshape(-1)
        if t.numel() == 1:
            t = t.expand(b)
        if t.numel() != b:
            raise ShapeError(f"{name} must be a float or {b} per-sample values, "
                             f"got shape {tuple(v.shape)}")
    else:
        t = torch.full((b,), float(v), device=device, dtype=torch.float32)
    if not bool((torch.isfinite(t) & (t > 0)).all()):
        raise ShapeError(f"{name} must be finite and > 0, got {v}")
    return t.view(b, 1, 1, 1)
