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
``.dat`` file block by block, :class:`PackedWriter` a packed ``.npz``.

Every write goes to a temporary file in the output folder that is renamed over the output only
when complete, so a failure never leaves a truncated file, and an existing output is never
replaced unless ``overwrite=True``.

**The package**, one job a file (bottom to top; this ``__init__`` dispatches on the suffix and
re-exports every public name, so ``from spikegen.spikes.io import X`` is the one import path):

* ``helpers``: argument, geometry and frame-selection checks, block sizes, worker threads;
* ``times``: frame rates and times (``"10ms"``) to frames: :func:`time_to_frame`, :func:`frame_range`;
* ``reader``: what every reader shares: :class:`SpikeBlock`, :class:`SpikeFileInfo`, :class:`SpikeRange`;
* ``datfile``: reading ``.dat``: :class:`DatFile`, :func:`read_dat`, :func:`iter_dat`, :func:`dat_info`;
* ``arrays``: the writers' input arrays (numpy or torch), checked to be binary;
* ``atomic``: the writers' output file, a temporary file renamed into place;
* ``datwriter``: writing ``.dat``: :class:`DatWriter`, :func:`write_dat`;
* ``packed``: the packed ``.npz`` format: its header, written and checked; :class:`PackedWriter`;
* ``npz``: reading ``.npz`` / ``.npy`` (packed or plain): :class:`NpzSpikes`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from spikegen.errors import SpikeFileError

# Every public name of the package, including those outside __all__ (PathLike, FrameSelection,
# Partial, DEFAULT_HEIGHT, DEFAULT_WIDTH, PACKED_FORMAT, PACKED_VERSION, TimeSpec, check_fps).
from spikegen.spikes.io import helpers, packed
from spikegen.spikes.io.datfile import DatFile, dat_info, iter_dat, read_dat
from spikegen.spikes.io.datwriter import DatWriter, write_dat
from spikegen.spikes.io.helpers import (
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    FrameSelection,
    Partial,
    PathLike,
    dat_frame_bytes,
)
from spikegen.spikes.io.npz import NpzSpikes
from spikegen.spikes.io.packed import PACKED_FORMAT, PACKED_VERSION, PackedWriter
from spikegen.spikes.io.reader import SpikeBlock, SpikeFileInfo, SpikeRange
from spikegen.spikes.io.times import DEFAULT_FPS, TimeSpec, check_fps, frame_range, time_to_frame

__all__ = [
    "DEFAULT_FPS",
    "DatFile",
    "DatWriter",
    "NpzSpikes",
    "PackedWriter",
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
    return packed.write_packed(p, spikes, meta, overwrite=overwrite, compress=compress)


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
    if p.is_dir():
        raise SpikeFileError(f"'{p}' is a folder; expected a spike file (.dat, .npz or .npy)")
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
    if isinstance(src, NpzSpikes) and src.plain_array is not None and frames is None and not src.flip:
        arr = src.plain_array  # a plain array loaded just now: hand it over without a copy
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
    helpers.check_block_range(start, stop, src.num_frames, block, overlap, f"spike file '{src.path}'")
    return src.blocks(block, overlap, start=start, stop=stop)


def spikes_info(path: PathLike, **kwargs: Any) -> SpikeFileInfo:
    """:class:`SpikeFileInfo` of any supported spike file (``kwargs`` as :func:`open_spikes`).

    For ``.dat`` and uncompressed packed ``.npz`` files no frame is read; other ``.npz`` /
    ``.npy`` files are loaded.
    """
    return open_spikes(path, **kwargs).info()
