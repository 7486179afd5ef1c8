"""Reconstruction ceiling of VAEs: encode -> decode PSNR on the validation crops.

Every SpikeGen output goes through the VAE decoder, so no SpikeGen can beat (by much) the
PSNR its VAE reaches on the clean image itself. This prints that ceiling, on RGB and on gray
(BT.601), for one or more VAE folders, on the centre crops the deblurring protocol uses.

    python benchmarks/vae_ceiling.py src/spikegen/weights/tiny/vae [OTHER_VAE ...]
    python benchmarks/vae_ceiling.py VAE --data DIR --size 256

Default data: ``images/mcmaster18`` of the shared data folder (``$SPIKEGEN_SHARED`` or
``../shared`` beside the repository).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from spikegen.degrade import rgb_to_gray
from spikegen.image import list_images, load_image
from spikegen.metrics import psnr
from spikegen.models.vae import decode_latents, encode_images, load_vae

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    shared = Path(os.environ.get("SPIKEGEN_SHARED", REPO.parent / "shared"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vaes", nargs="+", help="VAE folders (diffusers AutoencoderKL)")
    ap.add_argument("--data", default=str(shared / "data" / "images" / "mcmaster18"))
    ap.add_argument("--size", type=int, default=256, help="centre crop size")
    args = ap.parse_args()
    files = list_images(args.data)
    if not files:
        raise SystemExit(f"no images in {args.data}")
    crops = []
    for f in files:
        x = load_image(f)
        h, w = x.shape[-2:]
        s = min(args.size, h, w)
        t, l = (h - s) // 2, (w - s) // 2
        crops.append(x[:, t:t + s, l:l + s])
    print(f"{len(crops)} images of {args.data}, centre {args.size}x{args.size} crops; torch threads {torch.get_num_threads()}")
    print("| VAE | PSNR RGB (dB) | PSNR gray (dB) | seconds |")
    print("|---|---|---|---|")
    for v in args.vaes:
        vae = load_vae(v).eval()
        t0 = time.perf_counter()
        rgb, gray = [], []
        with torch.no_grad():
            for x in crops:
                y = decode_latents(vae, encode_images(vae, x[None]))
                rgb.append(float(psnr(y, x[None])))
                gray.append(float(psnr(rgb_to_gray(y), rgb_to_gray(x[None]))))
        print(f"| {v} | {sum(rgb) / len(rgb):.2f} | {sum(gray) / len(gray):.2f} | {time.perf_counter() - t0:.1f} |")


if __name__ == "__main__":
    main()
