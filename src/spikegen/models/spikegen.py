"""SpikeGen: dual-modality (blurry RGB + spike stream) latent generation (paper section 3.2-3.3).

The model, end to end::

    rgb  [B,3,H,W] --VAE encoder (frozen)--> [B,16,p*h,p*w] --patchify p--> [B,N,16*p*p] --proj_rgb--> a [B,N,D]
    spikes [B,T,H,W] ---------S3 encoder---> [B,D,h,w]  --proj_s3--->  s   [B,N,D]
    tokens = LayerNorm((1 - g) * a + g * s)                 (h = ceil(H/8), N = h*w)
    ViT encoder (RoPE 2-D) -> decoder_embed -> + mask token -> ViT decoder (RoPE 2-D) -> z [B,N,D']
    per-token diffusion head(z) -> clean latent tokens [B,N,16*p*p] -> unpatchify -> VAE decoder -> [B,3,H,W]

* ``p = config.patch_size`` (MAR's patchify): a token carries a ``p x p`` patch of latent
  pixels. With an 8x VAE ``p = 1``; with a 4x VAE (``tiny-f4-d16``) ``p = 2``, so the token
  grid is always ``H/8 x W/8`` and the S3 encoder, the RoPE grid and the transformer's cost do
  not change (``vae_stride * patch_size == 8``). Images are padded (reflect) to a multiple of 8
  before encoding, so every latent grid splits into whole patches; outputs are cropped back.

* ``g`` is the **modality ratio**: 0 = RGB only, 1 = spikes only. In training it is drawn per
  sample from N(0.5, 1) truncated to [0, 1] (exact truncation, inverse CDF), and the target is
  the latent of the **colour-faded** clean image ``(1 - g) * I + g * gray(I)``.
* When ``g`` is exactly 0 (or 1) at inference the unused branch is not computed at all, so the
  output cannot depend on the ignored modality.
* All tokens are generated in one step by default; ``ar_steps = K > 1`` runs MAR's masked,
  cosine-scheduled K-step generation for a model trained with ``mask_ratio_min < 1``.

Example:
    >>> import torch
    >>> from spikegen.models import SpikeGen, SpikeGenConfig
    >>> model = SpikeGen.from_config(SpikeGenConfig.preset("tiny"))
    >>> rgb = torch.rand(2, 3, 64, 64)
    >>> spikes = (torch.rand(2, 8, 64, 64) < 0.2).to(torch.uint8)
    >>> losses = model(rgb=rgb, spikes=spikes, target=rgb)
    >>> sorted(losses)
    ['diffusion', 'loss']
    >>> model.sample(rgb=rgb, spikes=spikes, steps=5).shape
    torch.Size([2, 3, 64, 64])
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn as nn

from spikegen.degrade import color_fade
from spikegen.errors import CheckpointError, OutputExistsError, ShapeError
from spikegen.models.diffusion_head import SAMPLERS, SMALL_WORK_FOR_ONE_THREAD, DiffusionHead, cpu_threads
from spikegen.models.s3 import S3Encoder, prepare_spikes
from spikegen.models.transformer import Transformer
from spikegen.models.vae import (
    VAE_PRESETS,
    build_vae,
    decode_latents,
    encode_images,
    load_vae,
    pad_to_multiple,
    vae_downsample_factor,
)

__all__ = ["SpikeGen", "SpikeGenConfig", "SampleOutput", "count_parameters", "sample_gamma", "CONFIG_NAME", "WEIGHTS_NAME"]

#: Pixels per token side: the S3 encoder's total stride (three stride-2 blocks).
TOKEN_STRIDE = 8
#: Smallest image side the model takes (two tokens: instance norm needs more than one value).
MIN_SIZE = 2 * TOKEN_STRIDE

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
VAE_SUBFOLDER = "vae"


# --------------------------------------------------------------------------------------- config
@dataclass
class SpikeGenConfig:
    """Everything needed to rebuild a :class:`SpikeGen` (saved as ``config.json``).

    Presets (:meth:`preset`): ``"tiny"`` (trains and samples on a 2-core CPU), ``"base"`` (the
    paper's Table 5: width 768, 12 + 12 layers, 12 heads; MAR-B's head, 6 x 1024) and
    ``"large"`` (1024, 16 + 16 layers, 16 heads; MAR-L's head, 8 x 1280).

    Example:
        >>> cfg = SpikeGenConfig.preset("base")
        >>> cfg.encoder_width, cfg.encoder_depth, cfg.head_depth
        (768, 12, 6)
        >>> SpikeGenConfig.from_dict(cfg.to_dict()) == cfg
        True
    """

    # RGB VAE: a preset name of spikegen.models.vae.VAE_PRESETS, a local folder or a hub id
    vae: str = "kl-f8-d16"
    latent_channels: int = 16
    vae_stride: int = 8
    # latent pixels per token side (MAR's patchify): vae_stride * patch_size must be 8, the S3
    # encoder's stride, so the token grid is H/8 x W/8 whatever the VAE
    patch_size: int = 1
    # S3 spike encoder widths (stem + three stride-2 blocks); its output width = encoder_width
    s3_channels: tuple[int, ...] = (32, 64, 128, 256)
    # ViT encoder / decoder
    encoder_width: int = 768
    encoder_depth: int = 12
    encoder_heads: int = 12
    decoder_width: int = 768
    decoder_depth: int = 12
    decoder_heads: int = 12
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6
    rope_base: float = 10000.0
    attn_dropout: float = 0.1
    proj_dropout: float = 0.1
    grad_checkpointing: bool = False
    # per-token diffusion head
    head_width: int = 1024
    head_depth: int = 6
    diffusion_steps: int = 1000
    diffusion_batch_mul: int = 4
    # modality ratio g ~ N(gamma_mean, gamma_std^2) truncated to [0, 1] in training
    gamma_mean: float = 0.5
    gamma_std: float = 1.0
    # "TFP & Spike": use the mean spike rate over the window (x tfp_scale) as the RGB input
    tfp_rgb: bool = False
    tfp_scale: float = 1.0
    # masked (MAR) training for K-step generation: mask ratio ~ truncnorm on [mask_ratio_min, 1]
    # (centre 1, std 0.25). 1.0 = always all tokens masked = one-step model (the paper's).
    mask_ratio_min: float = 1.0
    # target latent: posterior mean (False) or a posterior sample (True)
    target_sample_posterior: bool = False
    # sampling defaults
    sample_steps: int = 100
    sampler: str = "ddim"
    sample_clip_x0: float | None = None  # clamp clean-latent estimates (None = MAR: no clamp)
    sample_temperature: float = 1.0  # default noise temperature of sample() (0 = deterministic)

    PRESETS = ("tiny", "base", "large")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "SpikeGenConfig":
        """A named configuration, with any field overridden.

        Example:
            >>> SpikeGenConfig.preset("tiny", head_depth=3).head_depth
            3
        """
        presets: dict[str, dict[str, Any]] = {
            "tiny": dict(
                # the 4x autoencoder with 2x2-patch tokens (docs/model.md: its ceiling is far
                # above the tiny f8 one at equal training time)
                vae="tiny-f4-d16",
                vae_stride=4,
                patch_size=2,
                s3_channels=(8, 16, 32, 64),
                encoder_width=128,
                encoder_depth=2,
                encoder_heads=4,
                decoder_width=128,
                decoder_depth=2,
                decoder_heads=4,
                attn_dropout=0.0,
                proj_dropout=0.0,
                head_width=128,
                head_depth=2,
                diffusion_batch_mul=4,
                sample_steps=25,
            ),
            "base": dict(),
            "large": dict(
                encoder_width=1024,
                encoder_depth=16,
                encoder_heads=16,
                decoder_width=1024,
                decoder_depth=16,
                decoder_heads=16,
                head_width=1280,
                head_depth=8,
            ),
        }
        if name not in presets:
            raise ValueError(f"unknown SpikeGen preset {name!r}; expected one of {sorted(presets)}")
        cfg = dataclasses.replace(cls(), **presets[name])
        return cfg.replace(**overrides) if overrides else cfg

    def replace(self, **changes: Any) -> "SpikeGenConfig":
        """A copy with some fields changed (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["s3_channels"] = list(d["s3_channels"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SpikeGenConfig":
        """Build from a dict (e.g. parsed ``config.json``); unknown keys raise ``ValueError``."""
        names = {f.name for f in fields(cls)}
        extra = sorted(k for k in d if k not in names and not k.startswith("_"))
        if extra:
            raise ValueError(f"unknown SpikeGenConfig field(s): {extra}")
        kw = {k: v for k, v in d.items() if k in names}
        if "s3_channels" in kw:
            kw["s3_channels"] = tuple(int(c) for c in kw["s3_channels"])
        return cls(**kw)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def validate(self) -> None:
        """Raise ``ValueError`` on inconsistent settings."""
        for w, h, name in ((self.encoder_width, self.encoder_heads, "encoder"), (self.decoder_width, self.decoder_heads, "decoder")):
            if w % h or (w // h) % 4:
                raise ValueError(f"{name}_width / {name}_heads must be an integer divisible by 4 (2-D RoPE), got {w}/{h}")
        if len(self.s3_channels) != 4:
            raise ValueError(f"s3_channels must have 4 entries, got {self.s3_channels}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if not 0.0 < self.mask_ratio_min <= 1.0:
            raise ValueError(f"mask_ratio_min must be in (0, 1], got {self.mask_ratio_min}")
        if self.gamma_std <= 0:
            raise ValueError(f"gamma_std must be > 0, got {self.gamma_std}")
        if self.diffusion_batch_mul < 1:
            raise ValueError(f"diffusion_batch_mul must be >= 1, got {self.diffusion_batch_mul}")
        if self.patch_size < 1 or self.vae_stride * self.patch_size != TOKEN_STRIDE:
            raise ValueError(
                f"vae_stride x patch_size must be {TOKEN_STRIDE} (the S3 encoder's stride), got "
                f"{self.vae_stride} x {self.patch_size}; use patch_size={max(TOKEN_STRIDE // max(self.vae_stride, 1), 1)}"
            )

    @property
    def token_channels(self) -> int:
        """Values per token: ``latent_channels * patch_size**2``."""
        return self.latent_channels * self.patch_size**2


class SampleOutput(NamedTuple):
    """What :meth:`SpikeGen.sample` returns when ``num_samples > 1``.

    Attributes:
        images: ``[B, 3, H, W]`` the first sample of each input.
        mean: ``[B, 3, H, W]`` per-pixel mean over the samples (the MMSE-style estimate).
        std: ``[B, 3, H, W]`` per-pixel standard deviation over the samples (unbiased): an
            uncertainty map.
        samples: ``[B, S, 3, H, W]`` all samples.
    """

    images: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    samples: torch.Tensor


# ------------------------------------------------------------------------------------- helpers
def _rand(shape, generator: torch.Generator | None, device: torch.device, dtype=torch.float64) -> torch.Tensor:
    dev = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=dev, dtype=dtype).to(device)


def sample_gamma(
    batch: int,
    *,
    mean: float = 0.5,
    std: float = 1.0,
    low: float = 0.0,
    high: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``batch`` draws of N(mean, std^2) truncated to ``[low, high]`` (exact, by inverse CDF).

    Example:
        >>> g = sample_gamma(1000, generator=torch.Generator().manual_seed(0))
        >>> bool((g >= 0).all() and (g <= 1).all())
        True
    """
    device = torch.device(device)
    a = torch.special.ndtr(torch.tensor((low - mean) / std, dtype=torch.float64))
    b = torch.special.ndtr(torch.tensor((high - mean) / std, dtype=torch.float64))
    u = _rand((batch,), generator, device).to(torch.float64)
    p = a.to(device) + (b - a).to(device) * u
    g = mean + std * torch.special.ndtri(p)
    return g.clamp(low, high).to(torch.float32)


def _as_images(x: Any, name: str) -> torch.Tensor:
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


def _as_spikes(x: Any, name: str = "spikes") -> torch.Tensor:
    if isinstance(x, torch.Tensor) and x.ndim == 3:
        x = x.unsqueeze(0)
    return prepare_spikes(x, name=name)  # [B,1,T,H,W]


def _truncnorm_upper(n: int, low: float, generator, device) -> torch.Tensor:
    """MAR's mask-ratio distribution: N(1, 0.25^2) truncated to [low, 1]."""
    return sample_gamma(n, mean=1.0, std=0.25, low=low, high=1.0, generator=generator, device=device)


# --------------------------------------------------------------------------------------- model
class SpikeGen(nn.Module):
    """The SpikeGen model (see the module docstring for the data flow).

    Args:
        config: a :class:`SpikeGenConfig`.
        vae: an ``AutoencoderKL`` to use; by default built from ``config.vae`` when that is a
            preset name (random weights: train it, or pass a trained one), else loaded from
            the folder / hub id ``config.vae`` names. The VAE is frozen and always in eval mode.

    Training: ``model(rgb=..., spikes=..., target=..., gamma=None) -> {"loss", "diffusion"}``.
    Inference: :meth:`sample`. Persistence: :meth:`save_pretrained`, :meth:`from_pretrained`.

    Only the parameters outside ``model.vae`` are trained (see :meth:`trainable_parameters`);
    in one training step with both modalities every one of them receives a gradient, so
    ``DistributedDataParallel`` needs no ``find_unused_parameters``.
    """

    def __init__(self, config: SpikeGenConfig, vae: Any = None):
        super().__init__()
        config.validate()
        self.config = config
        if vae is None:
            vae = build_vae(config.vae) if config.vae in VAE_PRESETS else load_vae(config.vae)
        if int(vae.config.latent_channels) != config.latent_channels or vae_downsample_factor(vae) != config.vae_stride:
            raise CheckpointError(
                f"VAE has {vae.config.latent_channels} latent channels and stride {vae_downsample_factor(vae)}; "
                f"the config expects {config.latent_channels} and {config.vae_stride}"
            )
        self.vae = vae.eval().requires_grad_(False)

        c = config
        D, Dd = c.encoder_width, c.decoder_width
        # modality branches
        self.s3 = S3Encoder(D, channels=c.s3_channels)
        self.proj_rgb = nn.Linear(c.token_channels, D)
        self.proj_s3 = nn.Linear(D, D)
        self.embed_norm = nn.LayerNorm(D, eps=c.norm_eps)
        tkw = dict(mlp_ratio=c.mlp_ratio, norm_eps=c.norm_eps, rope_base=c.rope_base, attn_drop=c.attn_dropout,
                   proj_drop=c.proj_dropout, grad_checkpointing=c.grad_checkpointing)
        self.encoder = Transformer(D, c.encoder_depth, c.encoder_heads, **tkw)
        self.decoder_embed = nn.Linear(D, Dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, Dd))
        # known (already generated) target tokens enter the decoder: only for masked training
        self.proj_known = nn.Linear(c.token_channels, Dd) if c.mask_ratio_min < 1.0 else None
        self.decoder = Transformer(Dd, c.decoder_depth, c.decoder_heads, **tkw)
        self.head = DiffusionHead(c.token_channels, Dd, c.head_width, c.head_depth, c.diffusion_steps)
        self._init_backbone()

    # ------------------------------------------------------------------ construction helpers
    def _init_backbone(self) -> None:
        def init(m: nn.Module) -> None:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

        for mod in (self.proj_rgb, self.proj_s3, self.embed_norm, self.encoder, self.decoder_embed, self.decoder, self.proj_known):
            if mod is not None:
                mod.apply(init)
        nn.init.normal_(self.mask_token, std=0.02)

    @classmethod
    def from_config(cls, config: SpikeGenConfig | dict | str, vae: Any = None) -> "SpikeGen":
        """Build a freshly initialised model from a config, a dict or a preset name.

        Example:
            >>> model = SpikeGen.from_config("tiny")
        """
        if isinstance(config, str):
            config = SpikeGenConfig.preset(config)
        elif isinstance(config, dict):
            config = SpikeGenConfig.from_dict(config)
        return cls(config, vae=vae)

    def train(self, mode: bool = True) -> "SpikeGen":
        super().train(mode)
        self.vae.eval()  # the VAE is frozen: always eval
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters that training updates (everything except the frozen VAE)."""
        return [p for n, p in self.named_parameters() if not n.startswith("vae.") and p.requires_grad]

    def num_parameters(self, *, include_vae: bool = False) -> int:
        """Parameter count (by default without the VAE, as MAR reports its sizes)."""
        return sum(p.numel() for n, p in self.named_parameters() if include_vae or not n.startswith("vae."))

    @property
    def device(self) -> torch.device:
        return self.proj_rgb.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.proj_rgb.weight.dtype

    # --------------------------------------------------------------------------- VAE access
    def encode_images(self, images: torch.Tensor, *, sample: bool = False, generator=None) -> torch.Tensor:
        """Scaled VAE latents ``[B, 16, p*ceil(H/8), p*ceil(W/8)]`` of ``[B, 3, H, W]`` images in
        [0, 1] (``p = config.patch_size``; the image is padded to a multiple of 8 first, so the
        latent splits into whole ``p x p`` token patches)."""
        images = _as_images(images, "images")
        images, _ = pad_to_multiple(images, TOKEN_STRIDE)
        return encode_images(self.vae, images, sample=sample, generator=generator)

    def decode_latents(self, latents: torch.Tensor, size: tuple[int, int] | None = None, *, clamp: bool = True) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1] from scaled latents (differentiable; VAE frozen)."""
        return decode_latents(self.vae, latents, size=size, clamp=clamp)

    def patchify(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, C, p*h, p*w]`` -> tokens ``[B, h*w, C*p*p]`` (row-major grid; within a
        token the order is channel, then patch row, then patch column, as MAR's patchify).

        Example:
            >>> m = SpikeGen.from_config(SpikeGenConfig.preset("tiny", vae="tiny-f4-d16", vae_stride=4, patch_size=2))
            >>> z = torch.randn(2, 16, 6, 8)
            >>> m.patchify(z).shape
            torch.Size([2, 12, 64])
            >>> torch.equal(m.unpatchify(m.patchify(z), (3, 4)), z)
            True
        """
        p = self.config.patch_size
        b, c, hh, ww = latents.shape
        if hh % p or ww % p:
            raise ShapeError(f"latents: size {hh}x{ww} is not a multiple of patch_size {p}")
        x = latents.reshape(b, c, hh // p, p, ww // p, p)
        return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (hh // p) * (ww // p), c * p * p)

    def unpatchify(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Tokens ``[B, h*w, C*p*p]`` -> latents ``[B, C, p*h, p*w]`` (the inverse of :meth:`patchify`)."""
        p, c = self.config.patch_size, self.config.latent_channels
        b, (h, w) = tokens.shape[0], grid
        x = tokens.reshape(b, h, w, c, p, p).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(b, c, h * p, w * p)

    # ------------------------------------------------------------------------ input handling
    def tfp_frame(self, spikes: torch.Tensor) -> torch.Tensor:
        """The "TFP & Spike" pseudo-frame: the mean spike rate over the whole window x
        ``config.tfp_scale``, clamped to [0, 1], as 3 channels.

        Args:
            spikes: ``[B, T, H, W]`` or ``[B, 1, T, H, W]`` (or ``[T, H, W]``) binary spikes.

        Returns:
            ``[B, 3, H, W]`` float32.
        """
        rate = _as_spikes(spikes).mean(dim=2, dtype=torch.float32)  # [B,1,H,W]
        return (rate * self.config.tfp_scale).clamp(0.0, 1.0).expand(-1, 3, -1, -1)

    def _inputs(self, rgb, spikes, tfp_rgb: bool | None, target=None):
        """Validate inputs; returns (rgb [B,3,H,W] | None, spikes [B,1,T,H,W] | None, B, H, W)."""
        tfp = self.config.tfp_rgb if tfp_rgb is None else bool(tfp_rgb)
        if rgb is None and spikes is None:
            raise ShapeError("give rgb=, spikes= or both (got neither)")
        rgb = _as_images(rgb, "rgb") if rgb is not None else None
        spikes = _as_spikes(spikes) if spikes is not None else None
        if rgb is None and tfp:
            rgb = self.tfp_frame(spikes)
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
            target = _as_images(target, "target")
            if target.shape[0] != b or tuple(target.shape[-2:]) != (h, w):
                raise ShapeError(f"target: shape {tuple(target.shape)} does not match the inputs ({b}, 3, {h}, {w})")
        return rgb, spikes, target, b, h, w

    def _gamma(self, gamma, b: int, has_rgb: bool, has_spikes: bool, generator) -> torch.Tensor:
        dev = self.device
        if not has_rgb:
            return torch.ones(b, device=dev)
        if not has_spikes:
            return torch.zeros(b, device=dev)
        if gamma is None:
            return sample_gamma(b, mean=self.config.gamma_mean, std=self.config.gamma_std, generator=generator, device=dev)
        g = torch.as_tensor(gamma, dtype=torch.float32, device=dev)
        if g.ndim == 0:
            g = g.expand(b)
        if g.shape != (b,):
            raise ShapeError(f"gamma: expected a float or a tensor of {b} per-sample values, got shape {tuple(g.shape)}")
        if not bool(((g >= 0) & (g <= 1)).all()):
            raise ShapeError(f"gamma: modality ratio must lie in [0, 1], got {gamma}")
        return g

    @staticmethod
    def _tokens(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2)  # [B,C,h,w] -> [B,h*w,C] (row-major)

    def _condition(self, rgb, spikes, g: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Mixed modality tokens ``[B, N, D]`` (before the embedding LayerNorm) and the grid."""
        dt = self.dtype
        grad_mode = self.training and torch.is_grad_enabled()
        use_rgb = rgb is not None and (grad_mode or bool((g < 1).any()))
        use_spk = spikes is not None and (grad_mode or bool((g > 0).any()))
        gw = g.to(dt)[:, None, None]
        tokens, grid = None, None
        if use_rgb:
            with torch.no_grad():
                lat = self.encode_images(rgb)
            grid = (lat.shape[-2] // self.config.patch_size, lat.shape[-1] // self.config.patch_size)
            tokens = (1 - gw) * self.proj_rgb(self.patchify(lat).to(dt))
        if use_spk:
            feat = self.s3(spikes)
            grid = tuple(feat.shape[-2:])
            s = gw * self.proj_s3(self._tokens(feat))
            tokens = s if tokens is None else tokens + s
        if grad_mode:
            # a branch without data still joins the graph with an exact zero (DDP-safe)
            for used, mods in ((use_rgb, (self.proj_rgb,)), (use_spk, (self.s3, self.proj_s3))):
                if not used:
                    tokens = tokens + 0.0 * sum(p.sum() for m in mods for p in m.parameters())
        return tokens, grid

    def _decoder_input(self, enc: torch.Tensor, mask: torch.Tensor | None, known: torch.Tensor | None) -> torch.Tensor:
        x = self.decoder_embed(enc)
        if mask is None:  # everything to generate
            return x + self.mask_token
        m = mask.to(x.dtype)[..., None]
        x = x + m * self.mask_token
        if self.proj_known is not None and known is not None:
            x = x + (1 - m) * self.proj_known(known.to(x.dtype))
        return x

    # ------------------------------------------------------------------------------ training
    def forward(
        self,
        rgb: torch.Tensor | None = None,
        spikes: torch.Tensor | None = None,
        target: torch.Tensor | None = None,
        gamma: float | torch.Tensor | None = None,
        *,
        tfp_rgb: bool | None = None,
        generator: torch.Generator | None = None,
        return_latents: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Training losses for one batch.

        Args:
            rgb: ``[B, 3, H, W]`` degraded (e.g. blurry) images in [0, 1], or ``None``.
            spikes: ``[B, T, H, W]`` spike streams ({0,1}, any dtype), or ``None``.
            target: ``[B, 3, H, W]`` clean images in [0, 1] (required). It is colour-faded by
                ``g`` and encoded by the VAE (no gradient) to give the target latents.
            gamma: modality ratio(s); ``None`` draws one per sample from N(0.5, 1) truncated
                to [0, 1]. Forced to 1 when ``rgb`` is missing and 0 when ``spikes`` is.
            tfp_rgb: use the spikes' TFP as the RGB input when ``rgb`` is None
                (default ``config.tfp_rgb``).
            generator: random generator for ``g``, masks, timesteps and noise.
            return_latents: also return ``pred_latent`` (``[B, 16, h, w]`` differentiable
                clean-latent estimate of the head at its random training timestep),
                ``target_latent`` and ``gamma``.

        Returns:
            ``{"loss": total, "diffusion": latent diffusion loss}`` (scalars; ``loss`` is the
            one to back-propagate; fine-tuning adds its own terms on top).
        """
        if target is None:
            raise ShapeError("target: the clean image [B,3,H,W] is required for training (forward)")
        rgb, spikes, target, b, h, w = self._inputs(rgb, spikes, tfp_rgb, target)
        g = self._gamma(gamma, b, rgb is not None, spikes is not None, generator)
        with torch.no_grad():
            faded = color_fade(target.float(), g.to(target.device).float())
            tgt_lat = self.encode_images(faded, sample=self.config.target_sample_posterior, generator=generator)
        tgt_lat = tgt_lat.to(self.dtype)
        tgt = self.patchify(tgt_lat)  # [B,N,C*p*p]
        cond, grid = self._condition(rgb, spikes, g)
        n = tgt.shape[1]
        if cond.shape[1] != n:
            raise ShapeError(f"token grids differ: inputs give {grid}, target {tuple(tgt_lat.shape[-2:])}")
        enc = self.encoder(self.embed_norm(cond), grid)

        mask = None
        if self.proj_known is not None:
            # MAR masking: one ratio per batch, random order per sample, >= 1 known token
            ratio = float(_truncnorm_upper(1, self.config.mask_ratio_min, generator, self.device)[0])
            n_mask = min(max(int(math.ceil(n * ratio)), 1), max(n - 1, 1))
            order = torch.argsort(_rand((b, n), generator, self.device), dim=1)
            mask = torch.zeros(b, n, device=self.device)
            mask.scatter_(1, order[:, :n_mask], 1.0)
        z = self.decoder(self._decoder_input(enc, mask, tgt), grid)
        out = self.head.loss(
            tgt.reshape(b * n, -1),
            z.reshape(b * n, -1),
            None if mask is None else mask.reshape(-1),
            batch_mul=self.config.diffusion_batch_mul,
            generator=generator,
            return_x0=return_latents,
        )
        loss, x0 = out if return_latents else (out, None)
        losses = {"loss": loss, "diffusion": loss.detach()}
        if return_latents:
            losses["pred_latent"] = self.unpatchify(x0.reshape(b, n, -1), grid)
            losses["target_latent"] = tgt_lat
            losses["gamma"] = g
        return losses

    # ------------------------------------------------------------------------------ sampling
    @torch.inference_mode()
    def sample_latents(
        self,
        rgb: torch.Tensor | None = None,
        spikes: torch.Tensor | None = None,
        gamma: float | torch.Tensor = 0.5,
        steps: int | None = None,
        temperature: float | None = None,
        num_samples: int = 1,
        generator: torch.Generator | None = None,
        *,
        sampler: str | None = None,
        ar_steps: int = 1,
        tfp_rgb: bool | None = None,
        eta: float = 0.0,
        clip_x0: float | None = None,
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        """Sampled latents ``[B*num_samples, 16, p*h, p*w]`` (sample-minor order; ``h = ceil(H/8)``,
        ``p = config.patch_size``) and the image size ``(H, W)``.

        Same arguments as :meth:`sample`.
        """
        steps = self.config.sample_steps if steps is None else int(steps)
        temperature = self.config.sample_temperature if temperature is None else float(temperature)
        sampler = self.config.sampler if sampler is None else sampler
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if int(ar_steps) < 1:
            raise ValueError(f"ar_steps must be >= 1, got {ar_steps}")
        if ar_steps > 1 and self.proj_known is None:
            raise ValueError(
                "ar_steps > 1 needs a model trained for masked generation (config.mask_ratio_min < 1); "
                "this model generates all tokens in one step (ar_steps=1)"
            )
        rgb, spikes, _, b, h, w = self._inputs(rgb, spikes, tfp_rgb)
        g = self._gamma(0.5 if gamma is None else gamma, b, rgb is not None, spikes is not None, None)
        cond, grid = self._condition(rgb, spikes, g)
        enc = self.encoder(self.embed_norm(cond), grid)
        s = int(num_samples)
        n, c = enc.shape[1], self.config.token_channels
        clip = self.config.sample_clip_x0 if clip_x0 is None else float(clip_x0)
        clip = None if clip is None or math.isinf(clip) else clip
        hs = dict(steps=steps, sampler=sampler, temperature=temperature, eta=eta, generator=generator, clip_x0=clip)
        if ar_steps == 1:
            z = self.decoder(self._decoder_input(enc, None, None), grid)  # [B,N,D]
            z = z.repeat_interleave(s, dim=0) if s > 1 else z
            tokens = self.head.sample(z.reshape(-1, z.shape[-1]), **hs).reshape(b * s, n, c)
        else:
            tokens = self._sample_masked(enc.repeat_interleave(s, dim=0), grid, min(int(ar_steps), n), generator, hs)
        return self.unpatchify(tokens, grid), (h, w)

    def _sample_masked(self, enc: torch.Tensor, grid, k: int, generator, hs: dict) -> torch.Tensor:
        """MAR's K-step generation with the cosine masking schedule (MaskGIT / MAGE)."""
        bb, n = enc.shape[:2]
        c = self.config.token_channels
        dev = enc.device
        order = torch.argsort(_rand((bb, n), generator, dev), dim=1)
        mask = torch.ones(bb, n, dtype=torch.bool, device=dev)
        tokens = torch.zeros(bb, n, c, device=dev, dtype=enc.dtype)
        for step in range(k):
            z = self.decoder(self._decoder_input(enc, mask, tokens), grid)
            remaining = int(mask[0].sum())
            mask_len = int(math.floor(n * math.cos(math.pi / 2 * (step + 1) / k)))
            mask_len = max(1, min(remaining - 1, mask_len))
            if step == k - 1:
                to_pred = mask
                mask_next = torch.zeros_like(mask)
            else:
                mask_next = torch.zeros_like(mask)
                mask_next.scatter_(1, order[:, :mask_len], True)
                to_pred = mask & ~mask_next
            new = self.head.sample(z[to_pred], **hs)
            tokens = tokens.clone()
            tokens[to_pred] = new.to(tokens.dtype)
            mask = mask_next
        return tokens

    @torch.inference_mode()
    def sample(
        self,
        rgb: torch.Tensor | None = None,
        spikes: torch.Tensor | None = None,
        gamma: float | torch.Tensor = 0.5,
        steps: int | None = None,
        temperature: float | None = None,
        num_samples: int = 1,
        generator: torch.Generator | None = None,
        *,
        sampler: str | None = None,
        ar_steps: int = 1,
        tfp_rgb: bool | None = None,
        eta: float = 0.0,
        clip_x0: float | None = None,
        decode_batch: int = 8,
        num_threads: int | str | None = "auto",
    ) -> torch.Tensor | SampleOutput:
        """Restore images from blurry RGB and/or spikes.

        Args:
            rgb: ``[B, 3, H, W]`` (or ``[3, H, W]``) images in [0, 1], or ``None``.
            spikes: ``[B, T, H, W]`` (or ``[T, H, W]``) spike streams, or ``None``.
            gamma: modality ratio in [0, 1] (float or ``[B]`` tensor): 0 = RGB only,
                1 = spikes only. Forced to 1 when ``rgb`` is missing (and no TFP) and to 0 when
                ``spikes`` is missing. At exactly 0 / 1 the other branch is not computed.
            steps: diffusion sampling steps (default ``config.sample_steps``; 100 for the paper
                presets, 25 for ``tiny``).
            temperature: noise temperature (1 = model distribution, 0 = deterministic; default
                ``config.sample_temperature``, 1.0 unless the weights' config says otherwise;
                with ``num_samples > 1`` a default of 0 becomes 1 so the samples differ).
            num_samples: samples per input; above 1 an uncertainty map is returned too.
            generator: ``torch.Generator`` for reproducible samples.
            sampler: ``"ddim"`` or ``"ddpm"`` (default ``config.sampler``).
            ar_steps: MAR generation steps K (1 = all tokens at once, the paper's default).
            tfp_rgb: use the spikes' TFP (mean over T, x ``config.tfp_scale``) as the RGB input
                when ``rgb`` is None ("TFP & Spike"); default ``config.tfp_rgb``.
            eta: DDIM stochasticity (0 = deterministic DDIM).
            clip_x0: clamp the head's clean-latent estimates to ``[-clip_x0, clip_x0]`` at every
                step (default ``config.sample_clip_x0``; ``float("inf")`` disables).
            decode_batch: images per VAE decode call.
            num_threads: CPU intra-op threads for this call. ``"auto"`` (default) uses one
                thread when the job is small -- on the CPU, ``tokens x head_width^2 < 2^26``, e.g.
                the ``tiny`` preset on one 256x256 image -- and the current setting otherwise;
                an int forces a count; ``None`` keeps the current setting. (On 2 shared cores,
                two threads were 3-6x *slower* than one for the tiny model whenever other
                processes were running; see docs/model.md.)

        Returns:
            ``[B, 3, H, W]`` images in [0, 1] when ``num_samples == 1``; otherwise a
            :class:`SampleOutput` ``(images, mean, std, samples)``.

        Example:
            >>> model = SpikeGen.from_config("tiny").eval()
            >>> out = model.sample(rgb=torch.rand(1, 3, 40, 48), steps=5, num_samples=3)
            >>> out.std.shape
            torch.Size([1, 3, 40, 48])
        """
        if num_threads == "auto":
            num_threads = self._auto_threads(rgb, spikes, int(num_samples))
        if temperature is None and int(num_samples) > 1 and self.config.sample_temperature == 0:
            temperature = 1.0  # deterministic samples would all be equal: an uncertainty map needs noise
        was_training = self.training
        self.eval()  # sampling never uses dropout
        try:
            with cpu_threads(num_threads):
                lat, size = self.sample_latents(
                    rgb, spikes, gamma, steps, temperature, num_samples, generator,
                    sampler=sampler, ar_steps=ar_steps, tfp_rgb=tfp_rgb, eta=eta, clip_x0=clip_x0,
                )
                imgs = torch.cat(
                    [self.decode_latents(lat[i : i + decode_batch], size) for i in range(0, lat.shape[0], decode_batch)]
                )
        finally:
            self.train(was_training)
        imgs = imgs.float()
        s = int(num_samples)
        if s == 1:
            return imgs
        samples = imgs.reshape(-1, s, *imgs.shape[1:])
        return SampleOutput(images=samples[:, 0], mean=samples.mean(dim=1), std=samples.std(dim=1), samples=samples)

    def _auto_threads(self, rgb, spikes, num_samples: int) -> int | None:
        """One CPU thread for small sampling jobs (see :meth:`sample`), else no change."""
        if self.device.type != "cpu":
            return None
        ref = rgb if rgb is not None else spikes
        if not isinstance(ref, torch.Tensor) or ref.ndim < 3:
            return None
        b = ref.shape[0] if ref.ndim >= 4 else 1
        h, w = ref.shape[-2:]
        f = TOKEN_STRIDE
        tokens = b * num_samples * (-(-h // f)) * (-(-w // f))
        return 1 if tokens * self.config.head_width**2 < SMALL_WORK_FOR_ONE_THREAD else None

    # --------------------------------------------------------------------------- persistence
    def _own_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("vae.")}

    def save_pretrained(self, directory: str | os.PathLike, *, overwrite: bool = False, save_vae: bool = True) -> Path:
        """Write ``config.json``, ``model.safetensors`` and (by default) the VAE in ``vae/``.

        Args:
            directory: output folder (created).
            overwrite: replace an existing checkpoint in that folder; otherwise an existing
                ``config.json`` / ``model.safetensors`` raises :class:`OutputExistsError`.
            save_vae: also write the VAE (diffusers format, safetensors). Without it the
                checkpoint refers to ``config.vae`` (a folder or hub id) when loaded.

        Returns:
            The folder as a ``Path``.
        """
        from safetensors.torch import save_file

        out = Path(directory)
        existing = [p for p in (out / CONFIG_NAME, out / WEIGHTS_NAME) if p.exists()]
        if existing and not overwrite:
            raise OutputExistsError(f"{out}: already holds a checkpoint ({existing[0].name}); pass overwrite=True to replace it")
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous() for k, v in self._own_state_dict().items()}
        tmp = out / (WEIGHTS_NAME + ".tmp")
        save_file(state, str(tmp), metadata={"format": "pt", "library": "spikegen"})
        os.replace(tmp, out / WEIGHTS_NAME)
        if save_vae:
            self.vae.save_pretrained(str(out / VAE_SUBFOLDER), safe_serialization=True)
        cfg = {"_class_name": type(self).__name__, "_spikegen_format": 1, **self.config.to_dict()}
        tmp = out / (CONFIG_NAME + ".tmp")
        tmp.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, out / CONFIG_NAME)
        from spikegen.outputs import share_files

        share_files(out)  # safetensors writes 0600 files
        return out

    @classmethod
    def from_pretrained(
        cls,
        directory: str | os.PathLike,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        vae: Any = None,
    ) -> "SpikeGen":
        """Load a model written by :meth:`save_pretrained` (strict: all weights must match).

        Args:
            directory: the checkpoint folder.
            device, dtype: where to put the model (default: CPU, the stored dtype).
            vae: use this ``AutoencoderKL`` instead of the saved / referenced one.

        Raises:
            CheckpointError: missing folder or files, invalid config, corrupt weights, missing,
                unexpected or mis-shaped tensors. A model is returned only when complete.

        Example:
            >>> model = SpikeGen.from_pretrained("checkpoints/tiny")   # doctest: +SKIP
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        src = Path(directory)
        if src.is_file():
            raise CheckpointError(f"{src}: is a file; SpikeGen weights are a folder (config.json + {WEIGHTS_NAME} "
                                  "+ vae/), as written by save_pretrained or `spikegen train`: give the folder")
        if not src.is_dir():
            raise CheckpointError(f"{src}: no such checkpoint folder")
        cfg_path, w_path = src / CONFIG_NAME, src / WEIGHTS_NAME
        if not cfg_path.is_file():
            raise CheckpointError(f"{src}: no {CONFIG_NAME}; not a SpikeGen checkpoint")
        try:
            raw = json.loads(cfg_path.read_text())
            if not isinstance(raw, dict):
                raise ValueError("top level is not an object")
            if raw.get("_class_name", "SpikeGen") != "SpikeGen":
                raise ValueError(f"it describes a {raw['_class_name']!r}, not a SpikeGen")
            config = SpikeGenConfig.from_dict(raw)
            config.validate()
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{cfg_path}: invalid SpikeGen config: {exc}") from None
        if not w_path.is_file():
            raise CheckpointError(f"{src}: no {WEIGHTS_NAME} next to {CONFIG_NAME}")
        try:
            state = load_file(str(w_path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{w_path}: cannot read weights (corrupt or truncated?): {exc}") from None

        if vae is None:
            if (src / VAE_SUBFOLDER).is_dir():
                vae = load_vae(src / VAE_SUBFOLDER)
            elif config.vae in VAE_PRESETS:
                raise CheckpointError(
                    f"{src}: no {VAE_SUBFOLDER}/ folder and config.vae is the preset {config.vae!r} (random weights); "
                    "pass vae= or save with save_vae=True"
                )
            else:
                ref = Path(config.vae).expanduser()
                if not ref.is_absolute() and (src / ref).is_dir():
                    ref = src / ref  # relative to the checkpoint, never to the working directory
                vae = load_vae(ref if ref.exists() else config.vae)
        try:
            with torch.device("meta"):
                model = cls(config, vae=vae)
        except CheckpointError:
            raise
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{cfg_path}: cannot build the model: {exc}") from None
        own = set(model._own_state_dict())
        missing = sorted(own - set(state))
        unexpected = sorted(set(state) - own)
        if missing or unexpected:
            raise CheckpointError(
                f"{w_path}: weights do not match the config: "
                f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
            )
        try:
            result = model.load_state_dict(state, strict=False, assign=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{w_path}: weights do not match the config: {exc}") from None
        bad = [k for k in result.missing_keys if not k.startswith("vae.")] + list(result.unexpected_keys)
        leftovers = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
        if bad or leftovers:
            raise CheckpointError(f"{w_path}: incomplete weights: {(bad + leftovers)[:5]}")
        for name, t in state.items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise CheckpointError(f"{w_path}: tensor {name} holds NaN or Inf values")
        # assign=True keeps the stored dtype; match the VAE to the model unless asked otherwise
        model = model.to(device=device, dtype=dtype) if (device is not None or dtype is not None) else model
        return model.eval()


# ------------------------------------------------------------------------------- param counts
def count_parameters(config: SpikeGenConfig | str, *, include_vae: bool = False) -> int:
    """Parameter count of a configuration, without allocating any weights (meta device).

    ``include_vae`` adds the VAE preset named by ``config.vae`` (``kl-f8-d16`` when it names a
    folder or hub id).

    Example:
        >>> count_parameters("base") > 200_000_000
        True
    """
    if isinstance(config, str):
        config = SpikeGenConfig.preset(config)
    with torch.device("meta"):
        vae = build_vae(config.vae) if config.vae in VAE_PRESETS else build_vae("kl-f8-d16")
        model = SpikeGen(config, vae=vae)
    return model.num_parameters(include_vae=include_vae)
