"""Validation PSNR of a SpikeGen training run against its steps, as a CSV and a plot.

For each checkpoint of RUN (or the ``--steps`` given), export its EMA weights (``spikegen train
STAGE --resume-from CKPT --export``, the run's own config), optionally swap in another VAE with
the same encoder (``--vae``: e.g. a decoder-only continuation), and score deblurring on the
first ``--limit`` images of the validation split at V_th 1 (gray and RGB PSNR of SpikeGen at
g = 0.5, colour from the input; temperature 0 as the shipped weights, and clip_x0 from the
decoding VAE's training-crop latents as ``scripts/latent_clip.py`` picks it, unless given) with
``spikegen.tasks.evaluate.evaluate_deblur``. Rows are
appended to ``OUT/val_curve.csv`` (steps already there are skipped) and ``OUT/val_curve.png``
is redrawn.

    python scripts/val_curve.py /work/runs/pretrain_f4 -o /work/runs/pretrain_f4/val --every 500
    python scripts/val_curve.py RUN -o OUT --steps 1000,2000 --vae src/spikegen/weights/tiny-f4/vae
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def latent_clip_of(vae, shared: Path, per_channel: bool = False) -> float | list[float]:
    """The clip scripts/latent_clip.py picks for ``vae`` (training crops of the shared images;
    ``per_channel``: one bound per latent channel)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from latent_clip import training_crops

    from spikegen.models.vae import estimate_latent_clip

    return estimate_latent_clip(vae, training_crops(shared / "data" / "images"), per_channel=per_channel)


def main() -> None:
    shared = Path(os.environ.get("SPIKEGEN_SHARED", REPO.parent / "shared"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--steps", default=None, help="comma-separated steps (default: every checkpoint)")
    ap.add_argument("--every", type=int, default=1, help="keep checkpoints whose step is a multiple of this")
    ap.add_argument("--vae", type=Path, default=None, help="decode with this VAE (same encoder)")
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--temperature", type=float, default=0.0,
                    help="sampling temperature written into the exported config (the shipped weights' 0)")
    ap.add_argument("--per-channel-clip", action="store_true",
                    help="the rule per latent channel (sample_clip_x0 as a list; e.g. for the PCA patch autoencoder)")
    ap.add_argument("--clip-x0", type=float, default=None,
                    help="sample_clip_x0 written into the exported config (default: the rule of scripts/latent_clip.py "
                         "on the decoding VAE)")
    ap.add_argument("--data", type=Path, default=shared / "data" / "images" / "mcmaster18")
    args = ap.parse_args()

    from spikegen.models import SpikeGen
    from spikegen.models.vae import load_vae
    from spikegen.tasks.evaluate import evaluate_deblur
    from spikegen.tasks.plots import save_line_plot

    cfg = json.loads((args.run / "config.json").read_text())
    stage = cfg["stage"]
    ckpts = sorted((args.run / "checkpoints").glob("step-*"))
    steps = [int(p.name.split("-")[1]) for p in ckpts]
    if args.steps:
        want = {int(s) for s in args.steps.split(",")}
        steps = [s for s in steps if s in want]
    steps = [s for s in steps if s % args.every == 0]
    args.output.mkdir(parents=True, exist_ok=True)
    table = args.output / "val_curve.csv"
    done = set()
    if table.exists():
        with open(table, newline="") as f:
            done = {int(r["step"]) for r in csv.DictReader(f)}
    vae = load_vae(args.vae) if args.vae else None
    clip = args.clip_x0
    exe = Path(sys.executable).with_name("spikegen")
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    for step in steps:
        if step in done:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            exp = Path(tmp) / "w"
            subprocess.run([str(exe), "train", stage, "--resume-from", str(args.run / "checkpoints" / f"step-{step:08d}"),
                            "--export", str(exp)], check=True, env=env, stdout=subprocess.DEVNULL)
            # sampling settings of the shipped weights (deterministic, clamped clean-latent estimates)
            c = json.loads((exp / "config.json").read_text())
            if clip is None:
                clip = latent_clip_of(vae if vae is not None else load_vae(exp / "vae"), shared, args.per_channel_clip)
                print(f"clip_x0 {clip} (scripts/latent_clip.py rule)", flush=True)
            c.update(sample_temperature=args.temperature, sample_clip_x0=clip)
            (exp / "config.json").write_text(json.dumps(c, indent=2, sort_keys=True))
            if vae is not None:  # decode with the given VAE (same encoder): save the swapped model
                SpikeGen.from_pretrained(exp, vae=vae).save_pretrained(exp, overwrite=True)
            res = evaluate_deblur(args.data, Path(tmp) / "eval", methods="spikegen-0.5", v_ths=(1.0,),
                                  limit=args.limit, weights=exp, report_images=0, progress=False, warn=lambda m: None)
        row = next(r for r in res["summary"] if r["method"] == "spikegen-0.5")
        new = not table.exists()
        with open(table, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["step", "psnr_gray", "psnr_rgb"])
            if new:
                w.writeheader()
            w.writerow({"step": step, "psnr_gray": round(row["psnr_gray"], 3), "psnr_rgb": round(row["psnr_rgb"], 3)})
        print(f"step {step}: gray {row['psnr_gray']:.2f} dB, RGB {row['psnr_rgb']:.2f} dB", flush=True)
    with open(table, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["step"]))
    if rows:
        xs = [int(r["step"]) for r in rows]
        save_line_plot(args.output / "val_curve.png",
                       {"gray": (xs, [float(r["psnr_gray"]) for r in rows]), "RGB": (xs, [float(r["psnr_rgb"]) for r in rows])},
                       title=f"{args.run.name}: SpikeGen g=0.5, V_th=1, first {args.limit} of {args.data.name}",
                       xlabel="training step", ylabel="PSNR (dB)")
        print(f"wrote {table} and {args.output / 'val_curve.png'}")


if __name__ == "__main__":
    main()
