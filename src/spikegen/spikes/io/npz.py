"""Reading ``.npz`` / ``.npy`` spike files: :class:`NpzSpikes`, the packed format (read in part
when uncompressed) and plain arrays of other toolkits, with the reading interface of
:class:`~spikegen.spikes.io.DatFile`."""

from __future__ import annotations

import math
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from spikegen.errors import ShapeError, SpikeFileError
from spikegen.spikes.io.arrays import as_binary
from spikegen.spikes.io.helpers import FrameSelection, PathLike, positive_int, range_to_slice, select_frames, stat_input
from spikegen.spikes.io.packed import read_packed_meta
from spikegen.spikes.io.reader import SpikeFileInfo, SpikeReader


class NpzSpikes(SpikeReader):
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
        p, size = stat_input(path, "spike file")
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
            if want is not None and positive_int(want, name, f"spike file '{p}'") != got:
                raise SpikeFileError(
                    f"spike file '{p}' holds {self.height}x{self.width} frames, but {name}={want} "
                    f"was given (the size of .npz/.npy files is read from the file)"
                )
        self._init_fps(fps, self.meta.get("fps") if self.format == "npz-packed" else None)

    @property
    def partial_reads(self) -> bool:
        """True when reads take only the selected frames' bytes from the file."""
        return self._offset is not None

    @property
    def plain_array(self) -> np.ndarray | None:
        """The array of a plain ``.npz`` / ``.npy`` file as loaded (stored orientation, not a
        copy); ``None`` for packed files, whose frames are unpacked on each read."""
        return self._array

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
        meta = read_packed_meta(p, meta_arr)
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

    def _load_packed(self, p: Path, npz: Any) -> None:
        self.format = "npz-packed"
        meta = read_packed_meta(p, npz["meta"])
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
            out = as_binary(arr, f"spike file '{p}' ({what})")
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
        idx = select_frames(frames, self.num_frames, f"spike file '{self.path}'")
        if self._array is not None:
            sel = self._array[range_to_slice(idx)]
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
