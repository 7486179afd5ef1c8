"""TFI, texture from interval: :func:`tfi` and :class:`TFI`, ``v_th`` over the interval between
the spikes around a centre, and the kernels the streamed form shares (:func:`tfi_bounds`,
:func:`tfi_core`).

Example:
    >>> import torch
    >>> from spikegen.spikes.reconstruct.interval import tfi
    >>> s = torch.zeros(12, 1, 1, dtype=torch.uint8); s[1::5] = 1
    >>> tfi(s, centers=[3, 8]).flatten().tolist()
    [0.20000000298023224, 0.20000000298023224]
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from spikegen.errors import ShapeError
from spikegen.spikes import native
from spikegen.spikes.reconstruct import _common
from spikegen.spikes.reconstruct._common import (
    Centers,
    check_half,
    check_spikes,
    per_sample_positive,
    resolve_centers,
    tiled,
)

__all__ = ["TFI", "tfi"]

# frames converted to integers at once by the TFI scans (bounded extra memory)
_SCAN_CHUNK = 32
_GRAIN = 32768  # torch's intra-op parallel grain size (elements)
# at most 1 / _SPARSE of an output without a spike on either side is zeroed by a masked copy
# (fast for a few pixels, slower than a multiply from about 1 % on)
_SPARSE = 512


def _tfi_valid(t: int, h: int | None) -> np.ndarray:
    if h is None:
        return np.arange(t, dtype=np.int64)
    if t < 2 * h:
        raise ShapeError(f"the stream has {t} frames, fewer than 2 * max_half_window = {2 * h}: "
                         "pass centers='all' or explicit centers")
    return np.arange(h - 1, t - h, dtype=np.int64)


def tfi_bounds(centers: np.ndarray, h: int | None, t: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The inclusive frame ranges ``[lo, hi]`` the TFI at ``centers`` searches (``h`` frames each
    side, the whole stream when ``None``), clipped to a stream of ``t`` frames (at the start
    only while ``t`` is not known)."""
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
    """numpy form of :func:`tfi_core` (CPU), bit-identical to it.

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
    lib = native.lib
    if lib is not None and s.dtype == np.uint8 and s.flags.c_contiguous and out.flags.c_contiguous:
        # both scans over a tile of pixels in one loop each, every output finished in one pass
        lib.tfi(s, out, np.asarray(centers - base + 1, np.int64), np.asarray(lo - base + 1, np.int64),
                np.asarray(hi - base + 1, np.int64), np.ascontiguousarray(v, np.float32),
                b, length, h * w)
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
            # (np.putmask scans the mask slowly: 60-100 us at 250 x 400 even for 10 pixels)
            if np.count_nonzero(none) * _SPARSE < none.size:
                np.copyto(o, np.float32(0.0), where=none)  # a few pixels: a masked copy
            else:  # many (a dark scene): 0 * (v / d) == +0.0, v / d is finite and > 0
                np.logical_not(none, out=none)
                np.multiply(o, none, out=o, casting="unsafe")

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


def tfi_core(
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
    if _common.small_ops(s.device):
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
    per_centre = _common.small_ops(dev)
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
    h = check_half(max_half_window)
    s, batched = check_spikes(spikes)
    b, t = s.shape[:2]
    v = per_sample_positive(v_th, b, "v_th", s.device)
    c = resolve_centers(centers, t, "all", lambda: _tfi_valid(t, h))
    lo, hi = tfi_bounds(c, h, t)
    if len(c):
        r0, r1 = int(lo.min()), int(hi.max())
        s = s[:, r0 : r1 + 1]
    else:
        r0 = 0
    out = tiled(lambda x, o: tfi_core(x, o, r0, c, lo, hi, v), s, len(c))
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
        self.max_half_window = check_half(max_half_window)

    def forward(self, spikes: Tensor, centers: Centers = None) -> Tensor:
        return tfi(spikes, v_th=self.v_th, centers=centers, max_half_window=self.max_half_window)

    def extra_repr(self) -> str:
        return f"v_th={self.v_th}, max_half_window={self.max_half_window}"
