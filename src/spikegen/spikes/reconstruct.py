"""Classic spike-stream reconstructions: TFP (texture from playback) and TFI (texture from
interval), batched torch, in memory or streamed over long recordings with bounded memory.

Definitions (``S`` a stream of ``T`` frames, ``c`` a centre frame):

* **TFP**: ``scale * (number of spikes in the window) / (number of frames in the window)``,
  clamped to [0, 1]. The window of ``w`` frames at centre ``c`` is frames
  ``c - w // 2 ... c - w // 2 + w - 1`` (centred for odd ``w``; one more frame before ``c``
  for even ``w``). At the ends of the stream the window is clipped and the mean is taken over
  the frames that exist.
* **TFI**: ``v_th / d`` with ``d = next - prev``, ``prev`` the last spike at or before ``c`` and
  ``next`` the first spike after ``c``. The search looks at most ``max_half_window`` frames on
  each side (``prev`` in ``c - h + 1 ... c``, ``next`` in ``c + 1 ... c + h``, clipped to the
  stream; the whole stream when ``h`` is ``None``). When only one side has a spike, the missing
  one is placed just outside the searched range (so ``d`` is a lower bound of the true interval);
  when neither side has one the output is 0. With ``v_th = 1`` values lie in ``(0, 1]`` (or 0).

Example:
    >>> import torch
    >>> from spikegen.spikes.reconstruct import tfp, tfi
    >>> s = (torch.rand(100, 8, 8) < 0.3).to(torch.uint8)
    >>> tfp(s, 41).shape, tfp(s, 41, centers=[50]).shape, tfi(s, centers=[50]).shape
    (torch.Size([60, 8, 8]), torch.Size([1, 8, 8]), torch.Size([1, 8, 8]))
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np
import torch
from torch import Tensor, nn

from spikegen.errors import ShapeError, SpikeFileError

__all__ = ["TFI", "TFP", "tfi", "tfi_stream", "tfp", "tfp_stream"]

Centers = Union[None, Literal["all", "valid"], int, Sequence[int], Tensor, np.ndarray]

# frames converted to integers at once by the TFI scans (bounded extra memory)
_SCAN_CHUNK = 32
_GRAIN = 32768  # torch's intra-op parallel grain size (elements)


def _small_ops(device: torch.device) -> bool:
    """Whether to split work into many small single-threaded ops (CPU) rather than a few large
    ones (accelerators). See :func:`_tiled`."""
    return device.type == "cpu"


def _tiled(core, s: Tensor, n: int) -> Tensor:
    """Apply a per-pixel ``core(s, out)`` to ``s [B, L, H, W]``, filling a float32
    ``[B, n, H, W]`` output.

    On CPU the cores run numpy kernels (single-threaded, about a microsecond per op, so the
    result does not depend on torch's thread count nor on a busy core), on the whole frame; the
    output is allocated by numpy, which puts large arrays on transparent huge pages (half the
    page-fault cost of ``torch.empty``). Elsewhere the cores are a few large torch ops.
    """
    b, _, h, w = s.shape
    if _small_ops(s.device):
        out = torch.from_numpy(np.empty((b, n, h, w), dtype=np.float32))
    else:
        out = torch.empty((b, n, h, w), dtype=torch.float32, device=s.device)
    core(s, out)
    return out


# ============================================================================ input checks
def _to_tensor(x: Any, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        if x.dtype == np.bool_:
            x = x.view(np.uint8)
        with warnings.catch_warnings():  # read-only (memory-mapped) arrays: we never write
            warnings.simplefilter("ignore", UserWarning)
            x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    return x


def _binary_uint8(x: Tensor, name: str) -> Tensor:
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


def _check_spikes(spikes: Any, name: str = "spikes", *, defer: bool = False) -> tuple[Tensor, bool]:
    """``spikes`` as uint8 ``[B, T, H, W]`` and whether the input was batched.

    With ``defer=True`` a uint8 CPU input is returned unchecked (the caller checks it, see
    :func:`_nonbinary`)."""
    x = _to_tensor(spikes, name)
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
    return _binary_uint8(x, name), batched


def _nonbinary(hi: int, name: str = "spikes") -> ShapeError:
    return ShapeError(f"{name} must hold only 0 and 1 (spikes), found values in [0, {hi}]")


def _check_window(window: Any) -> int:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ShapeError(f"window must be a positive int (frames), got {window!r}")
    return int(window)


def _check_half(h: Any) -> int | None:
    if h is None:
        return None
    if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
        raise ShapeError(f"max_half_window must be a positive int or None, got {h!r}")
    return int(h)


def _explicit_centers(centers: Any) -> np.ndarray:
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


def _tfp_valid(t: int, window: int) -> np.ndarray:
    if t < window:
        raise ShapeError(
            f"the stream has {t} frames, fewer than the TFP window of {window}: pass "
            "centers='all' (windows clipped at the ends) or explicit centers"
        )
    return np.arange(window // 2, window // 2 + t - window + 1, dtype=np.int64)


def _tfi_valid(t: int, h: int | None) -> np.ndarray:
    if h is None:
        return np.arange(t, dtype=np.int64)
    if t < 2 * h:
        raise ShapeError(f"the stream has {t} frames, fewer than 2 * max_half_window = {2 * h}: "
                         "pass centers='all' or explicit centers")
    return np.arange(h - 1, t - h, dtype=np.int64)


def _resolve_centers(centers: Centers, t: int, default: str, valid) -> np.ndarray:
    if centers is None:
        centers = default
    if isinstance(centers, str):
        if centers == "all":
            return np.arange(t, dtype=np.int64)
        if centers == "valid":
            return valid()
        raise ShapeError(f"centers must be 'all', 'valid', an int or a sequence, got {centers!r}")
    arr = _explicit_centers(centers)
    if arr.size and arr.max() >= t:
        raise ShapeError(f"center {int(arr.max())} is outside the stream of {t} frames")
    return arr


def _per_sample(v: float | Tensor, b: int, name: str, device) -> Tensor:
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


# ============================================================================ TFP
def _tfp_bounds(centers: np.ndarray, window: int, t: int | None) -> tuple[np.ndarray, np.ndarray]:
    starts = centers - window // 2
    ends = starts + window - 1
    starts = np.maximum(starts, 0)
    if t is not None:
        ends = np.minimum(ends, t - 1)
    return starts, ends


def _tfp_np(
    s: np.ndarray, out: np.ndarray, base: int, starts: np.ndarray, ends: np.ndarray, scale: float,
    check: bool = False,
) -> None:
    """numpy form of :func:`_tfp_core` (CPU): window sums from one running prefix sum (one add
    per frame), then per output one subtraction, one conversion and one multiply.

    Windows of up to 255 frames count in uint8: the prefix sums wrap around modulo 256, but
    their differences (the window counts) are exact. The result is bit-identical to the torch
    path: ``float32(count) * float32(scale / count_of_frames)``, clamped to [0, 1]."""
    b, length, h, w = s.shape
    n = len(starts)
    if n == 0:
        return
    counts = ends - starts + 1
    s_rel, e_rel = (starts - base).tolist(), (ends - base).tolist()
    factor = (float(scale) / counts).astype(np.float32)
    clamp = (counts.astype(np.float32) * factor > 1).tolist()  # the largest value exceeds 1
    wide = int(counts.max()) > 255
    cdt = np.uint8 if not wide else (np.int16 if length < 32767 else np.int32)
    tmp = np.empty((b, h, w), cdt)
    one = np.float32(1.0)

    def emit(i: int, count: np.ndarray) -> None:
        o = out[:, i]
        np.copyto(o, count)
        np.multiply(o, factor[i], out=o)
        if clamp[i]:
            np.minimum(o, one, out=o)

    # Frames touched by each strategy: a running window (windows in increasing order: add the
    # frames entering, subtract those leaving), each window summed on its own, or prefix sums.
    ds, de = np.diff(starts), np.diff(ends)
    monotone = bool((ds >= 0).all() and (de >= 0).all())
    run_cost = int(counts[0] + ds.sum() + de.sum()) if monotone else None
    own_cost = int(counts.sum())
    pre_cost = 2 * length + n
    if check and not (run_cost is not None and run_cost <= min(own_cost, pre_cost)):
        hi = int(s.max()) if s.size else 0
        if hi > 1:
            raise _nonbinary(hi)
        check = False
    if run_cost is not None and run_cost <= min(own_cost, pre_cost):
        # counts of k consecutive outputs at a time, then one conversion and one multiply
        # for the k (all in L2). With `check`, every frame is OR-ed into `seen` just after
        # it is first added (in cache); frames no window reads are checked at the end.
        seen = np.zeros((b, h, w), np.uint8) if check else None
        done = np.zeros(length, bool) if check else None
        k = max(1, min(n, (1 << 21) // (5 * b * h * w)))
        cnt = np.empty((b, k, h, w), cdt)
        fcol = factor.reshape(1, n, 1, 1)
        i0 = 0
        for i in range(n):
            cur = cnt[:, i - i0]
            if i == 0 or s_rel[i] > e_rel[i - 1]:  # first, or disjoint from the previous window
                if seen is None:
                    np.add.reduce(s[:, s_rel[i] : e_rel[i] + 1], axis=1, dtype=cdt, out=cur)
                else:
                    np.copyto(cur, s[:, s_rel[i]])
                    np.bitwise_or(seen, s[:, s_rel[i]], out=seen)
                    for r in range(s_rel[i] + 1, e_rel[i] + 1):
                        np.add(cur, s[:, r], out=cur)
                        np.bitwise_or(seen, s[:, r], out=seen)
                    done[s_rel[i] : e_rel[i] + 1] = True
            else:
                prev = cnt[:, i - 1 - i0] if i > i0 else tmp
                src_ = prev
                for r in range(e_rel[i - 1] + 1, e_rel[i] + 1):
                    np.add(src_, s[:, r], out=cur)
                    src_ = cur
                    if seen is not None:
                        np.bitwise_or(seen, s[:, r], out=seen)
                        done[r] = True
                for r in range(s_rel[i - 1], s_rel[i]):
                    np.subtract(src_, s[:, r], out=cur)
                    src_ = cur
                if src_ is prev:
                    np.copyto(cur, prev)
            if i - i0 + 1 == k or i == n - 1:
                o = out[:, i0 : i + 1]
                np.copyto(o, cnt[:, : i + 1 - i0])
                np.multiply(o, fcol[:, i0 : i + 1], out=o)
                for j in range(i0, i + 1):
                    if clamp[j]:
                        np.minimum(out[:, j], one, out=out[:, j])
                np.copyto(tmp, cnt[:, i - i0])
                i0 = i + 1
        if seen is not None:
            hi = int(seen.max())
            rest = np.flatnonzero(~done)
            if rest.size:
                hi = max(hi, int(s[:, rest].max()))
            if hi > 1:  # (the output is discarded)
                raise _nonbinary(hi)
        return
    if own_cost <= pre_cost:  # few, sparse windows: sum each one
        for i in range(n):
            np.copyto(tmp, s[:, s_rel[i]])
            for r in range(s_rel[i] + 1, e_rel[i] + 1):
                np.add(tmp, s[:, r], out=tmp)
            emit(i, tmp)
        return
    r0, r1 = min(s_rel), max(e_rel) + 1
    cs = np.empty((b, r1 - r0 + 1, h, w), cdt)  # cs[:, k] = spikes in frames r0 .. r0 + k - 1
    cs[:, 0] = 0
    for k in range(r1 - r0):
        np.add(cs[:, k], s[:, r0 + k], out=cs[:, k + 1])
    for i in range(n):
        np.subtract(cs[:, e_rel[i] + 1 - r0], cs[:, s_rel[i] - r0], out=tmp)
        emit(i, tmp)


def _tfp_core(
    s: Tensor, out: Tensor, base: int, starts: np.ndarray, ends: np.ndarray, scale: float,
    check: bool = False,
) -> None:
    """Fill ``out [B, N, H, W]`` with ``scale`` x the mean of ``s [B, L, H, W]`` (frames
    ``base ...``) over the inclusive windows ``[start, end]``, clamped to [0, 1]. ``check``:
    also check that ``s`` holds only 0 and 1 (CPU)."""
    if _small_ops(s.device):
        _tfp_np(s.numpy(), out.numpy(), base, starts, ends, scale, check)
        return
    b, length, h, w = s.shape
    n = len(starts)
    counts = ends - starts + 1
    if n == 0:
        return
    s_rel, e_rel = starts - base, ends - base
    cdtype = torch.int16 if length < 32767 else torch.int32
    # (element-wise adds frame by frame are several times faster than torch.cumsum or
    # torch.sum over the time dimension on CPU)
    factor = (float(scale) / counts).tolist()
    per_centre = _small_ops(s.device)
    if int(counts.sum()) <= 2 * length:  # few, sparse windows: sum each one
        acc = torch.empty((b, h, w), dtype=cdtype, device=s.device)
        for i in range(n):
            acc.copy_(s[:, s_rel[i]])
            for r in range(s_rel[i] + 1, e_rel[i] + 1):
                acc.add_(s[:, r])
            out[:, i].copy_(acc)
            if per_centre:
                out[:, i].mul_(factor[i]).clamp_(0.0, 1.0)
    else:  # prefix sums: any number of windows for one pass over the frames
        cs = torch.empty((b, length + 1, h, w), dtype=cdtype, device=s.device)
        cs[:, 0].zero_()  # cs[:, k] = number of spikes in frames 0 .. k-1
        for r in range(length):
            torch.add(cs[:, r], s[:, r], out=cs[:, r + 1])
        if per_centre:
            tmp = torch.empty((b, h, w), dtype=cdtype, device=s.device)
            for i in range(n):
                torch.sub(cs[:, e_rel[i] + 1], cs[:, s_rel[i]], out=tmp)
                out[:, i].copy_(tmp)
                out[:, i].mul_(factor[i]).clamp_(0.0, 1.0)
        else:
            hi = cs.index_select(1, torch.as_tensor(e_rel + 1, device=s.device))
            lo = cs.index_select(1, torch.as_tensor(s_rel, device=s.device))
            out.copy_(hi.sub_(lo))
    if not per_centre:
        f = torch.as_tensor(factor, dtype=torch.float32, device=s.device)
        out.mul_(f.view(1, n, 1, 1)).clamp_(0.0, 1.0)


def tfp(
    spikes: Tensor | np.ndarray,
    window: int,
    *,
    centers: Centers = None,
    scale: float = 1.0,
) -> Tensor:
    r"""Texture from playback: the mean firing rate over a window, times ``scale``.

    Args:
        spikes: ``[T, H, W]`` or ``[B, T, H, W]`` spikes of {0, 1} (uint8, bool, int or float).
        window: frames per window ``w``; the window at centre ``c`` is frames
            ``c - w // 2 ... c - w // 2 + w - 1``, clipped to the stream at its ends (the mean
            is over the frames that exist).
        centers: ``None``/``"valid"`` (default: every centre whose whole window fits,
            ``T - w + 1`` outputs), ``"all"`` (every frame, windows clipped), an int or a
            sequence of frame indices (any order, repeats allowed).
        scale: multiplies the rate before clamping to [0, 1] (e.g. ``1 / 0.6`` for the
            Spk2ImgNet/REDS streams, whose firing rate is about 0.6 x the intensity).

    Returns:
        float32 ``[B, N, H, W]`` (``[N, H, W]`` unbatched) in [0, 1], one frame per centre.

    Example:
        >>> s = torch.zeros(10, 2, 2, dtype=torch.uint8); s[::2] = 1
        >>> tfp(s, 4, centers=[5]).flatten().tolist()
        [0.5, 0.5, 0.5, 0.5]
    """
    window = _check_window(window)
    # a uint8 CPU input is checked to be binary by the kernel, frame by frame while each frame
    # is in cache (the frames it does not read are checked here)
    x0 = _to_tensor(spikes, "spikes")
    defer = x0.dtype == torch.uint8 and x0.device.type == "cpu" and _small_ops(x0.device)
    s, batched = _check_spikes(x0, defer=defer)
    unchecked = defer and s.numel() > 0
    t = s.shape[1]
    try:
        c = _resolve_centers(centers, t, "valid", lambda: _tfp_valid(t, window))
    except ShapeError:
        if unchecked:
            _binary_uint8(s, "spikes")
        raise
    starts, ends = _tfp_bounds(c, window, t)
    if len(c):
        r0, r1 = int(starts.min()), int(ends.max())
    else:
        r0, r1 = 0, -1
    if unchecked:
        sn = s.numpy()
        for part in (sn[:, :r0], sn[:, r1 + 1 :]):
            if part.size and int(part.max()) > 1:
                raise _nonbinary(int(part.max()))
    if len(c):
        s = s[:, r0 : r1 + 1]
    out = _tiled(lambda x, o: _tfp_core(x, o, r0, starts, ends, scale, check=unchecked), s, len(c))
    return out if batched else out[0]


class TFP(nn.Module):
    r"""Module form of :func:`tfp`.

    Example:
        >>> TFP(41, scale=1 / 0.6)(torch.zeros(1, 50, 4, 4, dtype=torch.uint8)).shape
        torch.Size([1, 10, 4, 4])
    """

    def __init__(self, window: int, scale: float = 1.0) -> None:
        super().__init__()
        self.window = _check_window(window)
        self.scale = float(scale)

    def forward(self, spikes: Tensor, centers: Centers = None) -> Tensor:
        return tfp(spikes, self.window, centers=centers, scale=self.scale)

    def extra_repr(self) -> str:
        return f"window={self.window}, scale={self.scale}"


# ============================================================================ TFI
def _tfi_bounds(centers: np.ndarray, h: int | None, t: int | None) -> tuple[np.ndarray, np.ndarray]:
    if h is None:
        lo = np.zeros_like(centers)
        hi = np.full_like(centers, (t - 1) if t is not None else np.iinfo(np.int64).max)
    else:
        lo = np.maximum(centers - h + 1, 0)
        hi = centers + h
        if t is not None:
            hi = np.minimum(hi, t - 1)
    return lo, hi


def _tfi_np(
    s: np.ndarray,
    out: np.ndarray,
    base: int,
    centers: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    v: np.ndarray,
) -> None:
    """numpy form of :func:`_tfi_core` (CPU), bit-identical to it.

    A forward scan keeps the index of the last spike (``max(state, r * S_r)``, relative frame
    numbers, 0 = none) and stores it at each centre; a backward scan keeps ``L + 1 - `` the
    index of the first spike after, and each output is finished as soon as the backward scan
    passes its centre: clip both to the searched range, ``d = next - prev``, ``v / d``, and 0
    where neither side has a spike (exactly where ``d`` is the largest possible). Streams of
    up to 254 frames use uint8 indices (wrap-around arithmetic stays exact because every
    interval is at most 255), longer ones int16/int32.
    """
    b, length, h, w = s.shape
    n = len(centers)
    if n == 0:
        return
    idt = np.uint8 if length + 1 <= 255 else (np.int16 if length + 2 < 32767 else np.int32)
    c_rel = (centers - base + 1).tolist()  # relative frame numbers r = 1..L (0 = "no spike")
    lo_rel, hi_rel = (lo - base + 1).tolist(), (hi - base + 1).tolist()
    first_of: dict[int, int] = {}  # centre (relative) -> first output slot, for repeats
    for i, c in enumerate(c_rel):
        first_of.setdefault(c, i)
    slots = {c: k for k, c in enumerate(first_of)}  # centre -> row of `prev`
    prev = np.empty((b, len(slots), h, w), idt)
    state = np.zeros((b, h, w), idt)
    wbuf = np.empty((b, h, w), idt)
    # forward: prev[c] = last spike at or before c
    for r in range(min(lo_rel), max(c_rel) + 1):
        np.multiply(s[:, r - 1], idt(r), out=wbuf)
        np.maximum(state, wbuf, out=state)
        k = slots.get(r)
        if k is not None:
            np.copyto(prev[:, k], state)
    cst = np.empty((b, h, w), idt)
    sum_ = np.empty((b, h, w), idt)
    none = np.empty((b, h, w), np.bool_)
    vb = v.astype(np.float32).reshape(b, 1, 1)
    top = idt(length + 1)

    def finish(c: int, rev: np.ndarray) -> None:
        i = first_of[c]
        lo_i, hi_i = lo_rel[i], hi_rel[i]
        cst.fill(lo_i - 1)
        np.maximum(prev[:, slots[c]], cst, out=sum_)  # prev' = max(prev, lo - 1)
        cst.fill(length - hi_i)
        np.maximum(rev, cst, out=cst)  # L + 1 - next', next' = min(next, hi + 1)
        np.add(sum_, cst, out=sum_)
        np.subtract(top, sum_, out=sum_)  # d = next' - prev' >= 1 (exact modulo 2**bits)
        o = out[:, i]
        np.divide(vb, sum_, out=o, dtype=np.float32)
        np.equal(sum_, hi_i - lo_i + 2, out=none)  # the largest d: no spike on either side
        if none.any():
            np.putmask(o, none, np.float32(0.0))

    # backward: state = L + 1 - first spike after c (0 = none); finish c at frame c + 1
    r_top, r_to = max(hi_rel), min(c_rel) + 1
    state.fill(0)
    for c in first_of:
        if c + 1 > r_top:  # nothing is searched after this centre
            finish(c, state)
    for r in range(r_top, r_to - 1, -1):
        np.multiply(s[:, r - 1], idt(length + 1 - r), out=wbuf)
        np.maximum(state, wbuf, out=state)
        if r - 1 in first_of:
            finish(r - 1, state)
    for i, c in enumerate(c_rel):  # repeated centres
        j = first_of[c]
        if j != i:
            out[:, i] = out[:, j]


def _tfi_core(
    s: Tensor,
    out: Tensor,
    base: int,
    centers: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    v: Tensor,
) -> None:
    """Fill ``out [B, N, H, W]`` with the TFI of ``s [B, L, H, W]`` (frames
    ``base ... base + L - 1``, covering every ``[lo, hi]``) at ``centers``; ``v`` is
    ``[B, 1, 1, 1]``."""
    if _small_ops(s.device):
        _tfi_np(s.numpy(), out.numpy(), base, centers, lo, hi, v.numpy().reshape(-1))
        return
    b, length, h, w = s.shape
    n = len(centers)
    dev = s.device
    if n == 0:
        return
    idt = torch.int16 if length + 2 < 32767 else torch.int32
    # relative frame numbers r = 1..L (frame base + r - 1); 0 = "no spike"
    c_rel = centers - base + 1
    lo_rel, hi_rel = lo - base + 1, hi - base + 1
    prev = torch.empty((b, n, h, w), dtype=idt, device=dev)
    nxt = torch.empty((b, n, h, w), dtype=idt, device=dev)
    per_centre = _small_ops(dev)
    first_of: dict[int, int] = {}  # centre (relative) -> first output slot, for repeats
    for i, c in enumerate(c_rel.tolist()):
        first_of.setdefault(c, i)

    def scan(frames: range, weight, slot_of, target: Tensor) -> None:
        """Running max over ``frames`` of ``S_r * weight(r)``, one op per frame; the state
        after frame ``r`` is written straight into the output slot ``slot_of(r)`` if any."""
        state = torch.zeros((b, h, w), dtype=idt, device=dev)
        spare = state
        rs = list(frames)
        k = _SCAN_CHUNK if not per_centre else max(1, min(_SCAN_CHUNK, _GRAIN // (b * h * w)))
        for j in range(0, len(rs), k):
            part = rs[j : j + k]
            lo_r, hi_r = min(part), max(part)
            wts = torch.as_tensor([weight(r) for r in range(lo_r, hi_r + 1)], dtype=idt,
                                  device=dev).view(1, -1, 1, 1)
            chunk = s[:, lo_r - 1 : hi_r].to(idt).mul_(wts)
            for r in part:
                slot = slot_of(r)
                dst = spare if slot is None else target[:, slot]
                torch.maximum(state, chunk[:, r - lo_r], out=dst)
                state = dst

    # forward: prev[c] = last spike at or before c (relative index, 0 = none)
    r_from, r_last = int(lo_rel.min()), int(c_rel.max())
    scan(range(r_from, r_last + 1), lambda r: r, first_of.get, prev)
    # backward: nxt[c] = L + 1 - first spike after c (0 = none)
    r_top, r_to = int(hi_rel.max()), int(c_rel.min()) + 1
    after = {c + 1: i for c, i in first_of.items()}
    for c, i in first_of.items():
        if c + 1 > r_top:  # nothing is searched after this centre
            nxt[:, i] = 0
    scan(range(r_top, r_to - 1, -1), lambda r: length + 1 - r, after.get, nxt)
    for i, c in enumerate(c_rel.tolist()):  # repeated centres
        j = first_of[c]
        if j != i:
            prev[:, i] = prev[:, j]
            nxt[:, i] = nxt[:, j]
    # nxt holds rev = L + 1 - next (0: none). With prev' = max(prev, lo - 1) and
    # next' = min(next, hi + 1) = L + 1 - max(rev, L - hi): d = next' - prev'.
    if per_centre:
        vb = v.view(b, 1, 1)
        for i in range(n):
            p, q, o = prev[:, i], nxt[:, i], out[:, i]
            lo_i, hi_i = int(lo_rel[i]), int(hi_rel[i])
            none = (p < lo_i) & (q < length + 1 - hi_i)
            p.clamp_(min=lo_i - 1)
            q.clamp_(min=length - hi_i).add_(p)  # L + 1 - d
            o.copy_(q)
            o.neg_().add_(length + 1)  # d >= 1
            torch.div(vb, o, out=o)
            o.masked_fill_(none, 0.0)
        return

    def col(a: np.ndarray) -> Tensor:
        return torch.as_tensor(a, dtype=idt, device=dev).view(1, n, 1, 1)

    lo_t, hi_t = col(lo_rel), col(hi_rel)
    none = (prev < lo_t) & (nxt < length + 1 - hi_t)
    torch.maximum(prev, lo_t - 1, out=prev)
    torch.maximum(nxt, length - hi_t, out=nxt)
    nxt.add_(prev)
    out.copy_(nxt)
    out.neg_().add_(length + 1)
    torch.div(v.expand(b, n, 1, 1), out, out=out)
    out.masked_fill_(none, 0.0)


def tfi(
    spikes: Tensor | np.ndarray,
    *,
    v_th: float | Tensor = 1.0,
    centers: Centers = None,
    max_half_window: int | None = None,
) -> Tensor:
    r"""Texture from interval: ``v_th / d``, ``d`` the interval between the spikes around ``t``.

    ``prev`` is the last spike at or before the centre ``c`` and ``next`` the first spike after
    it, searched within ``max_half_window`` frames on each side (``prev`` in ``c - h + 1 ... c``,
    ``next`` in ``c + 1 ... c + h``; the whole stream when ``None``), clipped to the stream.
    ``d = next - prev``. A side without a spike counts as a spike just outside the searched range
    (``c - h`` or ``-1``; ``c + h + 1`` or ``T``), so ``d`` is a lower bound of the true interval;
    a pixel with no spike on either side gives 0. With ``v_th = 1`` values lie in ``(0, 1]``.

    Args:
        spikes: ``[T, H, W]`` or ``[B, T, H, W]`` spikes of {0, 1}.
        v_th: numerator, a float or ``B`` per-sample values.
        centers: ``None``/``"all"`` (default: every frame), ``"valid"`` (centres whose whole
            search range fits), an int or a sequence of frame indices.
        max_half_window: search range ``h`` on each side, or ``None`` for the whole stream.

    Returns:
        float32 ``[B, N, H, W]`` (``[N, H, W]`` unbatched).

    Example:
        >>> s = torch.zeros(20, 1, 1, dtype=torch.uint8); s[2::4] = 1
        >>> tfi(s, centers=[9]).item()
        0.25
    """
    h = _check_half(max_half_window)
    s, batched = _check_spikes(spikes)
    b, t = s.shape[:2]
    v = _per_sample(v_th, b, "v_th", s.device)
    c = _resolve_centers(centers, t, "all", lambda: _tfi_valid(t, h))
    lo, hi = _tfi_bounds(c, h, t)
    if len(c):
        r0, r1 = int(lo.min()), int(hi.max())
        s = s[:, r0 : r1 + 1]
    else:
        r0 = 0
    out = _tiled(lambda x, o: _tfi_core(x, o, r0, c, lo, hi, v), s, len(c))
    return out if batched else out[0]


class TFI(nn.Module):
    r"""Module form of :func:`tfi`.

    Example:
        >>> TFI(v_th=1.0, max_half_window=20)(torch.zeros(50, 4, 4, dtype=torch.uint8)).shape
        torch.Size([50, 4, 4])
    """

    def __init__(self, v_th: float = 1.0, max_half_window: int | None = None) -> None:
        super().__init__()
        self.v_th = float(v_th)
        self.max_half_window = _check_half(max_half_window)

    def forward(self, spikes: Tensor, centers: Centers = None) -> Tensor:
        return tfi(spikes, v_th=self.v_th, centers=centers, max_half_window=self.max_half_window)

    def extra_repr(self) -> str:
        return f"v_th={self.v_th}, max_half_window={self.max_half_window}"


# ============================================================================ streaming
Source = Union[str, "os.PathLike[str]", Tensor, np.ndarray, Iterable[Any]]


def _iter_source(
    source: Source, *, block: int, device, spike_kwargs: dict[str, Any]
) -> Iterator[tuple[int, Tensor]]:
    """Yield ``(start, uint8 [t, H, W])`` blocks of a file, an array or an iterable of blocks."""
    if isinstance(source, (str, os.PathLike)):
        from spikegen.spikes.io import iter_spikes

        kwargs = {k: v for k, v in spike_kwargs.items() if v is not None}
        it: Iterable[Any] = iter_spikes(Path(source), block=block, **kwargs)
    elif isinstance(source, (Tensor, np.ndarray)):
        whole = _to_tensor(source, "spikes")
        if whole.ndim != 3:
            raise ShapeError(f"a spike array to stream must be [T, H, W], got {tuple(whole.shape)}")
        it = ((i, whole[i : i + block]) for i in range(0, whole.shape[0], block))
    elif isinstance(source, Iterable):
        it = source
    else:
        raise ShapeError(f"cannot stream spikes from {type(source).__name__}: pass a path, a "
                         "[T, H, W] array or an iterable of blocks")
    pos = 0
    for item in it:
        if isinstance(item, tuple) and len(item) == 2 and not isinstance(item[0], (Tensor, np.ndarray)):
            start, arr = int(item[0]), item[1]
        else:
            start, arr = pos, item
        x = _to_tensor(arr, "spike block")
        if x.ndim != 3:
            raise ShapeError(f"spike blocks must be [t, H, W], got {tuple(x.shape)}")
        if start > pos:
            raise SpikeFileError(f"spike blocks skip frames {pos}..{start - 1}")
        if start + x.shape[0] <= pos:
            continue
        x = x[pos - start :]  # drop frames already seen (overlapping blocks)
        x = _binary_uint8(x, "spike block")
        if device is not None:
            x = x.to(device)
        yield pos, x
        pos += x.shape[0]


class _Buffer:
    """Frames ``start ... end - 1`` of a stream, kept as a list of blocks."""

    def __init__(self) -> None:
        self.blocks: list[Tensor] = []
        self.start = 0
        self.end = 0
        self.hw: tuple[int, int] | None = None

    def append(self, x: Tensor) -> None:
        if self.hw is None:
            self.hw = tuple(x.shape[-2:])
        elif tuple(x.shape[-2:]) != self.hw:
            raise ShapeError(f"spike blocks change size from {self.hw} to {tuple(x.shape[-2:])}")
        if x.shape[0]:
            self.blocks.append(x)
            self.end += x.shape[0]

    def get(self, a: int, b: int) -> Tensor:
        """Frames ``a ... b - 1`` as one ``[b - a, H, W]`` tensor."""
        parts, pos = [], self.start
        for blk in self.blocks:
            n = blk.shape[0]
            lo, hi = max(a, pos), min(b, pos + n)
            if lo < hi:
                parts.append(blk[lo - pos : hi - pos])
            pos += n
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)

    def drop_before(self, a: int) -> None:
        while self.blocks and self.start + self.blocks[0].shape[0] <= a:
            self.start += self.blocks.pop(0).shape[0]


def _stream(
    source: Source,
    *,
    centers: Centers,
    default: str,
    bounds,  # (centers array, T or None) -> (lo, hi) inclusive frame ranges
    core,  # (s [1, L, H, W], out [1, N, H, W], base, centers, lo, hi) -> None (fills out)
    valid_first: int,
    valid_tail: int,
    chunk: int,
    block: int,
    device,
    spike_kwargs: dict[str, Any],
) -> Iterator[tuple[int, Tensor]]:
    if not isinstance(chunk, int) or chunk < 1:
        raise ShapeError(f"chunk must be a positive int, got {chunk!r}")
    if not isinstance(block, int) or block < 1:
        raise ShapeError(f"block must be a positive int, got {block!r}")
    if centers is None:
        centers = default
    explicit: np.ndarray | None = None
    if isinstance(centers, str):
        if centers not in ("all", "valid"):
            raise ShapeError(f"centers must be 'all', 'valid', an int or a sequence, got {centers!r}")
        mode = centers
    else:
        mode = "explicit"
        explicit = np.sort(_explicit_centers(centers), kind="stable")
    buf = _Buffer()
    nxt = 0 if mode != "valid" else valid_first  # next centre (for 'all' / 'valid')
    k = 0  # next index into explicit

    def pending(t_end: int | None) -> np.ndarray:
        """Centres whose range [lo, hi] lies within the frames received so far."""
        if mode == "explicit":
            cand = explicit[k : k + chunk]
        else:
            stop = buf.end if t_end is None else t_end
            if mode == "valid" and t_end is not None:
                stop = t_end - valid_tail
            cand = np.arange(nxt, min(nxt + chunk, max(stop, nxt)), dtype=np.int64)
        if not len(cand):
            return cand
        _, hi = bounds(cand, t_end)
        ready = hi <= buf.end - 1
        if t_end is None:
            # lo..hi must be final: while the stream runs, hi is not yet clipped by T
            cut = int(np.argmin(ready)) if not ready.all() else len(cand)
            return cand[:cut]
        return cand

    def emit(cand: np.ndarray, t_end: int | None) -> Iterator[tuple[int, Tensor]]:
        nonlocal nxt, k
        lo, hi = bounds(cand, t_end)
        a, b = int(lo.min()), int(hi.max()) + 1
        frames = buf.get(a, b).unsqueeze(0)
        res = _tiled(lambda x, o: core(x, o, a, cand, lo, hi), frames, len(cand))[0]
        if mode == "explicit":
            k += len(cand)
        else:
            nxt = int(cand[-1]) + 1
        for i, c in enumerate(cand.tolist()):
            yield c, res[i]
        # drop frames no later centre needs
        if mode == "explicit":
            if k < len(explicit):
                buf.drop_before(int(bounds(explicit[k : k + 1], t_end)[0][0]))
        else:
            buf.drop_before(int(bounds(np.array([nxt]), t_end)[0][0]))

    for _, x in _iter_source(source, block=block, device=device, spike_kwargs=spike_kwargs):
        buf.append(x)
        while True:
            cand = pending(None)
            if not len(cand):
                break
            yield from emit(cand, None)
    t_end = buf.end
    if t_end == 0:
        raise ShapeError("the spike stream is empty (0 frames)")
    if mode == "explicit" and k < len(explicit) and explicit[-1] >= t_end:
        raise ShapeError(f"center {int(explicit[-1])} is outside the stream of {t_end} frames")
    if mode == "valid" and t_end - valid_tail <= valid_first and nxt == valid_first:
        raise ShapeError(f"the stream has {t_end} frames, too few for a full window: pass "
                         "centers='all' or explicit centers")
    while True:
        cand = pending(t_end)
        if not len(cand):
            break
        yield from emit(cand, t_end)


def tfp_stream(
    source: Source,
    window: int,
    *,
    centers: Centers = None,
    scale: float = 1.0,
    block: int = 256,
    chunk: int = 64,
    device: torch.device | str | None = None,
    height: int | None = None,
    width: int | None = None,
    flip: bool | None = None,
    raw_width: int | None = None,
) -> Iterator[tuple[int, Tensor]]:
    r""":func:`tfp` over a long recording with bounded memory, one frame at a time.

    Yields ``(t, frame)`` pairs, ``frame`` a float32 ``[H, W]`` tensor, in increasing ``t``;
    the frames equal ``tfp(all_spikes, window, centers=..., scale=scale)`` exactly.

    Args:
        source: a spike file (``.dat``, ``.npz``; read with :func:`spikegen.spikes.io.iter_spikes`
            and the ``height``/``width``/``flip``/``raw_width`` options), a ``[T, H, W]`` array,
            or an iterable of ``[t, H, W]`` blocks or ``(start, block)`` pairs (e.g.
            ``iter_dat(...)``; overlapping blocks are fine, gaps are not).
        window, centers, scale: as :func:`tfp` (explicit centres come out in increasing order;
            repeats are kept).
        block: frames per read when ``source`` is a path or an array.
        chunk: centres computed together (memory is about ``chunk + window`` frames).
        device: where to compute (default: where the blocks are, CPU for files).

    Example:
        >>> s = (torch.rand(300, 8, 8) < 0.2).to(torch.uint8)
        >>> frames = dict(tfp_stream(s, 41, block=50))
        >>> torch.equal(frames[20], tfp(s, 41)[0])
        True
    """
    window = _check_window(window)
    return _stream(
        source,
        centers=centers,
        default="valid",
        bounds=lambda c, t: _tfp_bounds(c, window, t),
        core=lambda s, o, base, c, lo, hi: _tfp_core(s, o, base, lo, hi, scale),
        valid_first=window // 2,
        valid_tail=window - window // 2 - 1,
        chunk=chunk,
        block=block,
        device=device,
        spike_kwargs=dict(height=height, width=width, flip=flip, raw_width=raw_width),
    )


def tfi_stream(
    source: Source,
    *,
    v_th: float = 1.0,
    centers: Centers = None,
    max_half_window: int = 64,
    block: int = 256,
    chunk: int = 64,
    device: torch.device | str | None = None,
    height: int | None = None,
    width: int | None = None,
    flip: bool | None = None,
    raw_width: int | None = None,
) -> Iterator[tuple[int, Tensor]]:
    r""":func:`tfi` over a long recording with bounded memory, one frame at a time.

    Yields ``(t, frame)`` pairs (float32 ``[H, W]``) equal to
    ``tfi(all_spikes, v_th=v_th, centers=..., max_half_window=max_half_window)``. Streaming needs
    a finite search range, so ``max_half_window`` defaults to 64 here (the in-memory
    :func:`tfi` searches the whole stream by default). See :func:`tfp_stream` for the other
    arguments.

    Example:
        >>> s = (torch.rand(200, 8, 8) < 0.2).to(torch.uint8)
        >>> frames = dict(tfi_stream(s, max_half_window=20, block=32))
        >>> torch.equal(frames[100], tfi(s, max_half_window=20, centers=[100])[0])
        True
    """
    h = _check_half(max_half_window)
    if h is None:
        raise ShapeError("tfi_stream needs a finite max_half_window (frames searched each side)")
    if isinstance(v_th, Tensor):
        v_th = float(v_th)
    v = _per_sample(v_th, 1, "v_th", device if device is not None else "cpu")
    return _stream(
        source,
        centers=centers,
        default="all",
        bounds=lambda c, t: _tfi_bounds(c, h, t),
        core=lambda s, o, base, c, lo, hi: _tfi_core(s, o, base, c, lo, hi, v.to(s.device)),
        valid_first=h - 1,
        valid_tail=h,
        chunk=chunk,
        block=block,
        device=device,
        spike_kwargs=dict(height=height, width=width, flip=flip, raw_width=raw_width),
    )
