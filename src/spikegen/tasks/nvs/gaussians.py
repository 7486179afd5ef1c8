"""3D Gaussian splatting with ``gsplat`` (CUDA): fit Gaussians to a Blender scene's views, render them.

A compact trainer in the recipe of the 3DGS paper (Kerbl et al. 2023) for synthetic scenes:

* **Init**: Blender scenes have no SfM points, so ``init_points`` (100k) Gaussians are drawn
  uniformly in the cube ``[-init_extent, init_extent]^3`` (1.5, nerfstudio's Blender box; the
  3DGS code uses 1.3), random colours, scales = the mean distance to the 3 nearest neighbours,
  identity rotations, opacity 0.1.
* **Loss**: ``(1 - ssim_weight) * L1 + ssim_weight * (1 - SSIM)``, ``ssim_weight`` = 0.2 (SSIM with
  an 11x11 Gaussian window, sigma 1.5, zero-padded "same" output, as 3DGS).
* **Optimiser**: Adam per parameter group (eps 1e-15) with the 3DGS learning rates: means
  1.6e-4 x scene extent decaying exponentially to 1.6e-6 x extent over the run, scales 5e-3,
  rotations 1e-3, opacities 5e-2, SH band 0 2.5e-3, higher bands 2.5e-3 / 20. The extent is
  1.1 x the largest distance of a camera centre from their mean (3DGS's ``cameras_extent``).
* **SH**: degree 3, one more band every 1000 iterations.
* **Densification** (gsplat's ``DefaultStrategy``, which implements the paper's rules): from
  iteration 500 to 15k every 100, clone / split where the mean view-space gradient exceeds
  2e-4, prune opacity < 0.005 (and, after the first reset, Gaussians larger than 0.1 x
  extent), reset opacities every 3000.
* One random training view per step (a shuffled pass over the views), white background by
  default (the views are composited on it).

Cameras: Blender's camera-to-world matrices are OpenGL (x right, y up, looking down -z); gsplat
takes OpenCV world-to-camera matrices, so ``viewmat = inverse(c2w @ diag(1, -1, -1, 1))``
(:func:`camera_matrices`).

This module fits and renders Gaussians and writes nothing but :func:`save_ply`'s file; the
``spikegen nvs train`` run around it (outputs, test renders, scores) is
:func:`spikegen.tasks.nvs.train_3dgs`. ``gsplat`` is imported lazily, inside :func:`render`
and :func:`train_gaussians`; it is not a dependency of the package.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from spikegen.degrade import gaussian_kernel1d
from spikegen.errors import SpikeGenError
from spikegen.tasks.nvs.helpers import resize, resized_size

__all__ = ["GSplatConfig", "SH_C0", "camera_matrices", "init_splats", "knn_mean_distance", "render", "save_ply",
           "scene_extent", "ssim_same", "train_gaussians"]

SH_C0 = 0.28209479177387814


@dataclass
class GSplatConfig:
    """Hyper-parameters of :func:`train_gaussians` (defaults: the 3DGS paper's)."""

    iterations: int = 30_000
    ssim_weight: float = 0.2
    resolution: int | None = None  # longer image side in pixels (None: the scene's)
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    sh_degree: int = 3
    sh_degree_interval: int = 1000
    init_points: int = 100_000
    init_extent: float = 1.5
    init_opacity: float = 0.1
    means_lr: float = 1.6e-4
    means_lr_final: float = 1.6e-6
    scales_lr: float = 5e-3
    quats_lr: float = 1e-3
    opacities_lr: float = 5e-2
    sh0_lr: float = 2.5e-3
    shN_lr: float = 2.5e-3 / 20
    refine_start: int = 500
    refine_stop: int = 15_000
    refine_every: int = 100
    grow_grad2d: float = 2e-4
    reset_every: int = 3000
    prune_opacity: float = 0.005
    seed: int = 0
    extra: dict = field(default_factory=dict)  # any other DefaultStrategy field

    def validate(self) -> None:
        if self.iterations < 1:
            raise SpikeGenError(f"--iterations must be >= 1, got {self.iterations}")
        if not 0.0 <= self.ssim_weight <= 1.0:
            raise SpikeGenError(f"--ssim-weight must lie in [0, 1], got {self.ssim_weight}")
        if not 0 <= self.sh_degree <= 4:
            raise SpikeGenError(f"sh_degree must be in 0..4, got {self.sh_degree}")
        if self.init_points < 4:
            raise SpikeGenError(f"init_points must be >= 4, got {self.init_points}")


def _gaussian_window(device, dtype, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = gaussian_kernel1d(sigma, size, device=device, dtype=dtype)
    return (g[:, None] * g[None, :])[None, None]


def ssim_same(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of ``[B, C, H, W]`` images in [0, 1], 11x11 Gaussian window, zero-padded "same"
    output (3DGS's training SSIM; the evaluation uses :func:`spikegen.metrics.ssim`)."""
    c = x.shape[1]
    w = _gaussian_window(x.device, x.dtype).expand(c, 1, -1, -1)
    pad = w.shape[-1] // 2

    def f(t):
        return F.conv2d(t, w, padding=pad, groups=c)

    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean()


def knn_mean_distance(points: torch.Tensor, k: int = 3, chunk: int = 1024) -> torch.Tensor:
    """Mean distance of each point ``[N, 3]`` to its ``k`` nearest neighbours (chunked brute force).

    Example:
        >>> knn_mean_distance(torch.tensor([[0.0, 0, 0], [1, 0, 0], [3, 0, 0]]), k=1)
        tensor([1., 1., 2.])
    """
    out = torch.empty(points.shape[0], device=points.device, dtype=points.dtype)
    for i in range(0, points.shape[0], chunk):
        d = torch.cdist(points[i:i + chunk], points)  # [c, N]
        nn = d.topk(k + 1, dim=1, largest=False).values[:, 1:]  # drop the point itself
        out[i:i + chunk] = nn.mean(dim=1)
    return out


def camera_matrices(scene, size_wh: tuple[int, int], device) -> tuple[torch.Tensor, torch.Tensor]:
    """World-to-camera (OpenCV) ``[N, 4, 4]`` and intrinsics ``[N, 3, 3]`` at ``size_wh``."""
    c2w = torch.from_numpy(scene.poses).to(torch.float64)
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
    viewmats = torch.linalg.inv(c2w @ flip).float()
    k = torch.from_numpy(scene.intrinsics()).to(torch.float64)
    sx, sy = size_wh[0] / scene.width, size_wh[1] / scene.height
    k[0] *= sx
    k[1] *= sy
    ks = k.float()[None].expand(len(scene), -1, -1).contiguous()
    return viewmats.to(device), ks.to(device)


def scene_extent(scene) -> float:
    """3DGS's ``cameras_extent``: 1.1 x the largest distance of a camera centre from their mean."""
    centres = scene.poses[:, :3, 3]
    return float(np.linalg.norm(centres - centres.mean(0), axis=1).max() * 1.1) or 1.0


def _images(scene, size_wh: tuple[int, int], device) -> torch.Tensor:
    """All views ``[N, H, W, 3]`` float32 on ``device``."""
    w, h = size_wh
    return torch.stack([resize(img, (h, w)) for img in scene.images()]).permute(0, 2, 3, 1).contiguous().to(device)


def init_splats(cfg: GSplatConfig, device, generator: torch.Generator) -> torch.nn.ParameterDict:
    """Random Gaussians in ``[-init_extent, init_extent]^3`` (see the module docstring)."""
    n = int(cfg.init_points)
    means = (torch.rand(n, 3, generator=generator) * 2 - 1) * cfg.init_extent
    rgb = torch.rand(n, 3, generator=generator)
    means = means.to(device)
    dist = knn_mean_distance(means).clamp_min(1e-7)
    k = (cfg.sh_degree + 1) ** 2
    sh = torch.zeros(n, k, 3, device=device)
    sh[:, 0] = ((rgb - 0.5) / SH_C0).to(device)
    quats = torch.zeros(n, 4, device=device)
    quats[:, 0] = 1.0
    return torch.nn.ParameterDict({
        "means": torch.nn.Parameter(means),
        "scales": torch.nn.Parameter(torch.log(dist)[:, None].repeat(1, 3)),
        "quats": torch.nn.Parameter(quats),
        "opacities": torch.nn.Parameter(torch.logit(torch.full((n,), cfg.init_opacity, device=device))),
        "sh0": torch.nn.Parameter(sh[:, :1].contiguous()),
        "shN": torch.nn.Parameter(sh[:, 1:].contiguous()),
    })


def render(splats, viewmats: torch.Tensor, ks: torch.Tensor, width: int, height: int, sh_degree: int,
           background: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Render ``[C, H, W, 3]`` (gsplat ``rasterization``) and its info dict."""
    from gsplat import rasterization

    colors = torch.cat([splats["sh0"], splats["shN"]], 1)
    out, _, info = rasterization(
        means=splats["means"], quats=splats["quats"], scales=torch.exp(splats["scales"]),
        opacities=torch.sigmoid(splats["opacities"]), colors=colors, viewmats=viewmats, Ks=ks,
        width=int(width), height=int(height), sh_degree=int(sh_degree), packed=False,
        backgrounds=background.expand(viewmats.shape[0], -1), render_mode="RGB",
    )
    return out, info


def train_gaussians(train, cfg: GSplatConfig, *, device: torch.device | str = "cuda", progress: bool = True,
                    log: list | None = None) -> tuple[torch.nn.ParameterDict, dict]:
    """Fit Gaussians to the training views of ``train`` (a :class:`spikegen.data.scenes.Scene`).

    Returns:
        ``(splats, info)``: the parameters (``means, scales, quats, opacities, sh0, shN``) and a
        dict with the image size, scene extent, time and final number of Gaussians.
    """
    from gsplat.strategy import DefaultStrategy

    cfg.validate()
    device = torch.device(device)
    gen = torch.Generator().manual_seed(int(cfg.seed))
    w, h = resized_size(train.width, train.height, cfg.resolution)
    images = _images(train, (w, h), device)
    viewmats, ks = camera_matrices(train, (w, h), device)
    extent = scene_extent(train)
    bg = torch.tensor(cfg.background, dtype=torch.float32, device=device)[None]

    splats = init_splats(cfg, device, gen)
    lrs = {"means": cfg.means_lr * extent, "scales": cfg.scales_lr, "quats": cfg.quats_lr,
           "opacities": cfg.opacities_lr, "sh0": cfg.sh0_lr, "shN": cfg.shN_lr}
    optimizers = {k: torch.optim.Adam([{"params": splats[k], "lr": lr, "name": k}], eps=1e-15) for k, lr in lrs.items()}
    gamma = (cfg.means_lr_final / cfg.means_lr) ** (1.0 / cfg.iterations)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizers["means"], gamma=gamma)
    strategy = DefaultStrategy(prune_opa=cfg.prune_opacity, grow_grad2d=cfg.grow_grad2d,
                               refine_start_iter=cfg.refine_start, refine_stop_iter=cfg.refine_stop,
                               reset_every=cfg.reset_every, refine_every=cfg.refine_every, **cfg.extra)
    strategy.check_sanity(splats, optimizers)
    state = strategy.initialize_state(scene_scale=extent)

    bar = None
    if progress:
        bar = tqdm(total=cfg.iterations, desc="3DGS", unit="it", dynamic_ncols=True)
    order: list[int] = []
    t0 = time.perf_counter()
    for step in range(cfg.iterations):
        if not order:
            order = torch.randperm(len(train), generator=gen).tolist()
        i = order.pop()
        deg = min(step // max(cfg.sh_degree_interval, 1), cfg.sh_degree)
        out, info = render(splats, viewmats[i:i + 1], ks[i:i + 1], w, h, deg, bg)
        gt = images[i:i + 1]
        l1 = (out - gt).abs().mean()
        s = ssim_same(out.permute(0, 3, 1, 2), gt.permute(0, 3, 1, 2))
        loss = (1 - cfg.ssim_weight) * l1 + cfg.ssim_weight * (1 - s)
        strategy.step_pre_backward(splats, optimizers, state, step, info)
        loss.backward()
        strategy.step_post_backward(splats, optimizers, state, step, info, packed=False)
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        scheduler.step()
        if bar is not None:
            bar.update(1)
            if step % 100 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}", n=len(splats["means"]))
        if log is not None and (step % 1000 == 0 or step == cfg.iterations - 1):
            log.append({"step": step, "loss": loss.item(), "l1": l1.item(), "ssim": s.item(), "gaussians": len(splats["means"])})
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    return splats, {"size": [w, h], "extent": extent, "seconds": round(seconds, 2),
                    "gaussians": int(len(splats["means"]))}


def save_ply(path: str | Path, splats) -> Path:
    """The standard 3DGS ``point_cloud.ply`` (binary little-endian: x y z nx ny nz f_dc_0..2
    f_rest_* opacity scale_0..2 rot_0..3; logit opacities and log scales, as 3DGS writes them)."""
    path = Path(path)
    with torch.no_grad():
        xyz = splats["means"].detach().float().cpu().numpy()
        n = xyz.shape[0]
        dc = splats["sh0"].detach().float().cpu().reshape(n, -1).numpy()  # [N, 3]
        rest = splats["shN"].detach().float().cpu().transpose(1, 2).reshape(n, -1).numpy()  # channel-major
        cols = [xyz, np.zeros_like(xyz), dc, rest,
                splats["opacities"].detach().float().cpu().numpy()[:, None],
                splats["scales"].detach().float().cpu().numpy(), splats["quats"].detach().float().cpu().numpy()]
    names = (["x", "y", "z", "nx", "ny", "nz"] + [f"f_dc_{i}" for i in range(dc.shape[1])]
             + [f"f_rest_{i}" for i in range(rest.shape[1])] + ["opacity"] + [f"scale_{i}" for i in range(3)]
             + [f"rot_{i}" for i in range(4)])
    data = np.concatenate(cols, axis=1).astype("<f4")
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {n}\n"
    header += "".join(f"property float {nm}\n" for nm in names) + "end_header\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(header.encode("ascii"))
        fh.write(data.tobytes())
    return path
