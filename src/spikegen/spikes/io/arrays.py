"""Spike arrays handed to the writers: numpy arrays or torch tensors ``[T, H, W]`` (or
``[1, T, H, W]``), read block by block and checked to be binary."""

from __future__ import annotations

from typing import Any

import numpy as np

from spikegen.errors import ShapeError


def is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach")


class FrameSource:
    """Uniform block access to a ``[T, H, W]`` (or ``[1, T, H, W]``) numpy array or torch tensor."""

    def __init__(self, spikes: Any, where: str) -> None:
        self.where = where
        self.torch = is_torch(spikes)
        if not self.torch:
            if not isinstance(spikes, np.ndarray):
                try:
                    spikes = np.asarray(spikes)
                except Exception as exc:  # ragged lists etc.
                    raise ShapeError(f"{where}: spikes must be an array, got {type(spikes).__name__} ({exc})") from None
            if spikes.dtype.kind not in "biuf":
                raise ShapeError(f"{where}: spikes must be a bool, integer or float array of 0/1, got dtype {spikes.dtype}")
        shape = tuple(int(s) for s in spikes.shape)
        if len(shape) == 4 and shape[0] == 1:
            spikes = spikes[0]
            shape = shape[1:]
        if len(shape) != 3:
            raise ShapeError(f"{where}: spikes must be [T, H, W] (or [1, T, H, W]), got shape {shape}")
        if self.torch and (spikes.is_complex() if hasattr(spikes, "is_complex") else False):
            raise ShapeError(f"{where}: spikes must be real 0/1 values, got dtype {spikes.dtype}")
        self.spikes = spikes
        self.shape: tuple[int, int, int] = shape  # type: ignore[assignment]

    def block(self, t0: int, t1: int) -> np.ndarray:
        """Frames ``t0 .. t1-1`` as a uint8 (or bool) numpy array, checked to be binary."""
        b = self.spikes[t0:t1]
        if self.torch:
            b = b.detach()
            if str(b.dtype) in ("torch.bfloat16", "torch.float16"):
                b = b.float()
            b = b.cpu().numpy()
        return as_binary(b, self.where, t0)


def as_binary(b: np.ndarray, where: str, t0: int = 0) -> np.ndarray:
    kind = b.dtype.kind
    if kind == "b":
        return b
    if kind in "ui":
        if b.size == 0:
            return b.astype(np.uint8)
        lo, hi = (0, int(b.max())) if kind == "u" else (int(b.min()), int(b.max()))
        if lo < 0 or hi > 1:
            raise ShapeError(
                f"{where}: spikes must be binary (0/1), found values in [{lo}, {hi}] "
                f"in frames {t0}..{t0 + len(b) - 1}"
            )
        return b if b.dtype == np.uint8 else b.astype(np.uint8)
    if kind == "f":
        bad = (b != 0) & (b != 1)
        if bad.any():
            v = b[bad].flat[0].item()
            raise ShapeError(
                f"{where}: spikes must be binary (0/1), found value {v!r} "
                f"in frames {t0}..{t0 + len(b) - 1}"
            )
        return b.astype(np.uint8)
    raise ShapeError(f"{where}: spikes must be a bool, integer or float array of 0/1, got dtype {b.dtype}")
