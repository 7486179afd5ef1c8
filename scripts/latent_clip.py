"""The ``sample_clip_x0`` of SpikeGen models on a VAE's latent, from training crops.

Encodes ``--count`` random ``--size`` crops of the training photo folders (``images/`` of the
shared data without the validation split ``mcmaster18``), each in colour and in gray (BT.601 on
three channels, as the reconstruction task feeds the VAE), prints quantiles of the absolute
scaled latent values and the clip the rule picks: the 99.9 % quantile rounded up to a multiple
of 0.5 (docs/model.md, "Choosing clip_x0").

    python scripts/latent_clip.py src/spikegen/weights/tiny-f4/vae [src/spikegen/weights/tiny/vae]
    python scripts/latent_clip.py src/spikegen/weights/tiny-pca/vae --per-channel
"""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
VALIDATION = "mcmaster18"


def training_crops(root: Path, count: int = 80, size: int = 128, seed: int = 0) -> torch.Tensor:
    """``[2 * count, 3, size, size]``: random crops of the images under ``root`` (validation
    split excluded), each in colour and in gray."""
    from spikegen.degrade import rgb_to_gray
    from spikegen.image import list_images, load_image

    files = [p for p in list_images(root, recursive=True) if VALIDATION not in p.parts]
    if not files:
        raise SystemExit(f"no training images under {root}")
    rng = random.Random(seed)
    crops = []
    for _ in range(count):
        img = load_image(rng.choice(files))
        h, w = img.shape[-2:]
        if h < size or w < size:
            continue
        y, x = rng.randrange(h - size + 1), rng.randrange(w - size + 1)
        c = img[:, y : y + size, x : x + size]
        crops += [c, rgb_to_gray(c).expand(3, -1, -1)]
    return torch.stack(crops)


def main() -> None:
    shared = Path(os.environ.get("SPIKEGEN_SHARED", REPO.parent / "shared"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vae", type=Path, nargs="+")
    ap.add_argument("--data", type=Path, default=shared / "data" / "images")
    ap.add_argument("--count", type=int, default=80)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-channel", action="store_true",
                    help="also print the rule per latent channel (a list for sample_clip_x0)")
    args = ap.parse_args()

    from spikegen.models.vae import abs_quantile, clip_from_latents, encode_images, load_vae

    crops = training_crops(args.data, args.count, args.size, args.seed)
    print(f"{crops.shape[0]} crops of {args.size} px (colour + gray) from {args.data}, {VALIDATION} excluded")
    print("| VAE | std | 99 % | 99.9 % | 99.99 % | max | clip (99.9 % rounded up to 0.5) |")
    print("|---|---|---|---|---|---|---|")
    for path in args.vae:
        vae = load_vae(path)
        with torch.no_grad():
            zc = torch.cat([encode_images(vae, crops[i : i + 8]).float() for i in range(0, len(crops), 8)])
        z = zc.flatten()
        qs = [abs_quantile(z, q) for q in (0.99, 0.999, 0.9999)]
        clip = clip_from_latents(z)  # estimate_latent_clip's rule, on the latents encoded once
        print(f"| {path} | {float(z.std()):.3f} | {qs[0]:.2f} | {qs[1]:.2f} | {qs[2]:.2f} | {float(z.abs().max()):.2f} | {clip:g} |")
        if args.per_channel:
            print(f"  per channel (sample_clip_x0 as a list): {clip_from_latents(zc, per_channel=True)}")


if __name__ == "__main__":
    main()
