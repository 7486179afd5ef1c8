"""``spikegen nvs eval``: score renders of a scene's views against its ground truth (PSNR, SSIM, LPIPS).

Runs anywhere (no CUDA): :func:`evaluate_renders` matches renders to the views of a split by
name (:func:`~spikegen.tasks.nvs.helpers.view_names`), :func:`evaluate_folder` scores renders
against a folder of ground-truth images of the same names, and :func:`metric_rows` is the
scoring both share (per view :func:`spikegen.tasks.evaluate.image_scores` on RGB, the scoring
of ``spikegen eval`` and ``demo``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from spikegen.data.scenes import load_rgba_composited, read_blender_scene
from spikegen.errors import ShapeError, SpikeFileError, SpikeGenError
from spikegen.image import IMAGE_SUFFIXES
from spikegen.metrics.lpips import MIN_SIZE
from spikegen.tasks.evaluate import image_scores
from spikegen.tasks.nvs.helpers import PathLike, check_outputs, parse_background, view_names, write_json

__all__ = ["evaluate_folder", "evaluate_renders", "metric_rows"]


def metric_rows(pairs: Sequence[tuple[str, torch.Tensor, torch.Tensor]], use_lpips: bool) -> dict:
    """Per-view PSNR / SSIM (and LPIPS) of ``(name, render, ground truth)`` pairs, ``[3, H, W]`` in
    [0, 1], and their mean: ``{"mean": {...}, "views": [{"view", "psnr", "ssim", "lpips"}, ...]}``.
    LPIPS is left out for images under :data:`spikegen.metrics.lpips.MIN_SIZE` pixels.

    Example:
        >>> gt = torch.full((3, 16, 16), 0.5)
        >>> round(metric_rows([("r_0", gt + 0.1, gt)], use_lpips=False)["mean"]["psnr"], 3)
        20.0
    """
    rows = []
    for name, pred, gt in pairs:
        scores = ("psnr", "ssim", "lpips") if use_lpips and min(pred.shape[-2:]) >= MIN_SIZE else ("psnr", "ssim")
        rows.append({"view": name, **image_scores(pred, gt, metrics=scores)})
    keys = ["psnr", "ssim"] + (["lpips"] if use_lpips and rows and all("lpips" in r for r in rows) else [])
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys} if rows else {}
    return {"mean": mean, "views": rows}


def evaluate_renders(run: PathLike, *, scene: PathLike | None = None, split: str = "test",
                     renders: PathLike | None = None, background: str | Sequence[float] | None = None,
                     use_lpips: bool = True, output: PathLike | None = None, overwrite: bool = False) -> dict:
    """Score renders of a split's views against its ground truth (PSNR, SSIM, LPIPS).

    Args:
        run: a folder written by :func:`~spikegen.tasks.nvs.train_3dgs` (``renders/`` + ``run.json``) or any folder
            of renders.
        scene: the scene whose ``split`` holds the ground truth (default: the one in
            ``run/run.json``).
        split: which ``transforms_{split}.json`` to score.
        renders: the renders folder (default ``run/renders`` if it exists, else ``run``); one
            image per view, named ``<view name>.png`` (:func:`view_names`: the ``file_path``
            stem, e.g. ``r_0.png``).
        background: what RGBA ground truth is composited on (default: the run's, else white).
        use_lpips: also compute LPIPS (AlexNet, shipped weights).
        output: the metrics file (default ``run/metrics.json``); never replaced without
            ``overwrite``.

    Returns:
        ``{"scene", "split", "renders", "mean": {psnr, ssim, lpips}, "views": [...]}``: PSNR in
        dB on RGB [0, 1]; SSIM Gaussian (11x11, sigma 1.5) per channel on RGB [0, 1]; LPIPS v0.1
        AlexNet on RGB in [-1, 1].
    """
    run = Path(run)
    if not run.is_dir():
        raise SpikeFileError(f"{run}: no such folder")
    run_meta: dict = {}
    if (run / "run.json").is_file():
        try:
            run_meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SpikeFileError(f"{run / 'run.json'}: cannot read ({exc})") from None
    if scene is None:
        scene = run_meta.get("scene")
        if scene is None:
            raise SpikeGenError(f"{run}: no run.json naming the scene; pass --scene SCENE (the folder whose "
                                f"transforms_{split}.json holds the ground truth)")
    rdir = Path(renders) if renders is not None else (run / "renders" if (run / "renders").is_dir() else run)
    if not rdir.is_dir():
        raise SpikeFileError(f"{rdir}: no such renders folder")
    output = Path(output) if output is not None else run / "metrics.json"
    check_outputs([output], overwrite)
    bg = parse_background(background) if background is not None else tuple(run_meta.get("background", (1.0, 1.0, 1.0)))
    gt = read_blender_scene(scene, split, bg)
    names = view_names(gt.frames)
    pairs = []
    missing = []
    for i, name in enumerate(names):
        cand = [rdir / f"{name}{s}" for s in (".png",) + tuple(x for x in IMAGE_SUFFIXES if x != ".png")]
        path = next((c for c in cand if c.is_file()), None)
        if path is None:
            missing.append(f"{name}.png")
            continue
        pred = load_rgba_composited(path, bg)
        ref = gt.image(i)
        if pred.shape != ref.shape:
            raise ShapeError(f"{path}: render is {pred.shape[-2]}x{pred.shape[-1]} but the ground truth view {name} "
                             f"is {ref.shape[-2]}x{ref.shape[-1]} (height x width)")
        pairs.append((name, pred, ref))
    if missing:
        raise SpikeFileError(f"{rdir}: no render for {len(missing)} of the {len(names)} {split} views "
                             f"(e.g. {missing[0]}; renders are named after the file_path stems)")
    result = {"scene": str(Path(scene).resolve()), "split": split, "renders": str(rdir.resolve()),
              "metrics": {"psnr": "dB, RGB in [0, 1]", "ssim": "Gaussian 11x11 sigma 1.5, per channel, RGB [0, 1]",
                          "lpips": ("v0.1 AlexNet (images under 31 px get none)" if use_lpips else None)},
              **metric_rows(pairs, use_lpips)}
    write_json(output, result)
    return result


def evaluate_folder(out: Path, gt_dir: Path, names: list[str]) -> dict:
    """Score ``out/renders/<name>.png`` against ``gt_dir/<name>.png`` for every name (LPIPS
    included) and write ``out/metrics.json`` (replacing it); returns its content."""
    pairs = [(n, load_rgba_composited(out / "renders" / f"{n}.png"), load_rgba_composited(gt_dir / f"{n}.png")) for n in names]
    result = {"scene": str(gt_dir.resolve()), "split": "test", "renders": str((out / "renders").resolve()),
              **metric_rows(pairs, True)}
    write_json(out / "metrics.json", result)
    return result
