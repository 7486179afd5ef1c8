"""Sampling settings of the task weights chosen on *training* data (never on the validation
split ``mcmaster18`` nor on the REDS streams): docs/model.md, "The change at g = 0" and "The
pseudo-frame of reconstruction".

``g0``: the ``sample_g0_residual`` of deblurring weights. For ``--count`` 256 px centre crops of
a training photo folder (V_th 1, gain 0.6, 8 spike frames, as ``spikegen eval deblur``), one
g = 0 sample each; prints the gray PSNR minus the blurry input's with the generated change
scaled by each factor (in image space: the PCA decoder is linear, so this equals scaling the
latent change up to clamping), and how many crops beat the blurry input.

``blend``: the ``pseudo_tfi`` of reconstruction weights. For about ``--count`` moving-scene pairs
of the reconstruction fine-tune's data (photos and videos, firing rates 0.05-0.9, a 61-frame
window) prints the PSNR of ``(1 - b) TFP + b TFI`` against the gray centre frame for each fixed
b and for the per-pixel inverse-variance weight ``ivw`` (the TFP over 21 frames widened to 2
spikes, the TFI searched over the whole window), overall and by firing rate.

    python scripts/sampling_rules.py g0 ../shared/data/images/sun_hays80 --count 20
    python scripts/sampling_rules.py g0 ../shared/data/images/cbsd68 --count 12
    python scripts/sampling_rules.py blend --count 40
    python scripts/sampling_rules.py clip configs/tiny_finetune_reconstruct_blend.yaml WEIGHTS --clips 1.5,2.5,4

``clip``: the ``sample_clip_x0`` of task weights by a sweep on ``--count`` pairs of the weights'
own training configuration (seed 999, a random subset): mean gray PSNR of the g = 0.5 samples
at temperature 0 for each clip, and of the input (the blurry image or the pseudo-frame).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def _report(rows: list[list[float]], labels: list[str], relative: bool) -> None:
    r = np.array(rows)
    print("columns:", ", ".join(labels))
    print("mean   ", " ".join(f"{v:7.3f}" for v in r.mean(0)))
    print("median ", " ".join(f"{v:7.3f}" for v in np.median(r, 0)))
    if relative:
        d = r - r[:, :1]
        print("- first", " ".join(f"{v:+7.3f}" for v in d.mean(0)))
        print("above first:", " ".join(str(int((d[:, j] > 0).sum())) for j in range(r.shape[1])), f"of {len(r)}")


def g0_rule(root: Path, count: int, weights: str | None, factors: list[float]) -> None:
    from spikegen.data import SyntheticPairs
    from spikegen.models import SpikeGen
    from spikegen.tasks.deblur import deblur_image
    from spikegen.tasks.evaluate.scoring import deblur_scores
    from spikegen.weights import load_default_model

    if "mcmaster18" in str(root):
        raise SystemExit("mcmaster18 is the validation split: choose the rule on training images")
    m = (SpikeGen.from_pretrained(weights) if weights else load_default_model(task="deblur")).eval()
    m.config.sample_g0_residual = 1.0  # the change as generated; scaled below
    ds = SyntheticPairs(root, 256, v_th=1.0, gain=0.6, frames=8, augment=False, seed=0)
    step = max(1, len(ds) // count)
    rows = []
    for i in range(0, min(len(ds), step * count), step):
        s = ds[i]
        x, b = s["clean"], s["blurry"]
        o = deblur_image(m, b, s["spikes"], gamma=0.0, generator=torch.Generator().manual_seed(i)).image
        rows.append([deblur_scores(b, x)["psnr_gray"]]
                    + [deblur_scores((b + f * (o - b)).clamp(0, 1), x)["psnr_gray"] for f in factors])
        print(i, " ".join(f"{v:.2f}" for v in rows[-1]), flush=True)
    _report(rows, ["blurry"] + [f"x{f:g}" for f in factors], relative=True)


def blend_rule(count: int, weights_b: list[float | str]) -> None:
    from spikegen.data import ReconstructionPairs
    from spikegen.data.motion import blended_pseudo_frame
    from spikegen.metrics import psnr
    from spikegen.spikes.reconstruct.playback import mean_rate, widened_window
    from spikegen.spikes.simulate import integrate_and_fire

    q = lambda x: (x.clamp(0, 1) * 255).round() / 255  # noqa: E731  (8-bit, as the evaluation)
    rows, bins = [], []
    for source, root in (("images", SHARED / "images"), ("video", SHARED / "video")):
        ds = ReconstructionPairs(root, 128, source=source, exclude=["mcmaster18"], window=61, seed=3)
        step = max(1, len(ds) // count)
        for i in range(0, len(ds), step):
            g = ds.generator(i)
            seq, _ = (ds._still_sequence if source == "images" else ds._video_sequence)(i, 61, g)
            rate = math.exp(math.log(0.05) + (math.log(0.9) - math.log(0.05)) * float(torch.rand(1, generator=g)))
            s = integrate_and_fire(seq[None], v_th=1.0, gain=rate, init="random", generator=g)[0]
            n = widened_window(21, 61, mean_rate(s), 2.0)
            gt = seq[30][None]
            rows.append([float(psnr(q(blended_pseudo_frame(s, n, 1.0 / rate, b)[None]), gt)) for b in weights_b])
            bins.append("rate < 0.15" if rate < 0.15 else ("rate < 0.45" if rate < 0.45 else "rate >= 0.45"))
    labels = [f"b={b}" for b in weights_b]
    _report(rows, labels, relative=False)
    for name in ("rate < 0.15", "rate < 0.45", "rate >= 0.45"):
        sel = [r for r, k in zip(rows, bins) if k == name]
        print(f"{name:12s} ({len(sel)})", " ".join(f"{v:7.3f}" for v in np.mean(sel, 0)))
    print(f"{len(rows)} pairs")


def clip_rule(config: Path, weights: str, count: int, clips: list[float]) -> None:
    from spikegen.degrade import rgb_to_gray
    from spikegen.metrics import psnr
    from spikegen.models import SpikeGen
    from spikegen.train import load_config
    from spikegen.train.stages import build_stage

    ds = build_stage(load_config(config, [f"model.init={weights}", "seed=999"])).build_dataset()
    m = SpikeGen.from_pretrained(weights).eval()
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(123))[:count].tolist()
    items = [ds[i] for i in idx]
    rgb = torch.stack([s["blurry"] for s in items]).float()
    spikes = torch.stack([s["spikes"] for s in items])
    x = rgb_to_gray(torch.stack([s["clean"] for s in items]).float())
    score = lambda y: float(np.mean([float(psnr(rgb_to_gray(y[i:i + 1]), x[i:i + 1])) for i in range(len(items))]))  # noqa: E731
    print(f"input: {score(rgb):.2f} dB ({len(items)} training pairs)")
    for c in clips:
        out = m.sample(rgb=rgb, spikes=spikes, gamma=0.5, temperature=0.0, clip_x0=c,
                       generator=torch.Generator().manual_seed(0))
        print(f"clip {c:g}: {score(out):.2f} dB", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="rule", required=True)
    a = sub.add_parser("g0", help="sample_g0_residual of deblurring weights")
    a.add_argument("root", type=Path, help="a training photo folder (not mcmaster18)")
    a.add_argument("--count", type=int, default=20)
    a.add_argument("--weights", default=None, help="deblurring weights (default: the shipped ones)")
    a.add_argument("--factors", default="0.125,0.25,0.375,0.5,0.75,1")
    b = sub.add_parser("blend", help="pseudo_tfi of reconstruction weights")
    b.add_argument("--count", type=int, default=40, help="about this many pairs per source")
    b.add_argument("--weights-b", default="0,0.5,0.6,0.7,0.8,0.9,1,ivw")
    c = sub.add_parser("clip", help="sample_clip_x0 of task weights, on their training pairs")
    c.add_argument("config", type=Path, help="the weights' training configuration")
    c.add_argument("weights", help="an exported SpikeGen folder")
    c.add_argument("--count", type=int, default=32)
    c.add_argument("--clips", default="1.5,2.5,4")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.rule == "g0":
        g0_rule(args.root, args.count, args.weights, [float(f) for f in args.factors.split(",")])
    elif args.rule == "blend":
        blend_rule(args.count, [f if f == "ivw" else float(f) for f in args.weights_b.split(",")])
    else:
        clip_rule(args.config, args.weights, args.count, [float(f) for f in args.clips.split(",")])


if __name__ == "__main__":
    main()
