"""Writing PKU ``.dat`` spike files: :class:`DatWriter` (block by block, threaded packing) and
:func:`write_dat` (a whole array). The format is described in :mod:`spikegen.spikes.io`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from spikegen.errors import ShapeError, SpikeFileError
from spikegen.spikes.io.arrays import FrameSource
from spikegen.spikes.io.atomic import AtomicOutput, WriterContext, check_output
from spikegen.spikes.io.helpers import WRITE_BLOCK_BYTES, PathLike, check_geometry, map_ordered, num_workers


def _pack_dat_frames(b: np.ndarray, flip: bool) -> np.ndarray:
    """Pack binary frames ``[n, H, W]`` into the ``.dat`` layout ``[n, ceil(H*W/8)]``."""
    n, H, W = b.shape
    if W % 8 == 0:
        packed = np.packbits(np.ascontiguousarray(b).reshape(n, H * W), axis=1, bitorder="little")
        if flip:
            packed = np.ascontiguousarray(packed.reshape(n, H, W // 8)[:, ::-1]).reshape(n, -1)
        return packed
    src = b[:, ::-1] if flip else b
    # packbits pads each frame (axis 1) with zero bits up to a whole byte.
    return np.packbits(src.reshape(n, H * W), axis=1, bitorder="little")


class DatWriter(WriterContext):
    """Write a ``.dat`` spike file block by block (for streams that do not fit in memory).

    The frames go to a temporary file in the output folder, renamed to ``path`` by
    :meth:`close` (or at the end of a ``with`` block). If an error occurs, nothing is written
    and an existing ``path`` is left untouched.

    Args:
        path: the output ``.dat`` file.
        height: frame height ``H``.
        width: frame width ``W``.
        flip: store frames upside down (the PKU convention).
        overwrite: replace an existing ``path``; otherwise :class:`OutputExistsError`.
        workers: packing threads; ``None`` uses up to 4 cores for writes of 16 MiB or more
            (unpacked), while the calling thread writes the packed blocks in order.

    Example:
        >>> import tempfile, pathlib
        >>> from spikegen.spikes.io import read_dat
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "long.dat"
        >>> with DatWriter(path, 4, 8) as w:
        ...     for _ in range(3):
        ...         w.write(np.ones((5, 4, 8), np.uint8))
        >>> read_dat(path, 4, 8).shape
        (15, 4, 8)
    """

    def __init__(
        self,
        path: PathLike,
        height: int,
        width: int,
        *,
        flip: bool = True,
        overwrite: bool = False,
        workers: int | None = None,
    ) -> None:
        p = Path(os.fspath(path))
        self.where = f"DatWriter('{p}')"
        self.workers = workers
        self.height, self.width, _ = check_geometry(height, width, None, self.where)
        self.flip = bool(flip)
        self.num_frames = 0
        self._out = AtomicOutput(p, overwrite, "spike file")
        self.path = self._out.path

    def write(self, spikes: Any) -> None:
        """Append frames: a binary ``[t, H, W]`` (or ``[H, W]``) numpy array or torch tensor."""
        try:
            src = self._frames(spikes, self.height, self.width)
            T, H, W = src.shape
            # ~1 MiB blocks: the binary check brings a block into L2, where packing reads it
            per_block = max(1, WRITE_BLOCK_BYTES // (H * W))
            starts = range(0, T, per_block)
            nworkers = num_workers(self.workers, len(starts), T * H * W)

            def pack(t0: int) -> np.ndarray:
                return _pack_dat_frames(src.block(t0, min(T, t0 + per_block)), self.flip)

            for packed in map_ordered(pack, starts, nworkers):
                self._out.file.write(memoryview(packed).cast("B"))
            self.num_frames += T
        except BaseException:
            self.abort()
            raise

    def close(self) -> Path:
        """Finish the file and move it into place. Returns its path."""
        if self._out.done:
            return self.path
        if self.num_frames == 0:
            self.abort()
            raise SpikeFileError(f"{self.where}: no frames were written (a .dat file cannot be empty)")
        return self._out.commit()

    def abort(self) -> None:
        """Discard everything written so far; ``path`` is left as it was."""
        self._out.abort()



def write_dat(
    path: PathLike,
    spikes: Any,
    *,
    flip: bool = True,
    overwrite: bool = False,
    workers: int | None = None,
) -> Path:
    """Write a binary ``[T, H, W]`` array to a PKU ``.dat`` file.

    Frames are flipped upside down (``flip=True``), flattened row-major and packed 8 pixels per
    byte, least significant bit first. For ``H * W % 8 == 0`` the bytes are identical to
    Spike-Zoo's ``save_vidar_dat``; otherwise each frame is padded with zero bits to
    ``ceil(H * W / 8)`` bytes (what that function intends, although it raises on such sizes),
    and :func:`read_dat` reads it back exactly.

    The file is written to a temporary file in the same folder and renamed into place when
    complete, so a failure never leaves a truncated output.

    Args:
        path: the output file.
        spikes: numpy array or torch tensor (any device) of 0/1 values (bool, integer or float),
            ``[T, H, W]`` or ``[1, T, H, W]``.
        flip: store frames upside down (the PKU convention).
        overwrite: replace an existing file; otherwise raise :class:`OutputExistsError`.
        workers: packing threads; ``None`` uses up to 4 cores for arrays of 16 MiB or more.

    Returns:
        The path written.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        ShapeError: the array is not ``[T, H, W]``, is empty, or holds values other than 0/1.
        SpikeFileError: the folder does not exist or cannot be written.

    Example:
        >>> import tempfile, pathlib
        >>> from spikegen.spikes.io import read_dat
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.dat"
        >>> x = np.zeros((2, 7, 9), np.uint8); x[0, 0, 0] = 1
        >>> _ = write_dat(path, x)
        >>> path.stat().st_size  # 2 frames of ceil(63 / 8) = 8 bytes
        16
        >>> bool((read_dat(path, 7, 9) == x).all())
        True
    """
    p = Path(os.fspath(path))
    where = f"write_dat('{p}')"
    src = FrameSource(spikes, where)
    T, H, W = src.shape
    if T == 0 or H == 0 or W == 0:
        raise ShapeError(f"{where}: spikes must have at least one frame and pixel, got shape {src.shape}")
    check_output(p, overwrite, "spike file")
    with DatWriter(p, H, W, flip=flip, overwrite=overwrite, workers=workers) as w:
        w.where = where
        w.write(src.spikes)
    return w.path
