"""Video sources for the simulators: frames loaded (:func:`load_frames`, read by
:func:`spikegen.media.iter_frames`) and interpolated in time (:func:`interpolate_frames`), and
integrate-and-fire over a whole video, streamed (:func:`iter_simulate_video`) or at once
(:func:`simulate_video`).

Example:
    >>> import torch
    >>> from spikegen.spikes.simulate.video import iter_simulate_video
    >>> frames = torch.rand(5, 1, 8, 8)
    >>> [b.shape[0] for b in iter_simulate_video(frames, interp=2, block=4, init="zero")]
    [4, 4, 1]
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from spikegen.checks import positive_int
from spikegen.degrade import rgb_to_gray
from spikegen.errors import ShapeError, SpikeFileError
from spikegen.media import iter_frames
from spikegen.spikes.simulate._common import light_tensor
from spikegen.spikes.simulate.fire import integrate_and_fire
from spikegen.spikes.simulate.noise import SpikeNoise

__all__ = ["interpolate_frames", "iter_simulate_video", "load_frames", "simulate_video"]


def interpolate_frames(frames: Tensor, n: int) -> Tensor:
    r"""Temporal up-sampling by linear interpolation: ``n - 1`` frames between neighbours.

    Frame ``k * n + j`` of the result is ``lerp(f_k, f_{k+1}, j / n)``; the originals are kept,
    so ``T`` frames become ``(T - 1) * n + 1``.

    Args:
        frames: ``[T, ...]`` float tensor (e.g. ``[T, C, H, W]``).
        n: up-sampling factor (``1`` returns the input).

    Example:
        >>> f = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2)])
        >>> interpolate_frames(f, 4)[:, 0, 0, 0].tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if not isinstance(frames, Tensor) or not frames.is_floating_point() or frames.ndim < 1:
        raise ShapeError("frames must be a floating-point tensor [T, ...]")
    positive_int(n, "interpolation factor n")
    t = frames.shape[0]
    if n == 1 or t < 2:
        return frames
    a, bnext = frames[:-1], frames[1:]
    wts = torch.arange(n, device=frames.device, dtype=frames.dtype) / n  # [n]
    wshape = (1, n) + (1,) * (frames.ndim - 1)
    mid = torch.lerp(a.unsqueeze(1), bnext.unsqueeze(1), wts.view(wshape))  # [T-1, n, ...]
    return torch.cat([mid.reshape((t - 1) * n, *frames.shape[1:]), frames[-1:]], dim=0)


def load_frames(
    source: str | Path,
    *,
    interp: int = 1,
    gray: bool = True,
    max_frames: int | None = None,
) -> Tensor:
    r"""Load a frame folder or a video file as float ``[T, 1, H, W]`` (``[T, 3, H, W]`` with
    ``gray=False``), optionally up-sampled in time by ``interp`` (see :func:`interpolate_frames`;
    ``max_frames`` counts source frames).

    Example:
        >>> frames = load_frames("shared/data/video/davis_tennis", interp=2)  # doctest: +SKIP
    """
    frames = list(iter_frames(source, gray=gray, max_frames=max_frames))
    if not frames:
        raise SpikeFileError(f"{source}: no frames")
    return interpolate_frames(torch.stack(frames), interp)


def iter_simulate_video(
    source: str | Path | Tensor,
    *,
    v_th: float = 1.0,
    gain: float = 1.0,
    interp: int = 1,
    init: Literal["random", "zero"] | Tensor = "random",
    noise: SpikeNoise | None = None,
    generator: torch.Generator | None = None,
    max_frames: int | None = None,
    block: int = 64,
) -> Iterator[Tensor]:
    r"""Integrate-and-fire over a video, streamed: yields uint8 spike blocks ``[t, H, W]``.

    Each (interpolated) frame is one time step; the frames are read, interpolated and simulated
    ``block`` steps at a time with the accumulator carried across blocks, so memory stays bounded
    and the concatenated blocks equal :func:`simulate_video` exactly.

    Args:
        source: a frame folder, a video file, or a float tensor ``[T, H, W]``, ``[T, 1, H, W]``
            or ``[T, 3, H, W]`` (RGB is converted to gray).
        v_th, gain, init, noise, generator: as in :func:`integrate_and_fire`.
        interp: temporal up-sampling factor (linear interpolation).
        max_frames: read at most this many source frames.
        block: steps per yielded block.

    Example:
        >>> for spikes in iter_simulate_video("clip.mp4", interp=4):  # doctest: +SKIP
        ...     print(spikes.shape)
    """
    positive_int(block, "block")
    positive_int(interp, "interp")
    if isinstance(source, Tensor):
        src = source if source.ndim == 4 else source.unsqueeze(1)
        if src.ndim != 4 or src.shape[1] not in (1, 3):
            raise ShapeError(f"a frame tensor must be [T, H, W], [T, 1, H, W] or [T, 3, H, W], "
                             f"got {tuple(source.shape)}")
        if src.shape[1] == 3:
            src = rgb_to_gray(light_tensor(src, "frames"))
        frames_iter: Iterator[Tensor] = iter(src[:max_frames] if max_frames is not None else src)
    else:
        frames_iter = iter_frames(source, gray=True, max_frames=max_frames)

    state: Tensor | str = init
    pending: list[Tensor] = []
    prev: Tensor | None = None

    def run(steps: list[Tensor]) -> Tensor:
        nonlocal state
        seq = torch.stack(steps)[:, 0].unsqueeze(0)  # [1, t, H, W]
        spikes, st = integrate_and_fire(seq, v_th=v_th, gain=gain, init=state, noise=noise,
                                        generator=generator, return_state=True)
        state = st
        return spikes[0]

    for f in frames_iter:
        f = light_tensor(f, "frame")
        if prev is None:
            pending.append(f)
        else:
            wts = torch.arange(1, interp + 1, dtype=f.dtype, device=f.device) / interp
            for wj in wts:
                pending.append(f if float(wj) == 1.0 else torch.lerp(prev, f, wj))
        prev = f
        while len(pending) >= block:
            chunk, pending = pending[:block], pending[block:]
            yield run(chunk)
    if prev is None:
        raise SpikeFileError(f"{source}: no frames")
    if pending:
        yield run(pending)


def simulate_video(
    source: str | Path | Tensor,
    *,
    v_th: float = 1.0,
    gain: float = 1.0,
    interp: int = 1,
    init: Literal["random", "zero"] | Tensor = "random",
    noise: SpikeNoise | None = None,
    generator: torch.Generator | None = None,
    max_frames: int | None = None,
) -> Tensor:
    r"""Spikes of a whole video: uint8 ``[T', H, W]`` with ``T' = (T - 1) * interp + 1``.

    Convenience over :func:`iter_simulate_video` (see there for the arguments).

    Example:
        >>> frames = torch.rand(3, 1, 8, 8)
        >>> simulate_video(frames, interp=4, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([9, 8, 8])
    """
    blocks = list(iter_simulate_video(source, v_th=v_th, gain=gain, interp=interp, init=init,
                                      noise=noise, generator=generator, max_frames=max_frames,
                                      block=256))
    return torch.cat(blocks, dim=0)
