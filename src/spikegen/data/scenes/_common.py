"""What the scene modules share (package-private): a view's image file and how it is read.

The image file a ``file_path`` entry names (:func:`image_candidates`), its name stem
(:func:`file_stem`), and :func:`load_rgba_composited` (re-exported as
``spikegen.data.scenes.load_rgba_composited``), which reads a view composited on the background.

Example:
    >>> from pathlib import Path
    >>> [p.name for p in image_candidates(Path("scene"), "./train/r_0")][:2], file_stem("./train/r_0.png")
    (['r_0.png', 'r_0.jpg'], 'r_0')
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np
import torch

from spikegen.errors import SpikeFileError
from spikegen.media import IMAGE_SUFFIXES

__all__ = ["PathLike", "file_stem", "image_candidates", "load_rgba_composited"]

PathLike = str | os.PathLike


def load_rgba_composited(path: PathLike, background: Sequence[float] = (1.0, 1.0, 1.0)) -> torch.Tensor:
    """Read an image as float ``[3, H, W]``; an alpha channel is composited on ``background``.

    ``rgb * a + background * (1 - a)``, with 8-bit (/255) or 16-bit (/65535) values.
    """
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise SpikeFileError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im.load()
            has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32)[..., None] / 65535.0
                arr = np.repeat(arr, 3, axis=-1)
            elif has_alpha:
                arr = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
            else:
                arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise SpikeFileError(f"{path}: cannot read as an image ({exc})") from None
    if arr.shape[-1] == 4:
        bg = np.asarray(background, dtype=np.float32).reshape(1, 1, 3)
        a = arr[..., 3:4]
        arr = arr[..., :3] * a + bg * (1.0 - a)
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
    return t.clamp_(0, 1)


def image_candidates(root: Path, file_path: str) -> list[Path]:
    """The files a ``file_path`` entry may name, most likely first (``.png`` appended when the
    entry has no image suffix, then the other image suffixes, then the entry as it is)."""
    rel = file_path.replace("\\", "/")
    base = root / rel
    if PurePosixPath(rel).suffix.lower() in IMAGE_SUFFIXES:
        return [base]
    return [base.with_name(base.name + ".png")] + [base.with_name(base.name + s) for s in IMAGE_SUFFIXES if s != ".png"] + [base]


def file_stem(file_path: str) -> str:
    """The file name of a ``file_path`` entry without its image suffix (``"./train/r_0.png"`` -> ``"r_0"``)."""
    name = PurePosixPath(file_path.replace("\\", "/")).name
    return name[: -len(PurePosixPath(name).suffix)] if PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES else name
