"""Reading and writing spike streams: the PKU ``.dat`` format and a packed ``.npz`` format.

Spike arrays in memory are ``uint8`` ``[T, H, W]`` arrays of {0, 1} (frames upright).

**The .dat format** (PKU "Vidar" spike cameras, SpikeCV, Spike-Zoo): frames are stored back to
back with no header. Pixel ``p`` of a stored frame (row-major, ``raw_width`` pixels per row) is
bit ``p % 8`` of byte ``p // 8`` of that frame, least significant bit first
(``np.unpackbits(..., bitorder="little")``). The stored frame is upside down, so readers flip the
rows after unpacking and writers flip them before packing (``flip=True``). When
``H * raw_width`` is not a multiple of 8, every frame is padded with zero bits to a whole number
of bytes, ``ceil(H * raw_width / 8)``; reader and writer use the same frame size, so
``read_dat(write_dat(x)) == x`` for every size. For sizes that are a multiple of 8 (all real
cameras), :func:`write_dat` is byte-identical to Spike-Zoo's ``save_vidar_dat``.

**The packed .npz format** (:func:`save_spikes` / :func:`load_spikes`): two arrays, ``bits``
(``np.packbits`` of the flattened ``[T, H, W]`` array, little bit order, frames upright) and
``meta`` (UTF-8 JSON bytes: format name and version, ``num_frames``, ``height``, ``width``,
``flip``, ``bitorder``, plus any user metadata such as ``v_th``, ``source``, ``fps``). It is
loaded without pickle. :func:`load_spikes` also reads plain ``.npz`` / ``.npy`` files of other
toolkits holding one unpacked ``[T, H, W]`` array.

**Streaming**: :class:`DatFile` (and :func:`open_spikes` for any supported format) gives the
number of frames without reading them, reads any frame range, and iterates over blocks of frames
with bounded memory (:func:`iter_dat`, :func:`iter_spikes`). :class:`DatWriter` writes a
``.dat`` file block by block.

Every write goes to a temporary file in the output folder that is renamed over the output only
when complete, so a failure never leaves a truncated file, and an existing output is never
replaced unless ``overwrite=True``.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import operator
import os
import re
import secrets
import struct
import threading
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, NamedTuple, Union

import numpy as np

from spikegen.errors import OutputExistsError, ShapeError, SpikeFileError

__all__ = [
    "DEFAULT_FPS",
    "DatFile",
    "DatWriter",
    "NpzSpikes",
    "SpikeBlock",
    "SpikeRange",
    "SpikeFileInfo",
    "dat_frame_bytes",
    "dat_info",
    "frame_range",
    "iter_dat",
    "iter_spikes",
    "load_spikes",
    "open_spikes",
    "read_dat",
    "save_spikes",
    "spikes_info",
    "time_to_frame",
    "write_dat",
]

PathLike = Union[str, "os.PathLike[str]"]
FrameSelection = Union[slice, range, int, tuple, None]
Partial = Literal["error", "drop"]

#: Default sensor size of the PKU Vidar cameras (and the shared REDS-based streams).
DEFAULT_HEIGHT = 250
DEFAULT_WIDTH = 400

#: Frame rate assumed for files that do not state one (every ``.dat``): the PKU Vidar
#: cameras record 20 000 frames per second.
DEFAULT_FPS = 20000.0

PACKED_FORMAT = "spikegen.packed-spikes"
PACKED_VERSION = 1

# Unpacked bytes per decode block: small enough to stay in a core's L2/L3 cache.
_BLOCK_BYTES = 2 << 20
# Unpacked bytes per packing block of the writers.
_WRITE_BLOCK_BYTES = 1 << 20
# Reads producing fewer bytes than this are decoded on the calling thread only.
_PARALLEL_MIN_BYTES = 16 << 20
_MAX_AUTO_WORKERS = 4


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _positive_int(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool):
        raise SpikeFileError(f"{where}: {name} must be a positive integer, got {value!r}")
    try:
        ivalue = operator.index(value)
    except TypeError:
        raise SpikeFileError(f"{where}: {name} must be a positive integer, got {value!r}") from None
    if ivalue <= 0:
        raise SpikeFileError(f"{where}: {name} must be a positive integer, got {ivalue}")
    return ivalue


def _geometry(height: Any, width: Any, raw_width: Any, where: str) -> tuple[int, int, int]:
    h = _positive_int(height, "height", where)
    w = _positive_int(width, "width", where)
    rw = w if raw_width is None else _positive_int(raw_width, "raw_width", where)
    if rw < w:
        raise SpikeFileError(
            f"{where}: raw_width ({rw}) must be >= width ({w}); raw_width is the stored row "
            f"width, of which the first `width` columns are kept"
        )
    return h, w, rw


def dat_frame_bytes(height: int, width: int, raw_width: int | None = None) -> int:
    """Bytes per frame in a ``.dat`` file: ``ceil(height * raw_width / 8)``.

    Args:
        height: frame height ``H``.
        width: frame width ``W``.
        raw_width: stored row width (``>= width``); defaults to ``width``.

    Example:
        >>> dat_frame_bytes(250, 400)
        12500
        >>> dat_frame_bytes(7, 9)  # 63 bits, padded to 8 bytes
        8
    """
    h, _, rw = _geometry(height, width, raw_width, "dat_frame_bytes")
    return (h * rw + 7) // 8


def _idle_cpus() -> int:
    """CPUs this process may use that other processes leave idle (by the 1-minute load average).

    Extra decoding threads only pay on idle cores: on a busy machine every thread waits for a
    time slice, and one thread is faster."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 1
    return max(1, int(cpus - load))


def _num_workers(workers: int | None, nblocks: int, nbytes: int) -> int:
    if workers is None:
        if nbytes < _PARALLEL_MIN_BYTES:
            return 1
        workers = min(_idle_cpus(), _MAX_AUTO_WORKERS)
    else:
        try:
            valid = not isinstance(workers, bool) and operator.index(workers) >= 1
        except TypeError:
            valid = False
        if not valid:
            raise SpikeFileError(f"workers must be a positive integer or None, got {workers!r}")
        workers = operator.index(workers)
    return max(1, min(workers, nblocks))


def _run_workers(job: Callable[[Callable[[], bool]], None], workers: int) -> None:
    """Run ``job(stopped)`` on ``workers`` threads; re-raise the first error."""
    if workers == 1:
        job(lambda: False)
        return
    stop = threading.Event()

    def guarded() -> None:
        try:
            job(stop.is_set)
        except BaseException:
            stop.set()
            raise

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spikegen-io") as pool:
        futures = [pool.submit(guarded) for _ in range(workers)]
    for fut in futures:
        fut.result()


def _map_ordered(fn: Callable[[Any], Any], items: Any, workers: int) -> Iterator[Any]:
    """``map(fn, items)`` on ``workers`` threads, in order, with at most ``2 * workers`` in flight."""
    if workers == 1:
        for item in items:
            yield fn(item)
        return
    it = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spikegen-io") as pool:
        pending = deque(pool.submit(fn, item) for item in itertools.islice(it, 2 * workers))
        try:
            while pending:
                result = pending.popleft().result()
                for item in itertools.islice(it, 1):
                    pending.append(pool.submit(fn, item))
                yield result
        finally:
            for fut in pending:
                fut.cancel()


def _select_frames(frames: FrameSelection, n: int, where: str) -> range:
    """Turn a frame selection into a ``range`` of valid frame indices."""
    if frames is None:
        return range(n)
    if isinstance(frames, slice):
        try:
            return range(*frames.indices(n))
        except (TypeError, ValueError) as exc:
            raise SpikeFileError(f"{where}: invalid frame slice {frames!r}: {exc}") from None
    if isinstance(frames, tuple):
        if len(frames) != 2:
            raise SpikeFileError(f"{where}: frames as a tuple must be (start, stop), got {frames!r}")
        return _select_frames(slice(*frames), n, where)
    if isinstance(frames, range):
        if len(frames) and (min(frames) < 0 or max(frames) >= n):
            raise SpikeFileError(
                f"{where}: frames {frames!r} is out of range for a stream of {n} frames"
            )
        return frames
    if isinstance(frames, bool):
        raise SpikeFileError(f"{where}: frames must be a slice, range, (start, stop) or int")
    try:
        k = operator.index(frames)
    except TypeError:
        raise SpikeFileError(
            f"{where}: frames must be a slice, range, (start, stop) or int, got {frames!r}"
        ) from None
    kk = k + n if k < 0 else k
    if not 0 <= kk < n:
        raise SpikeFileError(f"{where}: frame {k} is out of range for a stream of {n} frames")
    return range(kk, kk + 1)


def _range_to_slice(r: range) -> slice:
    """The slice selecting the indices of ``r`` (a range of valid, non-negative indices)."""
    if not len(r):
        return slice(0, 0)
    stop = r.stop if r.stop >= 0 else None
    return slice(r.start, stop, r.step)


def _block_range(start: Any, stop: Any, n: int, block: Any, overlap: Any, where: str) -> tuple[int, int, int, int]:
    b = _positive_int(block, "block", where)
    if isinstance(overlap, bool):
        raise SpikeFileError(f"{where}: overlap must be an integer in [0, block)")
    try:
        ov = operator.index(overlap)
    except TypeError:
        raise SpikeFileError(f"{where}: overlap must be an integer, got {overlap!r}") from None
    if not 0 <= ov < b:
        raise SpikeFileError(f"{where}: overlap must be in [0, block={b}), got {ov}")
    try:
        s = 0 if start is None else operator.index(start)
        e = n if stop is None else operator.index(stop)
    except TypeError:
        raise SpikeFileError(f"{where}: start and stop must be integers, got {start!r}, {stop!r}") from None
    if not 0 <= s <= e <= n:
        raise SpikeFileError(
            f"{where}: need 0 <= start <= stop <= {n} (the number of frames), got start={s}, stop={e}"
        )
    return s, e, b, ov


def _block_starts(start: int, stop: int, block: int, overlap: int) -> Iterator[tuple[int, int]]:
    step = block - overlap
    t = start
    while t < stop:
        e = min(t + block, stop)
        yield t, e
        if e >= stop:
            return
        t += step


# --------------------------------------------------------------------------------------------
# time: frame rates and time specifications ("10ms", "0.5s", "200")
# --------------------------------------------------------------------------------------------

_TIME_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)(?:[eE]([+-]?\d+))?\s*(ms|s)?\s*$")
TimeSpec = Union[int, str, None]


def check_fps(fps: Any, name: str = "fps") -> float:
    """``fps`` as a positive finite float, else :class:`SpikeFileError` naming ``name``."""
    if isinstance(fps, bool):
        raise SpikeFileError(f"{name} must be a positive number (frames per second), got {fps!r}")
    try:
        f = float(fps)
    except (TypeError, ValueError):
        raise SpikeFileError(f"{name} must be a positive number (frames per second), got {fps!r}") from None
    if not (math.isfinite(f) and f > 0):
        raise SpikeFileError(f"{name} must be a positive finite number (frames per second), got {fps!r}")
    return f


def _exact(x: float | int) -> Fraction:
    # The decimal a float prints as (29.97 -> 2997/100), not its binary value.
    return Fraction(x) if isinstance(x, int) else Fraction(repr(float(x)))


def time_to_frame(spec: int | str, fps: float = DEFAULT_FPS, *, rounding: str = "floor", name: str = "time") -> int:
    """A frame index from a frame count or a time.

    ``spec`` is an ``int`` or a string: a plain integer (``"200"``) is a frame index; a number
    with the suffix ``ms`` or ``s`` (``"10ms"``, ``"0.5s"``, ``"2.5e-3s"``) is a time from the
    start of the stream, converted exactly (rational arithmetic) to ``time * fps`` and rounded
    down (``rounding="floor"``, for a start) or up (``"ceil"``, for an end). With frame ``k``
    exposed over ``[k / fps, (k + 1) / fps)``, ``floor(start)`` .. ``ceil(end) - 1`` are exactly
    the frames that overlap the time interval ``[start, end)``.

    Example:
        >>> time_to_frame("5ms", 20000), time_to_frame("10ms", 20000, rounding="ceil"), time_to_frame(7)
        (100, 200, 7)
        >>> time_to_frame("0.01ms", 20000), time_to_frame("0.01ms", 20000, rounding="ceil")
        (0, 1)
    """
    if rounding not in ("floor", "ceil"):
        raise ValueError(f"rounding must be 'floor' or 'ceil', got {rounding!r}")
    if isinstance(spec, bool):
        raise SpikeFileError(f"{name} must be a frame index or a time such as 10ms or 0.5s, got {spec!r}")
    if not isinstance(spec, str):
        try:
            k = operator.index(spec)
        except TypeError:
            raise SpikeFileError(f"{name} must be a frame index or a time such as 10ms or 0.5s, got {spec!r}") from None
        if k < 0:
            raise SpikeFileError(f"{name} must be >= 0, got {k}")
        return k
    m = _TIME_RE.match(spec)
    if m is None:
        raise SpikeFileError(
            f"{name} must be a frame index (e.g. 200) or a time with a unit (e.g. 10ms, 0.5s), got {spec!r}"
        )
    number, exp, unit = m.groups()
    value = Fraction(number) * (Fraction(10) ** int(exp) if exp else 1)
    if unit is None:
        if value.denominator != 1:
            raise SpikeFileError(f"{name}: a frame index must be an integer, got {spec!r} (add ms or s for a time)")
        return int(value)
    seconds = value / 1000 if unit == "ms" else value
    frames = seconds * _exact(check_fps(fps))
    return math.floor(frames) if rounding == "floor" else math.ceil(frames)


def frame_range(
    start: TimeSpec,
    end: TimeSpec,
    num_frames: int,
    fps: float = DEFAULT_FPS,
    *,
    names: tuple[str, str] = ("start", "end"),
) -> tuple[int, int]:
    """``(first, stop)`` frames selected by a start and an end given as frames or times.

    ``start`` / ``end`` are as :func:`time_to_frame` (``None``: the start / the end of the
    stream): ``first = floor(start * fps)``, ``stop = ceil(end * fps)``, the end exclusive, so
    the range holds exactly the frames whose exposure overlaps ``[start, end)``. Frame counts
    and times mix freely. Raises :class:`SpikeFileError` (naming ``names``) unless
    ``0 <= first < stop <= num_frames``.

    Example:
        >>> frame_range("5ms", "10ms", 1000, 20000)      # 20 kHz: 20 frames per ms
        (100, 200)
        >>> frame_range(None, "0.5s", 20000), frame_range(100, None, 400)
        ((0, 10000), (100, 400))
    """
    n = int(num_frames)
    a = 0 if start is None else time_to_frame(start, fps, rounding="floor", name=names[0])
    b = n if end is None else time_to_frame(end, fps, rounding="ceil", name=names[1])
    dur = f"{n} frames, {n / float(fps) * 1000:g} ms at {float(fps):g} fps"
    if b > n:
        raise SpikeFileError(f"{names[1]} {end} is frame {b}, beyond the end of the stream ({dur})")
    if a >= b:
        which = f"{names[0]} {start} (frame {a})" if start is not None else f"{names[0]} 0"
        raise SpikeFileError(
            f"{which} must come before {names[1]} {end if end is not None else '(the end)'} (frame {b}); "
            f"the stream holds {dur}"
        )
    return a, b


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


def _stat_input(path: PathLike, what: str) -> tuple[Path, int]:
    p = Path(os.fspath(path))
    try:
        st = p.stat()
    except FileNotFoundError:
        raise SpikeFileError(f"{what} '{p}' does not exist") from None
    except OSError as exc:
        raise SpikeFileError(f"cannot access {what} '{p}': {exc.strerror or exc}") from None
    if p.is_dir():
        raise SpikeFileError(f"'{p}' is a folder, not a {what}")
    return p, st.st_size


# --------------------------------------------------------------------------------------------
# .dat reading
# --------------------------------------------------------------------------------------------


class _SpikeReader:
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
        s, e, b, ov = _block_range(start, stop, self.num_frames, block, overlap, f"spike file '{self.path}'")
        for t0, t1 in _block_starts(s, e, b, ov):
            yield SpikeBlock(t0, self.read_frames(range(t0, t1), workers=workers))

    def __iter__(self) -> Iterator[np.ndarray]:
        """Iterate over single frames ``[H, W]`` (decoded in blocks)."""
        per_block = max(1, _BLOCK_BYTES // (self.height * self.width))
        for blk in self.blocks(per_block):
            yield from blk.spikes


class SpikeRange(_SpikeReader):
    """Frames ``start .. stop-1`` of another reader, read as a stream of their own.

    Frame ``k`` of the range is frame ``start + k`` of ``base``; ``start`` tells the offset.
    Size, ``fps`` and ``flip`` are the base's. Made by ``reader.window(start, stop)``.
    """

    def __init__(self, base: _SpikeReader, start: int, stop: int) -> None:
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
        idx = _select_frames(frames, self.num_frames, f"spike file '{self.path}' (frames {self.start}..{self.stop - 1})")
        a = self.start
        return self.base.read_frames(range(idx.start + a, idx.stop + a, idx.step), workers=workers)


class DatFile(_SpikeReader):
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
        self.height, self.width, self.raw_width = _geometry(height, width, raw_width, where)
        if partial not in ("error", "drop"):
            raise SpikeFileError(f"{where}: partial must be 'error' or 'drop', got {partial!r}")
        self.flip = bool(flip)
        self.path, self.file_bytes = _stat_input(p, "spike file")
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
        idx = _select_frames(frames, self.num_frames, f"spike file '{self.path}'")
        n = len(idx)
        H, W = self.height, self.width
        if n == 0:
            return np.empty((n, H, W), dtype=np.uint8)
        out_bytes = n * H * W
        fb = self.frame_bytes
        frame_px = H * self.raw_width
        # Blocks of ~2 MiB unpacked (cache-sized), and at most 1/8 of the read so that the
        # scratch memory stays small next to the output.
        per_block = max(1, min(_BLOCK_BYTES // frame_px, -(-n // 8)))
        nblocks = -(-n // per_block)
        nworkers = _num_workers(workers, nblocks, out_bytes)
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

        _run_workers(job, nworkers)
        return out

    # -- internals -------------------------------------------------------------------------------

    def _read_one_pass(self, idx: range, per_block: int) -> np.ndarray:
        """Single-threaded read of byte-aligned rows: the packed frames are gathered (rows
        flipped, 1/8 of the output) and unpacked by one ``np.unpackbits`` call that allocates
        the output itself -- numpy has no ``out=`` for it, and unpacking block by block into a
        preallocated array costs one more pass over the output."""
        n, H, W, fb = len(idx), self.height, self.width, self.frame_bytes
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
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.dat"
        >>> _ = write_dat(path, np.zeros((10, 8, 8), np.uint8))
        >>> [(s, blk.shape[0]) for s, blk in iter_dat(path, 8, 8, block=4, overlap=2)]
        [(0, 4), (2, 4), (4, 4), (6, 4)]
    """
    f = DatFile(path, height, width, flip=flip, raw_width=raw_width, partial=partial)
    # Validate the block arguments now rather than on the first next().
    _block_range(start, stop, f.num_frames, block, overlap, f"spike file '{f.path}'")
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
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.dat"
        >>> _ = write_dat(path, np.zeros((3, 250, 400), np.uint8))
        >>> info = dat_info(path, 250, 400)
        >>> info.num_frames, info.frame_bytes, info.file_bytes
        (3, 12500, 37500)
    """
    return DatFile(path, height, width, flip=flip, raw_width=raw_width, partial=partial).info()


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


class _AtomicOutput:
    """A temporary file next to ``path`` that replaces ``path`` only on :meth:`commit`."""

    def __init__(self, path: PathLike, overwrite: bool, what: str) -> None:
        self.path = Path(os.fspath(path))
        self.overwrite = bool(overwrite)
        self.what = what
        _check_output(self.path, self.overwrite, what)
        name = f".{self.path.name}.{secrets.token_hex(6)}.tmp"
        self.tmp = self.path.parent / name
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(self.tmp, flags, 0o666)
        except OSError as exc:
            raise SpikeFileError(
                f"cannot write {what} '{self.path}': {exc.strerror or exc}"
            ) from None
        self.file = os.fdopen(fd, "wb")
        self.done = False

    def commit(self) -> Path:
        self.file.close()
        try:
            if self.overwrite:
                os.replace(self.tmp, self.path)
            else:
                try:
                    # link() refuses to replace an existing file: no race with another writer.
                    os.link(self.tmp, self.path)
                except FileExistsError:
                    raise OutputExistsError(
                        f"{self.what} '{self.path}' already exists (created while writing); "
                        f"pass overwrite=True to replace it"
                    ) from None
                except OSError:
                    # Filesystems without hard links: check, then rename.
                    _check_output(self.path, False, self.what)
                    os.replace(self.tmp, self.path)
                else:
                    os.unlink(self.tmp)
        except BaseException:
            self.abort()
            raise
        self.done = True
        return self.path

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            self.file.close()
        finally:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass


def _check_output(path: Path, overwrite: bool, what: str) -> None:
    if path.is_dir():
        raise SpikeFileError(f"cannot write {what} '{path}': it is an existing folder")
    if not overwrite and (path.exists() or path.is_symlink()):
        raise OutputExistsError(
            f"{what} '{path}' already exists; pass overwrite=True to replace it"
        )
    if not path.parent.is_dir():
        raise SpikeFileError(f"cannot write {what} '{path}': folder '{path.parent}' does not exist")


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach")


class _FrameSource:
    """Uniform block access to a ``[T, H, W]`` (or ``[1, T, H, W]``) numpy array or torch tensor."""

    def __init__(self, spikes: Any, where: str) -> None:
        self.where = where
        self.torch = _is_torch(spikes)
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
        return _as_binary(b, self.where, t0)


def _as_binary(b: np.ndarray, where: str, t0: int = 0) -> np.ndarray:
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


class DatWriter:
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
        self.height, self.width, _ = _geometry(height, width, None, self.where)
        self.flip = bool(flip)
        self.num_frames = 0
        self._out = _AtomicOutput(p, overwrite, "spike file")
        self.path = self._out.path

    def write(self, spikes: Any) -> None:
        """Append frames: a binary ``[t, H, W]`` (or ``[H, W]``) numpy array or torch tensor."""
        if self._out.done:
            raise SpikeFileError(f"{self.where}: the writer is closed")
        try:
            if getattr(spikes, "ndim", None) == 2:
                spikes = spikes[None]
            src = _FrameSource(spikes, self.where)
            T, H, W = src.shape
            if (H, W) != (self.height, self.width):
                raise ShapeError(
                    f"{self.where}: frames are {H}x{W} but the writer was opened for "
                    f"{self.height}x{self.width}"
                )
            # ~1 MiB blocks: the binary check brings a block into L2, where packing reads it
            per_block = max(1, _WRITE_BLOCK_BYTES // (H * W))
            starts = range(0, T, per_block)
            nworkers = _num_workers(self.workers, len(starts), T * H * W)

            def pack(t0: int) -> np.ndarray:
                return _pack_dat_frames(src.block(t0, min(T, t0 + per_block)), self.flip)

            for packed in _map_ordered(pack, starts, nworkers):
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

    def __enter__(self) -> DatWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:  # a writer dropped without close() leaves no temp file behind
        out = getattr(self, "_out", None)
        if out is not None and not out.done:
            try:
                out.abort()
            except Exception:
                pass


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
    src = _FrameSource(spikes, where)
    T, H, W = src.shape
    if T == 0 or H == 0 or W == 0:
        raise ShapeError(f"{where}: spikes must have at least one frame and pixel, got shape {src.shape}")
    _check_output(p, overwrite, "spike file")
    with DatWriter(p, H, W, flip=flip, overwrite=overwrite, workers=workers) as w:
        w.where = where
        w.write(src.spikes)
    return w.path


# --------------------------------------------------------------------------------------------
# packed .npz and format dispatch
# --------------------------------------------------------------------------------------------


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray) and o.size <= 4096:
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def _pack_flat(src: _FrameSource) -> np.ndarray:
    """``np.packbits`` (little bit order) of the flattened ``[T, H, W]`` array, block by block."""
    T, H, W = src.shape
    nbits = T * H * W
    packed = np.empty((nbits + 7) // 8, dtype=np.uint8)
    # Blocks of a multiple of 8 frames start on a byte boundary.
    per_block = max(8, (_BLOCK_BYTES // max(1, H * W)) // 8 * 8)
    for t0 in range(0, T, per_block):
        t1 = min(T, t0 + per_block)
        b = np.ascontiguousarray(src.block(t0, t1))
        p = np.packbits(b.reshape(-1), bitorder="little")
        o = t0 * H * W // 8
        packed[o : o + p.size] = p
    return packed


def save_spikes(
    path: PathLike,
    spikes: Any,
    *,
    overwrite: bool = False,
    flip: bool = True,
    compress: bool = False,
    **meta: Any,
) -> Path:
    """Save a binary ``[T, H, W]`` spike array, choosing the format from the suffix.

    * ``.dat``: the PKU format via :func:`write_dat` (``flip`` applies; a ``.dat`` file has no
      header, so ``meta`` is not stored).
    * ``.npz``: the packed format: ``bits`` = ``np.packbits`` of the flattened array (little
      bit order, frames upright) and ``meta`` = UTF-8 JSON with ``format``, ``version``,
      ``num_frames``, ``height``, ``width``, ``flip`` (False: stored upright), ``bitorder`` and
      every other ``meta`` keyword (values must be JSON-serialisable; numpy scalars are
      converted). Keywords named like the format's own keys are ignored, so the ``meta`` returned
      by ``load_spikes(..., with_meta=True)`` can be passed back unchanged.
      ``compress=True`` deflates the archive (smaller for sparse streams, slower).

    Writes are atomic and refuse to replace an existing file unless ``overwrite=True``.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.npz"
        >>> x = (np.random.default_rng(0).random((4, 3, 5)) < 0.5).astype(np.uint8)
        >>> _ = save_spikes(path, x, v_th=2.0, source="demo")
        >>> y, meta = load_spikes(path, with_meta=True)
        >>> bool((y == x).all()), meta["v_th"], meta["source"], meta["num_frames"]
        (True, 2.0, 'demo', 4)
    """
    p = Path(os.fspath(path))
    suffix = p.suffix.lower()
    if suffix == ".dat":
        return write_dat(p, spikes, flip=flip, overwrite=overwrite)
    if suffix != ".npz":
        raise SpikeFileError(
            f"save_spikes('{p}'): unknown suffix '{p.suffix}'; use .dat (PKU format) or .npz (packed)"
        )
    where = f"save_spikes('{p}')"
    src = _FrameSource(spikes, where)
    T, H, W = src.shape
    if H == 0 or W == 0:
        raise ShapeError(f"{where}: frames must have at least one pixel, got shape {src.shape}")
    header: dict[str, Any] = {
        "format": PACKED_FORMAT,
        "version": PACKED_VERSION,
        "num_frames": T,
        "height": H,
        "width": W,
        "flip": False,
        "bitorder": "little",
    }
    if meta.get("fps") is not None:
        check_fps(meta["fps"], f"{where}: fps")
    for key, value in meta.items():
        # Reserved keys describe the array and are always set from it, so that the metadata
        # returned by load_spikes(..., with_meta=True) can be passed back unchanged.
        if key not in header:
            header[key] = value
    try:
        meta_bytes = json.dumps(header, default=_json_default, sort_keys=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise SpikeFileError(f"{where}: metadata must be JSON-serialisable: {exc}") from None
    _check_output(p, overwrite, "spike file")
    bits = _pack_flat(src)
    out = _AtomicOutput(p, overwrite, "spike file")
    try:
        saver = np.savez_compressed if compress else np.savez
        saver(out.file, bits=bits, meta=np.frombuffer(meta_bytes, dtype=np.uint8))
        return out.commit()
    except BaseException:
        out.abort()
        raise


class NpzSpikes(_SpikeReader):
    """Spikes from a ``.npz`` / ``.npy`` file, with the same reading interface as :class:`DatFile`.

    An uncompressed packed file (the default of :func:`save_spikes`) is not loaded: opening it
    reads the zip directory and the metadata, and each read takes only the byte range of the
    selected frames' packed bits from the file, so memory is about the frames read, whatever the
    file's size (``partial_reads`` is True). A compressed packed file keeps its packed bits in
    memory (1/8 of the unpacked stream) and unpacks frames on demand; plain files (one unpacked
    array, e.g. key ``spk``) hold the array. No file handle is kept open between reads.

    Args:
        path: the file.
        key: the array to use in a plain ``.npz``; default ``spk`` if present, else the only array.
        flip: flip rows on read. ``None`` uses the file's convention (packed: its ``flip``
            metadata, i.e. no flip; plain: stored upright, no flip).
        height, width: optional expected frame size, checked against the file.
        fps: the stream's frame rate; default: the ``fps`` of a packed file's metadata, else
            :data:`DEFAULT_FPS`.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        key: str | None = None,
        flip: bool | None = None,
        height: int | None = None,
        width: int | None = None,
        fps: float | None = None,
    ) -> None:
        p, size = _stat_input(path, "spike file")
        self.path = p
        self.file_bytes = size
        self._bits: np.ndarray | None = None
        self._array: np.ndarray | None = None
        self._offset: int | None = None  # byte offset of the packed bits (partial reads)
        self.meta: dict[str, Any] = {}
        if size == 0:
            raise SpikeFileError(f"spike file '{p}' is empty (0 bytes)")
        if p.suffix.lower() == ".npy":
            self.format = "npy"
            self._array = self._load_npy(p)
            self.meta = {"format": "npy"}
        elif key is not None or not self._open_packed_partial(p):
            self._load_npz(p, key)
        if self._array is not None:
            self.num_frames, self.height, self.width = (int(s) for s in self._array.shape)
            stored_flip = False
        else:
            stored_flip = bool(self.meta.get("flip", False))
        self.flip = stored_flip if flip is None else bool(flip)
        for name, want, got in (("height", height, self.height), ("width", width, self.width)):
            if want is not None and _positive_int(want, name, f"spike file '{p}'") != got:
                raise SpikeFileError(
                    f"spike file '{p}' holds {self.height}x{self.width} frames, but {name}={want} "
                    f"was given (the size of .npz/.npy files is read from the file)"
                )
        self._init_fps(fps, self.meta.get("fps") if self.format == "npz-packed" else None)

    @property
    def partial_reads(self) -> bool:
        """True when reads take only the selected frames' bytes from the file."""
        return self._offset is not None

    # -- loading -------------------------------------------------------------------------------

    def _load_npy(self, p: Path) -> np.ndarray:
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as exc:
            raise SpikeFileError(f"cannot read spike file '{p}' as .npy: {exc}") from None
        return self._check_plain(arr, "the array")

    def _load_npz(self, p: Path, key: str | None) -> None:
        try:
            npz = np.load(p, allow_pickle=False)
        except Exception as exc:
            raise SpikeFileError(f"cannot read spike file '{p}' as .npz: {exc}") from None
        if isinstance(npz, np.ndarray):  # an .npy file with an .npz suffix
            self.format = "npy"
            self._array = self._check_plain(npz, "the array")
            self.meta = {"format": "npy"}
            return
        with npz:
            keys = list(npz.files)
            try:
                if key is None and "bits" in keys and "meta" in keys:
                    self._load_packed(p, npz)
                    return
                self.format = "npz"
                if key is None:
                    if "spk" in keys:
                        key = "spk"
                    elif len(keys) == 1:
                        key = keys[0]
                    else:
                        raise SpikeFileError(
                            f"spike file '{p}' holds several arrays {keys} and none is named "
                            f"'spk'; choose one with key=..."
                        )
                elif key not in keys:
                    raise SpikeFileError(f"spike file '{p}' has no array '{key}'; it holds {keys}")
                self._array = self._check_plain(npz[key], f"array '{key}'")
                self.meta = {"format": "npz", "key": key}
            except SpikeFileError:
                raise
            except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
                raise SpikeFileError(f"cannot read spike file '{p}': {exc}") from None

    def _open_packed_partial(self, p: Path) -> bool:
        """Open an uncompressed packed file for partial reads: find the file offset of the
        ``bits`` array's data. False (nothing changed) for any other file, which is then
        loaded by :meth:`_load_npz` (and gets its error messages)."""
        try:
            with zipfile.ZipFile(p) as zf:
                if set(zf.namelist()) != {"bits.npy", "meta.npy"}:
                    return False
                info = zf.getinfo("bits.npy")
                if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
                    return False
                with zf.open("meta.npy") as f:
                    meta_arr = np.lib.format.read_array(f, allow_pickle=False)
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                    elif version == (2, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                    else:
                        return False
                    header_len = f.tell()
            with open(p, "rb") as fh:
                fh.seek(info.header_offset)
                local = fh.read(30)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, KeyError, EOFError):
            return False
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            return False
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        offset = info.header_offset + 30 + name_len + extra_len + header_len
        meta = self._check_packed_meta(p, meta_arr)
        T, H, W = (int(meta[k]) for k in ("num_frames", "height", "width"))
        need = (T * H * W + 7) // 8
        if dtype != np.uint8 or len(shape) != 1 or shape[0] != need or fortran or offset + need > self.file_bytes:
            raise SpikeFileError(
                f"spike file '{p}' is corrupt: 'bits' holds {math.prod(shape)} bytes ({dtype}), "
                f"expected {need} uint8 bytes for {T}x{H}x{W}"
            )
        self.format = "npz-packed"
        self.meta = meta
        self.num_frames, self.height, self.width = T, H, W
        self._offset = offset
        return True

    def _check_packed_meta(self, p: Path, meta_arr: Any) -> dict:
        try:
            meta = json.loads(np.asarray(meta_arr, dtype=np.uint8).tobytes().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise SpikeFileError(f"spike file '{p}': its metadata is not valid JSON ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != PACKED_FORMAT:
            raise SpikeFileError(
                f"spike file '{p}' has 'bits' and 'meta' arrays but is not a {PACKED_FORMAT} file"
            )
        if int(meta.get("version", 0)) > PACKED_VERSION:
            raise SpikeFileError(
                f"spike file '{p}' uses packed format version {meta['version']}; this spikegen "
                f"reads up to version {PACKED_VERSION}"
            )
        try:
            T, H, W = (int(meta[k]) for k in ("num_frames", "height", "width"))
        except (KeyError, TypeError, ValueError):
            raise SpikeFileError(f"spike file '{p}': metadata lacks num_frames/height/width") from None
        if T < 0 or H <= 0 or W <= 0 or meta.get("bitorder", "little") != "little":
            raise SpikeFileError(f"spike file '{p}': invalid metadata {meta}")
        return meta

    def _load_packed(self, p: Path, npz: Any) -> None:
        self.format = "npz-packed"
        meta = self._check_packed_meta(p, npz["meta"])
        T, H, W = (int(meta[k]) for k in ("num_frames", "height", "width"))
        bits = npz["bits"]
        need = (T * H * W + 7) // 8
        if bits.dtype != np.uint8 or bits.ndim != 1 or bits.size != need:
            raise SpikeFileError(
                f"spike file '{p}' is corrupt: 'bits' holds {bits.size} bytes ({bits.dtype}), "
                f"expected {need} uint8 bytes for {T}x{H}x{W}"
            )
        self._bits = bits
        self.meta = meta
        self.num_frames, self.height, self.width = T, H, W

    def _check_plain(self, arr: np.ndarray, what: str) -> np.ndarray:
        p = self.path
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 3:
            raise SpikeFileError(
                f"spike file '{p}': {what} has shape {arr.shape}; expected [T, H, W] spikes"
            )
        try:
            out = _as_binary(arr, f"spike file '{p}' ({what})")
        except ShapeError as exc:
            raise SpikeFileError(str(exc)) from None
        return out.view(np.uint8) if out.dtype == np.bool_ else out

    # -- reading -------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"NpzSpikes('{self.path}', format={self.format}, frames={self.num_frames}, "
            f"height={self.height}, width={self.width}, flip={self.flip})"
        )

    def info(self) -> SpikeFileInfo:
        """The file's :class:`SpikeFileInfo`."""
        return SpikeFileInfo(
            path=self.path,
            format=self.format,
            num_frames=self.num_frames,
            height=self.height,
            width=self.width,
            file_bytes=self.file_bytes,
            flip=self.flip,
            meta=dict(self.meta),
            fps=self.fps,
            fps_source=self.fps_source,
        )

    def read_frames(self, frames: FrameSelection = None, *, workers: int | None = None) -> np.ndarray:
        """Decode the selected frames (see :meth:`DatFile.read_frames`) into a new array."""
        idx = _select_frames(frames, self.num_frames, f"spike file '{self.path}'")
        if self._array is not None:
            sel = self._array[_range_to_slice(idx)]
            if self.flip:
                sel = sel[:, ::-1]
            return np.array(sel, dtype=np.uint8, order="C", copy=True)
        if idx.step != 1:
            out = np.empty((len(idx), self.height, self.width), np.uint8)
            for j, t in enumerate(idx):
                out[j] = self._unpack(t, t + 1)[0]
            return out
        return self._unpack(idx.start, idx.stop) if len(idx) else np.empty((0, self.height, self.width), np.uint8)

    def _packed_bytes(self, byte0: int, byte1: int) -> np.ndarray:
        if self._bits is not None:
            return self._bits[byte0:byte1]
        assert self._offset is not None
        buf = np.empty(byte1 - byte0, np.uint8)
        with open(self.path, "rb", buffering=0) as fh:
            fh.seek(self._offset + byte0)
            mv, got = memoryview(buf), 0
            while got < len(buf):
                r = fh.readinto(mv[got:])
                if not r:
                    raise SpikeFileError(f"spike file '{self.path}' became shorter while it was being read")
                got += r
        return buf

    def _unpack(self, t0: int, t1: int) -> np.ndarray:
        hw = self.height * self.width
        b0, b1 = t0 * hw, t1 * hw
        byte0 = b0 // 8
        chunk = self._packed_bytes(byte0, (b1 + 7) // 8)
        skip = b0 - 8 * byte0
        bits = np.unpackbits(chunk, count=skip + (b1 - b0), bitorder="little")
        out = bits[skip:].reshape(t1 - t0, self.height, self.width)
        if self.flip:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)


def open_spikes(
    path: PathLike,
    *,
    height: int | None = None,
    width: int | None = None,
    flip: bool | None = None,
    raw_width: int | None = None,
    partial: Partial = "error",
    key: str | None = None,
    fps: float | None = None,
) -> DatFile | NpzSpikes:
    """Open a spike file of any supported format for reading, dispatching on the suffix.

    ``.dat`` gives a :class:`DatFile` (``height``/``width`` default to 250x400, ``flip`` to
    True); ``.npz`` / ``.npy`` give a :class:`NpzSpikes` (size from the file: ``height`` and
    ``width``, when given, are checked against it; ``flip`` defaults to the file's convention).
    Both have ``num_frames``, ``height``, ``width``, ``shape``, ``len()``, ``read(start, stop)``,
    ``read_frames(frames)``, ``blocks(block, overlap)``, ``info()``, ``fps`` / ``fps_source``,
    ``time_range(start, end)`` and ``window(start, stop)``. ``read`` also takes times
    (``f.read("5ms", "10ms")``, see :func:`frame_range`), converted at ``fps``: the ``fps``
    argument, else a packed ``.npz``'s ``fps`` metadata, else :data:`DEFAULT_FPS` (20 kHz).
    Uncompressed packed ``.npz`` files are read in part, like ``.dat`` files; compressed and
    plain ``.npz`` / ``.npy`` files are loaded whole.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.npz"
        >>> _ = save_spikes(path, np.zeros((6, 2, 3), np.uint8))
        >>> f = open_spikes(path)
        >>> len(f), f.shape, f.read(1, 3).shape
        (6, (6, 2, 3), (2, 2, 3))
    """
    p = Path(os.fspath(path))
    suffix = p.suffix.lower()
    if suffix == ".dat":
        return DatFile(
            p,
            DEFAULT_HEIGHT if height is None else height,
            DEFAULT_WIDTH if width is None else width,
            flip=True if flip is None else flip,
            raw_width=raw_width,
            partial=partial,
            fps=fps,
        )
    if suffix in (".npz", ".npy"):
        if raw_width is not None:
            raise SpikeFileError(f"spike file '{p}': raw_width only applies to .dat files")
        return NpzSpikes(p, key=key, flip=flip, height=height, width=width, fps=fps)
    raise SpikeFileError(
        f"spike file '{p}': unknown suffix '{p.suffix}'; expected .dat, .npz or .npy"
    )


def load_spikes(
    path: PathLike,
    *,
    height: int | None = None,
    width: int | None = None,
    flip: bool | None = None,
    raw_width: int | None = None,
    frames: FrameSelection = None,
    partial: Partial = "error",
    key: str | None = None,
    with_meta: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
    """Load a spike file as uint8 ``[T, H, W]``, dispatching on the suffix.

    * ``.dat``: :func:`read_dat` with ``height``/``width`` (default 250x400), ``flip`` (default
      True), ``raw_width`` and ``partial``.
    * ``.npz`` written by :func:`save_spikes`: the packed format with its metadata.
    * other ``.npz`` / ``.npy``: one plain ``[T, H, W]`` array of 0/1 (bool, integer or float),
      stored upright: key ``spk`` or the only array, or ``key=``. Pass ``flip=True`` if it is
      stored upside down.

    Args:
        frames: which frames to return (see :func:`read_dat`).
        with_meta: also return a metadata dict (for packed files, everything stored with
            :func:`save_spikes`; otherwise the format, size and flip used).

    Returns:
        The array, or ``(array, meta)`` when ``with_meta`` is True.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> x = np.ones((3, 4, 8), np.uint8)
        >>> _ = save_spikes(d / "a.dat", x); _ = save_spikes(d / "a.npz", x, fps=20000)
        >>> load_spikes(d / "a.dat", height=4, width=8).shape
        (3, 4, 8)
        >>> load_spikes(d / "a.npz", with_meta=True)[1]["fps"]
        20000
    """
    src = open_spikes(
        path, height=height, width=width, flip=flip, raw_width=raw_width, partial=partial, key=key
    )
    if isinstance(src, NpzSpikes) and src._array is not None and frames is None and not src.flip:
        arr = src._array  # a plain array loaded just now: hand it over without a copy
    else:
        arr = src.read_frames(frames)
    if not with_meta:
        return arr
    if isinstance(src, DatFile):
        meta = {
            "format": "dat",
            "num_frames": src.num_frames,
            "height": src.height,
            "width": src.width,
            "raw_width": src.raw_width,
            "flip": src.flip,
            "extra_bytes": src.extra_bytes,
        }
    else:
        meta = dict(src.meta)
        meta.update(num_frames=src.num_frames, height=src.height, width=src.width)
        meta["flip"] = src.flip if src.format != "npz-packed" else meta.get("flip", False)
    return arr, meta


def iter_spikes(
    path: PathLike,
    *,
    block: int,
    overlap: int = 0,
    start: int = 0,
    stop: int | None = None,
    **kwargs: Any,
) -> Iterator[SpikeBlock]:
    """Stream any supported spike file in blocks (see :func:`iter_dat`).

    ``kwargs`` are those of :func:`open_spikes` (``height``, ``width``, ``flip``, ``raw_width``,
    ``partial``, ``key``).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.npz"
        >>> _ = save_spikes(path, np.zeros((5, 2, 3), np.uint8))
        >>> [blk.start for blk in iter_spikes(path, block=2)]
        [0, 2, 4]
    """
    src = open_spikes(path, **kwargs)
    _block_range(start, stop, src.num_frames, block, overlap, f"spike file '{src.path}'")
    return src.blocks(block, overlap, start=start, stop=stop)


def spikes_info(path: PathLike, **kwargs: Any) -> SpikeFileInfo:
    """:class:`SpikeFileInfo` of any supported spike file (``kwargs`` as :func:`open_spikes`).

    For ``.dat`` and uncompressed packed ``.npz`` files no frame is read; other ``.npz`` /
    ``.npy`` files are loaded.
    """
    return open_spikes(path, **kwargs).info()
