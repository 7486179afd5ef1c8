"""File-level spike toolkit jobs behind ``spikegen info | simulate | blur``.

Each function takes paths and plain options, does the work with the library functions of
:mod:`spikegen.spikes` and :mod:`spikegen.degrade`, and writes files; the CLI only parses.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import torch

from spikegen.errors import OutputExistsError, SpikeFileError, SpikeGenError


def _refuse_existing(path: Path, overwrite: bool) -> None:
    """The output policy (:mod:`spikegen.outputs`): refuse an occupied path, make its folder."""
    from spikegen.outputs import claim_output

    claim_output(path, overwrite=overwrite)


def check_memory(nbytes: int, what: str, *, fraction: float = 0.5) -> None:
    """Refuse, before allocating, a request that needs more than ``fraction`` of the memory
    available now (:class:`SpikeGenError` saying how much it would need)."""
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on Linux: no check
        return
    if nbytes > fraction * avail:
        raise SpikeGenError(f"{what} would need about {nbytes / 2**30:.1f} GiB of memory "
                            f"({avail / 2**30:.1f} GiB available); ask for less")


def spike_file_summary(path: str | os.PathLike, *, block: int = 2048, **open_kwargs) -> dict:
    """Frames, size and firing-rate statistics of a ``.dat``, ``.npz`` or ``.npy`` spike file.

    The file is read in blocks of ``block`` frames, so memory stays bounded for long
    recordings. ``open_kwargs`` are those of :func:`spikegen.spikes.io.open_spikes`. Returns an
    ordered dict of printable values.
    """
    from spikegen.spikes.io import open_spikes

    src = open_spikes(path, **open_kwargs)
    info = src.info()
    rates = np.empty(src.num_frames, dtype=np.float64)
    pixel_counts = np.zeros((src.height, src.width), dtype=np.int64)
    for start, blk in src.blocks(block, 0):
        rates[start:start + blk.shape[0]] = blk.reshape(blk.shape[0], -1).mean(axis=1, dtype=np.float64)
        pixel_counts += blk.sum(axis=0, dtype=np.int64)
    pix = pixel_counts / max(src.num_frames, 1)
    hot = int((pix > 0.5).sum())
    dead = int((pix == 0).sum())
    out = {
        "file": str(info.path),
        "format": info.format,
        "frames": int(src.num_frames),
        "size (HxW)": f"{src.height}x{src.width}",
        "mean firing rate": f"{rates.mean():.5f} spikes/pixel/frame",
        "per-frame rate": f"min {rates.min():.5f}  p5 {np.percentile(rates, 5):.5f}  median {np.median(rates):.5f}  "
                          f"p95 {np.percentile(rates, 95):.5f}  max {rates.max():.5f}",
        "empty frames": int((rates == 0).sum()),
        "per-pixel rate": f"p1 {np.percentile(pix, 1):.4f}  median {np.median(pix):.4f}  p99 {np.percentile(pix, 99):.4f}",
        "silent pixels": f"{dead} ({100 * dead / pix.size:.2f}%)",
        "hot pixels (>0.5)": f"{hot} ({100 * hot / pix.size:.2f}%)",
    }
    if info.format == "dat" and info.extra_bytes:
        out["trailing bytes"] = f"{info.extra_bytes} (not a whole frame; ignored)"
    meta = {k: v for k, v in (info.meta or {}).items() if k not in ("format", "version", "num_frames", "height", "width", "flip", "bitorder")}
    if meta:
        out["metadata"] = ", ".join(f"{k}={v}" for k, v in meta.items())
    return out


def simulate_file(input: str | os.PathLike, output: str | os.PathLike, *, method: str = "if",
                  v_th: float = 1.0, gain: float = 0.5, frames: int = 200, interp: int = 1,
                  coverage: float = 0.1, seed: int = 0, flip: bool = True,
                  overwrite: bool = False) -> tuple[int, int, int, float]:
    """Simulate spikes from an image, a frame folder or a video; write ``.dat`` or ``.npz``.

    Returns ``(frames, height, width, mean firing rate)``.
    """
    from spikegen.image import is_image_file, load_image
    from spikegen.spikes.io import save_spikes
    from spikegen.spikes.simulate import integrate_and_fire, photon_sampling

    input, output = Path(input), Path(output)
    if output.suffix.lower() not in (".dat", ".npz"):
        raise SpikeFileError(f"{output}: the output must end in .dat or .npz")
    if method not in ("if", "photon"):
        raise SpikeFileError(f"--method must be 'if' or 'photon', got {method!r}")
    if not input.exists():
        raise SpikeFileError(f"{input}: no such file or folder")
    if int(frames) < 1:
        raise SpikeFileError(f"--frames must be >= 1, got {frames}")
    _refuse_existing(output, overwrite)
    g = torch.Generator().manual_seed(seed)
    meta = {"source": str(input.name), "method": method, "seed": seed}
    meta.update({"v_th": v_th, "gain": gain} if method == "if" else {"coverage": coverage})
    if input.is_file() and is_image_file(input):
        from PIL import Image

        with Image.open(input) as im:
            w_, h_ = im.size
        check_memory(int(frames) * h_ * w_ * (4 if method == "photon" else 2),
                     f"--frames {frames} of {h_}x{w_} pixels")
        if method == "photon":
            spikes = photon_sampling(load_image(input)[None], frames=frames, coverage=coverage, generator=g)
        else:
            spikes = integrate_and_fire(load_image(input, gray=True)[None], v_th=v_th, gain=gain, steps=frames, generator=g)
        arr = spikes[0].cpu().numpy()
        save_spikes(output, arr, flip=flip, overwrite=overwrite, kind="image", **meta)
        return arr.shape[0], arr.shape[1], arr.shape[2], float(arr.mean())

    if method == "photon":
        raise SpikeFileError("photon sampling works on still images; use --method if for videos")
    from spikegen.spikes.simulate import iter_simulate_video

    blocks = (b.cpu().numpy() for b in iter_simulate_video(input, v_th=v_th, gain=gain, interp=interp, generator=g, block=256))
    first = next(blocks, None)
    if first is None:
        raise SpikeFileError(f"{input}: no frames found")
    h, w = first.shape[1:]
    if output.suffix.lower() == ".npz":  # the packed format is written in one piece
        arr = np.concatenate([first, *blocks])
        save_spikes(output, arr, overwrite=overwrite, kind="video", interp=interp, **meta)
        return arr.shape[0], h, w, float(arr.mean())
    from spikegen.spikes.io import DatWriter

    n, fired = 0, 0
    with DatWriter(output, h, w, flip=flip, overwrite=overwrite) as dw:  # streamed: bounded memory
        for blk in itertools.chain([first], blocks):
            dw.write(blk)
            n += blk.shape[0]
            fired += int(blk.sum(dtype=np.int64))
    return n, h, w, fired / (n * h * w)


def blur_file(image: str | os.PathLike, output: str | os.PathLike, *, kernels: int = 8, size: int = 40,
              seed: int = 0, overwrite: bool = False) -> Path:
    """Motion-blur one image file with the pretraining kernel bank and write it."""
    from spikegen.degrade import motion_blur
    from spikegen.image import load_image, save_image

    output = Path(output)
    if not Path(image).is_file():
        raise SpikeFileError(f"{image}: no such image file")
    _refuse_existing(output, overwrite)
    img = load_image(image)
    g = torch.Generator().manual_seed(seed)
    out = motion_blur(img[None], kernels=kernels, size=size, generator=g)[0]
    return save_image(output, out, overwrite=True)
