"""``spikegen eval real``: no-reference NIQE and BRISQUE of reconstructions of real captures."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from spikegen.data.common import sample_seed
from spikegen.data.motion import tfp_tfi_blend
from spikegen.errors import SpikeFileError, SpikeGenError
from spikegen.image import stretch
from spikegen.metrics import brisque, niqe
from spikegen.spikes.io import open_spikes
from spikegen.spikes.reconstruct import tfi, tfp
from spikegen.tasks.deblur import pseudo_frame
from spikegen.tasks.evaluate.methods import load_model, parse_methods
from spikegen.tasks.evaluate.reconstruct import recon_label, tfp_and_spike_gray
from spikegen.tasks.evaluate.results import (check_out, command_string, progress_bar, report_base, report_figs,
                                             safe_name, save_png, stderr_warn, summarise, write_outputs)
from spikegen.tasks.evaluate.scoring import METRIC_DOC

__all__ = ["SPIKE_SUFFIXES", "evaluate_real"]

# ----------------------------------------------------------------------------- real
SPIKE_SUFFIXES = (".dat", ".npz", ".npy")


def evaluate_real(data: str | os.PathLike, out_dir: str | os.PathLike, *, methods: str | Sequence[str] | None = None,
                  window: int = 61, centers: int = 3, rate_scale: float | None = None, limit: int | None = None,
                  weights: str | os.PathLike | None = None, steps: int | None = None, seed: int = 0,
                  spikegen_frames: int | None = None, height: int | None = None, width: int | None = None,
                  report_images: int = 3, overwrite: bool = False,
                  progress: bool = True, warn: Callable[[str], None] = stderr_warn) -> dict[str, Any]:
    """No-reference scores (NIQE, BRISQUE) of reconstructions of real captures.

    Args:
        data: a folder (searched recursively) of ``.dat`` / ``.npz`` / ``.npy`` spike files, or one file.
        window: spike frames per reconstruction (clipped to the stream's length).
        centers: reconstructions per file, at frames ``round((k + 1) T / (centers + 1))``,
            ``k = 0 .. centers - 1`` (windows shifted to fit inside the stream).
        rate_scale: firing rate -> intensity factor for TFP and TFI; default ``None``: each
            image is divided by its 99.5th percentile (a real capture's gain is unknown).
            SpikeGen's output is used as it is.
        limit: the first ``limit`` files (sorted).
        spikegen_frames: as :func:`evaluate_reconstruct`; SpikeGen's pseudo-frame is the TFP of
            the model's ``tfp_window`` centred frames when its config names one, widened on sparse
            streams (:func:`~spikegen.tasks.deblur.pseudo_window`; else the window's).
        height, width: frame size of ``.dat`` files (default 250x400).

    Returns:
        The results dict (also written to ``results.json``).
    """
    t0 = time.perf_counter()
    data, out_dir = Path(data), Path(out_dir)
    if not data.exists():
        raise SpikeFileError(f"--data {data}: no such file or folder")
    ms = parse_methods(methods, "real")
    if int(window) < 1 or int(centers) < 1:
        raise SpikeGenError(f"--window and --centers must be >= 1, got {window} and {centers}")
    if rate_scale is not None and not (rate_scale > 0 and math.isfinite(rate_scale)):
        raise SpikeGenError(f"--rate-scale must be > 0, got {rate_scale}")
    if limit is not None and int(limit) < 1:
        raise SpikeGenError(f"--limit must be >= 1, got {limit}")
    check_out(out_dir, overwrite)
    if data.is_file():
        files = [data]
    else:
        files = sorted(p for p in data.rglob("*") if p.is_file() and p.suffix.lower() in SPIKE_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(data).parts))
    if not files:
        raise SpikeFileError(f"--data {data}: no spike files ({', '.join(SPIKE_SUFFIXES)}) found")
    files = files if limit is None else files[: int(limit)]
    model, ms, skipped = load_model(ms, weights, warn, task="reconstruct")
    img_dir = out_dir / "images"
    rows: list[dict[str, Any]] = []
    figs: list[tuple[str, list[list[tuple[str, str]]]]] = []
    shown = 0
    pws: list[int] = []
    bar = progress_bar(len(files) * int(centers), "eval real", progress)
    for fi, f in enumerate(files):
        src = open_spikes(f, height=height, width=width)
        T = src.num_frames
        w = min(int(window), T)
        for k in range(int(centers)):
            c = int(round((k + 1) * T / (int(centers) + 1)))
            lo = min(max(c - w // 2, 0), T - w)
            spikes = torch.from_numpy(src.read(lo, lo + w))
            cc = c - lo
            name = f"{f.name}@{c}"
            preds: dict[str, torch.Tensor] = {}

            def expose(x: torch.Tensor) -> torch.Tensor:
                return stretch(x) if rate_scale is None else (x * rate_scale).clamp(0, 1)

            if model is not None:  # SpikeGen's pseudo-frame, once per centre for every g
                raw, n_tfp = pseudo_frame(model, spikes, cc)  # firing rates, exposed like the rows
                pws.append(n_tfp)
                pseudo = expose(raw)
            for m in ms:
                if m.kind == "tfp":
                    preds[m.name] = expose(tfp(spikes, w, centers=[cc], scale=1.0)[0][None])
                elif m.kind == "tfi":
                    preds[m.name] = expose(tfi(spikes, v_th=1.0, centers=[cc], max_half_window=max(w // 2, 1))[0][None])
                elif m.kind == "blend":
                    preds[m.name] = expose(tfp_tfi_blend(spikes, cc)[None])
                else:
                    gen = torch.Generator().manual_seed(sample_seed(int(seed), 2, fi * int(centers) + k))
                    preds[m.name] = tfp_and_spike_gray(model, spikes, m.gamma, steps, gen, spikegen_frames, pseudo)
            for m in ms:
                p = preds[m.name]
                rows.append({"image": name, "method": m.name, "niqe": float(niqe(p)), "brisque": float(brisque(p))})
            if shown < report_images:
                stem = f"{fi:03d}_{safe_name(f.stem)}_{c:06d}"
                pics = [(save_png(img_dir / f"{stem}_spikes.png", spikes[cc][None].float(), out_dir), f"one spike frame ({c})")]
                pics += [(save_png(img_dir / f"{stem}_{safe_name(m.name)}.png", preds[m.name], out_dir), recon_label(m)) for m in ms]
                figs.append((name, [pics]))
                shown += 1
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    keys = ["niqe", "brisque"]
    summary = summarise(rows, keys, ("method",))
    result = {
        "task": "real", "data": str(data), "out_dir": str(out_dir),
        "command": command_string("real", data, out_dir, methods=[m.name for m in ms] + skipped, window=int(window),
                            centers=int(centers), rate_scale=rate_scale, limit=limit, weights=weights, steps=steps,
                            seed=int(seed), spikegen_frames=spikegen_frames, height=height, width=width),
        "protocol": {"files": [str(p) for p in files], "window": int(window), "centers": int(centers),
                     "centre_rule": "round((k + 1) T / (centers + 1)), windows shifted to fit",
                     "intensity": ("TFP/TFI divided by their 99.5th percentile" if rate_scale is None
                                   else f"TFP/TFI x {rate_scale:g}") + "; SpikeGen output as it is",
                     "tfi": f"V_th 1, +-{max(int(window) // 2, 1)} frames",
                     "blend": "the TFP/TFI inverse-variance blend (spikegen.data.motion.tfp_tfi_blend)",
                     "spikegen_frames": spikegen_frames or "the model's expected count, else the whole window",
                     "spikegen_tfp_window": pws or None,
                     "seed": int(seed), "steps": steps if steps is not None else (model.config.sample_steps if model else None)},
        "methods": [m.name for m in ms], "skipped": skipped,
        "weights": str(weights) if weights is not None else ("shipped" if model is not None else None),
        "metrics": {k: METRIC_DOC[k] for k in keys}, "summary": summary, "per_image": rows,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    rep = report_base(result, len(rows) // max(len(ms), 1), "real captures (no reference)")
    report_figs(rep, figs)
    write_outputs(out_dir, result, rep)
    return result
