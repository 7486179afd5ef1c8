"""SpikeGen's configuration: :class:`SpikeGenConfig`, its presets and the token-grid constants.

A config holds everything needed to rebuild a :class:`~spikegen.models.SpikeGen` and is saved
with its weights as ``config.json``. :data:`TOKEN_STRIDE` and :data:`MIN_SIZE` are the pixel
sizes every part agrees on.

Example:
    >>> SpikeGenConfig.preset("tiny").token_channels
    64
    >>> TOKEN_STRIDE, MIN_SIZE
    (8, 16)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from spikegen.models.diffusion_head import SAMPLERS

__all__ = ["SpikeGenConfig", "TOKEN_STRIDE", "MIN_SIZE"]

#: Pixels per token side: the S3 encoder's total stride (three stride-2 blocks).
TOKEN_STRIDE = 8
#: Smallest image side the model takes (two tokens: instance norm needs more than one value).
MIN_SIZE = 2 * TOKEN_STRIDE


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
    # spike frames per sample the model was trained on (the S3 encoder sums over time, so its
    # features scale with ceil(T / 8)): tasks give it the centred this many frames of a window;
    # None: any T (tasks then pass the whole window)
    spike_frames: int | None = None
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
    # residual generation: the head models the target latent minus the RGB input's latent (where
    # the RGB branch is used, g < 1), so "change nothing" is its zero; docs/model.md
    residual: bool = False
    # reconstruction: frames the TFP pseudo-frame averages, centred on the output frame
    # (0 = the caller's window; the reconstruction weights name the window they were tuned to),
    # widened within the caller's window until the mean pixel has fired tfp_min_spikes times
    tfp_window: int = 0
    tfp_min_spikes: float = 0.0
    # reconstruction: the TFI (over the caller's whole window) blended into the TFP pseudo-frame:
    # a weight b, (1 - b) TFP + b TFI, or "ivw" (per pixel, inverse variance); 0 = TFP only
    # (spikegen.tasks.deblur.pseudo_frame)
    pseudo_tfi: float | str = 0.0
    # masked (MAR) training for K-step generation: mask ratio ~ truncnorm on [mask_ratio_min, 1]
    # (centre 1, std 0.25). 1.0 = always all tokens masked = one-step model (the paper's).
    mask_ratio_min: float = 1.0
    # target latent: posterior mean (False) or a posterior sample (True)
    target_sample_posterior: bool = False
    # sampling defaults
    sample_steps: int = 100
    sampler: str = "ddim"
    # clamp clean-latent estimates (None = MAR: no clamp); a list: one bound per latent channel
    sample_clip_x0: float | list[float] | None = None
    sample_temperature: float = 1.0  # default noise temperature of sample() (0 = deterministic)
    # residual generation: the generated change is multiplied by this at g = 0 (RGB only: the
    # model deblurs blind, and its change is the least certain; 1 = as generated; docs/model.md)
    sample_g0_residual: float = 1.0

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
                spike_frames=8,
                s3_channels=(8, 16, 32, 64),
                encoder_width=128,
                encoder_depth=2,
                encoder_heads=4,
                decoder_width=128,
                decoder_depth=2,
                decoder_heads=4,
                attn_dropout=0.0,
                proj_dropout=0.0,
                # a 2x2-patch token carries 64 values: a 2x128 head left the f4 model flat below
                # the blurry input; 3x256 learns (docs/model.md, the head width against the token)
                head_width=256,
                head_depth=3,
                diffusion_batch_mul=4,
                sample_steps=25,
                # the 99.9 % quantile of the tiny-f4 latent, rounded up (docs/model.md, "Choosing
                # clip_x0"; recompute with scripts/latent_clip.py for another VAE)
                sample_clip_x0=5.5,
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
        if self.spike_frames is not None and (not isinstance(self.spike_frames, int) or self.spike_frames < 1):
            raise ValueError(f"spike_frames must be None or an integer >= 1, got {self.spike_frames!r}")
        if self.gamma_std <= 0:
            raise ValueError(f"gamma_std must be > 0, got {self.gamma_std}")
        if not isinstance(self.tfp_window, int) or self.tfp_window < 0:
            raise ValueError(f"tfp_window must be an integer >= 0 (0: the caller's window), got {self.tfp_window!r}")
        if not (isinstance(self.tfp_min_spikes, (int, float)) and 0 <= self.tfp_min_spikes < float("inf")):
            raise ValueError(f"tfp_min_spikes must be a finite number >= 0, got {self.tfp_min_spikes!r}")
        c = self.sample_clip_x0
        if isinstance(c, (list, tuple)) and (len(c) != self.latent_channels or not all(float(v) > 0 for v in c)):
            raise ValueError(f"sample_clip_x0: a list needs {self.latent_channels} positive per-channel bounds, got {list(c)}")
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
