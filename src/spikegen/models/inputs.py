"""SpikeGen's inputs checked and cut into tokens: images, spike streams, the modality ratio, latent patches.

Every check raises :class:`~spikegen.errors.ShapeError` with the argument's name and what was
expected. The token grid is row-major; a token of latent pixels is a ``p x p`` patch ordered
channel, patch row, patch column (MAR's patchify).

Example:
    >>> import torch
    >>> rgb, spikes, target, b, h, w = check_inputs(torch.rand(3, 32, 48), torch.ones(8, 32, 48))
    >>> rgb.shape, spikes.shape, target, (b, h, w)
    (torch.Size([1, 3, 32, 48]), torch.Size([1, 1, 8, 32, 48]), None, (1, 32, 48))
"""

from __future__ import annotations

from typing import Any

import torch

from spikegen.errors import ShapeError
from spikegen.models.config import MIN_SIZE
from spikegen.models.s3 import prepare_spikes

__all__ = ["as_images", "as_spikes", "tfp_frame", "check_inputs", "check_gamma", "grid_tokens", "patchify", "unpatchify"]


def as_images(x: Any, name: str) -> torch.Tensor:
    """Checked float images, batched and with 3 channels (a gray image is expanded, no copy).

    Shape:
        Input: ``[B, 3, H, W]``, ``[B, 1, H, W]``, ``[3, H, W]`` or ``[1, H, W]``, float in [0, 1].
        Output: ``[B, 3, H, W]``.

    Example:
        >>> as_images(torch.rand(1, 16, 16), "rgb").shape
        torch.Size([1, 3, 16, 16])
    """
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{name}: expected a float tensor [B,3,H,W] in [0,1], got {type(x).__name__}")
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ShapeError(f"{name}: expected [B,3,H,W] (or [B,1,H,W]) images, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ShapeError(f"{name}: expected float images in [0,1], got dtype {x.dtype}")
    if min(x.shape) == 0:
        raise ShapeError(f"{name}: empty tensor of shape {tuple(x.shape)}")
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def as_spikes(x: Any, name: str = "spikes") -> torch.Tensor:
    """Checked binary spike streams in the S3 encoder's layout (see ``s3.prepare_spikes``).

    Shape:
        Input: ``[B, T, H, W]``, ``[B, 1, T, H, W]`` or ``[T, H, W]``, {0, 1} of any dtype.
        Output: ``[B, 1, T, H, W]`` float (float input keeps its dtype, others become float32).

    Example:
        >>> as_spikes(torch.ones(8, 16, 16, dtype=torch.uint8)).shape
        torch.Size([1, 1, 8, 16, 16])
    """
    if isinstance(x, torch.Tensor) and x.ndim == 3:
        x = x.unsqueeze(0)
    return prepare_spikes(x, name=name)


def tfp_frame(spikes: Any, scale: float = 1.0) -> torch.Tensor:
    """The "TFP & Spike" pseudo-frame: the mean spike rate over the whole window x ``scale``,
    clamped to [0, 1], as 3 channels.

    Shape:
        Input: ``[B, T, H, W]``, ``[B, 1, T, H, W]`` or ``[T, H, W]`` binary spikes.
        Output: ``[B, 3, H, W]`` float32.

    Example:
        >>> tfp_frame(torch.ones(2, 8, 16, 16), scale=0.5).unique()
        tensor([0.5000])
    """
    rate = as_spikes(spikes).mean(dim=2, dtype=torch.float32)  # [B,1,H,W]
    return (rate * scale).clamp(0.0, 1.0).expand(-1, 3, -1, -1)


def check_inputs(
    rgb: Any, spikes: Any, target: Any = None, *, tfp_scale: float | None = None
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, int, int, int]:
    """Check a model's inputs against each other; returns ``(rgb, spikes, target, B, H, W)``.

    Args:
        rgb, spikes, target: the images, spike streams and clean images given (each may be
            ``None``; ``rgb`` and ``spikes`` not both).
        tfp_scale: when ``rgb`` is ``None``, use :func:`tfp_frame` of the spikes with this scale
            as the RGB input ("TFP & Spike"); ``None``: no RGB then.

    Shape:
        Input: ``rgb`` and ``target`` as :func:`as_images`, ``spikes`` as :func:`as_spikes`; the
        same batch and ``H, W``, at least :data:`~spikegen.models.config.MIN_SIZE` each.
        Output: ``rgb`` and ``target`` ``[B, 3, H, W]``, ``spikes`` ``[B, 1, T, H, W]`` (or ``None``).
    """
    if rgb is None and spikes is None:
        raise ShapeError("give rgb=, spikes= or both (got neither)")
    rgb = as_images(rgb, "rgb") if rgb is not None else None
    spikes = as_spikes(spikes) if spikes is not None else None
    if rgb is None and tfp_scale is not None:
        rgb = tfp_frame(spikes, tfp_scale)
    ref = rgb if rgb is not None else spikes[:, 0]
    b, (h, w) = ref.shape[0], ref.shape[-2:]
    if min(h, w) < MIN_SIZE:
        raise ShapeError(f"images and spike frames must be at least {MIN_SIZE}x{MIN_SIZE} pixels "
                         f"(the S3 encoder reduces them 8x and normalises over what is left), got {h}x{w}")
    if spikes is not None and (spikes.shape[0] != b or tuple(spikes.shape[-2:]) != (h, w)):
        raise ShapeError(
            f"spikes: batch and size {spikes.shape[0]}x{tuple(spikes.shape[-2:])} do not match rgb {b}x{(h, w)}"
        )
    if target is not None:
        target = as_images(target, "target")
        if target.shape[0] != b or tuple(target.shape[-2:]) != (h, w):
            raise ShapeError(f"target: shape {tuple(target.shape)} does not match the inputs ({b}, 3, {h}, {w})")
    return rgb, spikes, target, b, h, w


def check_gamma(gamma: float | torch.Tensor, batch: int, device: torch.device | str) -> torch.Tensor:
    """A given modality ratio as one value per sample, checked to lie in [0, 1].

    Shape:
        Input: a float, a 0-d tensor or ``[batch]``.
        Output: ``[batch]`` float32 on ``device``.

    Example:
        >>> check_gamma(0.25, 3, "cpu")
        tensor([0.2500, 0.2500, 0.2500])
    """
    g = torch.as_tensor(gamma, dtype=torch.float32, device=device)
    if g.ndim == 0:
        g = g.expand(batch)
    if g.shape != (batch,):
        raise ShapeError(f"gamma: expected a float or a tensor of {batch} per-sample values, got shape {tuple(g.shape)}")
    if not bool(((g >= 0) & (g <= 1)).all()):
        raise ShapeError(f"gamma: modality ratio must lie in [0, 1], got {gamma}")
    return g


def grid_tokens(x: torch.Tensor) -> torch.Tensor:
    """A feature map as a sequence of tokens, row-major.

    Shape:
        Input: ``[B, C, h, w]``. Output: ``[B, h*w, C]``.
    """
    return x.flatten(2).transpose(1, 2)


def patchify(latents: torch.Tensor, p: int) -> torch.Tensor:
    """Latent pixels as tokens of ``p x p`` patches (row-major grid; within a token the order is
    channel, then patch row, then patch column, as MAR's patchify).

    Shape:
        Input: ``[B, C, p*h, p*w]``. Output: ``[B, h*w, C*p*p]``.

    Example:
        >>> patchify(torch.randn(2, 16, 6, 8), 2).shape
        torch.Size([2, 12, 64])
    """
    b, c, hh, ww = latents.shape
    if hh % p or ww % p:
        raise ShapeError(f"latents: size {hh}x{ww} is not a multiple of patch_size {p}")
    x = latents.reshape(b, c, hh // p, p, ww // p, p)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (hh // p) * (ww // p), c * p * p)


def unpatchify(tokens: torch.Tensor, grid: tuple[int, int], p: int, channels: int) -> torch.Tensor:
    """The inverse of :func:`patchify`: tokens on an ``h x w`` grid back to latent pixels.

    Shape:
        Input: ``[B, h*w, channels*p*p]``. Output: ``[B, channels, p*h, p*w]``.

    Example:
        >>> z = torch.randn(2, 16, 6, 8)
        >>> torch.equal(unpatchify(patchify(z, 2), (3, 4), 2, 16), z)
        True
    """
    b, (h, w) = tokens.shape[0], grid
    x = tokens.reshape(b, h, w, channels, p, p).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, channels, h * p, w * p)
