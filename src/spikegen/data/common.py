"""Helpers shared by the datasets: per-sample seeding, file discovery, crops.

Reproducibility rule (used by every random dataset in :mod:`spikegen.data`): everything random
about sample ``index`` in epoch ``epoch`` is drawn from one ``torch.Generator`` seeded with
:func:`sample_seed` ``(seed, epoch, index)``. A sample therefore depends only on those three
numbers, never on which loader worker made it, how many workers there are, or what was drawn
before it; a run can be resumed mid-epoch and gives the same samples.

Example:
    >>> from spikegen.data.common import sample_seed
    >>> sample_seed(0, 0, 5) == sample_seed(0, 0, 5)
    True
    >>> sample_seed(0, 0, 5) == sample_seed(0, 1, 5)
    False
"""

from __future__ import annotations

import fnmatch
import math
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from spikegen.defaults import DEFAULT_GAIN  # the training gain (re-exported: spikegen.data.DEFAULT_GAIN)
from spikegen.errors import ShapeError, SpikeFileError
# natural_key lives in spikegen.media (the one natural file order); imported from here too.
from spikegen.media import is_image_file, natural_key

PathLike = str | os.PathLike
Range = float | tuple[float, float] | Sequence[float]



def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed that depends only on ``(seed, epoch, index)`` (all integers >= 0).

    Mixed through :class:`numpy.random.SeedSequence`, so neighbouring indices or epochs give
    unrelated streams.
    """
    for name, v in (("seed", seed), ("epoch", epoch), ("index", index)):
        if int(v) < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
    ss = np.random.SeedSequence([int(seed), int(epoch), int(index)])
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`sample_seed`."""
    g = torch.Generator()
    g.manual_seed(sample_seed(seed, epoch, index))
    return g


def uniform(g: torch.Generator, lo: float, hi: float) -> float:
    """One draw of U(lo, hi) from ``g`` (exactly ``lo`` when ``lo == hi``, nothing drawn)."""
    if lo == hi:
        return float(lo)
    return float(lo + (hi - lo) * torch.rand((), generator=g).item())


def as_range(value: Range, name: str, *, positive: bool = True) -> tuple[float, float]:
    """``1.0`` -> ``(1.0, 1.0)``; ``(lo, hi)`` -> checked ``(lo, hi)``."""
    if isinstance(value, (int, float)):
        lo = hi = float(value)
    else:
        vals = list(value)
        if len(vals) != 2:
            raise ValueError(f"{name} must be a number or a (low, high) pair, got {value!r}")
        lo, hi = float(vals[0]), float(vals[1])
    if lo > hi:
        raise ValueError(f"{name}: low {lo} is above high {hi}")
    if positive and lo <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return lo, hi


def as_size(size: int | Sequence[int] | None, name: str = "size") -> tuple[int, int] | None:
    """``256`` -> ``(256, 256)``; ``(h, w)`` -> ``(h, w)``; ``None`` stays ``None``."""
    if size is None:
        return None
    if isinstance(size, int):
        h = w = size
    else:
        vals = list(size)
        if len(vals) != 2:
            raise ValueError(f"{name} must be an int or (height, width), got {size!r}")
        h, w = int(vals[0]), int(vals[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"{name} must be positive, got {size!r}")
    return h, w


def as_roots(root: PathLike | Sequence[PathLike]) -> list[Path]:
    """One folder or a list of folders, each checked to exist."""
    roots = [Path(root)] if isinstance(root, (str, os.PathLike)) else [Path(r) for r in root]
    if not roots:
        raise SpikeFileError("no data folder given")
    for r in roots:
        if not r.exists():
            raise SpikeFileError(f"{r}: no such file or folder")
    return roots


def is_excluded(path: Path, root: Path, exclude: Iterable[str]) -> bool:
    """True when ``path`` (under ``root``) matches one of the ``exclude`` rules.

    A rule matches when it equals a folder or file name on the path below ``root``
    (``"mcmaster18"``), or when it is a glob (``fnmatch``) matching the path relative to
    ``root`` (``"*/mcmaster18/*"``, ``"*.tif"``), the file name, or the absolute path.
    """
    try:
        rel = path.relative_to(root)
    except ValueError:
        rel = path
    parts = rel.parts
    rel_posix = rel.as_posix()
    for rule in exclude:
        if rule in parts:
            return True
        if fnmatch.fnmatch(rel_posix, rule) or fnmatch.fnmatch(path.name, rule) or fnmatch.fnmatch(path.as_posix(), rule):
            return True
    return False


def find_images(roots: Sequence[Path], *, recursive: bool = True, exclude: Iterable[str] = ()) -> list[Path]:
    """Sorted image files under ``roots`` (a root may also be a single image file).

    Hidden files and folders (name starting with ``.``) are skipped.
    """
    exclude = tuple(exclude)
    out: list[Path] = []
    for root in roots:
        if root.is_file():
            if is_image_file(root):
                out.append(root)
            continue
        it = root.rglob("*") if recursive else root.glob("*")
        for p in it:
            rel_parts = p.relative_to(root).parts
            if any(part.startswith(".") for part in rel_parts):
                continue
            if p.is_file() and is_image_file(p) and not is_excluded(p, root, exclude):
                out.append(p)
    return sorted(set(out))


def resize_min_side(img: torch.Tensor, size: tuple[int, int], *, mode: str = "bilinear") -> tuple[torch.Tensor, float]:
    """Upscale ``[..., C, H, W]`` so that ``H >= size[0]`` and ``W >= size[1]`` (aspect kept).

    Returns the (possibly unchanged) image and the scale factor applied (1.0 when none).
    """
    h, w = img.shape[-2:]
    scale = max(size[0] / h, size[1] / w)
    if scale <= 1.0:
        return img, 1.0
    return rescale(img, scale, min_size=size, mode=mode), float(scale)


def rescale(img: torch.Tensor, scale: float, *, min_size: tuple[int, int] | None = None, mode: str = "bilinear") -> torch.Tensor:
    """Resize ``[..., C, H, W]`` by ``scale`` (antialiased when shrinking), at least ``min_size``."""
    h, w = img.shape[-2:]
    nh, nw = max(1, int(math.ceil(h * scale - 1e-6))), max(1, int(math.ceil(w * scale - 1e-6)))
    if min_size is not None:
        nh, nw = max(nh, min_size[0]), max(nw, min_size[1])
    if (nh, nw) == (h, w):
        return img
    lead = img.shape[:-3]
    x = img.reshape(-1, *img.shape[-3:])
    kw = {"antialias": True} if mode in ("bilinear", "bicubic") and (nh < h or nw < w) else {}
    if mode in ("bilinear", "bicubic"):
        kw["align_corners"] = False
    y = F.interpolate(x.float(), size=(nh, nw), mode=mode, **kw).clamp_(0, 1)
    return y.reshape(*lead, *y.shape[-3:]).to(img.dtype)


def random_crop_box(h: int, w: int, size: tuple[int, int], g: torch.Generator | None, *, align: int = 1) -> tuple[int, int]:
    """Top-left corner of a ``size`` crop in an ``h x w`` image; centred when ``g`` is None.

    ``align`` forces both coordinates to multiples of ``align`` (for spikes stored at 1/4 of the
    image size, as in S-SDM's GOPRO).
    """
    ch, cw = size
    if ch > h or cw > w:
        raise ShapeError(f"crop {ch}x{cw} does not fit in an image of {h}x{w}")
    nh, nw = (h - ch) // align, (w - cw) // align
    if g is None:
        return (nh // 2) * align, (nw // 2) * align
    top = int(torch.randint(0, nh + 1, (), generator=g).item()) * align
    left = int(torch.randint(0, nw + 1, (), generator=g).item()) * align
    return top, left


def coin(g: torch.Generator, p: float = 0.5) -> bool:
    """True with probability ``p``."""
    return bool(torch.rand((), generator=g).item() < p)


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file, read from its header only."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
    except (OSError, ValueError) as exc:
        raise SpikeFileError(f"{path}: cannot read as an image ({exc})") from None
    return h, w


class SeededDataset(torch.utils.data.Dataset):
    """Base of the random datasets: ``seed``, ``epoch`` and a per-sample generator.

    Call :meth:`set_epoch` before iterating each epoch (as with ``DistributedSampler``), so
    the random choices (crop, flip, blur kernel, V_th, spikes) change from epoch to epoch but
    stay reproducible. With ``DataLoader(persistent_workers=True)`` the workers keep the epoch
    they were started with: use non-persistent workers (the default), rebuild the loader, or
    pass the epoch with each index as the trainer does (``spikegen.train.trainer.DataStream``).
    """

    seed: int = 0
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose samples ``__getitem__`` returns (an integer >= 0)."""
        if int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def generator(self, index: int) -> torch.Generator:
        """The generator that makes every random choice of sample ``index`` in this epoch."""
        return sample_generator(self.seed, self.epoch, index)

    def sample_seed(self, index: int) -> int:
        return sample_seed(self.seed, self.epoch, index)

    def _set_length(self, length: int | None, natural: int) -> None:
        """``len(self)``: ``length`` when given (an epoch of that many samples), else ``natural``."""
        if length is not None and int(length) < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.length = int(length) if length is not None else int(natural)

    def __len__(self) -> int:
        return self.length

    def _check_index(self, index: int) -> int:
        n = len(self)
        index = int(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} samples")
        return index
