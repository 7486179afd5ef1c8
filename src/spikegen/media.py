"""Frames from files: the image and video suffixes spikegen reads, the natural file order, and
frame-by-frame reading of a frame folder, a video file or one image.

The one home of these rules (bottom layer: it imports only ``errors`` and ``degrade``), so every
command sorts and recognises files alike: :mod:`spikegen.image`, :mod:`spikegen.spikes.simulate`
and :mod:`spikegen.data` re-export or use the names below.

Example:
    >>> from spikegen.media import is_video_file, natural_key
    >>> is_video_file("clip.m4v"), is_video_file("photo.png")
    (True, False)
    >>> sorted(["f10.png", "f2.png", "F1.png"], key=natural_key)
    ['F1.png', 'f2.png', 'f10.png']
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from spikegen.degrade import rgb_to_gray
from spikegen.errors import ShapeError, SpikeFileError

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "is_image_file",
    "is_video_file",
    "iter_frames",
    "natural_key",
]

#: Image suffixes spikegen reads (lower case; matched case-insensitively).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: Video suffixes spikegen reads through PyAV (lower case; matched case-insensitively).
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif")


def is_image_file(path: str | os.PathLike) -> bool:
    """True when ``path`` has an image suffix spikegen can read (:data:`IMAGE_SUFFIXES`)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_video_file(path: str | os.PathLike) -> bool:
    """True when ``path`` has a video suffix spikegen can read through PyAV (:data:`VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def natural_key(p: Path | str) -> list:
    """Sort key of the natural file order: ``frame2`` before ``frame10``.

    The rule: the whole path (``str(p)``, folders included, so files of one folder stay
    together in a recursive listing) is cut into runs of digits and the text between them;
    digit runs compare as numbers, text case-insensitively. Names that differ only in case or
    in leading zeros (``f01`` / ``f1``) compare equal, and keep the order they were listed in.

    Example:
        >>> sorted(["s10/a.dat", "s2/b.dat", "s2/a10.dat", "s2/a9.dat"], key=natural_key)
        ['s2/a9.dat', 's2/a10.dat', 's2/b.dat', 's10/a.dat']
    """
    s = str(p)
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def _image_to_tensor(arr: np.ndarray, gray: bool, source: Path) -> Tensor:
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise SpikeFileError(f"{source}: unsupported image shape {arr.shape}")
    if arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.dtype == np.uint8:
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float() / 255.0
    elif arr.dtype == np.uint16:
        t = torch.from_numpy(arr.astype(np.float32)).permute(2, 0, 1) / 65535.0
    else:
        t = torch.from_numpy(arr.astype(np.float32)).permute(2, 0, 1)
    if t.shape[0] == 1 and not gray:
        t = t.expand(3, -1, -1).contiguous()
    if t.shape[0] == 3 and gray:
        t = rgb_to_gray(t)
    return t


def iter_frames(
    source: str | Path, *, gray: bool = True, max_frames: int | None = None
) -> Iterator[Tensor]:
    r"""Yield the frames of a video source one at a time, as float ``[C, H, W]`` in [0, 1].

    ``source`` is a folder of images (sorted in natural order: ``f2`` before ``f10``), a video
    file (decoded with PyAV), or a single image. ``gray=True`` gives 1 channel (BT.601 weights),
    otherwise 3. All frames must have the same size.

    Example:
        >>> frames = list(iter_frames("clip.mp4", max_frames=4))  # doctest: +SKIP
    """
    src = Path(source)
    if max_frames is not None and max_frames < 0:
        raise ShapeError(f"max_frames must be >= 0, got {max_frames}")
    if max_frames == 0:
        return
    size = None

    def check(t: Tensor, where: object) -> Tensor:
        nonlocal size
        if size is None:
            size = tuple(t.shape[-2:])
        elif tuple(t.shape[-2:]) != size:
            raise SpikeFileError(
                f"{where}: frame size {tuple(t.shape[-2:])} differs from the first frame {size}"
            )
        return t

    count = 0
    if src.is_dir():
        import imageio.v3 as iio

        files = sorted((p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                       key=natural_key)
        if not files:
            raise SpikeFileError(f"{src} contains no images ({', '.join(IMAGE_SUFFIXES)})")
        for f in files:
            yield check(_image_to_tensor(iio.imread(f), gray, f), f)
            count += 1
            if max_frames is not None and count >= max_frames:
                return
    elif src.is_file() and src.suffix.lower() in IMAGE_SUFFIXES:
        import imageio.v3 as iio

        yield _image_to_tensor(iio.imread(src), gray, src)
    elif src.is_file():
        import av

        try:
            container = av.open(str(src))
        except Exception as exc:  # noqa: BLE001
            raise SpikeFileError(f"cannot open video {src}: {exc}") from None
        with container:
            if not container.streams.video:
                raise SpikeFileError(f"{src} has no video stream")
            for frame in container.decode(video=0):
                arr = frame.to_ndarray(format="rgb24")
                yield check(_image_to_tensor(arr, gray, src), src)
                count += 1
                if max_frames is not None and count >= max_frames:
                    return
        if count == 0:
            raise SpikeFileError(f"{src}: no frames could be decoded")
    else:
        raise SpikeFileError(f"video source {src} is neither a folder of images nor a file")
