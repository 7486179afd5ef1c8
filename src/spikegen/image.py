"""Reading and writing images and videos as float tensors.

Images in spikegen are float tensors ``[C, H, W]`` in ``[0, 1]`` (``C`` = 1 or 3); batches are
``[B, C, H, W]``. These helpers convert to and from files a person can open (PNG, JPEG, TIFF,
BMP; MP4 through PyAV) and give a clear error that names the file when it cannot be read.

Example:
    >>> from spikegen.image import load_image, save_image
    >>> img = load_image("photo.png")          # doctest: +SKIP
    >>> img.shape                               # doctest: +SKIP
    torch.Size([3, 321, 481])
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from spikegen.degrade import rgb_to_gray
from spikegen.errors import OutputExistsError, ShapeError, SpikeFileError
# The suffixes and the is_*_file tests live in spikegen.media (one list for every command);
# callers import them from here too.
from spikegen.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, is_image_file, is_video_file  # noqa: F401
from spikegen.outputs import atomic_path


def list_images(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """Sorted image files in ``folder`` (recursively with ``recursive=True``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SpikeFileError(f"{folder}: not a folder")
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and is_image_file(p))


def load_image(path: str | os.PathLike, *, gray: bool = False) -> torch.Tensor:
    """Read an image file as float ``[3, H, W]`` (or ``[1, H, W]`` with ``gray=True``) in [0, 1].

    16-bit images are scaled by 65535, 8-bit by 255; an alpha channel is dropped (composite
    RGBA yourself when the background matters, as the NVS readers do).
    """
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise SpikeFileError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32) / 65535.0
                arr = arr[..., None]
            else:
                im = im.convert("L" if gray else "RGB")
                arr = np.asarray(im, dtype=np.float32) / 255.0
                if arr.ndim == 2:
                    arr = arr[..., None]
    except (OSError, ValueError) as exc:  # PIL raises these for corrupt or unknown files
        raise SpikeFileError(f"{path}: cannot read as an image ({exc})") from None
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).clamp_(0, 1)
    if gray and t.shape[0] == 3:
        t = rgb_to_gray(t)
    if not gray and t.shape[0] == 1:
        t = t.expand(3, -1, -1).clone()
    return t


def stretch(img: torch.Tensor, q: float = 0.995) -> torch.Tensor:
    """Divide by the ``q`` quantile and clamp to [0, 1]: display normalisation for spike
    reconstructions of captures whose gain is unknown."""
    hi = torch.quantile(img.float().flatten(), q).clamp_min(1e-6)
    return (img.float() / hi).clamp(0, 1)


def to_uint8(img: torch.Tensor | np.ndarray) -> np.ndarray:
    """``[C,H,W]`` float in [0,1] (tensor or array) -> ``[H,W,C]`` (or ``[H,W]``) uint8."""
    if isinstance(img, torch.Tensor):
        img = img.detach().to("cpu", torch.float32).numpy()
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 3:
        arr = np.moveaxis(arr, 0, -1)
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
    elif arr.ndim != 2:
        raise ShapeError(f"expected an image [C,H,W] or [H,W], got shape {tuple(arr.shape)}")
    return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _check_output(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists; pass overwrite=True (CLI: --overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)


def save_image(path: str | os.PathLike, img: torch.Tensor | np.ndarray, *, overwrite: bool = True) -> Path:
    """Write ``[C,H,W]`` or ``[H,W]`` in [0,1] to an image file (format from the suffix).

    The file is written to a temporary name and renamed, so a failure never leaves a truncated
    image behind.
    """
    from PIL import Image

    path = Path(path)
    _check_output(path, overwrite)
    arr = to_uint8(img)
    with atomic_path(path, suffix=path.suffix) as tmp:  # PIL picks the format from the suffix
        Image.fromarray(arr).save(tmp)
    return path


class VideoWriter:
    """Stream frames (``[C,H,W]`` in [0,1]) into an H.264 MP4 with bounded memory.

    Use as a context manager. Odd sizes are padded by one pixel (H.264 needs even sizes).

    Example:
        >>> with VideoWriter("out.mp4", fps=30) as vw:   # doctest: +SKIP
        ...     for frame in frames:
        ...         vw.write(frame)
    """

    def __init__(self, path: str | os.PathLike, *, fps: float = 30.0, overwrite: bool = True, crf: int = 18):
        self.path = Path(path)
        _check_output(self.path, overwrite)
        self.fps = fps
        self.crf = crf
        self._container = None
        self._stream = None
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.frames = 0

    def __enter__(self) -> "VideoWriter":
        return self

    def _open(self, h: int, w: int) -> None:
        import av

        self._container = av.open(str(self._tmp), mode="w")
        self._stream = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1000))
        self._stream.width = w + (w % 2)
        self._stream.height = h + (h % 2)
        self._stream.pix_fmt = "yuv420p"
        # veryfast: 2-3x the encoding speed of the default preset and a shorter lookahead (less memory)
        self._stream.options = {"crf": str(self.crf), "preset": "veryfast"}

    def write(self, frame: torch.Tensor | np.ndarray) -> None:
        """Append one frame ``[C,H,W]`` or ``[H,W]`` in [0,1]."""
        import av

        arr = to_uint8(frame)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=-1)
        h, w = arr.shape[:2]
        if self._container is None:
            self._open(h, w)
        if h % 2 or w % 2:
            arr = np.pad(arr, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None
        os.replace(self._tmp, self.path)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # never leave a half-written video under the final name
            if self._container is not None:
                try:
                    self._container.close()
                except Exception:
                    pass
            if self._tmp.exists():
                self._tmp.unlink()


def save_video(path: str | os.PathLike, frames: Iterable[torch.Tensor] | torch.Tensor, *, fps: float = 30.0, overwrite: bool = True) -> Path:
    """Write frames (an iterable of ``[C,H,W]`` or a tensor ``[T,C,H,W]``) to an MP4."""
    with VideoWriter(path, fps=fps, overwrite=overwrite) as vw:
        for f in frames:
            vw.write(f)
    return Path(path)


def make_grid(images: Sequence[torch.Tensor], *, ncol: int | None = None, pad: int = 2) -> torch.Tensor:
    """Tile same-size ``[C,H,W]`` images (C 1 or 3) into one ``[3, H', W']`` grid image."""
    if not images:
        raise ShapeError("make_grid needs at least one image")
    imgs = [i.detach().float().cpu().expand(3, -1, -1) if i.shape[0] == 1 else i.detach().float().cpu() for i in images]
    h, w = imgs[0].shape[-2:]
    n = len(imgs)
    ncol = ncol or n
    nrow = (n + ncol - 1) // ncol
    grid = torch.ones(3, nrow * (h + pad) + pad, ncol * (w + pad) + pad)
    for k, im in enumerate(imgs):
        r, c = divmod(k, ncol)
        grid[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = im[:, :h, :w]
    return grid
