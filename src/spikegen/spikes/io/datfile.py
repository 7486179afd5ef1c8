"""Reading PKU ``.dat`` spike files: :class:`DatFile` (partial, streamed, threaded reads),
:func:`read_dat`, :func:`iter_dat`, :func:`dat_info`. The format is described in
:mod:`spikegen.spikes.io`."""

from __future__ import annotations

import io
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from spikegen.errors import SpikeFileError
from spikegen.spikes import native
from spikegen.spikes.io.helpers import (
    BLOCK_BYTES,
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    FrameSelection,
    Partial,
    PathLike,
    check_block_range,
    check_geometry,
    num_workers,
    run_workers,
    select_frames,
    stat_input,
)
from spikegen.spikes.io.reader import SpikeBlock, SpikeFileInfo, SpikeReader


class DatFile(SpikeReader):
    """A PKU ``.dat`` spike file opened for (partial, streaming) reading.

    Only the file size is read on construction; frames are read on demand. No file handle is
    kept open between reads, so the object is cheap, picklable and safe to share with data
    loader workers.

    Args:
        path: the ``.dat`` file.
        height: frame height ``H`` (default 250).
        width: frame width ``W`` to return (default 400).
        flip: the stored frames are upside down (the PKU convention); flip rows on read.
        raw_width: stored row width when the camera stores extra columns (e.g. 416 for a
            400-wide image); columns beyond ``width`` are dropped. Defaults to ``width``.
        partial: what to do when the file size is not a whole number of frames: ``"error"``
            (default) raises :class:`~spikegen.errors.SpikeFileError`, ``"drop"`` ignores the
            trailing bytes and reads the whole frames only.
        fps: the recording's frame rate (a ``.dat`` does not store it); default
            :data:`DEFAULT_FPS`, 20 000 (the Vidar cameras).

    Raises:
        SpikeFileError: missing or empty file, bad height/width/raw_width, or a size that is not
            a whole number of frames (with ``partial="error"``).

    Example:
        >>> import tempfile, pathlib
        >>> from spikegen.spikes.io import write_dat
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.dat"
        >>> _ = write_dat(path, np.ones((10, 4, 8), np.uint8))
        >>> f = DatFile(path, 4, 8)
        >>> len(f), f.shape, f.frame_bytes
        (10, (10, 4, 8), 4)
        >>> f.read(2, 5).shape
        (3, 4, 8)
        >>> [(blk.start, blk.spikes.shape[0]) for blk in f.blocks(4, overlap=1)]
        [(0, 4), (3, 4), (6, 4)]
    """

    def __init__(
        self,
        path: PathLike,
        height: int = DEFAULT_HEIGHT,
        width: int = DEFAULT_WIDTH,
        *,
        flip: bool = True,
        raw_width: int | None = None,
        partial: Partial = "error",
        fps: float | None = None,
    ) -> None:
        p = Path(os.fspath(path))
        where = f"spike file '{p}'"
        self.height, self.width, self.raw_width = check_geometry(height, width, raw_width, where)
        if partial not in ("error", "drop"):
            raise SpikeFileError(f"{where}: partial must be 'error' or 'drop', got {partial!r}")
        self.flip = bool(flip)
        self.path, self.file_bytes = stat_input(p, "spike file")
        self._init_fps(fps)
        self.frame_bytes = (self.height * self.raw_width + 7) // 8
        self.num_frames, self.extra_bytes = divmod(self.file_bytes, self.frame_bytes)
        size_txt = f"{self.height}x{self.width}" + (
            f" (raw width {self.raw_width})" if self.raw_width != self.width else ""
        )
        if self.file_bytes == 0:
            raise SpikeFileError(
                f"spike file '{p}' is empty (0 bytes); expected {size_txt} frames of "
                f"{self.frame_bytes} bytes each"
            )
        if self.num_frames == 0:
            raise SpikeFileError(
                f"spike file '{p}' ({self.file_bytes} bytes) is smaller than one {size_txt} "
                f"frame ({self.frame_bytes} bytes); check height, width and raw_width"
            )
        if self.extra_bytes and partial == "error":
            raise SpikeFileError(
                f"spike file '{p}': its size, {self.file_bytes} bytes, is not a whole number of "
                f"{size_txt} frames of {self.frame_bytes} bytes: it holds {self.num_frames} whole "
                f"frames and {self.extra_bytes} extra bytes. Check height, width and raw_width, "
                f"or pass partial='drop' to read the {self.num_frames} whole frames only"
            )

    # -- basic properties --------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"DatFile('{self.path}', frames={self.num_frames}, height={self.height}, "
            f"width={self.width}, raw_width={self.raw_width}, flip={self.flip})"
        )

    def info(self) -> SpikeFileInfo:
        """The file's :class:`SpikeFileInfo` (no frame is read)."""
        return SpikeFileInfo(
            path=self.path,
            format="dat",
            num_frames=self.num_frames,
            height=self.height,
            width=self.width,
            file_bytes=self.file_bytes,
            flip=self.flip,
            frame_bytes=self.frame_bytes,
            raw_width=self.raw_width,
            extra_bytes=self.extra_bytes,
            fps=self.fps,
            fps_source=self.fps_source,
        )

    # -- reading -------------------------------------------------------------------------------

    def read_frames(self, frames: FrameSelection = None, *, workers: int | None = None) -> np.ndarray:
        """Decode the selected frames into a new C-contiguous uint8 ``[t, H, W]`` array.

        Args:
            frames: ``None`` (all), a ``slice`` (Python slicing rules, any step), a ``range``,
                a ``(start, stop)`` tuple, or an ``int`` (one frame, returned as ``[1, H, W]``).
            workers: decoding threads. ``None`` uses up to 4 cores for reads of 16 MiB or more
                when other processes leave them idle (1-minute load average), one otherwise.
        """
        idx = select_frames(frames, self.num_frames, f"spike file '{self.path}'")
        n = len(idx)
        H, W = self.height, self.width
        if n == 0:
            return np.empty((n, H, W), dtype=np.uint8)
        out_bytes = n * H * W
        fb = self.frame_bytes
        frame_px = H * self.raw_width
        # Blocks of ~2 MiB unpacked (cache-sized), and at most 1/8 of the read so that the
        # scratch memory stays small next to the output.
        per_block = max(1, min(BLOCK_BYTES // frame_px, -(-n // 8)))
        nblocks = -(-n // per_block)
        nworkers = num_workers(workers, nblocks, out_bytes)
        if workers is None:  # keep the scratch of all threads under ~10% of the output
            scratch = per_block * (frame_px + 2 * fb)
            nworkers = max(1, min(nworkers, out_bytes // (10 * scratch)))
        if nworkers == 1 and self.raw_width == W and W % 8 == 0:
            return self._read_one_pass(idx, per_block)
        out = np.empty((n, H, W), dtype=np.uint8)
        counter = itertools.count()
        lock = threading.Lock()

        def job(stopped: Callable[[], bool]) -> None:
            buf = np.empty(min(per_block, n) * fb, dtype=np.uint8)
            with open(self.path, "rb", buffering=0) as fh:
                while not stopped():
                    with lock:
                        k = next(counter)
                    if k >= nblocks:
                        return
                    j0 = k * per_block
                    j1 = min(n, j0 + per_block)
                    raw = buf[: (j1 - j0) * fb]
                    self._read_into(fh, idx[j0:j1], raw)
                    self._decode(raw, out[j0:j1])

        run_workers(job, nworkers)
        return out

    # -- internals -------------------------------------------------------------------------------

    def _read_one_pass(self, idx: range, per_block: int) -> np.ndarray:
        """Single-threaded read of byte-aligned rows: the packed frames are gathered (rows
        flipped, 1/8 of the output) and unpacked by one ``np.unpackbits`` call that allocates
        the output itself -- numpy has no ``out=`` for it, and unpacking block by block into a
        preallocated array costs one more pass over the output."""
        n, H, W, fb = len(idx), self.height, self.width, self.frame_bytes
        lib = native.lib
        if lib is not None:  # each block unpacked (and flipped) into the output while in cache
            out = np.empty((n, H, W), dtype=np.uint8)
            buf = np.empty(min(per_block, n) * fb, dtype=np.uint8)
            with open(self.path, "rb", buffering=0) as fh:
                for j0 in range(0, n, per_block):
                    j1 = min(n, j0 + per_block)
                    raw = buf[: (j1 - j0) * fb]
                    self._read_into(fh, idx[j0:j1], raw)
                    lib.unpack_rows(raw, out[j0:j1], j1 - j0, H, W // 8, W // 8, self.flip)
            return out
        packed = np.empty((n, H, W // 8), dtype=np.uint8)
        flat = packed.reshape(n, fb)
        buf = np.empty(min(per_block, n) * fb, dtype=np.uint8) if self.flip else None
        with open(self.path, "rb", buffering=0) as fh:
            for j0 in range(0, n, per_block):
                j1 = min(n, j0 + per_block)
                if buf is None:
                    self._read_into(fh, idx[j0:j1], flat[j0:j1].reshape(-1))
                else:
                    raw = buf[: (j1 - j0) * fb]
                    self._read_into(fh, idx[j0:j1], raw)
                    packed[j0:j1] = raw.reshape(j1 - j0, H, W // 8)[:, ::-1]
        return np.unpackbits(packed.reshape(-1), bitorder="little").reshape(n, H, W)

    def _read_into(self, fh: io.RawIOBase, idx: range, raw: np.ndarray) -> None:
        fb = self.frame_bytes
        if idx.step == 1:
            self._readinto_at(fh, idx.start * fb, memoryview(raw))
        else:
            mv = memoryview(raw)
            for j, t in enumerate(idx):
                self._readinto_at(fh, t * fb, mv[j * fb : (j + 1) * fb])

    def _readinto_at(self, fh: io.RawIOBase, offset: int, mv: memoryview) -> None:
        fh.seek(offset)
        got = 0
        total = len(mv)
        while got < total:
            r = fh.readinto(mv[got:])
            if not r:
                raise SpikeFileError(
                    f"spike file '{self.path}' became shorter while it was being read "
                    f"(expected {self.file_bytes} bytes)"
                )
            got += r

    def _decode(self, raw: np.ndarray, out: np.ndarray) -> None:
        """Unpack ``n`` stored frames (``raw``, ``n * frame_bytes`` bytes) into ``out[n, H, W]``."""
        n = out.shape[0]
        H, W, rw = self.height, self.width, self.raw_width
        lib = native.lib
        if lib is not None and rw % 8 == 0 and W % 8 == 0 and out.flags.c_contiguous:
            lib.unpack_rows(raw, out, n, H, rw // 8, W // 8, self.flip)
            return
        if rw % 8 == 0:
            # Rows are byte-aligned: flip and crop on the packed bytes (8x less data), then unpack.
            rows = raw.reshape(n, H, rw // 8)
            if self.flip:
                rows = rows[:, ::-1]
            if W != rw:
                rows = rows[:, :, : (W + 7) // 8]
            if W % 8 == 0:
                bits = np.unpackbits(np.ascontiguousarray(rows).reshape(-1), bitorder="little")
                out[...] = bits.reshape(n, H, W)
            else:
                out[...] = np.unpackbits(
                    np.ascontiguousarray(rows), axis=-1, count=W, bitorder="little"
                )
        else:
            bits = np.unpackbits(
                raw.reshape(n, self.frame_bytes), axis=1, count=H * rw, bitorder="little"
            ).reshape(n, H, rw)
            if self.flip:
                bits = bits[:, ::-1]
            out[...] = bits[:, :, :W]


def read_dat(
    path: PathLike,
    height: int = DEFAULT_HEIGHT,
    width: int = DEFAULT_WIDTH,
    *,
    flip: bool = True,
    raw_width: int | None = None,
    frames: FrameSelection = None,
    partial: Partial = "error",
    workers: int | None = None,
) -> np.ndarray:
    """Read a PKU ``.dat`` spike file into a uint8 ``[T, H, W]`` array of {0, 1}.

    Bits are least significant first, each frame holds ``ceil(H * raw_width / 8)`` bytes and the
    stored frames are upside down (see the module docstring). Only the bytes of the selected
    frames are read, a block at a time. On one thread (and rows of a multiple of 8 pixels, as
    on all real cameras) the packed frames are gathered and unpacked in one pass: a read needs
    the output plus 1/8 of it; otherwise frames are decoded block by block straight into the
    output array (the output plus a few MiB).

    Args:
        path: the ``.dat`` file.
        height: frame height ``H`` (default 250).
        width: frame width ``W`` (default 400).
        flip: flip rows after unpacking (the PKU cameras store frames upside down).
        raw_width: stored row width (e.g. 416); columns beyond ``width`` are dropped.
        frames: which frames to read: ``None`` (all), a ``slice`` (Python rules, any step), a
            ``range``, a ``(start, stop)`` tuple, or an ``int`` (one frame, as ``[1, H, W]``).
        partial: ``"error"`` (default) or ``"drop"``: what to do when the file is not a whole
            number of frames (``"drop"`` reads the whole frames and ignores the rest).
        workers: decoding threads; ``None`` uses up to 4 cores for reads of 16 MiB or more
            when other processes leave them idle (1-minute load average), one otherwise.

    Returns:
        uint8 array ``[T, H, W]`` (C-contiguous) of {0, 1}.

    Raises:
        SpikeFileError: missing/empty file, bad geometry, a size that is not a whole number of
            frames, or a frame selection out of range. The message names the file.

    Example:
        >>> import tempfile, pathlib
        >>> from spikegen.spikes.io import write_dat
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.dat"
        >>> x = (np.random.default_rng(0).random((5, 250, 400)) < 0.2).astype(np.uint8)
        >>> _ = write_dat(path, x)
        >>> path.stat().st_size  # 5 frames of 12500 bytes
        62500
        >>> y = read_dat(path)  # 250x400 is the default
        >>> bool((y == x).all()), y.dtype, y.shape
        (True, dtype('uint8'), (5, 250, 400))
        >>> read_dat(path, frames=slice(1, 3)).shape
        (2, 250, 400)
    """
    f = DatFile(path, height, width, flip=flip, raw_width=raw_width, partial=partial)
    return f.read_frames(frames, workers=workers)


def iter_dat(
    path: PathLike,
    height: int = DEFAULT_HEIGHT,
    width: int = DEFAULT_WIDTH,
    *,
    block: int,
    overlap: int = 0,
    flip: bool = True,
    raw_width: int | None = None,
    partial: Partial = "error",
    start: int = 0,
    stop: int | None = None,
) -> Iterator[SpikeBlock]:
    """Stream a ``.dat`` file in blocks of at most ``block`` frames with bounded memory.

    Yields :class:`SpikeBlock` named tuples ``(start, spikes)``: ``spikes`` is a fresh uint8
    ``[t, H, W]`` array of frames ``start .. start + t - 1``. Consecutive blocks share
    ``overlap`` frames (e.g. ``overlap = window - 1`` for a sliding window of ``window`` frames).
    The geometry and size checks run when this function is called, before the first block.

    Example:
        >>> import tempfile, pathlib
        >>> from spikegen.spikes.io import write_dat
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.dat"
        >>> _ = write_dat(path, np.zeros((10, 8, 8), np.uint8))
        >>> [(s, blk.shape[0]) for s, blk in iter_dat(path, 8, 8, block=4, overlap=2)]
        [(0, 4), (2, 4), (4, 4), (6, 4)]
    """
    f = DatFile(path, height, width, flip=flip, raw_width=raw_width, partial=partial)
    # Validate the block arguments now rather than on the first next().
    check_block_range(start, stop, f.num_frames, block, overlap, f"spike file '{f.path}'")
    return f.blocks(block, overlap, start=start, stop=stop)


def dat_info(
    path: PathLike,
    height: int = DEFAULT_HEIGHT,
    width: int = DEFAULT_WIDTH,
    raw_width: int | None = None,
    *,
    flip: bool = True,
    partial: Partial = "error",
) -> SpikeFileInfo:
    """Number of frames, sizes and trailing bytes of a ``.dat`` file, reading no frame.

    Example:
        >>> import tempfile, pathlib
        >>> from spikegen.spikes.io import write_dat
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.dat"
        >>> _ = write_dat(path, np.zeros((3, 250, 400), np.uint8))
        >>> info = dat_info(path, 250, 400)
        >>> info.num_frames, info.frame_bytes, info.file_bytes
        (3, 12500, 37500)
    """
    return DatFile(path, height, width, flip=flip, raw_width=raw_width, partial=partial).info()
