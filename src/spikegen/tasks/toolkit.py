"""File-level spike toolkit jobs behind ``spikegen info | simulate | blur``.

Each function takes paths and plain options, does the work with the library functions of
:mod:`spikegen.spikes` and :mod:`spikegen.degrade`, and writes files; the CLI only parses.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from spikegen.errors import OutputExistsError, SpikeFileError


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists; pass --overwrite to replace it")


def spike_file_summary(path: str | os.PathLike, *, height: int = 250, width: int = 400,
                       raw_width: int | None = None, flip: bool = True, block: int = 2048) -> dict:
    """Frames, size and firing-rate statistics of a ``.dat`` or ``.npz`` spike file.

    ``.dat`` files are read in blocks of ``block`` frames, so memory stays bounded for long
    recordings. Returns an ordered dict of printable values.
    """
    from spikegen.spikes.io import iter_spike_blocks

    path = Path(path)
    rates: list[np.ndarray] = []
    shape = None
    for start, blk in iter_spike_blocks(path, block=block, height=height, width=width, raw_width=raw_width, flip=flip):
        shape = blk.shape[1:]
        rates.append(blk.reshape(blk.shape[0], -1).mean(axis=1, dtype=np.float64))
    if shape is None:
        raise SpikeFileError(f"{path}: holds no frames")
    r = np.concatenate(rates)
    per_pixel_note = ""
    return {
        "file": str(path),
        "frames": int(r.size),
        "size (HxW)": f"{shape[0]}x{shape[1]}",
        "mean firing rate": f"{r.mean():.5f} spikes/pixel/frame",
        "per-frame rate": f"min {r.min():.5f}  p5 {np.percentile(r, 5):.5f}  median {np.median(r):.5f}  "
                          f"p95 {np.percentile(r, 95):.5f}  max {r.max():.5f}",
        "empty frames": int((r == 0).sum()),
        **({"note": per_pixel_note} if per_pixel_note else {}),
    }


def simulate_file(input: str | os.PathLike, output: str | os.PathLike, *, method: str = "if",
                  v_th: float = 1.0, gain: float = 0.5, frames: int = 200, interp: int = 1,
                  coverage: float = 0.1, seed: int = 0, flip: bool = True,
                  overwrite: bool = False) -> tuple[int, int, int, float]:
    """Simulate spikes from an image, a frame folder or a video; write ``.dat`` or ``.npz``.

    Returns ``(frames, height, width, mean firing rate)``.
    """
    from spikegen.image import is_image_file, load_image
    from spikegen.spikes.io import save_spikes
    from spikegen.spikes.simulate import integrate_and_fire, load_frames, photon_sampling

    input, output = Path(input), Path(output)
    if output.suffix.lower() not in (".dat", ".npz"):
        raise SpikeFileError(f"{output}: the output must end in .dat or .npz")
    _refuse_existing(output, overwrite)
    if method not in ("if", "photon"):
        raise SpikeFileError(f"--method must be 'if' or 'photon', got {method!r}")
    if not input.exists():
        raise SpikeFileError(f"{input}: no such file or folder")
    g = torch.Generator().manual_seed(seed)
    if input.is_file() and is_image_file(input):
        if method == "photon":
            spikes = photon_sampling(load_image(input)[None], frames=frames, coverage=coverage, generator=g)
        else:
            spikes = integrate_and_fire(load_image(input, gray=True)[None], v_th=v_th, gain=gain, steps=frames, generator=g)
        source = "image"
    else:
        if method == "photon":
            raise SpikeFileError("photon sampling works on still images; use --method if for videos")
        video = load_frames(input, interp=interp, gray=True)  # [T,1,H,W]
        spikes = integrate_and_fire(video[:, 0][None], v_th=v_th, gain=gain, generator=g)
        source = "video"
    arr = spikes[0].cpu().numpy()
    meta = {"source": str(input.name), "kind": source, "method": method, "seed": seed}
    if method == "if":
        meta.update(v_th=v_th, gain=gain, interp=interp)
    else:
        meta.update(coverage=coverage)
    if output.suffix.lower() == ".dat":
        save_spikes(output, arr, flip=flip, overwrite=overwrite)
    else:
        save_spikes(output, arr, overwrite=overwrite, **meta)
    return arr.shape[0], arr.shape[1], arr.shape[2], float(arr.mean())


def blur_file(image: str | os.PathLike, output: str | os.PathLike, *, kernels: int = 8, size: int = 40,
              seed: int = 0, overwrite: bool = False) -> Path:
    """Motion-blur one image file with the pretraining kernel bank and write it."""
    from spikegen.degrade import motion_blur
    from spikegen.image import load_image, save_image

    output = Path(output)
    _refuse_existing(output, overwrite)
    img = load_image(image)
    g = torch.Generator().manual_seed(seed)
    out = motion_blur(img[None], kernels=kernels, size=size, generator=g)[0]
    return save_image(output, out, overwrite=True)
