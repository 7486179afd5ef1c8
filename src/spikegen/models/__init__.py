"""spikegen.models: the SpikeGen model and its parts.

* :mod:`~spikegen.models.vae` -- the RGB ``AutoencoderKL`` (presets, loading, latent scale,
  any-size encode/decode);
* :mod:`~spikegen.models.s3` -- the S3 spike encoder;
* :mod:`~spikegen.models.transformer` -- pre-norm ViT blocks with 2-D RoPE;
* :mod:`~spikegen.models.diffusion_head` -- the per-token diffusion head (loss + samplers);
* :mod:`~spikegen.models.config` -- :class:`SpikeGenConfig`, its presets, the token stride;
* :mod:`~spikegen.models.inputs` -- input checks and latent patch tokens;
* :mod:`~spikegen.models.masking` -- the random draws: modality ratio, mask ratio, token masks;
* :mod:`~spikegen.models.generation` -- sampling (one-step or K-step, uncertainty maps);
* :mod:`~spikegen.models.persistence` -- checkpoints: ``save_pretrained`` / ``from_pretrained``;
* :mod:`~spikegen.models.spikegen` -- the assembled :class:`SpikeGen` (and the names above it
  always exported: ``SpikeGenConfig``, ``SampleOutput``, ``sample_gamma``, ...).

Example:
    >>> import torch
    >>> from spikegen.models import SpikeGen, SpikeGenConfig
    >>> model = SpikeGen.from_config(SpikeGenConfig.preset("tiny")).eval()
    >>> model.sample(rgb=torch.rand(1, 3, 32, 32), steps=4).shape
    torch.Size([1, 3, 32, 32])
"""

from spikegen.models.diffusion_head import DiffusionHead, cosine_alphas_cumprod, respaced_timesteps
from spikegen.models.s3 import S3Encoder
from spikegen.models.spikegen import SampleOutput, SpikeGen, SpikeGenConfig, count_parameters, sample_gamma
from spikegen.models.transformer import Block, RoPE2D, Transformer
from spikegen.models.vae import (
    VAE_PRESETS,
    build_vae,
    decode_latents,
    encode_images,
    estimate_latent_scale,
    load_vae,
    set_latent_scale,
)

__all__ = [
    "SpikeGen",
    "SpikeGenConfig",
    "SampleOutput",
    "count_parameters",
    "sample_gamma",
    "S3Encoder",
    "Transformer",
    "Block",
    "RoPE2D",
    "DiffusionHead",
    "cosine_alphas_cumprod",
    "respaced_timesteps",
    "VAE_PRESETS",
    "build_vae",
    "load_vae",
    "estimate_latent_scale",
    "set_latent_scale",
    "encode_images",
    "decode_latents",
]
