"""The scores of ``spikegen eval``: ``deblur_scores``, ``reconstruct_scores``, ``METRIC_DOC`` and the gray / 8-bit helpers."""

from __future__ import annotations

import torch

__all__ = ["METRIC_DOC", "gray", "deblur_scores", "reconstruct_scores"]

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
    from spikegen.degrade import rgb_to_gray

    return rgb_to_gray(x) if x.shape[-3] == 3 else x


def deblur_scores(pred: torch.Tensor, sharp: torch.Tensor) -> dict[str, float]:
    """Scores of a deblurring prediction ``[C,H,W]`` (C 1 or 3) against the sharp ``[3,H,W]``.

    Always ``psnr_gray``, ``ssim_gray``, ``lpips_gray`` (BT.601 gray of both); for a 3-channel
    prediction also ``psnr_rgb``, ``ssim_rgb``, ``lpips_rgb``. Inputs are clamped to [0, 1].

    Example:
        >>> x = torch.rand(3, 32, 32)
        >>> sorted(deblur_scores(x, x))[:3]
        ['lpips_gray', 'lpips_rgb', 'psnr_gray']
    """
    from spikegen.metrics import lpips, psnr, ssim

    p, s = pred.detach().float().cpu().clamp(0, 1), sharp.detach().float().cpu().clamp(0, 1)
    pg, sg = gray(p)[None], gray(s)[None]
    out = {
        "psnr_gray": float(psnr(pg, sg)),
        "ssim_gray": float(ssim(pg, sg)),
        "lpips_gray": float(lpips(pg.expand(-1, 3, -1, -1), sg.expand(-1, 3, -1, -1))),
    }
    if p.shape[0] == 3:
        out.update(psnr_rgb=float(psnr(p[None], s[None])), ssim_rgb=float(ssim(p[None], s[None])),
                   lpips_rgb=float(lpips(p[None], s[None])))
    return out


def _u8(x: torch.Tensor) -> torch.Tensor:
    """Round-half-up 8-bit quantisation (MATLAB ``im2uint8``) of [0, 1] values."""
    return torch.floor(x.double().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)


def reconstruct_scores(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
    """STIR-style scores of a gray reconstruction ``[C,H,W]`` against the ground truth.

    ``psnr`` and ``ssim`` (``protocol="matlab"``) on 8-bit gray [0, 255]; ``lpips`` on the
    float gray repeated to 3 channels.
    """
    from spikegen.metrics import lpips, psnr, ssim

    pg, tg = gray(pred.detach().float().cpu().clamp(0, 1)), gray(gt.detach().float().cpu().clamp(0, 1))
    return {
        "psnr": float(psnr(_u8(pg)[None].double() / 255.0, _u8(tg)[None].double() / 255.0)),
        "ssim": float(ssim(_u8(pg)[None], _u8(tg)[None], protocol="matlab")),
        "lpips": float(lpips(pg[None].expand(-1, 3, -1, -1), tg[None].expand(-1, 3, -1, -1))),
    }
