"""The packed ``.npz`` spike format: its header (format name, version, size, user metadata),
written by :func:`write_packed` and checked on read by :func:`read_packed_meta`.

A packed file holds two arrays: ``bits``, ``np.packbits`` of the flattened ``[T, H, W]`` array
(little bit order, frames upright), and ``meta``, UTF-8 JSON bytes. See :mod:`spikegen.spikes.io`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from spikegen.errors import ShapeError, SpikeFileError
from spikegen.spikes.io.arrays import FrameSource
from spikegen.spikes.io.atomic import AtomicOutput, check_output
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


def _pack_flat(src: FrameSource) -> np.ndarray:
    """``np.packbits`` (little bit order) of the flattened ``[T, H, W]`` array, block by block."""
    T, H, W = src.shape
    nbits = T * H * W
    packed = np.empty((nbits + 7) // 8, dtype=np.uint8)
    # Blocks of a multiple of 8 frames start on a byte boundary.
    per_block = max(8, (BLOCK_BYTES // max(1, H * W)) // 8 * 8)
    for t0 in range(0, T, per_block):
        t1 = min(T, t0 + per_block)
        b = np.ascontiguousarray(src.block(t0, t1))
        p = np.packbits(b.reshape(-1), bitorder="little")
        o = t0 * H * W // 8
        packed[o : o + p.size] = p
    return packed


def write_packed(p: Path, spikes: Any, meta: dict[str, Any], *, overwrite: bool = False,
                 compress: bool = False) -> Path:
    """Write ``spikes`` to the packed ``.npz`` file ``p``: what :func:`spikegen.spikes.io.save_spikes`
    does for a ``.npz`` suffix (``meta`` are its metadata keywords). Returns ``p``."""
    where = f"save_spikes('{p}')"
    src = FrameSource(spikes, where)
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
    check_output(p, overwrite, "spike file")
    bits = _pack_flat(src)
    out = AtomicOutput(p, overwrite, "spike file")
    try:
        saver = np.savez_compressed if compress else np.savez
        saver(out.file, bits=bits, meta=np.frombuffer(meta_bytes, dtype=np.uint8))
        return out.commit()
    except BaseException:
        out.abort()
        raise


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
