"""Reconstruction ceiling of VAEs: encode -> decode PSNR on held-out photos and spike-camera frames.

Every SpikeGen output goes through the VAE decoder, so no SpikeGen can beat (by much) the
PSNR its VAE reaches on the clean image itself. This prints that ceiling for one or more VAE
folders on the sets the protocols use, with the per-image spread:

- ``mcmaster18 RGB`` / ``mcmaster18 gray``: the 18 validation photos (``images/mcmaster18``),
  centre 256x256 crops as in the deblurring protocol; gray is BT.601 of input and output;
- ``REDS GT gray``: the ground-truth frames of the shared REDS spike streams
  (``spikes/synthetic_reds/gt``, 250x400 gray), fed as 3 equal channels, as the reconstruction
  task feeds the VAE.

    python benchmarks/vae_ceiling.py              # the shipped autoencoders, the default first
    python benchmarks/vae_ceiling.py src/spikegen/weights/tiny/vae [OTHER_VAE ...]
    python benchmarks/vae_ceiling.py VAE --data DIR [--data DIR2] --size 256

``--data`` replaces the default photo sets by any image folders (RGB and gray rows each).
Shared data folder: ``$SPIKEGEN_SHARED`` or ``../shared`` beside the repository.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from spikegen.degrade import rgb_to_gray
from spikegen.image import list_images, load_image
from spikegen.metrics import psnr
from spikegen.models.vae import decode_latents, encode_images, load_vae

REPO = Path(__file__).resolve().parents[1]


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    s = min(size, h, w)
    t, l = (h - s) // 2, (w - s) // 2
    return x[:, t:t + s, l:l + s]


def image_sets(folders: list[str], reds: Path | None, size: int) -> list[tuple[str, list[torch.Tensor], bool]]:
    """``(name, images [3,H,W], gray)`` triples: each photo folder gives an RGB and a gray row."""
    sets = []
    for folder in folders:
        files = list_images(folder)
        if not files:
            raise SystemExit(f"no images in {folder}")
        crops = [centre_crop(load_image(f), size) for f in files]
        sets.append((f"{Path(folder).name} RGB", crops, False))
        sets.append((f"{Path(folder).name} gray", crops, True))
    if reds is not None and reds.is_dir():
        frames = [load_image(f).expand(3, -1, -1) for f in list_images(reds)]
        if frames:
            sets.append(("REDS GT gray", frames, True))
    return sets


@torch.no_grad()
def ceiling(vae, images: list[torch.Tensor], gray: bool) -> list[float]:
    """Per-image encode -> decode PSNR (dB); on BT.601 gray when ``gray``."""
    out = []
    for x in images:
        x = x[None]
        y = decode_latents(vae, encode_images(vae, x), size=tuple(x.shape[-2:]))
        if gray:
            x, y = rgb_to_gray(x), rgb_to_gray(y)
        out.append(float(psnr(y, x)))
    return out


def main() -> None:
    shared = Path(os.environ.get("SPIKEGEN_SHARED", REPO.parent / "shared"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vaes", nargs="*", help="VAE folders (an AutoencoderKL or a PatchAutoencoder; default: the "
                    "shipped ones, spikegen.weights.default_vae() first)")
    ap.add_argument("--data", action="append", default=None, help="image folder (repeatable; default images/mcmaster18)")
    ap.add_argument("--reds", default=str(shared / "data" / "spikes" / "synthetic_reds" / "gt"),
                    help="folder of gray spike-camera GT frames ('' to skip)")
    ap.add_argument("--size", type=int, default=256, help="centre crop size of the photos")
    args = ap.parse_args()
    folders = args.data or [str(shared / "data" / "images" / "mcmaster18")]
    sets = image_sets(folders, Path(args.reds) if args.reds else None, args.size)
    print(f"sets: {', '.join(f'{n} ({len(i)})' for n, i, _ in sets)}; photos as centre {args.size} crops; "
          f"torch threads {torch.get_num_threads()}")
    print("| VAE | set | PSNR mean (dB) | min | max | seconds |")
    print("|---|---|---|---|---|---|")
    if not args.vaes:
        from spikegen.weights import default_vae, shipped_vaes

        args.vaes = [str(default_vae())] + [str(p) for p in shipped_vaes() if p != default_vae()]
    for v in args.vaes:
        vae = load_vae(v).eval()
        for name, images, gray in sets:
            t0 = time.perf_counter()
            vals = ceiling(vae, images, gray)
            print(f"| {v} | {name} | {statistics.fmean(vals):.2f} | {min(vals):.2f} | {max(vals):.2f} | "
                  f"{time.perf_counter() - t0:.1f} |", flush=True)


if __name__ == "__main__":
    main()
