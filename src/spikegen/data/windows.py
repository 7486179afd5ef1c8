"""Windows of N frames cut from long spike recordings, with bounded memory.

:class:`SpikeWindows` is a ``torch.utils.data.Dataset`` over one or many recordings (PKU
``.dat``, this project's packed ``.npz``, or plain ``.npz`` / ``.npy``). Sample ``i`` is a window
of ``window`` consecutive frames; windows start every ``stride`` frames. Only the frames of the
window are read, through :func:`spikegen.spikes.io.open_spikes`: a ``.dat`` file at the window's
byte range (:class:`spikegen.spikes.io.DatFile`), an uncompressed packed ``.npz`` (the default of
:func:`spikegen.spikes.io.save_spikes`) at the byte range of its packed bits
(:class:`spikegen.spikes.io.NpzSpikes`), so memory per sample is about the window whatever the
file size. Compressed or plain (unpacked) ``.npz`` / ``.npy`` files cannot be read in part: they
are loaded whole, once per data-loader worker.

Files are opened lazily, in the process that reads them (each data-loader worker opens its
own; the dataset pickles without any reader or loaded array).

Optional ground truth is paired **by frame index**: the GT of a window is the image of its
centre frame ``start + window // 2`` (the TFP convention of :mod:`spikegen.spikes.reconstruct`),
and only windows whose centre has an image are kept — so ``stride=1`` with sparse GT gives one
window centred on every GT frame.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from spikegen.spikes.io import write_dat
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "long.dat"
    >>> _ = write_dat(path, np.zeros((100, 16, 16), np.uint8))
    >>> ds = SpikeWindows(path, 32, stride=16, height=16, width=16)
    >>> len(ds), ds[0]["spikes"].shape, ds[1]["meta"]["window"]
    (5, torch.Size([32, 16, 16]), [16, 48])
"""

from __future__ import annotations

import bisect
import inspect
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from spikegen.data.common import SeededDataset
from spikegen.errors import ShapeError, SpikeFileError
from spikegen.image import load_image
from spikegen.media import is_image_file, natural_key
from spikegen.spikes.io import open_spikes
from spikegen.spikes.transforms import SpikeTransform

__all__ = ["SpikeWindows", "SPIKE_SUFFIXES"]

PathLike = Union[str, "os.PathLike[str]"]
GTSpec = Union[None, PathLike, Callable[..., Any]]

#: Suffixes of the spike files a folder source is searched for.
SPIKE_SUFFIXES = (".dat", ".npz", ".npy")


# --------------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------------


class _OpenSpikesReader:
    """Any reader of :func:`spikegen.spikes.io.open_spikes`: ``.dat`` and uncompressed packed
    ``.npz`` files are read in part (only a window's bytes), others are loaded whole."""

    def __init__(self, path: Path, kwargs: dict) -> None:
        self.src = open_spikes(path, **kwargs)
        self.num_frames, self.height, self.width = self.src.num_frames, self.src.height, self.src.width

    def read(self, t0: int, t1: int) -> np.ndarray:
        return self.src.read_frames(range(t0, t1), workers=1)


def _open_reader(path: Path, kwargs: dict):
    return _OpenSpikesReader(path, kwargs)


# --------------------------------------------------------------------------------------------
# the dataset
# --------------------------------------------------------------------------------------------


@dataclass
class _Recording:
    path: Path
    num_frames: int
    height: int
    width: int
    starts: np.ndarray | None  # explicit window starts (with GT); None: the regular grid
    count: int
    gt: dict[int, Path] | None  # centre frame -> GT image


def _find_sources(sources: PathLike | Sequence[PathLike]) -> list[Path]:
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    if not items:
        raise SpikeFileError("SpikeWindows: no spike files given")
    out: list[Path] = []
    for item in items:
        p = Path(os.fspath(item))
        if p.is_dir():
            found = sorted((f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SPIKE_SUFFIXES), key=natural_key)
            if not found:
                raise SpikeFileError(f"SpikeWindows: folder '{p}' holds no spike file ({', '.join(SPIKE_SUFFIXES)})")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise SpikeFileError(f"SpikeWindows: spike file '{p}' does not exist")
    return out


_NUM = re.compile(r"(\d+)")


def _gt_folder_index(folder: Path, offset: int) -> dict[int, Path]:
    """Frame index -> image, from the last number in each image's file name (plus ``offset``)."""
    index: dict[int, Path] = {}
    for f in sorted(folder.iterdir(), key=natural_key):
        if not (f.is_file() and is_image_file(f)):
            continue
        nums = _NUM.findall(f.stem)
        if not nums:
            continue
        k = int(nums[-1]) + offset
        if k in index:
            raise SpikeFileError(
                f"SpikeWindows: ground-truth images '{index[k].name}' and '{f.name}' in '{folder}' "
                f"both name frame {k}"
            )
        index[k] = f
    return index


def _gt_caller(fn: Callable[..., Any]) -> Callable[[int, Path], Any]:
    """``fn(frame)`` or ``fn(frame, source)``, by the number of positional parameters it takes."""
    try:
        params = [
            p for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        ]
        two = len(params) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)
    except (TypeError, ValueError):
        two = False
    return (lambda k, src: fn(k, src)) if two else (lambda k, src: fn(k))


class SpikeWindows(SeededDataset):
    """Windows of ``window`` frames from long spike recordings, read without loading the files.

    Args:
        sources: a spike file (``.dat``, ``.npz``, ``.npy``), a folder of them (sorted
            naturally) or a list of files and folders. Windows of every recording are
            concatenated in that order.
        window: frames per sample ``N``.
        stride: frames between the starts of consecutive windows (default ``window``: no
            overlap). A recording of ``T`` frames gives ``(T - N) // stride + 1`` windows (none
            if ``T < N``); the last frames that do not fill a window are not used.
        gt: optional ground truth, paired by frame index with the window's centre
            ``start + N // 2``:

            * a folder of images named by frame index (the last number in the file name, e.g.
              ``000151.png`` or ``frame_151.png``; plus ``gt_offset``). With several recordings,
              a subfolder named after a recording's stem (``gt/<stem>/``) is used when it exists,
              else the folder itself;
            * a callable ``gt(frame)`` or ``gt(frame, source_path)`` returning an image path, or
              ``None`` where there is none.

            Windows whose centre has no image (``None`` or a path that does not exist) are left
            out. Images must have the frames' size.
        gt_offset: added to the number in a GT file name to give its frame index (e.g. ``-1``
            when images are numbered from 1 like Spk2ImgNet's ``key_id151``).
        color: load GT in colour (``False``: gray, repeated on 3 channels).
        transform: applied to each sample: a :mod:`spikegen.spikes.transforms` op or
            ``Compose`` (called with the GT image, so both get the same geometry, and with the
            sample's generator, so augmentation is reproducible per ``(seed, epoch, index)``), or
            any callable ``f(spikes) -> spikes`` (without GT) / ``f(spikes, gt) -> (spikes, gt)``
            (with GT).
        seed: base seed of the per-sample generators (see :meth:`set_epoch`).
        height, width, flip, raw_width, partial, key: how to open the files, as
            :func:`spikegen.spikes.io.open_spikes` (``.dat`` default to 250x400, flipped).

    Sample:
        ``{"clean": float [3, H, W] or None, "blurry": None, "spikes": uint8 [N, H, W],
        "meta": {"source", "index", "window": [start, stop], "centre", "gt", "epoch", "seed"}}``
        (the spikegen sample dict: batch with :func:`spikegen.data.collate_samples`).

    Raises:
        SpikeFileError: a missing file or folder, a file that does not hold whole frames of the
            given size, GT images naming the same frame, or no window at all.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> from spikegen.spikes.io import save_spikes
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = save_spikes(d / "a.npz", np.zeros((50, 8, 8), np.uint8))
        >>> _ = save_spikes(d / "b.npz", np.ones((30, 8, 8), np.uint8))
        >>> ds = SpikeWindows(d, 20, stride=10)
        >>> len(ds), int(ds[4]["spikes"].sum()), ds[4]["meta"]["window"]
        (6, 1280, [0, 20])
    """

    def __init__(
        self,
        sources: PathLike | Sequence[PathLike],
        window: int,
        stride: int | None = None,
        *,
        gt: GTSpec = None,
        gt_offset: int = 0,
        color: bool = True,
        transform: Callable[..., Any] | None = None,
        seed: int = 0,
        height: int | None = None,
        width: int | None = None,
        flip: bool | None = None,
        raw_width: int | None = None,
        partial: str = "error",
        key: str | None = None,
    ) -> None:
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ShapeError(f"SpikeWindows: window must be a positive int (frames), got {window!r}")
        stride = window if stride is None else stride
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
            raise ShapeError(f"SpikeWindows: stride must be a positive int (frames), got {stride!r}")
        self.window, self.stride = int(window), int(stride)
        self.color = bool(color)
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self.open_kwargs = dict(height=height, width=width, flip=flip, raw_width=raw_width, partial=partial, key=key)
        self._readers: dict[int, Any] = {}

        gt_folder = Path(os.fspath(gt)) if isinstance(gt, (str, os.PathLike)) else None
        if gt_folder is not None and not gt_folder.is_dir():
            raise SpikeFileError(f"SpikeWindows: ground-truth folder '{gt_folder}' does not exist")
        gt_call = _gt_caller(gt) if callable(gt) else None
        if gt is not None and gt_folder is None and gt_call is None:
            raise SpikeFileError(f"SpikeWindows: gt must be a folder or a callable, got {type(gt).__name__}")

        self.recordings: list[_Recording] = []
        for path in _find_sources(sources):
            r = _open_reader(path, self.open_kwargs)  # reads sizes only (.dat, uncompressed packed .npz)
            n, N, s = r.num_frames, self.window, self.stride
            grid = (n - N) // s + 1 if n >= N else 0
            starts, gt_map = None, None
            if gt is not None:
                gt_map = {}
                if gt_folder is not None:
                    sub = gt_folder / path.stem
                    index = _gt_folder_index(sub if sub.is_dir() else gt_folder, int(gt_offset))
                    for k in range(grid):
                        c = k * s + N // 2
                        if c in index:
                            gt_map[c] = index[c]
                else:
                    for k in range(grid):
                        c = k * s + N // 2
                        got = gt_call(c, path)
                        if got is not None and Path(os.fspath(got)).is_file():
                            gt_map[c] = Path(os.fspath(got))
                starts = np.array(sorted(c - N // 2 for c in gt_map), dtype=np.int64)
                count = len(starts)
            else:
                count = grid
            self.recordings.append(_Recording(path, n, r.height, r.width, starts, count, gt_map))
        self._cum = np.cumsum([0] + [r.count for r in self.recordings]).tolist()
        if self._cum[-1] == 0:
            longest = max(r.num_frames for r in self.recordings)
            why = " with a ground-truth image at the centre frame" if gt is not None else ""
            raise SpikeFileError(
                f"SpikeWindows: no window of {self.window} frames{why} in "
                f"{len(self.recordings)} recording(s) (the longest holds {longest} frames)"
            )
        self._set_length(None, self._cum[-1])

    # -- pickling: no reader crosses a process boundary ---------------------------------------

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_readers"] = {}
        return state

    def __repr__(self) -> str:
        return (
            f"SpikeWindows({len(self.recordings)} recording(s), window={self.window}, "
            f"stride={self.stride}, {len(self)} windows)"
        )

    # -- access ---------------------------------------------------------------------------------

    def locate(self, index: int) -> tuple[int, int]:
        """``(recording, start frame)`` of window ``index``."""
        index = self._check_index(index)
        i = bisect.bisect_right(self._cum, index) - 1
        rec = self.recordings[i]
        k = index - self._cum[i]
        start = int(rec.starts[k]) if rec.starts is not None else k * self.stride
        return i, start

    def _reader(self, i: int):
        r = self._readers.get(i)
        if r is None:
            r = self._readers[i] = _open_reader(self.recordings[i].path, self.open_kwargs)
            rec = self.recordings[i]
            if (r.num_frames, r.height, r.width) != (rec.num_frames, rec.height, rec.width):
                raise SpikeFileError(f"spike file '{rec.path}' changed since the dataset was made")
        return r

    def read_window(self, index: int) -> np.ndarray:
        """The frames of window ``index`` as uint8 ``[N, H, W]`` (only those frames are read)."""
        i, start = self.locate(index)
        return self._reader(i).read(start, start + self.window)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        i, start = self.locate(index)
        rec = self.recordings[i]
        spikes = torch.from_numpy(self._reader(i).read(start, start + self.window))
        centre = start + self.window // 2
        gt_path = rec.gt.get(centre) if rec.gt is not None else None
        clean = None
        if gt_path is not None:
            clean = load_image(gt_path, gray=not self.color)
            if clean.shape[0] == 1:
                clean = clean.expand(3, -1, -1).contiguous()
            if tuple(clean.shape[-2:]) != (rec.height, rec.width):
                raise ShapeError(
                    f"ground truth '{gt_path}' is {clean.shape[-2]}x{clean.shape[-1]} but the frames "
                    f"of '{rec.path}' are {rec.height}x{rec.width}"
                )
        if self.transform is not None:
            spikes, clean = self._apply_transform(spikes, clean, index)
        meta = {
            "source": str(rec.path),
            "index": index,
            "window": [start, start + self.window],
            "centre": centre,
            "gt": str(gt_path) if gt_path is not None else None,
            "epoch": self.epoch,
            "seed": self.seed,
        }
        return {"clean": clean, "blurry": None, "spikes": spikes, "meta": meta}

    def _apply_transform(self, spikes: torch.Tensor, clean: torch.Tensor | None, index: int):
        t = self.transform
        if isinstance(t, SpikeTransform):
            g = self.generator(index)
            if clean is None:
                return t(spikes, generator=g), None
            return t(spikes, clean, generator=g)
        if clean is None:
            return t(spikes), None
        out = t(spikes, clean)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ShapeError("SpikeWindows: with ground truth, transform(spikes, gt) must return (spikes, gt)")
        return out
