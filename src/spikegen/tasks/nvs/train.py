"""``spikegen nvs train``: 3D Gaussian splatting (gsplat, CUDA) on a scene, then its test views scored.

:func:`train_3dgs` is the one entry point: it checks the scene, CUDA and that ``gsplat``
imports (each failure says what to do, with the :func:`nerfstudio_command` that does the same
job), checks every output, fits the Gaussians (:func:`spikegen.tasks.nvs.gaussians.train_gaussians`),
renders the test views and scores them (:mod:`spikegen.tasks.nvs.evaluate`).

Outputs (``out``, default ``SCENE/3dgs``): ``renders/<view>.png`` (test views), ``metrics.json``
(see :func:`~spikegen.tasks.nvs.evaluate_renders`), ``run.json`` (scene, config, timings,
number of Gaussians, gsplat version), ``splats.safetensors`` (the trained parameters) and
``point_cloud.ply`` (the standard 3DGS ply, opens in splat viewers); with ``resolution`` also
``gt/``, the ground truth resized the same way as the training views.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors.torch import save_file

from spikegen.data.scenes import read_blender_scene
from spikegen.errors import SpikeGenError
from spikegen.image import save_image
from spikegen.tasks.nvs.evaluate import evaluate_folder, evaluate_renders
from spikegen.tasks.nvs.gaussians import GSplatConfig, camera_matrices, render, save_ply, train_gaussians
from spikegen.tasks.nvs.helpers import (PathLike, check_outputs, parse_background, resize, resized_size,
                                        view_names, write_json)

__all__ = ["nerfstudio_command", "train_3dgs"]


def nerfstudio_command(scene: PathLike, iterations: int = 30000, background: str = "white") -> str:
    """The nerfstudio commands that train and score 3DGS (``splatfacto``) on a scene written here.

    ``nerfstudio-data`` reads the ``transforms.json`` that :func:`spikegen.data.scenes.write_scene`
    adds; its ``train/val/test_filenames`` select the splits (val = test). The pose normalisation
    of that parser is turned off so the Blender frame is kept.

    Example:
        >>> print(nerfstudio_command("out/lego", 1000))  # doctest: +NORMALIZE_WHITESPACE
        ns-train splatfacto --max-num-iterations 1000 --pipeline.model.background-color white
        nerfstudio-data --data out/lego --orientation-method none --center-method none --auto-scale-poses False
          then: ns-eval --load-config outputs/<experiment>/splatfacto/<timestamp>/config.yml
          --output-path out/lego/ns_eval.json
    """
    bgc = background if background in ("white", "black") else "white"
    data = shlex.quote(str(scene))
    return (f"ns-train splatfacto --max-num-iterations {int(iterations)} --pipeline.model.background-color {bgc} "
            f"nerfstudio-data --data {data} --orientation-method none --center-method none --auto-scale-poses False\n"
            f"  then: ns-eval --load-config outputs/<experiment>/splatfacto/<timestamp>/config.yml "
            f"--output-path {shlex.quote(str(Path(scene) / 'ns_eval.json'))}")


def train_3dgs(scene: PathLike, out: PathLike | None = None, *, iterations: int = 30000, ssim_weight: float = 0.2,
               resolution: int | None = None, background: str | Sequence[float] | None = None,
               overwrite: bool = False, progress: bool = True, device: str | torch.device = "cuda",
               **config: Any) -> dict:
    """Train 3D Gaussian splatting (gsplat, CUDA) on a scene's training views and score its test views.

    Checks the scene first, then CUDA, then that ``gsplat`` imports; each failure raises
    :class:`SpikeGenError` with what to do (the nerfstudio command that does the same, or
    ``pip install gsplat``). Then every output is checked before any work, the Gaussians are
    fitted, the test views rendered into ``out/renders`` and scored.

    Args:
        scene: a Blender scene (typically the output of :func:`~spikegen.tasks.nvs.restore_scene`).
        out: the run folder (default ``SCENE/3dgs``; layout in the module docstring).
        iterations, ssim_weight, resolution: see :class:`spikegen.tasks.nvs.gaussians.GSplatConfig`;
            ``config`` takes any other field of it.
        background: what RGBA views are composited on (default white).
        overwrite: replace existing outputs.
        progress: show a progress bar.
        device: where the Gaussians live. gsplat's rasterizer needs a CUDA device; any other
            device is only of use with a stand-in for gsplat (the tests run the loop on the CPU so).

    Returns:
        The ``run.json`` content, with the mean metrics under ``"metrics"`` (``None`` when the
        scene has no ``transforms_test.json``).
    """
    scene = Path(scene)
    bg = parse_background(background)
    if not (scene / "transforms_train.json").is_file():
        read_blender_scene(scene, "train", bg)  # raises with the splits found
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise SpikeGenError(
            "3D Gaussian splatting (gsplat) needs a CUDA GPU and this machine has none (torch.cuda.is_available() "
            "is False). Run `spikegen nvs train` on a CUDA machine with `pip install gsplat`, or train with "
            "nerfstudio there:\n  " + nerfstudio_command(scene, iterations, background or "white"))
    try:
        import gsplat
    except ImportError as exc:
        raise SpikeGenError(
            f"gsplat is not importable ({exc}); install it with `pip install gsplat` (it compiles its CUDA kernels on "
            "first use and needs a CUDA toolkit matching your torch build), or train with nerfstudio:\n  "
            + nerfstudio_command(scene, iterations, background or "white")) from None

    cfg = GSplatConfig(iterations=int(iterations), ssim_weight=float(ssim_weight), resolution=resolution,
                       background=bg, **config)
    out = Path(out) if out is not None else scene / "3dgs"

    train = read_blender_scene(scene, "train", cfg.background)
    test = read_blender_scene(scene, "test", cfg.background) if (scene / "transforms_test.json").is_file() else None
    names = view_names(test.frames) if test is not None else []
    planned = [out / "run.json", out / "metrics.json", out / "splats.safetensors", out / "point_cloud.ply"]
    planned += [out / "renders" / f"{n}.png" for n in names]
    if test is not None and resized_size(train.width, train.height, cfg.resolution) != (test.width, test.height):
        planned += [out / "gt" / f"{n}.png" for n in names]  # ground truth at the trained size
    check_outputs(planned, overwrite)
    torch.manual_seed(int(cfg.seed))
    log: list = []
    splats, info = train_gaussians(train, cfg, device=device, progress=progress, log=log)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().float().cpu().contiguous() for k, v in splats.items()}, str(out / "splats.safetensors"),
              metadata={"format": "spikegen-3dgs", "sh_degree": str(cfg.sh_degree)})
    save_ply(out / "point_cloud.ply", splats)
    render_seconds = None
    if test is not None:
        w, h = info["size"]
        viewmats, ks = camera_matrices(test, (w, h), device)
        bg = torch.tensor(cfg.background, dtype=torch.float32, device=device)[None]
        t0 = time.perf_counter()
        with torch.no_grad():
            for i, name in enumerate(names):
                img, _ = render(splats, viewmats[i:i + 1], ks[i:i + 1], w, h, cfg.sh_degree, bg)
                save_image(out / "renders" / f"{name}.png", img[0].clamp(0, 1).permute(2, 0, 1).cpu(), overwrite=True)
        render_seconds = round(time.perf_counter() - t0, 3)
    meta = {
        "format": "spikegen-3dgs-run", "version": 1, "scene": str(scene.resolve()),
        "background": list(cfg.background), "config": asdict(cfg),
        "gsplat": getattr(gsplat, "__version__", "unknown"),
        "device": torch.cuda.get_device_name(torch.device(device)) if torch.device(device).type == "cuda" else str(device),
        "train": info, "log": log, "render_seconds": render_seconds, "metrics": None,
    }
    write_json(out / "run.json", meta)
    if test is not None:
        resized = info["size"] != [test.width, test.height]
        if resized:
            # score against ground truth at the trained size: resize it the same way as the training views
            meta["metrics_note"] = "ground truth resized to the training resolution"
            gt_dir = out / "gt"
            for i, name in enumerate(names):
                save_image(gt_dir / f"{name}.png", resize(test.image(i), (info["size"][1], info["size"][0])), overwrite=True)
            metrics = evaluate_folder(out, gt_dir, names)
        else:
            metrics = evaluate_renders(out, scene=scene, split="test", overwrite=True)
        meta["metrics"] = metrics["mean"]
        write_json(out / "run.json", meta)
    return meta
