"""``spikegen eval deblur``: the GOPRO-style conditional deblurring protocol."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from spikegen.data import SyntheticPairs, VideoPairs
from spikegen.data.common import DEFAULT_GAIN, sample_seed
from spikegen.errors import SpikeFileError, SpikeGenError
from spikegen.image import is_video_file
from spikegen.spikes.reconstruct import tfi, tfp
from spikegen.tasks.deblur import check_colour, deblur_image
from spikegen.tasks.evaluate.methods import load_model, parse_floats, parse_methods
from spikegen.tasks.evaluate.results import (check_out, command_string, progress_bar, report_base, report_figs,
                                             safe_name, save_png, stderr_warn, summarise, write_outputs)
from spikegen.tasks.evaluate.scoring import METRIC_DOC, deblur_scores
from spikegen.tasks.plots import save_line_plot

__all__ = ["evaluate_deblur"]


# ----------------------------------------------------------------------------- deblur
def _deblur_items(data: Path, source: str, size: int, v_ths: list[float], *, gain: float, frames: int, seed: int,
                  n_blur: int, interp: int):
    """(dataset per V_th, item names) for the image or video protocol."""
    if source == "images":
        ds = {v: SyntheticPairs(data, size, v_th=v, gain=gain, frames=frames, augment=False, seed=seed) for v in v_ths}
        first = ds[v_ths[0]]
        names = [str(p.relative_to(data)) if data.is_dir() else p.name for p in first.files]
        return ds, names
    stride = max(1, math.ceil(n_blur / interp))
    ds = {v: VideoPairs(data, size, n_blur=n_blur, interp=interp, stride=stride, v_th=v, gain=gain, spike_frames=frames,
                        augment=False, seed=seed) for v in v_ths}
    first = ds[v_ths[0]]
    names = []
    for ci, k in first.samples:
        clip = first.clips[ci]
        fr = clip.frames[k].name if clip.frames is not None else f"frame{k:06d}"
        names.append(f"{clip.source.name}/{fr}")
    return ds, names


def _detect_source(data: Path) -> str:
    if data.is_file():
        return "video" if is_video_file(data) else "images"
    if data.is_dir() and any(p.is_file() and is_video_file(p) for p in data.iterdir()):
        return "video"
    return "images"


def evaluate_deblur(data: str | os.PathLike, out_dir: str | os.PathLike, *, methods: str | Sequence[str] | None = None,
                    v_ths: str | Sequence[float] = (1.0, 2.0, 4.0), size: int = 256, limit: int | None = None,
                    weights: str | os.PathLike | None = None, steps: int | None = None, seed: int = 0,
                    gain: float | None = None, frames: int = 8, source: str = "auto", n_blur: int = 7, interp: int = 1,
                    report_images: int = 3, overwrite: bool = False, progress: bool = True,
                    warn: Callable[[str], None] = stderr_warn, colour: str = "input") -> dict[str, Any]:
    """The GOPRO-style deblurring protocol (see the module docstring and docs/evaluation.md).

    Args:
        data: an image folder (searched recursively, sorted), or with ``source="video"`` a
            frame folder, a folder of clips or video files.
        out_dir: output folder.
        methods: comma-separated names (default ``blurry,tfp,tfi,spikegen-0,spikegen-0.5,spikegen-1``).
        v_ths: thresholds V_th of the simulated spikes.
        size: centre-crop size (images smaller than it are upscaled first).
        limit: evaluate the first ``limit`` items (sorted) only.
        weights: SpikeGen weights folder (default: shipped; SpikeGen rows are skipped with a
            warning when there are none).
        steps: diffusion steps (default: the model's).
        seed: base seed (per-image seeds derive from it).
        gain: integrate-and-fire gain (default :data:`spikegen.data.DEFAULT_GAIN` = 0.6).
        frames: spike frames per sample (8).
        source: ``"images"``, ``"video"`` or ``"auto"`` (video when ``data`` is a video file or
            holds video files directly; otherwise images).
        n_blur, interp: video protocol: frames averaged into a blurry frame (odd) and the
            linear-interpolation factor applied first.
        report_images: how many items get pictures in the report.
        colour: SpikeGen rows' colour: ``"input"`` (default; SpikeGen's luminance with the
            blurry input's chroma, BT.601 YCbCr) or ``"model"`` (the model's own, faded colours).
            Gray scores are (up to clamping) the same either way.

    Returns:
        The results dict (also written to ``results.json``).
    """
    t0 = time.perf_counter()
    check_colour(colour)
    data, out_dir = Path(data), Path(out_dir)
    if not data.exists():
        raise SpikeFileError(f"--data {data}: no such file or folder")
    ms = parse_methods(methods, "deblur")
    vs = parse_floats(v_ths, "--vth")
    if len(set(vs)) != len(vs):
        raise SpikeGenError(f"--vth: repeated values in {vs}")
    if int(size) < 16:
        raise SpikeGenError(f"--size must be >= 16 pixels, got {size}")
    if limit is not None and int(limit) < 1:
        raise SpikeGenError(f"--limit must be >= 1, got {limit}")
    if source not in ("auto", "images", "video"):
        raise SpikeGenError(f"--source must be auto, images or video, got {source!r}")
    gain = DEFAULT_GAIN if gain is None else float(gain)
    if gain <= 0:
        raise SpikeGenError(f"--gain must be > 0, got {gain}")
    check_out(out_dir, overwrite)
    src = _detect_source(data) if source == "auto" else source
    try:
        ds, names = _deblur_items(data, src, int(size), vs, gain=gain, frames=int(frames), seed=int(seed),
                                  n_blur=int(n_blur), interp=int(interp))
    except ValueError as exc:
        if isinstance(exc, SpikeGenError):
            raise
        raise SpikeGenError(f"--data {data}: {exc}") from None
    n = len(names) if limit is None else min(len(names), int(limit))
    model, ms, skipped = load_model(ms, weights, warn)
    img_dir = out_dir / "images"
    rows: list[dict[str, Any]] = []
    figs: list[tuple[str, list[list[tuple[str, str]]]]] = []
    bar = progress_bar(n, "eval deblur", progress)
    for i in range(n):
        shown = i < report_images
        base = None
        rgb_only: dict[str, torch.Tensor] = {}  # g = 0 ignores the spikes: one sample for every V_th
        pics: list[list[tuple[str, str]]] = []
        for vi, v in enumerate(vs):
            s = ds[v][i]
            sharp, blurry, spikes = s["clean"], s["blurry"], s["spikes"]
            if base is None:
                base = blurry
            elif not torch.equal(base, blurry):  # the protocol's invariant: one blur for every V_th
                raise RuntimeError(f"{names[i]}: blurry input differs between V_th values")
            T = spikes.shape[0]
            preds: dict[str, torch.Tensor] = {}
            for m in ms:
                if m.kind == "blurry":
                    preds[m.name] = blurry
                elif m.kind == "tfp":
                    preds[m.name] = tfp(spikes, T, centers=[T // 2], scale=v / gain)[0][None]
                elif m.kind == "tfi":
                    preds[m.name] = (tfi(spikes, v_th=v, centers=[T // 2])[0][None] / gain).clamp(0, 1)
                elif m.gamma == 0 and m.name in rgb_only:
                    preds[m.name] = rgb_only[m.name]
                else:
                    gen = torch.Generator().manual_seed(sample_seed(int(seed), 2, i))
                    preds[m.name] = deblur_image(model, blurry, spikes, gamma=m.gamma, steps=steps, generator=gen,
                                                 colour=colour).image
                    if m.gamma == 0:
                        rgb_only[m.name] = preds[m.name]
            for m in ms:
                rows.append({"image": names[i], "method": m.name, "v_th": v, **deblur_scores(preds[m.name], sharp)})
            if shown:
                stem = f"{i:03d}_{safe_name(Path(names[i]).stem)}"
                if vi == 0:
                    pics.append([(save_png(img_dir / f"{stem}_sharp.png", sharp, out_dir), "sharp (ground truth)"),
                                 (save_png(img_dir / f"{stem}_blurry.png", blurry, out_dir), "blurry input")])
                row = [(save_png(img_dir / f"{stem}_{safe_name(m.name)}_vth{v:g}.png", preds[m.name], out_dir), f"{m.label}, V_th={v:g}")
                       for m in ms if m.kind != "blurry"]
                if row:
                    pics.append(row)
        if shown:
            figs.append((names[i], pics))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()

    keys = ["psnr_gray", "ssim_gray", "lpips_gray", "psnr_rgb", "ssim_rgb", "lpips_rgb"]
    summary = summarise(rows, keys, ("method", "v_th"))
    order = {m.name: k for k, m in enumerate(ms)}
    summary.sort(key=lambda r: (order[r["method"]], r["v_th"]))
    protocol = {
        "source": src, "size": int(size), "crop": "centre (SyntheticPairs augment=False; upscaled first when smaller)",
        "v_th": vs, "gain": gain, "frames": int(frames), "spikes": "integrate-and-fire of the sharp gray, random initial charge",
        "seed": int(seed), "per_image_seed": "sample_seed(seed, 0, index) for blur and spikes (same at every V_th); "
                                           "sample_seed(seed, 2, index) for SpikeGen sampling",
        "steps": steps if steps is not None else (model.config.sample_steps if model is not None else None),
        "tfp": f"mean of the {frames} frames x V_th / gain", "tfi": "TFI(V_th) at the middle frame / gain",
        "colour": colour + (" (SpikeGen's luminance, the blurry input's chroma: BT.601 YCbCr)" if colour == "input"
                            else " (the model's own, gamma-faded colours)"),
    }
    if src == "images":
        protocol.update(blur="mean of 8 motion kernels, 40x40, random angle +-30 deg (spikegen.degrade.motion_blur)")
    else:
        protocol.update(blur=f"mean of {n_blur} consecutive frames (after x{interp} interpolation), non-overlapping",
                        n_blur=int(n_blur), interp=int(interp))
    result = {
        "task": "deblur", "data": str(data), "out_dir": str(out_dir),
        "command": command_string("deblur", data, out_dir, methods=[m.name for m in ms] + skipped, vth=vs, size=int(size),
                            limit=limit, weights=weights, steps=steps, seed=int(seed),
                            source=None if source == "auto" else source, colour=None if colour == "input" else colour),
        "protocol": protocol, "methods": [m.name for m in ms], "skipped": skipped,
        "weights": str(weights) if weights is not None else ("shipped" if model is not None else None),
        "metrics": {k: METRIC_DOC[k] for k in keys}, "summary": summary, "per_image": rows,
        "seconds": round(time.perf_counter() - t0, 2),
    }

    series = {}
    for m in ms:
        ys = [next((r["psnr_gray"] for r in summary if r["method"] == m.name and r["v_th"] == v), float("nan")) for v in vs]
        series[m.name] = (vs, ys)
    save_line_plot(out_dir / "psnr_vs_vth.png", series, title=f"Deblurring: PSNR (gray) vs V_th, {n} images",
                   xlabel="V_th (spike threshold)", ylabel="PSNR gray (dB)")
    rep = report_base(result, n, "Spike-guided deblurring (GOPRO-style)")
    rep.figures("PSNR (gray) vs V_th", [("psnr_vs_vth.png", "mean PSNR on gray against V_th")], width=640)
    report_figs(rep, figs)
    write_outputs(out_dir, result, rep)
    return result
