"""TFP, texture from playback: :func:`tfp` and :class:`TFP`, the mean firing rate over a window
of frames, and the kernels the streamed form shares (:func:`tfp_bounds`, :func:`tfp_core`).

Example:
    >>> import torch
    >>> from spikegen.spikes.reconstruct.playback import tfp
    >>> s = torch.zeros(8, 2, 2, dtype=torch.uint8); s[::4] = 1
    >>> tfp(s, 4, centers=[0, 4])[:, 0, 0].tolist()  # frame 0's window is clipped to frames 0, 1
    [0.5, 0.25]
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from spikegen.errors import ShapeError
from spikegen.spikes import native
from spikegen.spikes.reconstruct import _common
from spikegen.spikes.reconstruct._common import (
    Centers,
    binary_uint8,
    check_spikes,
    check_window,
    nonbinary,
    resolve_centers,
    tiled,
    to_tensor,
)

__all__ = ["TFP", "tfp"]


def _tfp_valid(t: int, window: int) -> np.ndarray:
    if t < window:
        raise ShapeError(
            f"the stream has {t} frames, fewer than the TFP window of {window}: pass "
            "centers='all' (windows clipped at the ends) or explicit centers"
        )
    return np.arange(window // 2, window // 2 + t - window + 1, dtype=np.int64)


_TFP_SMALL = 1 << 12  # pixels (x batch) up to which TFP works on the whole array at once
_TFP_CHECK_WHOLE = 64 << 20  # bytes of spikes up to which the binary check is one max


def tfp_bounds(centers: np.ndarray, window: int, t: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The inclusive frame ranges ``[start, end]`` of the TFP windows at ``centers``, clipped to
    a stream of ``t`` frames (at the start only while ``t`` is not known)."""
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
    """numpy form of :func:`tfp_core` (CPU): window sums from one running prefix sum (one add
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
    lib = native.lib
    if (lib is not None and s.dtype in (np.uint8, np.bool_) and out.dtype == np.float32
            and s.flags.c_contiguous and out.flags.c_contiguous):
        # one fused loop: running counts of whole frames, converted and scaled as written
        seen = lib.tfp(s, out, np.asarray(s_rel, np.int64), np.asarray(e_rel, np.int64), factor,
                       np.asarray(clamp, np.uint8), b, length, h * w, check and s.dtype == np.uint8)
        if seen > 1:  # (the output is discarded)
            raise nonbinary(int(s.max()))
        return
    wide = int(counts.max()) > 255
    cdt = np.uint8 if not wide else (np.int16 if length < 32767 else np.int32)
    tmp = np.empty((b, h, w), cdt)
    one = np.float32(1.0)

    def emit(i: int, count: np.ndarray) -> None:
        o = out[:, i]
        np.multiply(count, factor[i], out=o, dtype=np.float32)
        if clamp[i]:
            np.minimum(o, one, out=o)

    if b * h * w <= _TFP_SMALL:
        # small frames: a handful of whole-array ops (per-call overhead dominates there)
        if check:
            hi = int(np.max(s)) if s.size else 0
            if hi > 1:
                raise nonbinary(hi)
        r0, r1 = int(starts.min()) - base, int(ends.max()) - base + 1
        cs = np.zeros((b, r1 - r0 + 1, h, w), np.int16 if r1 - r0 < 32767 else np.int32)
        np.cumsum(s[:, r0:r1], axis=1, dtype=cs.dtype, out=cs[:, 1:])
        e_idx = np.asarray(e_rel) + 1 - r0
        s_idx = np.asarray(s_rel) - r0
        np.multiply(cs[:, e_idx] - cs[:, s_idx], factor.reshape(1, n, 1, 1), out=out, dtype=np.float32)
        if any(clamp):
            np.minimum(out, one, out=out)
        return

    # Frames touched by each strategy: a running window (windows in increasing order: add the
    # frames entering, subtract those leaving), each window summed on its own, or prefix sums.
    ds, de = np.diff(starts), np.diff(ends)
    monotone = bool((ds >= 0).all() and (de >= 0).all())
    run_cost = int(counts[0] + ds.sum() + de.sum()) if monotone else None
    own_cost = int(counts.sum())
    pre_cost = 2 * length + n
    running = run_cost is not None and run_cost <= min(own_cost, pre_cost)
    if check and (not running or s.nbytes <= _TFP_CHECK_WHOLE):
        # one SIMD max over the frames is cheaper than OR-ing each frame into `seen` below,
        # unless the stream is far larger than the caches
        hi = int(s.max()) if s.size else 0
        if hi > 1:
            raise nonbinary(hi)
        check = False
    if running:
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
                # one pass over the output: the count is cast to float32 inside the multiply
                np.multiply(cnt[:, : i + 1 - i0], fcol[:, i0 : i + 1], out=o, dtype=np.float32)
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
                raise nonbinary(hi)
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


def tfp_core(
    s: Tensor, out: Tensor, base: int, starts: np.ndarray, ends: np.ndarray, scale: float,
    check: bool = False,
) -> None:
    """Fill ``out [B, N, H, W]`` with ``scale`` x the mean of ``s [B, L, H, W]`` (frames
    ``base ...``) over the inclusive windows ``[start, end]``, clamped to [0, 1]. ``check``:
    also check that ``s`` holds only 0 and 1 (CPU)."""
    if _common.small_ops(s.device):
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
    per_centre = _common.small_ops(s.device)
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


def mean_rate(spikes: Tensor) -> float:
    """The mean firing rate of ``spikes`` (spikes per pixel and frame; 0 when empty): a count of
    the non-zero values for bool / uint8 spikes (0 or 1, as the kernels check), else a float64
    sum, without a float copy.

    Example:
        >>> from spikegen.spikes.reconstruct.playback import mean_rate
        >>> mean_rate(torch.tensor([[0, 1], [1, 1]], dtype=torch.uint8)), mean_rate(torch.full((4,), 0.25))
        (0.75, 0.25)
    """
    if spikes.numel() == 0:
        return 0.0
    if spikes.dtype in (torch.bool, torch.uint8):
        return int(torch.count_nonzero(spikes)) / spikes.numel()
    return float(spikes.sum(dtype=torch.float64)) / spikes.numel()


def widened_window(n: int, window: int, rate: float, min_spikes: float) -> int:
    """``n`` frames widened until a pixel firing at ``rate`` per frame fires ``min_spikes``
    times on average (all ``window`` frames at rate 0), at most ``window``.

    Example:
        >>> from spikegen.spikes.reconstruct.playback import widened_window
        >>> widened_window(21, 61, 0.2, 2.0), widened_window(21, 61, 0.05, 2.0), widened_window(21, 61, 0.0, 2.0)
        (21, 40, 61)
    """
    if min_spikes > 0:
        n = max(n, math.ceil(min_spikes / rate - 1e-9) if rate > 0 else int(window))
    return min(int(n), int(window))


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
    window = check_window(window)
    # a uint8 CPU input is checked to be binary by the kernel, frame by frame while each frame
    # is in cache (the frames it does not read are checked here)
    x0 = to_tensor(spikes, "spikes")
    defer = x0.dtype == torch.uint8 and x0.device.type == "cpu" and _common.small_ops(x0.device)
    s, batched = check_spikes(x0, defer=defer)
    unchecked = defer and s.numel() > 0
    t = s.shape[1]
    try:
        c = resolve_centers(centers, t, "valid", lambda: _tfp_valid(t, window))
    except ShapeError:
        if unchecked:
            binary_uint8(s, "spikes")
        raise
    starts, ends = tfp_bounds(c, window, t)
    if len(c):
        r0, r1 = int(starts.min()), int(ends.max())
    else:
        r0, r1 = 0, -1
    if unchecked:
        sn = s.numpy()
        for part in (sn[:, :r0], sn[:, r1 + 1 :]):
            if part.size and int(part.max()) > 1:
                raise nonbinary(int(part.max()))
    if len(c):
        s = s[:, r0 : r1 + 1]
    out = tiled(lambda x, o: tfp_core(x, o, r0, starts, ends, scale, check=unchecked), s, len(c))
    return out if batched else out[0]


class TFP(nn.Module):
    r"""Module form of :func:`tfp`.

    Example:
        >>> TFP(41, scale=1 / 0.6)(torch.zeros(1, 50, 4, 4, dtype=torch.uint8)).shape
        torch.Size([1, 10, 4, 4])
    """

    def __init__(self, window: int, scale: float = 1.0) -> None:
        super().__init__()
        self.window = check_window(window)
        self.scale = float(scale)

    def forward(self, spikes: Tensor, centers: Centers = None) -> Tensor:
        return tfp(spikes, self.window, centers=centers, scale=self.scale)

    def extra_repr(self) -> str:
        return f"window={self.window}, scale={self.scale}"
