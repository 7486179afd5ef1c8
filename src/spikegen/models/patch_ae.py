"""A linear patch autoencoder: the PCA of ``p x p`` RGB blocks as SpikeGen's latent.

Each non-overlapping ``p x p x 3`` block of the image (in ``[-1, 1]``) is mapped to
``latent_channels`` numbers by an affine map, and back by another:

    z = E (unshuffle_p(x) - mu),        x_hat = shuffle_p(D z + mu)

with ``E = V^T`` and ``D = V`` at the start, ``V`` the leading ``latent_channels``
eigenvectors of the covariance of training blocks (:func:`fit_patch_autoencoder`). With
``p = 4`` and 16 channels (the ``pca-f4-d16`` preset) this is the same 3x compression as the
``tiny-f4-d16`` convolutional VAE, but its encode -> decode PSNR is far higher: the optimal
linear code of a 48-value block keeps 99.9 % of its energy in 16 numbers, while a 0.7 M
parameter network trained for two CPU-hours does not come close (docs/model.md). Because ``V`` is
orthonormal, a latent error is the same pixel error up to a constant (Parseval), so SpikeGen's latent loss is a
pixel loss over each token's block; the latent is a frequency-ordered block transform, the
"patch pixel" latent of pixel-space diffusion models.

The module speaks the slice of :class:`diffusers.AutoencoderKL`'s interface SpikeGen uses
(``encode(x).latent_dist.mean / .sample() / .kl()``, ``decode(z).sample``, ``config`` with
``latent_channels``, ``scaling_factor``, ``shift_factor``, ``register_to_config``,
``save_pretrained``), so every code path that takes a VAE takes it. The two maps are
parameters: ``spikegen train vae`` fits them by PCA and can then refine them by gradient
descent on the L1 loss (``configs/pca_vae_f4.yaml``).

Example:
    >>> import torch
    >>> ae = PatchAutoencoder(patch=4, latent_channels=16)
    >>> z = ae.encode(torch.zeros(1, 3, 32, 32)).latent_dist.mean
    >>> tuple(z.shape), tuple(ae.decode(z).sample.shape)
    ((1, 16, 8, 8), (1, 3, 32, 32))
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from spikegen.errors import CheckpointError, ShapeError

__all__ = ["PatchAutoencoder", "PatchAEConfig", "fit_patch_autoencoder", "is_patch_autoencoder_folder"]

CLASS_NAME = "PatchAutoencoder"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"  # the diffusers file name: tools that look for it find it


class PatchAEConfig(dict):
    """The autoencoder's config: a dict with attribute access (as diffusers' ``FrozenDict``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class _Posterior:
    """A point posterior (the code is deterministic): ``sample()`` is the mean, ``kl()`` is 0."""

    mean: torch.Tensor

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.mean

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        return self.mean.new_zeros(self.mean.shape[0])


@dataclass
class _EncodeOut:
    latent_dist: _Posterior


@dataclass
class _DecodeOut:
    sample: torch.Tensor


class PatchAutoencoder(nn.Module):
    """Affine encoder / decoder of ``patch x patch`` blocks (see the module docstring).

    Args:
        patch: block side ``p`` = the spatial down-sampling factor.
        in_channels: image channels (3).
        latent_channels: numbers per block (at most ``in_channels * p * p``).
        scaling_factor, shift_factor: the latent scale, as in diffusers (SpikeGen works on
            ``(z - shift) * scale``).
        whiten: how :func:`fit_patch_autoencoder` fits it: each component divided by its
            standard deviation (every latent channel of unit variance; the same ceiling, but a
            latent error is no longer the same pixel error).

    Shape:
        ``encode``: ``[B, C_in, H, W]`` in ``[-1, 1]`` with ``H, W`` multiples of ``p`` ->
        ``[B, latent_channels, H/p, W/p]``; ``decode``: the inverse shapes.
    """

    def __init__(self, patch: int = 4, in_channels: int = 3, latent_channels: int = 16,
                 scaling_factor: float = 1.0, shift_factor: float = 0.0, whiten: bool = False) -> None:
        super().__init__()
        patch, in_channels, latent_channels = int(patch), int(in_channels), int(latent_channels)
        d = in_channels * patch * patch
        if patch < 1 or not 1 <= latent_channels <= d:
            raise ValueError(f"PatchAutoencoder: need patch >= 1 and 1 <= latent_channels <= {d}, "
                             f"got patch={patch}, latent_channels={latent_channels}")
        self.config = PatchAEConfig(_class_name=CLASS_NAME, patch=patch, in_channels=in_channels,
                                    out_channels=in_channels, latent_channels=latent_channels,
                                    downsample_factor=patch, scaling_factor=float(scaling_factor),
                                    shift_factor=float(shift_factor), whiten=bool(whiten))
        eye = torch.eye(d)[:, :latent_channels]  # until fitted: the first latent_channels block values
        self.enc_weight = nn.Parameter(eye.T.contiguous())  # [C, d]
        self.dec_weight = nn.Parameter(eye.clone())         # [d, C]
        self.mean = nn.Parameter(torch.zeros(d))            # [d], in [-1, 1] units

    # ------------------------------------------------------------------ the diffusers slice
    def register_to_config(self, **kwargs: Any) -> None:
        self.config.update(kwargs)

    def _check(self, x: torch.Tensor, channels: int, what: str) -> None:
        if x.ndim != 4 or x.shape[1] != channels:
            raise ShapeError(f"{what}: expected [B,{channels},H,W], got shape {tuple(x.shape)}")

    def encode(self, x: torch.Tensor, return_dict: bool = True) -> _EncodeOut:
        """``[B, C_in, H, W]`` in [-1, 1] (``H, W`` multiples of ``patch``) -> posterior of
        ``[B, latent_channels, H/p, W/p]``."""
        p = self.config.patch
        self._check(x, self.config.in_channels, "encode")
        if x.shape[-2] % p or x.shape[-1] % p:
            raise ShapeError(f"encode: H and W must be multiples of {p}, got {tuple(x.shape[-2:])} (pad first)")
        blocks = F.pixel_unshuffle(x, p) - self.mean.view(1, -1, 1, 1)
        z = F.conv2d(blocks, self.enc_weight[:, :, None, None])
        return _EncodeOut(_Posterior(z))

    def decode(self, z: torch.Tensor, return_dict: bool = True) -> _DecodeOut:
        """``[B, latent_channels, h, w]`` -> ``[B, C_in, p h, p w]`` in about [-1, 1]."""
        self._check(z, self.config.latent_channels, "decode")
        blocks = F.conv2d(z, self.dec_weight[:, :, None, None]) + self.mean.view(1, -1, 1, 1)
        return _DecodeOut(F.pixel_shuffle(blocks, self.config.patch))

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | os.PathLike, safe_serialization: bool = True, **_: Any) -> None:
        """``config.json`` + ``diffusion_pytorch_model.safetensors`` (never a pickle)."""
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(dict(self.config), indent=2) + "\n")
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}, str(out / WEIGHTS_NAME))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "PatchAutoencoder":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        src = Path(directory)
        try:
            cfg = json.loads((src / "config.json").read_text())
            ae = cls(patch=cfg["patch"], in_channels=cfg.get("in_channels", 3), latent_channels=cfg["latent_channels"],
                     scaling_factor=cfg.get("scaling_factor", 1.0), shift_factor=cfg.get("shift_factor", 0.0) or 0.0,
                     whiten=cfg.get("whiten", False))
            # float32 whatever the file holds (a float16 file is half the size of a few KB)
            ae.load_state_dict({k: v.float() for k, v in load_file(str(src / WEIGHTS_NAME)).items()})
        except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as exc:
            raise CheckpointError(f"{src}: not a PatchAutoencoder folder: {type(exc).__name__}: {exc}") from None
        return ae


def is_patch_autoencoder_folder(path: str | os.PathLike) -> bool:
    """Whether ``path/config.json`` names a :class:`PatchAutoencoder`."""
    try:
        return json.loads((Path(path) / "config.json").read_text()).get("_class_name") == CLASS_NAME
    except (OSError, ValueError, AttributeError):
        return False


@torch.no_grad()
def fit_patch_autoencoder(ae: PatchAutoencoder, images: Iterable[torch.Tensor]) -> float:
    """Set ``ae``'s maps to the PCA of the blocks of ``images`` (batches ``[B, C_in, H, W]``
    in ``[0, 1]``, ``H, W`` cropped to multiples of ``patch``); with ``ae.config.whiten`` each
    component is divided by its standard deviation (the decoder multiplies it back). Eigenvector
    signs are fixed (largest entry positive), so the fit is deterministic.

    Returns:
        The share of the blocks' variance the kept components carry.

    Example:
        >>> ae = PatchAutoencoder(patch=2, latent_channels=12)
        >>> round(fit_patch_autoencoder(ae, [torch.rand(2, 3, 8, 8)]), 6)
        1.0
    """
    p, d = ae.config.patch, ae.enc_weight.shape[1]
    n, s1, s2 = 0, torch.zeros(d, dtype=torch.float64), torch.zeros(d, d, dtype=torch.float64)
    for batch in images:
        if batch.ndim == 3:
            batch = batch[None]
        ae._check(batch, ae.config.in_channels, "fit_patch_autoencoder")
        h, w = batch.shape[-2] // p * p, batch.shape[-1] // p * p
        b = F.pixel_unshuffle(batch[..., :h, :w].double() * 2 - 1, p).permute(0, 2, 3, 1).reshape(-1, d)
        n += b.shape[0]
        s1 += b.sum(0)
        s2 += b.T @ b
    if n < 2:
        raise ShapeError("fit_patch_autoencoder: no image blocks given")
    mu = s1 / n
    cov = (s2 - n * torch.outer(mu, mu)) / (n - 1)
    ev, vec = torch.linalg.eigh(cov)  # ascending
    c = ae.config.latent_channels
    v = vec[:, -c:].flip(1)  # [d, C], largest variance first
    sign = torch.sign(v.gather(0, v.abs().argmax(0, keepdim=True)))
    v = v * sign
    std = ev.flip(0)[:c].clamp_min(1e-12).sqrt() if ae.config.get("whiten") else torch.ones(c, dtype=v.dtype)
    dev, dt = ae.mean.device, ae.mean.dtype
    ae.mean.copy_(mu.to(dev, dt))
    ae.enc_weight.copy_((v / std).T.to(dev, dt))
    ae.dec_weight.copy_((v * std).to(dev, dt))
    total = float(ev.clamp_min(0).sum())
    return float(ev.flip(0)[:c].clamp_min(0).sum()) / total if total > 0 else 1.0
