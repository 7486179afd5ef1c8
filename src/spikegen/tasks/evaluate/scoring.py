"""The scoring of a prediction against a reference, one module for eval, demo and NVS: ``image_scores``, ``deblur_scores``, ``reconstruct_scores``, ``METRIC_DOC``.

:func:`image_scores` is what every command scores with (PSNR, SSIM, LPIPS on RGB or on the
BT.601 gray, one set of conventions): :func:`deblur_scores` (``eval deblur``),
:func:`spikegen.tasks.demo.score` (``demo``) and the rows of ``nvs eval``
(:func:`spikegen.tasks.nvs.evaluate.metric_rows`) and ``nvs restore`` are calls of it with
their own options. :func:`reconstruct_scores` is the STIR protocol of ``eval reconstruct``
(8-bit gray, MATLAB SSIM).
"""

from __future__ import annotations

from typing import Sequence

import torch

from spikegen.degrade import rgb_to_gray
from spikegen.errors import SpikeGenError
from spikegen.metrics import lpips, psnr, ssim

__all__ = ["METRIC_DOC", "SCORES", "gray", "image_scores", "deblur_scores", "reconstruct_scores"]

#: The scores :func:`image_scores` computes, in the order it returns them.
SCORES = ("psnr", "ssim", "lpips")

METRIC_DOC = {
    "psnr_gray": "PSNR in dB of the BT.601 gray (0.2989 R + 0.5870 G + 0.1140 B) of prediction and sharp image, [0, 1] float",
    "ssim_gray": "SSIM (Gaussian 11x11, sigma 1.5, K1 0.01, K2 0.03, valid region) of the gray images, [0, 1] float",
    "lpips_gray": "LPIPS v0.1 AlexNet of the gray images repeated to 3 channels",
    "psnr_rgb": "PSNR in dB on RGB [0, 1] float (RGB methods only)",
    "ssim_rgb": "SSIM (Gaussian) on RGB, per channel then averaged (RGB methods only)",
    "lpips_rgb": "LPIPS v0.1 AlexNet on RGB (RGB methods only)",
    "psnr": "PSNR in dB of the 8-bit gray images (values rounded to 0..255 as MATLAB im2uint8)",
    "ssim": "SSIM, protocol='matlab': 8-bit gray [0, 255], L = 255, Gaussian 11x11 (Wang's ssim_index.m)",
    "lpips": "LPIPS v0.1 AlexNet of the gray images repeated to 3 channels",
    "niqe": "NIQE (MATLAB parameters) of the 8-bit gray reconstruction; lower is better",
    "brisque": "BRISQUE (MATLAB/LIBSVM model) of the 8-bit gray reconstruction; lower is better",
}


# ----------------------------------------------------------------------------- metrics
def gray(x: torch.Tensor) -> torch.Tensor:
    """The BT.601 gray ``[1,H,W]`` of an RGB ``[3,H,W]`` image; a 1-channel image as it is."""
    return rgb_to_gray(x) if x.shape[-3] == 3 else x


def image_scores(pred: torch.Tensor, ref: torch.Tensor, *, space: str = "rgb", metrics: Sequence[str] = SCORES,
                 clamp: bool = False, suffix: str = "") -> dict[str, float]:
    """Score a prediction ``[C,H,W]`` against a reference: the one scoring of eval, demo and NVS.

    Args:
        pred, ref: ``[C,H,W]`` images in [0, 1] of one size (detached, taken as float32 on the CPU).
        space: ``"rgb"``: both as they are (same channel count); ``"gray"``: the BT.601 gray
            (``0.2989 R + 0.5870 G + 0.1140 B``) of each (a 1-channel image as it is).
        metrics: which of :data:`SCORES` to compute: ``psnr`` (dB, data range 1), ``ssim``
            (Gaussian 11x11, sigma 1.5, K1 0.01, K2 0.03, valid region, per channel then
            averaged), ``lpips`` (v0.1 AlexNet, inputs in [0, 1]; gray repeated to 3 channels;
            sides of at least :data:`spikegen.metrics.lpips.MIN_SIZE` pixels).
        clamp: clamp both to [0, 1] first.
        suffix: appended to every key (``"_gray"`` -> ``psnr_gray``, ...).

    Returns:
        ``{metric + suffix: value}`` in the order of :data:`SCORES`.

    Example:
        >>> ref = torch.full((3, 16, 16), 0.5)
        >>> {k: round(v, 3) for k, v in image_scores(ref + 0.1, ref, metrics=("psnr", "ssim")).items()}
        {'psnr': 20.0, 'ssim': 0.984}
        >>> sorted(image_scores(ref, ref, space="gray", metrics=("psnr", "ssim"), suffix="_gray"))
        ['psnr_gray', 'ssim_gray']
    """
    if space not in ("rgb", "gray"):
        raise SpikeGenError(f"space must be 'rgb' or 'gray', got {space!r}")
    unknown = [m for m in metrics if m not in SCORES]
    if unknown:
        raise SpikeGenError(f"unknown metric {unknown[0]!r}; expected some of {', '.join(SCORES)}")
    p, r = pred.detach().float().cpu(), ref.detach().float().cpu()
    if clamp:
        p, r = p.clamp(0, 1), r.clamp(0, 1)
    if space == "gray":
        p, r = gray(p), gray(r)
    p, r = p[None], r[None]
    out = {}
    with torch.no_grad():
        if "psnr" in metrics:
            out["psnr" + suffix] = float(psnr(p, r))
        if "ssim" in metrics:
            out["ssim" + suffix] = float(ssim(p, r))
        if "lpips" in metrics:
            out["lpips" + suffix] = float(lpips(p.expand(-1, 3, -1, -1), r.expand(-1, 3, -1, -1)))
    return out


def deblur_scores(pred: torch.Tensor, sharp: torch.Tensor) -> dict[str, float]:
    """Scores of a deblurring prediction ``[C,H,W]`` (C 1 or 3) against the sharp ``[3,H,W]``.

    Always ``psnr_gray``, ``ssim_gray``, ``lpips_gray`` (BT.601 gray of both); for a 3-channel
    prediction also ``psnr_rgb``, ``ssim_rgb``, ``lpips_rgb``. Inputs are clamped to [0, 1]
    (:func:`image_scores` with ``clamp=True``).

    Example:
        >>> x = torch.rand(3, 32, 32)
        >>> sorted(deblur_scores(x, x))[:3]
        ['lpips_gray', 'lpips_rgb', 'psnr_gray']
    """
    out = image_scores(pred, sharp, space="gray", clamp=True, suffix="_gray")
    if pred.shape[0] == 3:
        out.update(image_scores(pred, sharp, clamp=True, suffix="_rgb"))
    return out


def _u8(x: torch.Tensor) -> torch.Tensor:
    """Round-half-up 8-bit quantisation (MATLAB ``im2uint8``) of [0, 1] values."""
    return torch.floor(x.double().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)


def reconstruct_scores(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
    """STIR-style scores of a gray reconstruction ``[C,H,W]`` against the ground truth.

    ``psnr`` and ``ssim`` (``protocol="matlab"``) on 8-bit gray [0, 255]; ``lpips`` on the
    float gray repeated to 3 channels.
    """
    pg, tg = gray(pred.detach().float().cpu().clamp(0, 1)), gray(gt.detach().float().cpu().clamp(0, 1))
    return {
        "psnr": float(psnr(_u8(pg)[None].double() / 255.0, _u8(tg)[None].double() / 255.0)),
        "ssim": float(ssim(_u8(pg)[None], _u8(tg)[None], protocol="matlab")),
        "lpips": float(lpips(pg[None].expand(-1, 3, -1, -1), tg[None].expand(-1, 3, -1, -1))),
    }
