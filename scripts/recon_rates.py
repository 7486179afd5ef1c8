"""Reconstruction on moving scenes nobody trained on, at several firing rates.

Pans and zooms of the validation photos (``images/mcmaster18``, never trained on; 128 px crops,
``spikegen.data.ReconstructionPairs`` with seed 11), 61-frame integrate-and-fire windows with a
random initial charge at white-pixel firing rates from sparse to dense. For each rate prints the
mean PSNR (8-bit gray) and the min-max over the scenes of TFP (21 and 61 frames), TFI (+-30
frames), the classic TFP/TFI blend (``--methods blend`` of ``eval reconstruct``) and SpikeGen
"TFP & Spike" (g = 0.5, the weights' own pseudo-frame), and on how many scenes SpikeGen beats
the better of TFP-21 and TFI and the blend.

    python scripts/recon_rates.py [--weights DIR] [--scenes 8] [--rates 0.05,0.2,0.5,0.9]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "images" / "mcmaster18"


def main() -> None:
    from spikegen.data import ReconstructionPairs
    from spikegen.data.motion import tfp_tfi_blend
    from spikegen.models import SpikeGen
    from spikegen.spikes.reconstruct import tfi, tfp
    from spikegen.spikes.simulate import integrate_and_fire
    from spikegen.tasks.deblur import pseudo_frame
    from spikegen.tasks.evaluate.reconstruct import tfp_and_spike_gray
    from spikegen.tasks.evaluate.scoring import reconstruct_scores
    from spikegen.weights import load_default_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=None, help="reconstruction weights (default: the shipped ones)")
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--rates", default="0.05,0.2,0.5,0.9")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = (SpikeGen.from_pretrained(args.weights) if args.weights else load_default_model(task="reconstruct")).eval()
    ds = ReconstructionPairs(DATA, 128, window=61, seed=11)
    names = ["TFP-21", "TFP-61", "TFI", "blend", "SpikeGen"]
    print(f"{'rate':>5} " + " ".join(f"{n:>20}" for n in names) + "   SpikeGen beats max(TFP-21, TFI) / blend")
    for rate in [float(r) for r in args.rates.split(",")]:
        rows = []
        for i in range(args.scenes):
            g = ds.generator(i)
            seq, _ = ds._still_sequence(i, 61, g)
            s = integrate_and_fire(seq[None], v_th=1.0, gain=rate, init="random", generator=g)[0]
            gt, sc = seq[30][None], 1.0 / rate
            preds = [tfp(s, 21, centers=[30], scale=sc)[0][None], tfp(s, 61, centers=[30], scale=sc)[0][None],
                     (tfi(s, v_th=1.0, centers=[30], max_half_window=30)[0][None] * sc).clamp(0, 1),
                     tfp_tfi_blend(s, 30, sc)[None]]
            pseudo, _ = pseudo_frame(model, s, 30, scale=sc)
            preds.append(tfp_and_spike_gray(model, s, 0.5, None, torch.Generator().manual_seed(i), None, pseudo))
            rows.append([reconstruct_scores(p, gt)["psnr"] for p in preds])
        r = np.array(rows)
        cells = " ".join(f"{m:6.2f} ({lo:5.2f}-{hi:5.2f})" for m, lo, hi in zip(r.mean(0), r.min(0), r.max(0)))
        wins = int((r[:, 4] > np.maximum(r[:, 0], r[:, 2])).sum()), int((r[:, 4] > r[:, 3]).sum())
        print(f"{rate:5.2f} {cells}   {wins[0]} / {wins[1]} of {len(r)}", flush=True)


if __name__ == "__main__":
    main()
