"""``spikegen demo``: the whole job on embedded defaults, ending in an HTML report.

1. A photo bundled with scikit-image (NASA's "astronaut", public domain) is cropped to
   256x256, motion-blurred with the pretraining kernel bank and turned into 8 spike frames by
   integrate-and-fire (V_th = 1), exactly the deblurring protocol's inputs.
2. Every method runs on those inputs: the blurry image, TFP, TFI and -- when weights are
   available (shipped by default) -- SpikeGen at g = 0, 0.5 and 1, with an uncertainty map
   from several samples at g = 0.5.
3. A real spike-camera clip shipped with the package (64 frames of the U-CALTECH/UHSR
   helicopter) is reconstructed by TFP, TFI and SpikeGen ("TFP & Spike") and scored with the
   no-reference metrics NIQE and BRISQUE.
4. ``report.html`` (also saved as ``index.html``) shows everything side by side with a table of
   PSNR / SSIM / LPIPS, plus ``results.json`` and ``results.csv``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from spikegen.defaults import DEFAULT_GAIN
from spikegen.degrade import motion_blur, rgb_to_gray
from spikegen.errors import OutputExistsError
from spikegen.image import save_image, stretch
from spikegen.metrics import brisque, niqe
from spikegen.report import Report, markdown_table
from spikegen.spikes.io import load_spikes
from spikegen.spikes.reconstruct import tfi, tfp
from spikegen.spikes.simulate import integrate_and_fire
from spikegen.tasks.deblur import deblur_image, pseudo_frame
from spikegen.tasks.evaluate import image_scores, tfp_and_spike_gray
from spikegen.weights import has_default_weights, load_default_model

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "demo"
DEMO_CLIP = ASSETS / "uhsr_helicopter_64.npz"


def demo_image(size: int = 256) -> torch.Tensor:
    """scikit-image's astronaut photo (public domain), resized to ``[3, size, size]`` in [0, 1]."""
    from skimage import data

    img = torch.from_numpy(data.astronaut().astype(np.float32) / 255.0).permute(2, 0, 1)
    return F.interpolate(img[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)


def score(pred: torch.Tensor, sharp: torch.Tensor) -> dict[str, float]:
    """PSNR / SSIM / LPIPS of a ``[C,H,W]`` prediction against the sharp image, on gray
    (:func:`~spikegen.tasks.evaluate.image_scores`, not clamped).

    Gray (the BT.601 luma of both) puts the gray spike reconstructions and the colour methods
    on one footing; ``psnr_rgb`` is added for colour predictions.

    Example:
        >>> x = torch.rand(3, 32, 32)
        >>> list(score(x, x))
        ['psnr', 'ssim', 'lpips', 'psnr_rgb']
    """
    out = image_scores(pred, sharp, space="gray")
    if pred.shape[0] == 3:
        out.update(image_scores(pred, sharp, metrics=("psnr",), suffix="_rgb"))
    return out


def run_demo(out_dir: str | os.PathLike = "outputs/demo", *, seed: int = 0, weights: str | os.PathLike | None = None,
             steps: int = 25, samples: int = 4, overwrite: bool = False) -> Path:
    """Run the demo and write ``report.html`` into ``out_dir``; returns its path.

    ``out_dir`` must be absent or empty, unless ``overwrite``: then the demo's own files in it
    are replaced and nothing else there is touched.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"-o {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"-o {out}: the folder is not empty; pass --overwrite to replace the demo's files in it "
                                "(other files are left alone), or choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    v_th, gain, frames = 1.0, DEFAULT_GAIN, 8

    sharp = demo_image()
    blurry = motion_blur(sharp[None], kernels=8, size=40, generator=g)[0].clamp(0, 1)
    spikes = integrate_and_fire(rgb_to_gray(sharp)[None], v_th=v_th, gain=gain, steps=frames, generator=g)  # [1,8,H,W]
    rec_tfp = tfp(spikes, frames, centers=[frames // 2], scale=v_th / gain)[0, 0]
    rec_tfi = (tfi(spikes, v_th=v_th, centers=[frames // 2])[0, 0] / gain).clamp(0, 1)

    images: dict[str, torch.Tensor] = {"sharp (ground truth)": sharp, "blurry input": blurry,
                                       f"TFP ({frames} frames)": rec_tfp[None], f"TFI ({frames} frames)": rec_tfi[None]}
    rows = [{"method": "blurry input", **score(blurry, sharp)},
            {"method": "TFP", **score(rec_tfp[None], sharp)},
            {"method": "TFI", **score(rec_tfi[None], sharp)}]

    model = None
    use_weights = weights is not None or all(has_default_weights(t) for t in ("deblur", "reconstruct"))
    if use_weights:
        model = load_default_model(weights, task="deblur")
        rec_model = load_default_model(weights, task="reconstruct")
        for gamma in (0.0, 0.5, 1.0):
            # full colour (SpikeGen's luminance, the blurry input's chroma), as `spikegen deblur`
            gen = torch.Generator().manual_seed(seed)
            pred = deblur_image(model, blurry, spikes[0], gamma=gamma, steps=steps, generator=gen).image
            images[f"SpikeGen g={gamma:g}"] = pred
            rows.append({"method": f"SpikeGen g={gamma:g}", **score(pred, sharp)})
        gen = torch.Generator().manual_seed(seed)
        pred = deblur_image(model, blurry, spikes[0], gamma=0.5, steps=steps, generator=gen, colour="model").image
        images["SpikeGen g=0.5, model colours"] = pred
        rows.append({"method": "SpikeGen g=0.5, model colours", **score(pred, sharp)})
        gen = torch.Generator().manual_seed(seed + 1)
        res = model.sample(rgb=blurry[None], spikes=spikes, gamma=0.5, steps=steps, generator=gen, num_samples=samples)
        std = res.std[0].float().mean(0, keepdim=True).cpu()
        images[f"uncertainty (std of {samples} samples, x5)"] = (std * 5).clamp(0, 1)

    names = {}
    for i, (name, img) in enumerate(images.items()):
        fn = f"{i:02d}_" + "".join(c if c.isalnum() else "_" for c in name.split(" (")[0]).strip("_").lower() + ".png"
        save_image(out / fn, img)
        names[name] = fn
    save_image(out / "spikes_frame0.png", spikes[0, :1].float())

    # --- the real capture
    real_rows, real_imgs = [], {}
    clip = torch.from_numpy(load_spikes(DEMO_CLIP))
    c = clip.shape[0] // 2
    real_imgs["real: one spike frame"] = clip[c:c + 1].float()
    # A real capture has no known gain: show rates stretched so the 99.5th percentile is white.
    real_imgs["real: TFP (41 frames)"] = stretch(tfp(clip, 41, centers=[c]))
    real_imgs["real: TFI"] = stretch(tfi(clip, v_th=1.0, centers=[c], max_half_window=20))
    if model is not None:
        # "TFP & Spike" on the 8 centre frames, with the pseudo-frame exposed like the TFP above:
        # the capture's gain is unknown (rate ~0.03), so the model's fixed tfp_scale would hand
        # it a near-black frame.
        # Its pseudo-frame is the weights' own (the TFP widened on this sparse clip, blended with
        # the TFI: pseudo_frame), as in eval real.
        pseudo = stretch(pseudo_frame(rec_model, clip, c)[0])
        real_imgs["real: SpikeGen (TFP & Spike)"] = tfp_and_spike_gray(
            rec_model, clip, 0.5, steps, torch.Generator().manual_seed(seed), 8, pseudo=pseudo)
    for name, img in real_imgs.items():
        fn = "real_" + "".join(ch if ch.isalnum() else "_" for ch in name.split(": ")[1].split(" (")[0]).strip("_").lower() + ".png"
        save_image(out / fn, img.clamp(0, 1))
        names[name] = fn
        if "spike frame" not in name:
            real_rows.append({"method": name.split(": ")[1], "niqe (lower is better)": float(niqe(img.clamp(0, 1))),
                              "brisque (lower is better)": float(brisque(img.clamp(0, 1)))})

    # --- report
    elapsed = time.perf_counter() - t0
    rep = Report("spikegen demo", f"Spike-guided deblurring and reconstruction on embedded defaults; {elapsed:.1f} s on "
                 f"{'CUDA' if torch.cuda.is_available() else 'CPU'}.")
    rep.text(f"Inputs: a 256x256 photo, blurred with the average of 8 random 40x40 motion kernels, and {frames} "
             f"integrate-and-fire spike frames of the sharp scene (V_th={v_th:g}, gain={gain:g}: a white pixel fires "
             f"{gain / v_th:.2f} times per frame).")
    rep.figures("Deblurring: inputs and outputs", [(names[k], k) for k in images])
    rep.table("Scores against the sharp image (gray; PSNR/SSIM higher is better, LPIPS lower)", rows)
    if model is None:
        rep.text("SpikeGen rows are missing: no weights were found (pass --weights DIR).")
    rep.figures("A real spike-camera capture (U-CALTECH/UHSR helicopter, 250x250)", [(names[k], k) for k in real_imgs])
    rep.text("The capture's gain is unknown, so TFP and TFI are shown stretched to their 99.5th percentile, and "
             "SpikeGen gets that stretched TFP as its pseudo-frame (with the 8 centre spike frames, g = 0.5). "
             "The shipped tiny weights were trained on synthetic spikes only; see their model card.")
    rep.table("No-reference scores of the real capture", real_rows)
    rep.text("Reproduce: spikegen demo -o " + str(out))
    rep.write(out / "report.html")
    shutil.copyfile(out / "report.html", out / "index.html")
    (out / "results.json").write_text(json.dumps({"deblur": rows, "real": real_rows, "seconds": elapsed}, indent=1))
    with open(out / "results.csv", "w", newline="") as f:
        cols = sorted({k for r in rows for k in r}, key=lambda k: (k != "method", k))
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    (out / "results.md").write_text(markdown_table(rows) + "\n" + markdown_table(real_rows))
    return out / "report.html"
