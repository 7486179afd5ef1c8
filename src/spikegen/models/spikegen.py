"""SpikeGen, the model: dual-modality (blurry RGB + spike stream) latent generation (paper section 3.2-3.3).

Its parts live next door: the config in :mod:`~spikegen.models.config`, input checks and
patch tokens in :mod:`~spikegen.models.inputs`, the random draws in
:mod:`~spikegen.models.masking`, sampling in :mod:`~spikegen.models.generation`, checkpoints in
:mod:`~spikegen.models.persistence`.

The model, end to end::

    rgb  [B,3,H,W] --VAE encoder (frozen)--> [B,16,p*h,p*w] --patchify p--> [B,N,16*p*p] --proj_rgb--> a [B,N,D]
    spikes [B,T,H,W] ---------S3 encoder---> [B,D,h,w]  --proj_s3--->  s   [B,N,D]
    tokens = LayerNorm((1 - g) * a + g * s)                 (h = ceil(H/8), N = h*w)
    ViT encoder (RoPE 2-D) -> decoder_embed -> + mask token -> ViT decoder (RoPE 2-D) -> z [B,N,D']
    per-token diffusion head(z) -> clean latent tokens [B,N,16*p*p] -> unpatchify -> VAE decoder -> [B,3,H,W]

* ``p = config.patch_size``: a token is a ``p x p`` patch of latent pixels (``p = 1`` for an 8x
  VAE, 2 for a 4x one), so the token grid is always ``ceil(H/8) x ceil(W/8)``. Images are
  padded (reflect) to a multiple of 8 before encoding; outputs are cropped back.
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

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from spikegen.degrade import color_fade
from spikegen.errors import CheckpointError, ShapeError
from spikegen.models.config import MIN_SIZE, TOKEN_STRIDE, SpikeGenConfig
from spikegen.models.diffusion_head import DiffusionHead
from spikegen.models.generation import SampleOutput, SamplingMixin
from spikegen.models.inputs import as_images, check_gamma, check_inputs, grid_tokens, patchify, tfp_frame, unpatchify
from spikegen.models.masking import MASK_RATIO_MEAN, MASK_RATIO_STD, random_mask, sample_gamma
from spikegen.models.persistence import CONFIG_NAME, VAE_SUBFOLDER, WEIGHTS_NAME, load_pretrained, save_pretrained
from spikegen.models.s3 import S3Encoder
from spikegen.models.transformer import Transformer
from spikegen.models.vae import VAE_PRESETS, build_vae, decode_latents, encode_images, load_vae, pad_to_multiple, vae_downsample_factor

# SpikeGenConfig, SampleOutput, sample_gamma, CONFIG_NAME, WEIGHTS_NAME (and TOKEN_STRIDE, MIN_SIZE,
# VAE_SUBFOLDER) are defined in config / generation / masking / persistence and re-exported here,
# so that ``from spikegen.models.spikegen import X`` keeps working.
__all__ = ["SpikeGen", "SpikeGenConfig", "SampleOutput", "count_parameters", "sample_gamma", "CONFIG_NAME", "WEIGHTS_NAME"]


class SpikeGen(SamplingMixin, nn.Module):
    """The SpikeGen model (see the module docstring for the data flow).

    Args:
        config: a :class:`SpikeGenConfig`.
        vae: an ``AutoencoderKL`` to use; by default built from ``config.vae`` when that is a
            preset name (random weights: train it, or pass a trained one), else loaded from
            the folder / hub id ``config.vae`` names. The VAE is frozen and always in eval mode.

    Training: ``model(rgb=..., spikes=..., target=..., gamma=None) -> {"loss", "diffusion"}``.
    Inference: :meth:`sample` (from :class:`~spikegen.models.generation.SamplingMixin`).
    Persistence: :meth:`save_pretrained`, :meth:`from_pretrained` (:mod:`~spikegen.models.persistence`).

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

    def encode_images(self, images: torch.Tensor, *, sample: bool = False, generator=None) -> torch.Tensor:
        """Scaled VAE latents of images in [0, 1] (padded to a multiple of 8 first, so the latent
        splits into whole ``p x p`` token patches; ``p = config.patch_size``).

        Shape:
            Input: ``[B, 3, H, W]`` (or ``[B, 1, H, W]``, ``[3, H, W]``). Output: ``[B, 16, p*ceil(H/8), p*ceil(W/8)]``.
        """
        images = as_images(images, "images")
        images, _ = pad_to_multiple(images, TOKEN_STRIDE)
        return encode_images(self.vae, images, sample=sample, generator=generator)

    def decode_latents(self, latents: torch.Tensor, size: tuple[int, int] | None = None, *, clamp: bool = True) -> torch.Tensor:
        """Images in [0, 1] from scaled latents, cropped to ``size`` (differentiable; VAE frozen).

        Shape:
            Input: ``[B, 16, h, w]`` latents. Output: ``[B, 3, H, W]``, ``(H, W) = size`` (default: all).
        """
        return decode_latents(self.vae, latents, size=size, clamp=clamp)

    def patchify(self, latents: torch.Tensor) -> torch.Tensor:
        """Latent pixels as tokens of ``p x p`` patches (see :func:`~spikegen.models.inputs.patchify`).

        Shape:
            Input: ``[B, C, p*h, p*w]``. Output: ``[B, h*w, C*p*p]``.

        Example:
            >>> m = SpikeGen.from_config(SpikeGenConfig.preset("tiny", vae="tiny-f4-d16", vae_stride=4, patch_size=2))
            >>> z = torch.randn(2, 16, 6, 8)
            >>> m.patchify(z).shape
            torch.Size([2, 12, 64])
            >>> torch.equal(m.unpatchify(m.patchify(z), (3, 4)), z)
            True
        """
        return patchify(latents, self.config.patch_size)

    def unpatchify(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """The inverse of :meth:`patchify` on the token ``grid`` ``(h, w)``.

        Shape:
            Input: ``[B, h*w, C*p*p]``. Output: ``[B, C, p*h, p*w]``.
        """
        return unpatchify(tokens, grid, self.config.patch_size, self.config.latent_channels)

    def tfp_frame(self, spikes: torch.Tensor) -> torch.Tensor:
        """The "TFP & Spike" pseudo-frame: the mean spike rate over the whole window x
        ``config.tfp_scale``, clamped to [0, 1], as 3 channels.

        Shape:
            Input: ``[B, T, H, W]`` or ``[B, 1, T, H, W]`` (or ``[T, H, W]``) binary spikes.
            Output: ``[B, 3, H, W]`` float32.
        """
        return tfp_frame(spikes, self.config.tfp_scale)

    def _inputs(self, rgb, spikes, tfp_rgb: bool | None, target=None):
        """Validate inputs; returns (rgb [B,3,H,W] | None, spikes [B,1,T,H,W] | None, target, B, H, W)."""
        tfp = self.config.tfp_rgb if tfp_rgb is None else bool(tfp_rgb)
        return check_inputs(rgb, spikes, target, tfp_scale=self.config.tfp_scale if tfp else None)

    def _gamma(self, gamma, b: int, has_rgb: bool, has_spikes: bool, generator) -> torch.Tensor:
        dev = self.device
        if not has_rgb:
            return torch.ones(b, device=dev)
        if not has_spikes:
            return torch.zeros(b, device=dev)
        if gamma is None:
            return sample_gamma(b, mean=self.config.gamma_mean, std=self.config.gamma_std, generator=generator, device=dev)
        return check_gamma(gamma, b, dev)

    def _condition(self, rgb, spikes, g: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int], torch.Tensor | None]:
        """Mixed modality tokens ``[B, N, D]`` (before the embedding LayerNorm), the grid and
        the residual base ``[B, N, C*p*p]`` (``config.residual``: the RGB input's latent tokens
        where ``g < 1``, zero where ``g == 1``; ``None`` otherwise or without an RGB input)."""
        dt = self.dtype
        grad_mode = self.training and torch.is_grad_enabled()
        use_rgb = rgb is not None and (grad_mode or bool((g < 1).any()))
        use_spk = spikes is not None and (grad_mode or bool((g > 0).any()))
        gw = g.to(dt)[:, None, None]
        tokens, grid, base = None, None, None
        if use_rgb:
            with torch.no_grad():
                lat = self.encode_images(rgb)
            grid = (lat.shape[-2] // self.config.patch_size, lat.shape[-1] // self.config.patch_size)
            lat_tokens = self.patchify(lat).to(dt)
            tokens = (1 - gw) * self.proj_rgb(lat_tokens)
            if self.config.residual:
                base = lat_tokens * (gw < 1).to(dt)
        if use_spk:
            feat = self.s3(spikes)
            grid = tuple(feat.shape[-2:])
            s = gw * self.proj_s3(grid_tokens(feat))
            tokens = s if tokens is None else tokens + s
        if grad_mode:
            # a branch without data still joins the graph with an exact zero (DDP-safe)
            for used, mods in ((use_rgb, (self.proj_rgb,)), (use_spk, (self.s3, self.proj_s3))):
                if not used:
                    tokens = tokens + 0.0 * sum(p.sum() for m in mods for p in m.parameters())
        return tokens, grid, base

    def _decoder_input(self, enc: torch.Tensor, mask: torch.Tensor | None, known: torch.Tensor | None) -> torch.Tensor:
        x = self.decoder_embed(enc)
        if mask is None:  # everything to generate
            return x + self.mask_token
        m = mask.to(x.dtype)[..., None]
        x = x + m * self.mask_token
        if self.proj_known is not None and known is not None:
            x = x + (1 - m) * self.proj_known(known.to(x.dtype))
        return x

    def encode_inputs(
        self,
        rgb: torch.Tensor | None = None,
        spikes: torch.Tensor | None = None,
        gamma: float | torch.Tensor | None = 0.5,
        *,
        tfp_rgb: bool | None = None,
    ) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
        """The inputs, checked, mixed by ``gamma`` and run through the encoder: what sampling
        decodes. Returns ``(tokens, (h, w) token grid, (H, W) image size)``; arguments as
        :meth:`sample` (``gamma=None`` means 0.5 here: no random draw).

        Shape:
            Input: ``rgb`` ``[B, 3, H, W]``, ``spikes`` ``[B, T, H, W]`` (or unbatched, or ``None``).
            Output: ``[B, h*w, encoder_width]`` with ``h = ceil(H/8)``, ``w = ceil(W/8)``.

        Example:
            >>> m = SpikeGen.from_config("tiny").eval()
            >>> enc, grid, size = m.encode_inputs(spikes=torch.ones(8, 32, 40))
            >>> tuple(enc.shape), grid, size
            ((1, 20, 128), (4, 5), (32, 40))
        """
        enc, grid, size, _ = self._encode_inputs(rgb, spikes, gamma, tfp_rgb=tfp_rgb)
        return enc, grid, size

    def _encode_inputs(self, rgb, spikes, gamma, *, tfp_rgb=None):
        """:meth:`encode_inputs` plus the residual base (see :meth:`_condition`)."""
        rgb, spikes, _, b, h, w = self._inputs(rgb, spikes, tfp_rgb)
        g = self._gamma(0.5 if gamma is None else gamma, b, rgb is not None, spikes is not None, None)
        cond, grid, base = self._condition(rgb, spikes, g)
        return self.encoder(self.embed_norm(cond), grid), grid, (h, w), base

    def decode_tokens(
        self,
        enc: torch.Tensor,
        grid: tuple[int, int],
        mask: torch.Tensor | None = None,
        known: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The decoder's tokens, the diffusion head's condition: encoder tokens plus the mask
        token where ``mask`` is 1 (everywhere when ``mask`` is ``None``) and, in a masked model,
        the ``known`` target tokens elsewhere.

        Shape:
            Input: ``enc`` ``[B, N, encoder_width]`` on the ``grid`` ``(h, w)``, ``N = h*w``;
            ``mask`` ``[B, N]`` (1 / True = to generate); ``known`` ``[B, N, token_channels]``.
            Output: ``[B, N, decoder_width]``.
        """
        return self.decoder(self._decoder_input(enc, mask, known), grid)

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

        Shape:
            Input: ``rgb``, ``target`` ``[B, 3, H, W]``; ``spikes`` ``[B, T, H, W]``; ``gamma`` a float or ``[B]``.
            Output: scalars; with ``return_latents`` also ``[B, 16, p*h, p*w]`` latents and ``[B]`` ``gamma``.
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
        cond, grid, base = self._condition(rgb, spikes, g)
        n = tgt.shape[1]
        if cond.shape[1] != n:
            raise ShapeError(f"token grids differ: inputs give {grid}, target {tuple(tgt_lat.shape[-2:])}")
        if base is not None:  # residual generation: the head models target - input
            tgt = tgt - base
        enc = self.encoder(self.embed_norm(cond), grid)

        mask = None
        if self.proj_known is not None:
            # MAR masking: one ratio per batch, random order per sample, >= 1 known token
            # (the ratio is drawn here, through this module's sample_gamma, as g is in _gamma)
            ratio = sample_gamma(1, mean=MASK_RATIO_MEAN, std=MASK_RATIO_STD, low=self.config.mask_ratio_min, high=1.0,
                                 generator=generator, device=self.device)
            mask = random_mask(b, n, float(ratio[0]), generator=generator, device=self.device)
        z = self.decode_tokens(enc, grid, mask, tgt)
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
            x0 = x0.reshape(b, n, -1)
            losses["pred_latent"] = self.unpatchify(x0 if base is None else x0 + base, grid)
            losses["target_latent"] = tgt_lat
            losses["gamma"] = g
        return losses

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
        return save_pretrained(self, directory, overwrite=overwrite, save_vae=save_vae)

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
            device, dtype: where to put the model (default: CPU, the stored dtype; weights
                stored in float16 / bfloat16 load as float32 unless ``dtype`` is given).
            vae: use this ``AutoencoderKL`` instead of the saved / referenced one.

        Raises:
            CheckpointError: missing folder or files, invalid config, corrupt weights, missing,
                unexpected or mis-shaped tensors. A model is returned only when complete.

        Example:
            >>> model = SpikeGen.from_pretrained("checkpoints/tiny")   # doctest: +SKIP
        """
        return load_pretrained(cls, directory, device=device, dtype=dtype, vae=vae)


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
