"""TFP and TFI over long recordings with bounded memory: :func:`tfp_stream` and
:func:`tfi_stream` read a file, an array or an iterable of blocks and yield one frame at a time,
equal to the in-memory :func:`~spikegen.spikes.reconstruct.playback.tfp` /
:func:`~spikegen.spikes.reconstruct.interval.tfi`.

Example:
    >>> import torch
    >>> from spikegen.spikes.reconstruct.streaming import tfp_stream
    >>> s = torch.ones(6, 2, 2, dtype=torch.uint8)
    >>> [(t, float(f.mean())) for t, f in tfp_stream(s, 5, block=2)]
    [(2, 1.0), (3, 1.0)]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor

from spikegen.checks import positive_int
from spikegen.errors import ShapeError, SpikeFileError
from spikegen.spikes.io import iter_spikes
from spikegen.spikes.reconstruct._common import (
    Centers,
    binary_uint8,
    check_half,
    check_window,
    explicit_centers,
    per_sample_positive,
    tiled,
    to_tensor,
)
from spikegen.spikes.reconstruct.interval import tfi_bounds, tfi_core
from spikegen.spikes.reconstruct.playback import tfp_bounds, tfp_core

__all__ = ["tfi_stream", "tfp_stream"]

Source = Union[str, "os.PathLike[str]", Tensor, np.ndarray, Iterable[Any]]


def _iter_source(
    source: Source, *, block: int, device, spike_kwargs: dict[str, Any]
) -> Iterator[tuple[int, Tensor]]:
    """Yield ``(start, uint8 [t, H, W])`` blocks of a file, an array or an iterable of blocks."""
    if isinstance(source, (str, os.PathLike)):
        kwargs = {k: v for k, v in spike_kwargs.items() if v is not None}
        it: Iterable[Any] = iter_spikes(Path(source), block=block, **kwargs)
    elif isinstance(source, (Tensor, np.ndarray)):
        whole = to_tensor(source, "spikes")
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
        x = to_tensor(arr, "spike block")
        if x.ndim != 3:
            raise ShapeError(f"spike blocks must be [t, H, W], got {tuple(x.shape)}")
        if start > pos:
            raise SpikeFileError(f"spike blocks skip frames {pos}..{start - 1}")
        if start + x.shape[0] <= pos:
            continue
        x = x[pos - start :]  # drop frames already seen (overlapping blocks)
        x = binary_uint8(x, "spike block")
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
    positive_int(chunk, "chunk")
    positive_int(block, "block")
    if centers is None:
        centers = default
    explicit: np.ndarray | None = None
    if isinstance(centers, str):
        if centers not in ("all", "valid"):
            raise ShapeError(f"centers must be 'all', 'valid', an int or a sequence, got {centers!r}")
        mode = centers
    else:
        mode = "explicit"
        explicit = np.sort(explicit_centers(centers), kind="stable")
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
        res = tiled(lambda x, o: core(x, o, a, cand, lo, hi), frames, len(cand))[0]
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
        >>> from spikegen.spikes.reconstruct import tfp
        >>> s = (torch.rand(300, 8, 8) < 0.2).to(torch.uint8)
        >>> frames = dict(tfp_stream(s, 41, block=50))
        >>> torch.equal(frames[20], tfp(s, 41)[0])
        True
    """
    window = check_window(window)
    return _stream(
        source,
        centers=centers,
        default="valid",
        bounds=lambda c, t: tfp_bounds(c, window, t),
        core=lambda s, o, base, c, lo, hi: tfp_core(s, o, base, lo, hi, scale),
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
        >>> from spikegen.spikes.reconstruct import tfi
        >>> s = (torch.rand(200, 8, 8) < 0.2).to(torch.uint8)
        >>> frames = dict(tfi_stream(s, max_half_window=20, block=32))
        >>> torch.equal(frames[100], tfi(s, max_half_window=20, centers=[100])[0])
        True
    """
    h = check_half(max_half_window)
    if h is None:
        raise ShapeError("tfi_stream needs a finite max_half_window (frames searched each side)")
    if isinstance(v_th, Tensor):
        v_th = float(v_th)
    v = per_sample_positive(v_th, 1, "v_th", device if device is not None else "cpu")
    return _stream(
        source,
        centers=centers,
        default="all",
        bounds=lambda c, t: tfi_bounds(c, h, t),
        core=lambda s, o, base, c, lo, hi: tfi_core(s, o, base, c, lo, hi, v.to(s.device)),
        valid_first=h - 1,
        valid_tail=h,
        chunk=chunk,
        block=block,
        device=device,
        spike_kwargs=dict(height=height, width=width, flip=flip, raw_width=raw_width),
    )
