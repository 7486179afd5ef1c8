"""What every spike-file reader shares: the block and file-info records, length, shape,
slicing, times, windows and block iteration (:class:`SpikeReader`, :class:`SpikeRange`)."""

from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from spikegen.errors import SpikeFileError
from spikegen.spikes.io.helpers import BLOCK_BYTES, FrameSelection, block_starts, check_block_range, select_frames
from spikegen.spikes.io.times import DEFAULT_FPS, TimeSpec, check_fps, frame_range


class SpikeBlock(NamedTuple):
    """A block of consecutive frames yielded by :func:`iter_dat` / :func:`iter_spikes`.

    Unpacks as ``start, spikes``. ``spikes`` is a fresh uint8 ``[t, H, W]`` array holding
    frames ``start .. start + t - 1`` of the stream.
    """

    start: int
    spikes: np.ndarray

    @property
    def stop(self) -> int:
        """Index one past the last frame of the block."""
        return self.start + int(self.spikes.shape[0])


@dataclass(frozen=True)
class SpikeFileInfo:
    """What a spike file holds, without its frames (see :func:`spikes_info`).

    ``format`` is ``"dat"``, ``"npz-packed"`` (this project's packed format), ``"npz"`` or
    ``"npy"`` (one plain array). ``frame_bytes``, ``raw_width`` and ``extra_bytes`` describe
    ``.dat`` files (``extra_bytes`` are trailing bytes beyond the whole frames, read with
    ``partial="drop"``). ``meta`` is the metadata stored in a packed ``.npz``. ``fps`` is the
    stream's frame rate and ``fps_source`` where it came from: ``"given"`` (the ``fps=``
    argument), ``"metadata"`` (a packed ``.npz``'s ``fps``) or ``"default"``
    (:data:`DEFAULT_FPS`, the Vidar cameras' 20 kHz).
    """

    path: Path
    format: str
    num_frames: int
    height: int
    width: int
    file_bytes: int
    flip: bool
    frame_bytes: int | None = None
    raw_width: int | None = None
    extra_bytes: int = 0
    meta: dict = field(default_factory=dict)
    fps: float = DEFAULT_FPS
    fps_source: str = "default"

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(num_frames, height, width)``."""
        return (self.num_frames, self.height, self.width)

    @property
    def duration_s(self) -> float:
        """``num_frames / fps`` in seconds."""
        return self.num_frames / self.fps

    def as_dict(self) -> dict:
        """A JSON-serialisable dict of the fields."""
        return {
            "path": str(self.path),
            "format": self.format,
            "num_frames": self.num_frames,
            "height": self.height,
            "width": self.width,
            "file_bytes": self.file_bytes,
            "flip": self.flip,
            "frame_bytes": self.frame_bytes,
            "raw_width": self.raw_width,
            "extra_bytes": self.extra_bytes,
            "meta": dict(self.meta),
            "fps": self.fps,
            "fps_source": self.fps_source,
            "duration_s": self.duration_s,
        }


class SpikeReader:
    """What every spike-file reader shares: length, shape, slicing, block iteration.

    Subclasses set ``path``, ``num_frames``, ``height``, ``width`` and implement
    :meth:`read_frames` and :meth:`info`.
    """

    path: Path
    num_frames: int
    height: int
    width: int
    fps: float = DEFAULT_FPS
    fps_source: str = "default"

    def read_frames(self, frames: FrameSelection = None, *, workers: int | None = None) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.num_frames

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(num_frames, height, width)`` of the decoded stream."""
        return (self.num_frames, self.height, self.width)

    def read(self, start: int | str = 0, stop: int | str | None = None, *, workers: int | None = None) -> np.ndarray:
        """Frames ``start .. stop-1`` as uint8 ``[stop - start, H, W]``.

        Integers follow Python slice rules. Strings are frames or times with units (``"10ms"``,
        ``"0.5s"``, ``"200"``), converted with the stream's ``fps`` as :func:`frame_range`
        (start rounded down, stop up; out-of-range times are an error).
        """
        if isinstance(start, str) or isinstance(stop, str):
            a, b = self.time_range(start, stop)
            return self.read_frames(range(a, b), workers=workers)
        return self.read_frames(slice(start, stop), workers=workers)

    def time_range(self, start: TimeSpec = None, end: TimeSpec = None, *,
                   names: tuple[str, str] = ("start", "end")) -> tuple[int, int]:
        """:func:`frame_range` of this stream at its ``fps``."""
        return frame_range(start, end, self.num_frames, self.fps, names=names)

    def window(self, start: int, stop: int) -> SpikeRange:
        """Frames ``start .. stop-1`` as a reader of their own (frame 0 = ``start``)."""
        return SpikeRange(self, start, stop)

    def _init_fps(self, fps: Any, stored: Any = None) -> None:
        if fps is not None:
            self.fps, self.fps_source = check_fps(fps), "given"
        elif stored is not None:
            self.fps, self.fps_source = check_fps(stored, f"spike file '{self.path}': the fps in its metadata"), "metadata"
        else:
            self.fps, self.fps_source = DEFAULT_FPS, "default"

    def __getitem__(self, key: int | slice) -> np.ndarray:
        """``f[k]`` is frame ``k`` as ``[H, W]``; ``f[a:b:s]`` is ``[t, H, W]``."""
        if isinstance(key, slice):
            return self.read_frames(key)
        return self.read_frames(operator.index(key))[0]

    def blocks(
        self,
        block: int,
        overlap: int = 0,
        *,
        start: int = 0,
        stop: int | None = None,
        workers: int | None = None,
    ) -> Iterator[SpikeBlock]:
        """Iterate over frames ``start .. stop-1`` in blocks of at most ``block`` frames.

        Consecutive blocks share ``overlap`` frames (``0 <= overlap < block``); every frame of the
        range is in at least one block and the last block may be shorter. Only one block is in
        memory at a time (plus whatever the caller keeps).
        """
        s, e, b, ov = check_block_range(start, stop, self.num_frames, block, overlap, f"spike file '{self.path}'")
        for t0, t1 in block_starts(s, e, b, ov):
            yield SpikeBlock(t0, self.read_frames(range(t0, t1), workers=workers))

    def __iter__(self) -> Iterator[np.ndarray]:
        """Iterate over single frames ``[H, W]`` (decoded in blocks)."""
        per_block = max(1, BLOCK_BYTES // (self.height * self.width))
        for blk in self.blocks(per_block):
            yield from blk.spikes


class SpikeRange(SpikeReader):
    """Frames ``start .. stop-1`` of another reader, read as a stream of their own.

    Frame ``k`` of the range is frame ``start + k`` of ``base``; ``start`` tells the offset.
    Size, ``fps`` and ``flip`` are the base's. Made by ``reader.window(start, stop)``.
    """

    def __init__(self, base: SpikeReader, start: int, stop: int) -> None:
        a, b = operator.index(start), operator.index(stop)
        if not 0 <= a <= b <= base.num_frames:
            raise SpikeFileError(f"spike file '{base.path}': need 0 <= start <= stop <= {base.num_frames}, got {a}, {b}")
        self.base, self.start, self.stop = base, a, b
        self.path, self.height, self.width = base.path, base.height, base.width
        self.num_frames = b - a
        self.fps, self.fps_source = base.fps, base.fps_source
        self.flip = getattr(base, "flip", False)
        self.meta = getattr(base, "meta", {})

    def __repr__(self) -> str:
        return f"SpikeRange({self.base!r}, {self.start}, {self.stop})"

    def info(self) -> SpikeFileInfo:
        """The base file's :class:`SpikeFileInfo`."""
        return self.base.info()

    def read_frames(self, frames: FrameSelection = None, *, workers: int | None = None) -> np.ndarray:
        idx = select_frames(frames, self.num_frames, f"spike file '{self.path}' (frames {self.start}..{self.stop - 1})")
        a = self.start
        return self.base.read_frames(range(idx.start + a, idx.stop + a, idx.step), workers=workers)
