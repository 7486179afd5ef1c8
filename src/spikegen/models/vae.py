"""The RGB image VAE: a thin layer over diffusers' :class:`~diffusers.AutoencoderKL`.

SpikeGen works in the latent space of an 8x down-sampling, 16-channel KL autoencoder (the
official release uses the architecture of ``ostris/vae-kl-f8-d16``). This module

* builds such a VAE from a preset (:func:`build_vae`): ``"kl-f8-d16"`` (the SD VAE widths,
  ~84M parameters) or ``"tiny-f8-d16"`` (small enough to train on a laptop CPU);
* loads one from a local folder written by ``save_pretrained`` (or a hub id where a network
  exists) with a clear :class:`~spikegen.errors.CheckpointError` when it cannot
  (:func:`load_vae`);
* keeps the **latent scale** in the VAE's own config (``scaling_factor``, plus the optional
  ``shift_factor``), computed for *this* VAE by :func:`estimate_latent_scale` (1 / std of the
  latents over a set of images) -- never a constant borrowed from another VAE;
* also builds and loads the linear PCA patch autoencoder (``"pca-f4-d16"``,
  :class:`spikegen.models.patch_ae.PatchAutoencoder`), which speaks the same interface;
* encodes and decodes images of any size (:func:`encode_images`, :func:`decode_latents`):
  ``H`` and ``W`` are padded up to a multiple of 8 (reflect padding) and the output is
  cropped back, so the PKU camera's 250x400 frames work as they are.

Images are float ``[B, 3, H, W]`` in ``[0, 1]``; the VAE itself sees ``[-1, 1]``. Latents are
returned already scaled: ``(z - shift_factor) * scaling_factor``.

Example:
    >>> import torch
    >>> from spikegen.models.vae import build_vae, encode_images, decode_latents
    >>> vae = build_vae("tiny-f8-d16")
    >>> img = torch.rand(1, 3, 50, 70)
    >>> z = encode_images(vae, img)
    >>> z.shape
    torch.Size([1, 16, 7, 9])
    >>> decode_latents(vae, z, size=(50, 70)).shape
    torch.Size([1, 3, 50, 70])
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable

import torch
import torch.nn.functional as F

from spikegen.errors import CheckpointError, ShapeError

__all__ = [
    "VAE_PRESETS",
    "build_vae",
    "load_vae",
    "estimate_latent_scale",
    "estimate_latent_clip",
    "clip_from_latents",
    "abs_quantile",
    "set_latent_scale",
    "latent_scale",
    "vae_downsample_factor",
    "pad_to_multiple",
    "encode_images",
    "decode_latents",
]

#: Architectures by name. ``kl-f8-d16`` is the standard Stable-Diffusion VAE layout with 16
#: latent channels (the architecture of ``ostris/vae-kl-f8-d16``); ``tiny-f8-d16`` keeps the
#: same interface (8x down, 16 channels) with narrow blocks and one layer per block.
VAE_PRESETS: dict[str, dict] = {
    "kl-f8-d16": dict(
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=16,
        norm_num_groups=32,
        mid_block_add_attention=True,
    ),
    "tiny-f8-d16": dict(
        block_out_channels=(16, 32, 64, 64),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=8,
        mid_block_add_attention=True,
    ),
    # 4x down-sampling, 16 channels: 3x less compression than f8-d16, used with tokens of 2x2
    # latent patches (SpikeGenConfig.patch_size=2) so the token grid stays H/8 x W/8. Fully
    # convolutional (no mid-block attention): cost and memory grow linearly with the image,
    # and large photos can be decoded in tiles.
    "tiny-f4-d16": dict(
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=8,
        mid_block_add_attention=False,
    ),
    # A wider f8-d16 (4x the tiny one's parameters), the other candidate of docs/model.md.
    "small-f8-d16": dict(
        block_out_channels=(32, 64, 128, 128),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=8,
        mid_block_add_attention=True,
    ),
    # Not a network: the PCA of 4x4 RGB blocks, 16 numbers each (spikegen.models.patch_ae).
    # The same 3x compression as tiny-f4-d16 with a far higher encode -> decode ceiling;
    # `spikegen train vae` fits it in seconds (configs/pca_vae_f4.yaml).
    "pca-f4-d16": dict(kind="patch", patch=4, latent_channels=16),
    # the same, every component scaled to unit variance (a candidate latent for diffusion)
    "pcaw-f4-d16": dict(kind="patch", patch=4, latent_channels=16, whiten=True),
}


def build_vae(preset: str = "tiny-f8-d16", *, scaling_factor: float = 1.0, **overrides) -> "AutoencoderKL":
    """A freshly initialised :class:`diffusers.AutoencoderKL` of a named architecture.

    Args:
        preset: a key of :data:`VAE_PRESETS` (``"kl-f8-d16"`` or ``"tiny-f8-d16"``).
        scaling_factor: initial latent scale written to the config. A new VAE has no meaningful
            scale yet: after training it call :func:`estimate_latent_scale` and
            :func:`set_latent_scale`.
        **overrides: any other ``AutoencoderKL`` config argument (e.g. ``block_out_channels``).

    Returns:
        The VAE in eval mode, on the CPU, in float32.

    Example:
        >>> vae = build_vae("tiny-f8-d16")
        >>> vae.config.latent_channels, vae_downsample_factor(vae)
        (16, 8)
    """
    if preset not in VAE_PRESETS:
        raise ValueError(f"unknown VAE preset {preset!r}; expected one of {sorted(VAE_PRESETS)}")
    cfg = dict(VAE_PRESETS[preset])
    cfg.update(overrides)
    if cfg.pop("kind", None) == "patch":
        from spikegen.models.patch_ae import PatchAutoencoder

        return PatchAutoencoder(scaling_factor=float(scaling_factor), **cfg).eval()
    from diffusers import AutoencoderKL

    n = len(cfg["block_out_channels"])
    cfg.setdefault("down_block_types", ("DownEncoderBlock2D",) * n)
    cfg.setdefault("up_block_types", ("UpDecoderBlock2D",) * n)
    cfg.setdefault("in_channels", 3)
    cfg.setdefault("out_channels", 3)
    cfg["block_out_channels"] = tuple(cfg["block_out_channels"])
    cfg["down_block_types"] = tuple(cfg["down_block_types"])
    cfg["up_block_types"] = tuple(cfg["up_block_types"])
    vae = AutoencoderKL(scaling_factor=float(scaling_factor), force_upcast=False, **cfg)
    return vae.eval()


def load_vae(
    path_or_id: str | os.PathLike,
    *,
    subfolder: str | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> "AutoencoderKL":
    """Load an :class:`~diffusers.AutoencoderKL` from a local folder or a hub id.

    Args:
        path_or_id: a folder written by ``vae.save_pretrained(folder)`` (``config.json`` +
            ``diffusion_pytorch_model.safetensors``), or a Hugging Face hub id such as
            ``"ostris/vae-kl-f8-d16"`` (only where a network or a filled local cache exists;
            nothing is downloaded when ``HF_HUB_OFFLINE=1``).
        subfolder: folder inside ``path_or_id`` holding the VAE (e.g. ``"vae"``).
        device, dtype: where to put the weights.

    Raises:
        CheckpointError: the folder does not exist and the id cannot be fetched, or the files
            are missing, corrupt or do not describe an ``AutoencoderKL``.

    Example:
        >>> vae = load_vae("checkpoints/vae")     # doctest: +SKIP
    """
    src = Path(path_or_id).expanduser()
    where = src / subfolder if subfolder else src
    local = src.exists()
    if local:
        if not where.is_dir():
            raise CheckpointError(f"{where}: not a VAE folder (expected a directory with config.json)")
        if not (where / "config.json").is_file():
            raise CheckpointError(f"{where}: no config.json; not a diffusers AutoencoderKL folder")
        if not any(where.glob("*.safetensors")) and not any(where.glob("*.bin")):
            raise CheckpointError(f"{where}: no weights file (*.safetensors) next to config.json")
        from spikegen.models.patch_ae import PatchAutoencoder, is_patch_autoencoder_folder

        if is_patch_autoencoder_folder(where):
            vae = PatchAutoencoder.from_pretrained(where).eval().requires_grad_(False)
            return vae.to(device=device, dtype=dtype) if device is not None or dtype is not None else vae
    else:
        s = str(path_or_id)
        looks_like_id = s.count("/") == 1 and not s.startswith((".", "/", "~")) and "\\" not in s
        if not looks_like_id:
            raise CheckpointError(f"{path_or_id}: no such VAE folder (and not a hub id 'owner/name')")
    from diffusers import AutoencoderKL

    try:
        kwargs = dict(subfolder=subfolder) if subfolder else {}
        if local:
            kwargs["local_files_only"] = True
        vae = AutoencoderKL.from_pretrained(str(src) if local else str(path_or_id), **kwargs)
    except Exception as exc:  # diffusers raises OSError/ValueError/EnvironmentError/HTTP errors
        kind = "folder" if local else "hub id (no local folder of that name; offline or not found)"
        raise CheckpointError(
            f"{path_or_id}: cannot load an AutoencoderKL from this {kind}: {type(exc).__name__}: {exc}"
        ) from None
    vae = vae.eval().requires_grad_(False)
    if device is not None or dtype is not None:
        vae = vae.to(device=device, dtype=dtype)
    return vae


def vae_downsample_factor(vae) -> int:
    """The spatial down-sampling factor of a VAE (8 for the f8 presets, 4 for the f4 ones)."""
    f = vae.config.get("downsample_factor", None)  # a PatchAutoencoder says it
    return int(f) if f else 2 ** (len(vae.config.block_out_channels) - 1)


def latent_scale(vae) -> tuple[float, float]:
    """``(scaling_factor, shift_factor)`` from the VAE's config (shift 0.0 when unset)."""
    scale = float(vae.config.scaling_factor)
    shift = vae.config.get("shift_factor", None)
    return scale, float(shift or 0.0)


def set_latent_scale(vae, scaling_factor: float, shift_factor: float | None = None) -> None:
    """Store the latent scale (and optional shift) in the VAE's config, where it is saved.

    Example:
        >>> vae = build_vae("tiny-f8-d16")
        >>> set_latent_scale(vae, 0.5)
        >>> vae.config.scaling_factor
        0.5
    """
    if not (math.isfinite(scaling_factor) and scaling_factor > 0):
        raise ValueError(f"scaling_factor must be a positive finite number, got {scaling_factor}")
    kw = dict(scaling_factor=float(scaling_factor))
    if shift_factor is not None:
        kw["shift_factor"] = float(shift_factor)
    vae.register_to_config(**kw)


def _check_images(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise ShapeError(f"{name}: expected a torch.Tensor [B,3,H,W], got {type(images).__name__}")
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ShapeError(f"{name}: expected [B,3,H,W] (or [B,1,H,W] gray) images, got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ShapeError(f"{name}: expected float images in [0,1], got dtype {images.dtype}")
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return images


def pad_to_multiple(x: torch.Tensor, multiple: int = 8, mode: str = "reflect") -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the last two dims of ``x`` up to a multiple (bottom and right only).

    ``reflect`` padding is used where the input is large enough and ``replicate`` otherwise
    (reflect needs the pad to be smaller than the size).

    Args:
        x: ``[..., H, W]``.
        multiple: the multiple to pad to.
        mode: ``"reflect"``, ``"replicate"`` or ``"constant"`` (zeros).

    Returns:
        ``(padded, (H, W))`` -- the padded tensor and the original size, for cropping back.

    Example:
        >>> y, size = pad_to_multiple(torch.zeros(1, 3, 50, 70))
        >>> tuple(y.shape), size
        ((1, 3, 56, 72), (50, 70))
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    if mode == "reflect" and (ph >= h or pw >= w):
        mode = "replicate"
    lead = x.shape[:-2]
    x4 = x.reshape(-1, 1, h, w) if x.ndim != 4 else x
    if mode == "constant":
        y = F.pad(x4, (0, pw, 0, ph))
    else:
        y = F.pad(x4, (0, pw, 0, ph), mode=mode)
    return y.reshape(*lead, h + ph, w + pw), (h, w)


def encode_images(
    vae,
    images: torch.Tensor,
    *,
    sample: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Scaled VAE latents of images of any size.

    Args:
        vae: an ``AutoencoderKL``.
        images: ``[B, 3, H, W]`` (or ``[B, 1, H, W]``) float in ``[0, 1]``.
        sample: draw from the posterior instead of taking its mean (the default, deterministic).
        generator: for ``sample=True``.

    Returns:
        ``[B, C, ceil(H/8), ceil(W/8)]`` latents ``(z - shift_factor) * scaling_factor``,
        in the VAE's dtype.

    Example:
        >>> vae = build_vae("tiny-f8-d16")
        >>> encode_images(vae, torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 16, 8, 8])
    """
    images = _check_images(images)
    f = vae_downsample_factor(vae)
    p = next(vae.parameters())
    x, _ = pad_to_multiple(images.to(device=p.device, dtype=p.dtype), f)
    dist = vae.encode(x * 2.0 - 1.0).latent_dist
    z = dist.sample(generator=generator) if sample else dist.mean
    scale, shift = latent_scale(vae)
    return (z - shift) * scale


def decode_latents(vae, latents: torch.Tensor, *, size: tuple[int, int] | None = None, clamp: bool = True) -> torch.Tensor:
    """Images from scaled latents (the inverse of :func:`encode_images`).

    Args:
        vae: an ``AutoencoderKL``.
        latents: ``[B, C, h, w]`` scaled latents.
        size: ``(H, W)`` to crop the decoded ``[B, 3, 8h, 8w]`` image to (default: no crop).
        clamp: clamp the output to ``[0, 1]``.

    Returns:
        ``[B, 3, H, W]`` float images in ``[0, 1]`` (the VAE's dtype).

    Example:
        >>> vae = build_vae("tiny-f8-d16")
        >>> decode_latents(vae, torch.zeros(1, 16, 7, 9), size=(50, 70)).shape
        torch.Size([1, 3, 50, 70])
    """
    if latents.ndim != 4 or latents.shape[1] != vae.config.latent_channels:
        raise ShapeError(
            f"latents: expected [B,{vae.config.latent_channels},h,w], got shape {tuple(latents.shape)}"
        )
    p = next(vae.parameters())
    scale, shift = latent_scale(vae)
    z = latents.to(device=p.device, dtype=p.dtype) / scale + shift
    x = vae.decode(z).sample
    x = (x + 1.0) * 0.5
    if size is not None:
        h, w = size
        if h > x.shape[-2] or w > x.shape[-1]:
            raise ShapeError(f"size {size} is larger than the decoded image {tuple(x.shape[-2:])}")
        x = x[..., :h, :w]
    return x.clamp(0.0, 1.0) if clamp else x


@torch.no_grad()
def estimate_latent_scale(
    vae,
    images: torch.Tensor | Iterable[torch.Tensor],
    *,
    batch_size: int = 8,
    sample: bool = False,
    max_batches: int | None = None,
) -> float:
    """``1 / std`` of the VAE's (unscaled, unshifted) latents over a set of images.

    This is the per-VAE latent scale (the diffusers ``scaling_factor``). Store it with
    :func:`set_latent_scale` so it is saved with the VAE.

    Args:
        vae: an ``AutoencoderKL``.
        images: a ``[N, 3, H, W]`` tensor in ``[0, 1]``, or an iterable of such batches
            (e.g. a ``DataLoader`` yielding tensors).
        batch_size: batch size used when ``images`` is one tensor.
        sample: use posterior samples (as LDM's original recipe) instead of means.
        max_batches: stop after this many batches.

    Returns:
        The scale as a Python float.

    Example:
        >>> vae = build_vae("tiny-f8-d16")
        >>> s = estimate_latent_scale(vae, torch.rand(4, 3, 32, 32))
        >>> s > 0
        True
    """
    if isinstance(images, torch.Tensor):
        images = _check_images(images)
        batches = (images[i : i + batch_size] for i in range(0, images.shape[0], batch_size))
    else:
        batches = iter(images)
    f = vae_downsample_factor(vae)
    p = next(vae.parameters())
    count, s1, s2 = 0, 0.0, 0.0
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        batch = _check_images(batch)
        x, _ = pad_to_multiple(batch.to(device=p.device, dtype=p.dtype), f)
        dist = vae.encode(x * 2.0 - 1.0).latent_dist
        z = (dist.sample() if sample else dist.mean).double()
        count += z.numel()
        s1 += float(z.sum())
        s2 += float((z * z).sum())
    if count < 2:
        raise ShapeError("estimate_latent_scale: no images given")
    mean = s1 / count
    var = max(s2 / count - mean * mean, 0.0) * count / (count - 1)
    if var <= 0 or not math.isfinite(var):
        raise ValueError("estimate_latent_scale: latents have zero or non-finite variance")
    return 1.0 / math.sqrt(var)


@torch.no_grad()
def estimate_latent_clip(vae, images: torch.Tensor, *, q: float = 0.999, step: float = 0.5, batch_size: int = 8,
                         per_channel: bool = False) -> float | list[float]:
    """A ``sample_clip_x0`` for SpikeGen models on this VAE's latent: the ``q``-quantile of
    the absolute scaled latent values of ``images`` (training crops, never validation
    images), rounded **up** to a multiple of ``step``.

    Sampling clamps every clean-latent estimate to ``[-clip, clip]``: a clip inside the range
    that real latents take cuts image content (the tiny f4 latent has heavier tails than the
    f8 one: 99.9 % of its values lie within 5.1, against 3.5), a much wider one lets the
    estimates of a briefly trained head blow up. docs/model.md ("Choosing clip_x0").

    Args:
        vae: an ``AutoencoderKL`` with its latent scale set.
        images: ``[N, 3, H, W]`` in ``[0, 1]``.
        q: the quantile, in (0, 1].
        step: round up to a multiple of this (> 0).
        per_channel: the rule on each latent channel alone (one bound per channel), for a
            latent whose channels differ in range (the PCA patch autoencoder's first component
            spans about +-10, its last ones +-1).

    Returns:
        The clip as a Python float (``per_channel``: a list of ``latent_channels`` floats).

    Example:
        >>> vae = build_vae("tiny-f8-d16")
        >>> estimate_latent_clip(vae, torch.rand(2, 3, 32, 32)) > 0
        True
    """
    images = _check_images(images)
    if images.shape[0] == 0:
        raise ShapeError("estimate_latent_clip: no images given")
    z = torch.cat([encode_images(vae, images[i : i + batch_size]).float()
                   for i in range(0, images.shape[0], batch_size)])
    return clip_from_latents(z, q=q, step=step, per_channel=per_channel)


def clip_from_latents(z: torch.Tensor, *, q: float = 0.999, step: float = 0.5,
                      per_channel: bool = False) -> float | list[float]:
    """The rule of :func:`estimate_latent_clip` on scaled latents already encoded: the
    ``q``-quantile of ``|z|`` rounded up to a multiple of ``step`` (``per_channel``: of each
    channel ``z[:, c]`` of ``[N, C, ...]`` latents, one bound per channel)."""
    if not (0.0 < q <= 1.0) or not step > 0:
        raise ValueError(f"estimate_latent_clip: need 0 < q <= 1 and step > 0, got q={q}, step={step}")
    if per_channel:
        return [clip_from_latents(z[:, c], q=q, step=step) for c in range(z.shape[1])]
    return math.ceil(abs_quantile(z, q) / step) * step


def abs_quantile(z: torch.Tensor, q: float) -> float:
    """The ``q``-quantile of ``|z|`` (the ``ceil(q * N)``-th smallest value; ``torch.quantile``
    caps the input size)."""
    a = z.detach().abs().flatten()
    return float(a.kthvalue(max(1, math.ceil(q * a.numel()))).values)
