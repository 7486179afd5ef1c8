"""``spikegen nvs restore``: restore every training view of a prepared scene (SpikeGen, TFP or TFI).

Stage 1 of the paper's pipeline (section 4, Table 8): each blurry training view and the spike
stream recorded over its exposure become one restored view, and the restored scene is written
in the Blender layout (plus nerfstudio's ``transforms.json``) for :func:`~spikegen.tasks.nvs.train_3dgs`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from spikegen.data.scenes import image_relpath, load_rgba_composited, read_blender_scene, write_scene
from spikegen.errors import ShapeError, SpikeFileError, SpikeGenError
from spikegen.spikes.io import load_spikes
from spikegen.spikes.reconstruct import tfi, tfp
from spikegen.tasks.deblur import check_colour, deblur_image
from spikegen.tasks.evaluate import image_scores
from spikegen.tasks.nvs.helpers import (DEFAULT_GAIN, DEFAULT_VTH, PREPARE_JSON, RESTORE_JSON, PathLike,
                                        check_outputs, progress_bar, view_names, write_json)
from spikegen.weights import load_default_model

__all__ = ["METHODS", "restore_scene", "restore_views"]

METHODS = ("spikegen", "tfp", "tfi")


def _quantize(img: torch.Tensor) -> torch.Tensor:
    """What an 8-bit PNG of ``img`` reads back as."""
    return (img.clamp(0, 1) * 255.0).round() / 255.0


def restore_views(method: str, blurry: torch.Tensor, spikes: torch.Tensor, *, v_th: float = DEFAULT_VTH,
                  gain: float = DEFAULT_GAIN, model: Any = None, gamma: float = 0.5, steps: int | None = None,
                  generator: torch.Generator | None = None, colour: str = "input") -> torch.Tensor:
    """Restore a batch of views from their blurry image and spike stream.

    Args:
        method: ``spikegen`` (blurry RGB + spikes, modality ratio ``gamma``), ``tfp`` (mean
            firing rate x ``v_th / gain``) or ``tfi`` (``v_th / (gain * d)`` at the middle frame,
            ``d`` the interspike interval); TFP and TFI are gray, expanded to 3 channels.
        blurry: ``[B, 3, H, W]`` in [0, 1] (unused by TFP / TFI).
        spikes: ``[B, T, H, W]`` of {0, 1}.
        v_th, gain: the sensor's threshold and gain (a pixel of intensity ``I`` fires at rate
            ``gain * I / v_th``), which turn TFP / TFI back into intensities.
        model: a :class:`spikegen.models.SpikeGen` for ``spikegen``.
        colour: ``spikegen`` only: ``"input"`` (SpikeGen's luminance, the blurry view's chroma)
            or ``"model"`` (see :func:`spikegen.tasks.deblur.deblur_image`).

    Returns:
        ``[B, 3, H, W]`` float32 in [0, 1] on the CPU.

    Example:
        >>> s = torch.zeros(1, 8, 4, 4, dtype=torch.uint8); s[:, ::2] = 1
        >>> restore_views("tfp", torch.zeros(1, 3, 4, 4), s, v_th=1.0, gain=1.0)[0, :, 0, 0].tolist()
        [0.5, 0.5, 0.5]
    """
    if method not in METHODS:
        raise SpikeGenError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if spikes.ndim != 4:
        raise ShapeError(f"spikes: expected [B, T, H, W], got {tuple(spikes.shape)}")
    t = spikes.shape[1]
    if method == "tfp":
        img = tfp(spikes, t, centers=[t // 2], scale=float(v_th) / float(gain))[:, 0]
    elif method == "tfi":
        img = tfi(spikes, v_th=float(v_th) / float(gain), centers=[t // 2])[:, 0]
    else:
        if model is None:
            raise SpikeGenError("method 'spikegen' needs a model")
        return deblur_image(model, blurry, spikes, gamma=gamma, steps=steps, generator=generator,
                            colour=colour).image.clamp(0, 1)
    return img.clamp(0, 1)[:, None].expand(-1, 3, -1, -1).float().cpu().contiguous()


def _load_prepared(scene: Path):
    """The train / test splits of a prepared scene, each training view's spike file, v_th, gain."""
    if not scene.is_dir():
        raise SpikeFileError(f"{scene}: no such scene folder")
    meta: dict = {}
    if (scene / PREPARE_JSON).is_file():
        try:
            meta = json.loads((scene / PREPARE_JSON).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SpikeFileError(f"{scene / PREPARE_JSON}: cannot read ({exc})") from None
    bg = tuple(meta.get("background", (1.0, 1.0, 1.0)))
    train = read_blender_scene(scene, "train", bg)
    test = read_blender_scene(scene, "test", bg) if (scene / "transforms_test.json").is_file() else None
    by_path = {v["file_path"]: v.get("spikes") for v in meta.get("views", []) if isinstance(v, dict)}
    names = view_names(train.frames)
    spike_files: list[Path] = []
    missing: list[str] = []
    for f, name in zip(train.frames, names):
        rel = by_path.get(f.file_path) or f"spikes/{name}.npz"
        p = scene / rel
        if not p.is_file():
            missing.append(str(p))
        spike_files.append(p)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise SpikeFileError(f"{missing[0]}: no spike stream for this training view{more}; a scene to restore needs "
                             "one packed .npz per training view under spikes/ (make one with `spikegen nvs prepare`)")
    opts = meta.get("spikes", {})
    return train, test, spike_files, meta, opts.get("v_th"), opts.get("gain")


def _spike_batch(files: Sequence[Path], size_hw: tuple[int, int], names: Sequence[str]) -> tuple[torch.Tensor, list[dict]]:
    arrs, metas = [], []
    for p, name in zip(files, names):
        a, m = load_spikes(p, with_meta=True)
        if tuple(a.shape[-2:]) != tuple(size_hw):
            raise ShapeError(f"{p}: spike frames are {a.shape[1]}x{a.shape[2]} but view {name} is "
                             f"{size_hw[0]}x{size_hw[1]} (height x width)")
        arrs.append(a)
        metas.append(m)
    t = {a.shape[0] for a in arrs}
    if len(t) > 1:
        n = min(t)
        arrs = [a[(a.shape[0] - n) // 2:(a.shape[0] - n) // 2 + n] for a in arrs]  # centred common window
    return torch.from_numpy(np.stack(arrs)), metas


def restore_scene(scene: PathLike, out: PathLike, *, method: str = "spikegen", weights: PathLike | None = None,
                  gamma: float = 0.5, steps: int | None = None, batch: int = 4, seed: int = 0,
                  device: str | torch.device | None = None, overwrite: bool = False, progress: bool = True,
                  model: Any = None, colour: str = "input") -> dict:
    """Restore every training view of a prepared scene and write the restored scene.

    Args:
        scene: a folder written by :func:`prepare_scene` (or any Blender scene of blurry views
            with ``spikes/<name>.npz`` per training view).
        out: the restored scene: training views at exactly their ``file_path`` entries, the
            test split (sharp ground truth) copied, ``transforms_*.json`` unchanged, nerfstudio's
            ``transforms.json``, and ``restore.json`` (options, timing, and -- when the scene
            has ``sharp/`` -- PSNR / SSIM of each restored and blurry view against the sharp one).
        method: ``spikegen``, ``tfp`` or ``tfi`` (see :func:`restore_views`).
        weights: SpikeGen weights folder (default: the shipped weights).
        gamma: SpikeGen modality ratio (0 = RGB only, 1 = spikes only).
        steps: diffusion steps (default: the model's ``sample_steps``).
        batch: views per SpikeGen call.
        seed: sampler seed; batch ``k`` (views ``k*batch ...``) uses ``seed + k*batch``, so the
            result depends on ``seed`` and ``batch``.
        device: where SpikeGen runs (default: CUDA when available, else CPU).
        model: an already loaded SpikeGen (instead of ``weights``).
        colour: SpikeGen's colour: ``"input"`` (default; the blurry view's chroma) or ``"model"``.

    Returns:
        The ``restore.json`` content.
    """
    t0 = time.perf_counter()
    if method not in METHODS:
        raise SpikeGenError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    check_colour(colour)
    if int(batch) < 1:
        raise SpikeGenError(f"--batch must be >= 1, got {batch}")
    if not 0.0 <= float(gamma) <= 1.0:
        raise SpikeGenError(f"--gamma must lie in [0, 1] (0 = RGB only, 1 = spikes only), got {gamma}")
    src, out = Path(scene), Path(out)
    if src.is_dir() and out.resolve() == src.resolve():
        raise SpikeGenError(f"{out}: the output folder must differ from the scene folder")
    train, test, spike_files, meta, v_th, gain = _load_prepared(src)
    splits = [train] + ([test] if test is not None else [])
    planned = [out / RESTORE_JSON, out / "transforms.json"] + [out / f"transforms_{s.split}.json" for s in splits]
    planned += [out / image_relpath(f.file_path) for s in splits for f in s.frames]
    check_outputs(planned, overwrite)

    weights_info = None
    if method == "spikegen":
        weights_info = "a model passed in" if model is not None else str(weights) if weights is not None else "default (shipped)"
    if method == "spikegen" and model is None:
        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if str(dev).startswith("cuda") and not torch.cuda.is_available():
            raise SpikeGenError(f"--device {dev}: CUDA is not available on this machine (use --device cpu)")
        model = load_default_model(weights, device=dev)
    names = view_names(train.frames)
    sharp_root = src / "sharp"
    has_sharp = (sharp_root / f"transforms_{train.split}.json").is_file()
    bar = progress_bar(len(train), f"restore {method}", progress)
    cache: dict[int, torch.Tensor] = {}
    per_view: list[dict] = []
    sensor = {"v_th": v_th, "gain": gain}

    def compute(start: int) -> None:
        idx = list(range(start, min(start + int(batch), len(train))))
        blurry = torch.stack([train.image(i) for i in idx])
        spikes, metas = _spike_batch([spike_files[i] for i in idx], (train.height, train.width), [names[i] for i in idx])
        vt = v_th if v_th is not None else metas[0].get("v_th", DEFAULT_VTH)
        gn = gain if gain is not None else metas[0].get("gain", DEFAULT_GAIN)
        sensor.update(v_th=float(vt), gain=float(gn))
        g = torch.Generator().manual_seed(int(seed) + start)
        res = restore_views(method, blurry, spikes, v_th=float(vt), gain=float(gn), model=model, gamma=float(gamma),
                            steps=steps, generator=g, colour=colour)
        for j, i in enumerate(idx):
            img = res[j].float().cpu()
            cache[i] = img
            row = {"view": names[i], "file_path": train.frames[i].file_path}
            if has_sharp:
                sharp_path = sharp_root / image_relpath(train.frames[i].file_path)
                if sharp_path.is_file():
                    ref = load_rgba_composited(sharp_path)
                    row.update(image_scores(_quantize(img), ref, metrics=("psnr", "ssim")))
                    row.update(image_scores(blurry[j], ref, metrics=("psnr", "ssim"), suffix="_blurry"))
            per_view.append(row)
        if bar is not None:
            bar.update(len(idx))

    def restored(sc, i: int) -> torch.Tensor:
        if sc.split != train.split:
            return sc.image(i)
        if i not in cache:
            compute(i)
        return cache.pop(i)

    write_scene(splits, out, images=restored, overwrite=overwrite)
    if bar is not None:
        bar.close()
    scored = [r for r in per_view if "psnr" in r]
    summary = {}
    if scored:
        for k in ("psnr", "ssim", "psnr_blurry", "ssim_blurry"):
            summary[k] = round(float(np.mean([r[k] for r in scored])), 4)
    info = {
        "format": "spikegen-nvs-restored",
        "version": 1,
        "source": str(src.resolve()),
        "method": method,
        "options": {"gamma": float(gamma) if method == "spikegen" else None,
                    "colour": colour if method == "spikegen" else None, "steps": steps, "batch": int(batch),
                    "seed": int(seed), "weights": weights_info},
        "sensor": sensor,
        "device": str(getattr(model, "device", "cpu")) if model is not None else "cpu",
        "splits": {s.split: len(s) for s in splits},
        "vs_sharp": {"mean": summary, "views": per_view} if scored else None,
        "seconds": round(time.perf_counter() - t0, 3),
        "seconds_per_view": round((time.perf_counter() - t0) / max(len(train), 1), 4),
    }
    write_json(out / RESTORE_JSON, info)
    return info
