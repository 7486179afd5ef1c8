"""The packed ``.npz`` spike format: its header (format name, version, size, user metadata),
written by :class:`PackedWriter` (block by block; :func:`write_packed` for one array) and
checked on read by :func:`read_packed_meta`.

A packed file holds two arrays: ``bits``, ``np.packbits`` of the flattened ``[T, H, W]`` array
(little bit order, frames upright), and ``meta``, UTF-8 JSON bytes. See :mod:`spikegen.spikes.io`.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from spikegen.errors import ShapeError, SpikeFileError
from spikegen.spikes.io.arrays import FrameSource
from spikegen.spikes.io.atomic import AtomicOutput, WriterContext
from spikegen.spikes.io.helpers import BLOCK_BYTES
from spikegen.spikes.io.times import check_fps

PACKED_FORMAT = "spikegen.packed-spikes"
PACKED_VERSION = 1


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


def packed_header(where: str, shape: tuple[int, int, int], meta: dict[str, Any]) -> bytes:
    """The checked JSON header (UTF-8 bytes) of a packed file of ``shape`` ``(T, H, W)`` with
    the user metadata ``meta`` (keys named like the format's own are ignored, so the metadata
    returned by ``load_spikes(..., with_meta=True)`` can be passed back unchanged)."""
    T, H, W = shape
    if H <= 0 or W <= 0:
        raise ShapeError(f"{where}: frames must have at least one pixel, got shape {shape}")
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
        if key not in header:
            header[key] = value
    try:
        return json.dumps(header, default=_json_default, sort_keys=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise SpikeFileError(f"{where}: metadata must be JSON-serialisable: {exc}") from None


class PackedWriter(WriterContext):
    """Write a packed ``.npz`` spike file block by block, in bounded memory.

    The number of frames is fixed up front (it is in the header); the ``bits`` array is packed
    and written as the blocks come (any block sizes: up to 7 pixels are carried to the next
    block so that the bit stream is that of the whole array), then ``meta``. The file is the
    one :func:`spikegen.spikes.io.save_spikes` writes, in a temporary file renamed into place
    by :meth:`close` (nothing is left behind on an error).

    Args:
        path: the output ``.npz`` file.
        num_frames, height, width: the stream's size ``T, H, W``.
        meta: user metadata (JSON-serialisable), as the keywords of ``save_spikes``.
        overwrite: replace an existing ``path``; otherwise :class:`OutputExistsError`.
        compress: deflate the archive (smaller for sparse streams, slower; a compressed file
            is read whole, an uncompressed one frame range by frame range).

    Example:
        >>> import tempfile, pathlib
        >>> from spikegen.spikes.io import load_spikes
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.npz"
        >>> with PackedWriter(path, 6, 3, 5, {"fps": 1000.0}) as w:
        ...     for _ in range(2):
        ...         w.write(np.ones((3, 3, 5), np.uint8))
        >>> x, meta = load_spikes(path, with_meta=True)
        >>> x.shape, int(x.sum()), meta["fps"]
        ((6, 3, 5), 90, 1000.0)
    """

    def __init__(self, path: Any, num_frames: int, height: int, width: int, meta: dict[str, Any], *,
                 overwrite: bool = False, compress: bool = False) -> None:
        p = Path(os.fspath(path))
        self.where = f"PackedWriter('{p}')"
        self.shape = (int(num_frames), int(height), int(width))
        if self.shape[0] < 0:
            raise ShapeError(f"{self.where}: num_frames must be >= 0, got {num_frames}")
        self._meta = packed_header(self.where, self.shape, meta)
        self.num_frames = 0
        self._carry = np.empty(0, np.uint8)
        self._out = AtomicOutput(p, overwrite, "spike file")
        self.path = self._out.path
        try:
            self._zip = zipfile.ZipFile(self._out.file, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED,
                                        allowZip64=True)
            self._bits = self._zip.open("bits.npy", "w", force_zip64=True)
            T, H, W = self.shape
            np.lib.format.write_array_header_1_0(
                self._bits, {"descr": "|u1", "fortran_order": False, "shape": ((T * H * W + 7) // 8,)})
        except BaseException:
            self._out.abort()
            raise

    def write(self, spikes: Any) -> None:
        """Append frames: a binary ``[t, H, W]`` (or ``[H, W]``) numpy array or torch tensor."""
        try:
            src = self._frames(spikes, *self.shape[1:])
            t, h, w = src.shape
            if self.num_frames + t > self.shape[0]:
                raise SpikeFileError(f"{self.where}: more than the {self.shape[0]} frames it was opened for")
            per_block = max(8, (BLOCK_BYTES // max(1, h * w)) // 8 * 8)
            for t0 in range(0, t, per_block):
                b = np.ascontiguousarray(src.block(t0, min(t, t0 + per_block))).reshape(-1)
                if self._carry.size:
                    b = np.concatenate([self._carry, b.view(np.uint8)])
                n8 = b.size // 8 * 8
                self._bits.write(memoryview(np.packbits(b[:n8], bitorder="little")))
                self._carry = np.array(b[n8:], dtype=np.uint8)
            self.num_frames += t
        except BaseException:
            self.abort()
            raise

    def close(self) -> Path:
        """Finish the file and move it into place (all ``num_frames`` must have been written)."""
        if self._out.done:
            return self.path
        try:
            if self.num_frames != self.shape[0]:
                raise SpikeFileError(f"{self.where}: {self.num_frames} of the {self.shape[0]} frames were written")
            if self._carry.size:
                self._bits.write(memoryview(np.packbits(self._carry, bitorder="little")))
            self._bits.close()
            with self._zip.open("meta.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.frombuffer(self._meta, dtype=np.uint8), allow_pickle=False)
            self._zip.close()
        except BaseException:
            self.abort()
            raise
        return self._out.commit()

    def abort(self) -> None:
        """Discard everything written so far; ``path`` is left as it was."""
        if not self._out.done:
            try:
                self._bits.close()
                self._zip.close()
            except Exception:
                pass
            self._out.abort()


def write_packed(p: Path, spikes: Any, meta: dict[str, Any], *, overwrite: bool = False,
                 compress: bool = False) -> Path:
    """Write ``spikes`` to the packed ``.npz`` file ``p``: what :func:`spikegen.spikes.io.save_spikes`
    does for a ``.npz`` suffix (``meta`` are its metadata keywords). Returns ``p``."""
    src = FrameSource(spikes, f"save_spikes('{p}')")
    packed_header(f"save_spikes('{p}')", src.shape, meta)  # its errors name save_spikes
    with PackedWriter(p, *src.shape, meta, overwrite=overwrite, compress=compress) as w:
        w.write(spikes)  # packed block by block
    return p


def read_packed_meta(p: Path, meta_arr: Any) -> dict:
    """The checked header of the packed file ``p`` from its ``meta`` array (raises
    :class:`SpikeFileError` naming ``p`` when it is not a packed file this version reads)."""
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
