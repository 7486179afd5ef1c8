"""Peak memory and time of `spikegen deblur` on large photos (tiled, one sample at a time).

Each size runs in its own child process (the real CLI entry point), whose peak resident set
size (``ru_maxrss`` of ``os.wait4``) is reported. The parent never imports torch (the inputs
are made by another child), so what a forked child starts with is a few MB, not torch.
The photo is a shared image resized to ``S x round(0.63 S)`` (the 1024x644 case of the issue);
spikes are integrate-and-fire of it at V_th = 1.

    python benchmarks/bench_large.py                 # 512, 1024, 2048 px, --samples 4
    python benchmarks/bench_large.py --sizes 1024 --samples 4 --tile 0   # untiled, for comparison
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_inputs(folder: Path, size: int) -> None:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from spikegen.degrade import motion_blur, rgb_to_gray
    from spikegen.image import list_images, load_image, save_image
    from spikegen.spikes.io import save_spikes
    from spikegen.spikes.simulate import integrate_and_fire

    shared = Path(os.environ.get("SPIKEGEN_SHARED", REPO.parent / "shared"))
    src = list_images(shared / "data" / "images" / "sun_hays80")[0]
    h, w = round(0.63 * size), size
    x = F.interpolate(load_image(src)[None], size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)
    g = torch.Generator().manual_seed(0)
    blurry = motion_blur(x, generator=g)[0].clamp(0, 1)
    spikes = integrate_and_fire(rgb_to_gray(x), v_th=1.0, gain=0.6, steps=8, generator=g)[0]
    save_image(folder / f"photo_{size}.png", blurry, overwrite=True)
    save_spikes(folder / f"spikes_{size}.npz", spikes.numpy().astype(np.uint8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="512,1024,2048", help="photo widths (comma-separated)")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--tile", type=int, default=512, help="--tile of spikegen deblur (0 = untiled)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--make", nargs=2, metavar=("SIZE", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make:
        return make_inputs(Path(args.make[1]), int(args.make[0]))
    exe = Path(sys.executable).with_name("spikegen")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    print(f"spikegen deblur --samples {args.samples} --tile {args.tile}, {args.threads} thread(s), shipped weights")
    print("| photo (W x H) | peak RSS (MB) | seconds |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for s in (int(v) for v in args.sizes.split(",")):
            subprocess.run([sys.executable, __file__, "--make", str(s), str(tmp)], check=True, env=env)
            rgb, spk = tmp / f"photo_{s}.png", tmp / f"spikes_{s}.npz"
            cmd = [str(exe), "deblur", "--rgb", str(rgb), "--spikes", str(spk), "-o", str(tmp / f"out_{s}.png"),
                   "--samples", str(args.samples), "--tile", str(args.tile), "--no-progress", "--overwrite"]
            t0 = time.perf_counter()
            p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, status, usage = os.wait4(p.pid, 0)
            dt = time.perf_counter() - t0
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"{' '.join(cmd)} failed: {p.stderr.read().decode()[-2000:]}")
            print(f"| {s} x {round(0.63 * s)} | {usage.ru_maxrss / 1024:.0f} | {dt:.1f} |", flush=True)


if __name__ == "__main__":
    main()
