"""``spikegen eval reconstruct``: the STIR-style reconstruction protocol (Spk2ImgNet layout), and SpikeGen "TFP & Spike"."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from spikegen.data import SpikeFolderPairs
from spikegen.data.common import sample_seed
from spikegen.defaults import DEFAULT_GAIN
from spikegen.errors import SpikeFileError, SpikeGenError
from spikegen.spikes.reconstruct import tfi, tfp
from spikegen.data.motion import BLEND_MIN_SPIKES, BLEND_TFP_WINDOW, tfp_tfi_blend
from spikegen.tasks.deblur import expected_spike_frames, pseudo_frame, select_frames
from spikegen.tasks.evaluate.methods import Method, load_model, parse_methods
from spikegen.tasks.evaluate.results import (check_out, command_string, progress_bar, report_base, report_figs,
                                             safe_name, save_png, stderr_warn, summarise, write_outputs)
from spikegen.tasks.evaluate.scoring import METRIC_DOC, gray, reconstruct_scores

__all__ = ["SPK2IMGNET_RATE_SCALE", "tfp_and_spike_gray", "evaluate_reconstruct", "recon_label"]

#: The Spk2ImgNet / REDS streams fire at about 0.6 x the intensity (shared/data/SOURCES.md).
SPK2IMGNET_RATE_SCALE = 1 / DEFAULT_GAIN


# ----------------------------------------------------------------------------- reconstruct
def _model_frames(model, spikes: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """The centred ``n`` frames (default: the model's expected count, else all) of ``[T,H,W]``."""
    lo, hi = select_frames(spikes.shape[0], n if n is not None else expected_spike_frames(model))
    return spikes[lo:hi]


def tfp_and_spike_gray(model, spikes: torch.Tensor, gamma: float, steps: int | None, gen: torch.Generator,
                   frames: int | None = None, pseudo: torch.Tensor | None = None) -> torch.Tensor:
    """SpikeGen "TFP & Spike" on ``[T,H,W]`` spikes -> gray ``[1,H,W]`` on the CPU.

    ``pseudo`` (``[1,H,W]`` in [0, 1]): the pseudo-frame for the RGB branch — the evaluations
    pass the TFP at the row's intensity scale, over the model's ``tfp_window`` when its config
    names one (the reconstruction weights: 21, widened on sparse streams; :func:`pseudo_window`),
    else over the row's window; ``None``: the model's ``tfp_rgb`` over its own frames."""
    s = _model_frames(model, spikes, frames)
    if pseudo is None:
        out = model.sample(rgb=None, spikes=s[None].to(model.device), gamma=gamma, steps=steps, generator=gen, tfp_rgb=True)
    else:
        rgb = pseudo.float().clamp(0, 1).reshape(1, 1, *pseudo.shape[-2:]).expand(1, 3, -1, -1).to(model.device)
        out = model.sample(rgb=rgb, spikes=s[None].to(model.device), gamma=gamma, steps=steps, generator=gen)
    return gray(out[0].float().cpu()).clamp(0, 1)


def evaluate_reconstruct(data: str | os.PathLike, out_dir: str | os.PathLike, *, methods: str | Sequence[str] | None = None,
                         window: int = 61, rate_scale: float = SPK2IMGNET_RATE_SCALE, size: int | None = None,
                         limit: int | None = None, weights: str | os.PathLike | None = None, steps: int | None = None,
                         seed: int = 0, spikegen_frames: int | None = None, report_images: int = 3,
                         overwrite: bool = False, progress: bool = True,
                         warn: Callable[[str], None] = stderr_warn) -> dict[str, Any]:
    """STIR-style reconstruction on the Spk2ImgNet layout (``spike/*.dat`` + ``gt/*.png``).

    Args:
        data: the dataset folder (``spike/`` and ``gt/`` inside; ``*_key_idN`` names the GT frame,
            counted from 1; without it the middle frame).
        window: spike frames centred on the GT frame (61); TFP averages all of them, TFI searches
            ``window // 2`` frames on each side, SpikeGen takes them (or the model's expected count)
            and the TFP of its ``tfp_window`` centred ones (if its config names one; widened on
            sparse streams, :func:`~spikegen.tasks.deblur.pseudo_window`) as pseudo-frame.
        rate_scale: firing rate -> intensity factor for TFP and TFI (1/0.6 for these files).
        size: optional centre crop (default: the full frame).
        methods: default ``tfp,tfi,spikegen`` ("TFP & Spike", g = 0.5).
        spikegen_frames: SpikeGen gets the centred ``spikegen_frames`` of the window (the paper
            uses 16 on SREDS); default: the model's expected count if its config names one, else
            the whole window.

    Returns:
        The results dict (also written to ``results.json``).
    """
    t0 = time.perf_counter()
    data, out_dir = Path(data), Path(out_dir)
    if not data.is_dir():
        raise SpikeFileError(f"--data {data}: not a folder (expected spike/*.dat and gt/*.png inside)")
    ms = parse_methods(methods, "reconstruct")
    if int(window) < 1:
        raise SpikeGenError(f"--window must be >= 1, got {window}")
    if not (rate_scale > 0 and math.isfinite(rate_scale)):
        raise SpikeGenError(f"--rate-scale must be > 0, got {rate_scale}")
    if limit is not None and int(limit) < 1:
        raise SpikeGenError(f"--limit must be >= 1, got {limit}")
    check_out(out_dir, overwrite)
    try:
        ds = SpikeFolderPairs(data, window=int(window), color=False, size=size, augment=False)
    except SpikeGenError:
        raise
    except ValueError as exc:
        raise SpikeGenError(f"--data {data}: {exc}") from None
    if any(it["gt"] is None for it in ds.items):
        raise SpikeFileError(f"{data / 'gt'}: missing; eval reconstruct needs a ground-truth image per .dat "
                             "(use eval real for captures without ground truth)")
    n = len(ds) if limit is None else min(len(ds), int(limit))
    model, ms, skipped = load_model(ms, weights, warn, task="reconstruct")
    img_dir = out_dir / "images"
    rows: list[dict[str, Any]] = []
    figs: list[tuple[str, list[list[tuple[str, str]]]]] = []
    w = int(window)
    pws: list[int] = []
    bar = progress_bar(n, "eval reconstruct", progress)
    for i in range(n):
        s = ds[i]
        gt, spikes = s["clean"][:1], s["spikes"]
        name = Path(s["meta"]["source"]).stem
        c = w // 2
        preds: dict[str, torch.Tensor] = {}
        if model is not None:  # SpikeGen's pseudo-frame, once per image for every g
            pseudo, n_tfp = pseudo_frame(model, spikes, c, scale=rate_scale)
            pws.append(n_tfp)
        for m in ms:
            if m.kind == "tfp":
                preds[m.name] = tfp(spikes, w, centers=[c], scale=rate_scale)[0][None]
            elif m.kind == "tfi":
                preds[m.name] = (tfi(spikes, v_th=1.0, centers=[c], max_half_window=max(w // 2, 1))[0][None]
                                 * rate_scale).clamp(0, 1)
            elif m.kind == "blend":
                preds[m.name] = tfp_tfi_blend(spikes, c, rate_scale)[None]
            else:
                gen = torch.Generator().manual_seed(sample_seed(int(seed), 2, i))
                preds[m.name] = tfp_and_spike_gray(model, spikes, m.gamma, steps, gen, spikegen_frames, pseudo)
            rows.append({"image": name, "method": m.name, **reconstruct_scores(preds[m.name], gt)})
        if i < report_images:
            stem = f"{i:03d}_{safe_name(name)}"
            pics = [(save_png(img_dir / f"{stem}_gt.png", gt, out_dir), "ground truth")]
            pics += [(save_png(img_dir / f"{stem}_{safe_name(m.name)}.png", preds[m.name], out_dir), recon_label(m)) for m in ms]
            figs.append((name, [pics]))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    keys = ["psnr", "ssim", "lpips"]
    summary = summarise(rows, keys, ("method",))
    result = {
        "task": "reconstruct", "data": str(data), "out_dir": str(out_dir),
        "command": command_string("reconstruct", data, out_dir, methods=[m.name for m in ms] + skipped, window=w,
                            rate_scale=float(rate_scale), size=size, limit=limit, weights=weights, steps=steps, seed=int(seed),
                            spikegen_frames=spikegen_frames),
        "protocol": {"layout": "spike/*.dat + gt/*.png (Spk2ImgNet); GT frame from *_key_idN (1-based), else the middle",
                     "window": w, "rate_scale": float(rate_scale), "crop": size or "none (full frame)",
                     "tfp": f"mean of the {w} frames x rate_scale", "tfi": f"TFI (V_th 1, +-{max(w // 2, 1)} frames) x rate_scale",
                     "blend": f"(1 - b) TFP + b TFI, b = 1 / (1 + (n r^2)^2) per pixel (r the TFP rate), the TFP over {BLEND_TFP_WINDOW} frames widened until the mean pixel fired {BLEND_MIN_SPIKES:g} times, x rate_scale",
                     "spikegen": "TFP & Spike: model.sample(rgb=the weights' pseudo-frame (the TFP of the centre spikegen_tfp_window frames, blended with the TFI when the config names pseudo_tfi) x rate_scale, spikes=centre frames of the window, gamma=G), gray",
                     "spikegen_tfp_window": pws or None,
                     "spikegen_frames": spikegen_frames or "the model's expected count, else the whole window",
                     "seed": int(seed), "steps": steps if steps is not None else (model.config.sample_steps if model else None)},
        "methods": [m.name for m in ms], "skipped": skipped,
        "weights": str(weights) if weights is not None else ("shipped" if model is not None else None),
        "metrics": {k: METRIC_DOC[k] for k in keys}, "summary": summary, "per_image": rows,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    rep = report_base(result, n, "dense frame reconstruction (STIR-style)")
    report_figs(rep, figs)
    write_outputs(out_dir, result, rep)
    return result


def recon_label(m: Method) -> str:
    if m.kind == "spikegen":
        return f"SpikeGen TFP & Spike g={m.gamma:g}"
    return m.label
