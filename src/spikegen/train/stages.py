"""What differs per training stage: model, data, losses, previews, exported weights.

Each stage builds a *training module*: an ``nn.Module`` whose ``forward(batch)`` returns a dict
of scalar losses with ``"loss"`` the one to back-propagate. Everything that takes part in the
loss runs inside that forward, so DistributedDataParallel sees one forward per step and needs
no unused-parameter search.

- ``vae``: L1 + KL (+ LPIPS) reconstruction of clean images; the latent scale (1 / std of the
  latents) is estimated at export and stored in the VAE config.
- ``pretrain``: the latent diffusion loss on colour-faded targets, g drawn per sample.
- ``finetune``: adds the differentiable spike-alignment loss (see :mod:`spikegen.train.losses`)
  and an optional pixel loss on the decoded prediction; starts from pretrained weights.
"""

from __future__ import annotations

import dataclasses

import difflib
import inspect
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from spikegen.data import (
    GoproSpikeDataset,
    ReconstructionPairs,
    SpikeFolderPairs,
    SREDSDataset,
    SyntheticPairs,
    VideoPairs,
    collate_samples,
)
from spikegen.degrade import color_fade, rgb_to_gray
from spikegen.errors import CheckpointError, SpikeGenError
from spikegen.models import SpikeGen, SpikeGenConfig
from spikegen.models.config import TOKEN_STRIDE
from spikegen.models.masking import sample_gamma
from spikegen.models.patch_ae import PatchAutoencoder, fit_patch_autoencoder
from spikegen.models.vae import (
    build_vae,
    decode_latents,
    encode_images,
    estimate_latent_scale,
    load_vae,
    pad_to_multiple,
    set_latent_scale,
    vae_downsample_factor,
)
from spikegen.outputs import share_files
from spikegen.train.config import ConfigError
from spikegen.train.losses import pixel_loss, spike_alignment_loss


# ----------------------------------------------------------------------------- data
class ConcatData(torch.utils.data.ConcatDataset):
    """ConcatDataset that forwards ``set_epoch`` to its parts."""

    def set_epoch(self, epoch: int) -> None:
        for d in self.datasets:
            if hasattr(d, "set_epoch"):
                d.set_epoch(epoch)


def build_dataset(dcfg: dict, seed: int) -> torch.utils.data.Dataset:
    """A dataset from a ``data`` config section (``kind`` + the dataset's own arguments)."""
    kinds = {
        "synthetic": SyntheticPairs,
        "video": VideoPairs,
        "reconstruction": ReconstructionPairs,
        "sreds": SREDSDataset,
        "gopro": GoproSpikeDataset,
        "spike_folder": SpikeFolderPairs,
    }
    kind = dcfg.get("kind", "synthetic")
    if kind == "mixed":
        parts = [build_dataset({**{k: v for k, v in dcfg.items() if k not in ("kind", "parts")}, **p}, seed)
                 for p in dcfg.get("parts", [])]
        if not parts:
            raise SpikeGenError("data.kind=mixed needs a non-empty data.parts list")
        return ConcatData(parts)
    if kind not in kinds:
        raise SpikeGenError(f"data.kind must be one of {sorted(kinds) + ['mixed']}, got {kind!r}")
    kwargs = {k: v for k, v in dcfg.items() if k not in ("kind", "num_workers", "parts", "roots", "root")}
    root = dcfg.get("root", dcfg.get("roots"))
    if not root:
        raise SpikeGenError(f"data.root (or data.roots) is required for data.kind={kind}")
    kwargs.setdefault("seed", seed)
    accepted = [n for n in inspect.signature(kinds[kind]).parameters if n not in ("self", "root")]
    for key in kwargs:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; data.kind={kind} takes {', '.join(accepted)}"
            raise ConfigError(f"unknown key data.{key} for data.kind={kind}{hint}")
    try:
        return kinds[kind](root, **kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, SpikeGenError):
            raise
        raise ConfigError(f"data (kind={kind}): {exc}") from None


# ----------------------------------------------------------------------------- modules
#: parameter-name prefixes of a VAE's encoding side (AutoencoderKL; PatchAutoencoder), frozen by
#: ``train.decoder_only`` so the latent space and its scale stay what a SpikeGen was trained on
ENCODER_PARAMS = ("encoder.", "quant_conv.", "enc_weight", "mean")


class VaeTrainModule(nn.Module):
    """Reconstruction training of an ``AutoencoderKL`` (or a ``PatchAutoencoder``) on clean images."""

    def __init__(self, vae: nn.Module, *, kl_weight: float = 1e-6, lpips_weight: float = 0.0):
        super().__init__()
        self.vae = vae
        # LPIPS is a fixed metric network: used through the functional form (cached per
        # device/dtype), so its weights never enter this module's state dict or checkpoints.
        self.kl_weight, self.lpips_weight = kl_weight, lpips_weight

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        x = batch["clean"]
        x, (h, w) = pad_to_multiple(x, 8)
        frozen = not any(p.requires_grad for n, p in self.vae.named_parameters() if n.startswith(ENCODER_PARAMS))
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            post = self.vae.encode(x * 2 - 1).latent_dist
        rec = self.vae.decode(post.sample()).sample
        rec01 = ((rec + 1) * 0.5)[..., :h, :w]
        x01 = x[..., :h, :w]
        l1 = F.l1_loss(rec01, x01)
        kl = post.kl().mean() / float(post.mean[0].numel())  # per latent element
        loss = l1 + self.kl_weight * kl
        out = {"l1": l1.detach(), "kl": kl.detach()}
        if self.lpips_weight > 0:
            # lazy: spikegen.metrics loads scipy.ndimage (~0.35 s), which only this optional term needs
            from spikegen.metrics import lpips

            lp = lpips(rec01.float(), x01.float())
            loss = loss + self.lpips_weight * lp
            out["lpips"] = lp.detach()
        out["loss"] = loss
        return out


class SpikeGenTrainModule(nn.Module):
    """Pretraining / fine-tuning of SpikeGen on ``{clean, blurry, spikes}`` batches."""

    def __init__(self, model: nn.Module, *, align_weight: float = 0.0, pixel_weight: float = 0.0,
                 align_sigma: float = 1.0, align_gamma: float = 1.0, rgb_key: str = "blurry",
                 tfp_fraction: float = 0.0, gamma_ends: float = 0.0):
        super().__init__()
        if not 0.0 <= tfp_fraction <= 1.0:
            raise SpikeGenError(f"train.tfp_fraction must lie in [0, 1], got {tfp_fraction}")
        if not 0.0 <= gamma_ends <= 1.0:
            raise SpikeGenError(f"train.gamma_ends must lie in [0, 1], got {gamma_ends}")
        # that fraction of each batch trains at exactly g = 0 (RGB only) or g = 1 (spikes only),
        # half each: the two ends users ask for, which the truncated normal almost never draws
        self.gamma_ends = gamma_ends
        self.model = model
        self.align_weight, self.pixel_weight = align_weight, pixel_weight
        self.align_sigma, self.align_gamma = align_sigma, align_gamma
        self.rgb_key = rgb_key
        self.tfp_fraction = tfp_fraction

    def _tfp_samples(self, rgb: torch.Tensor, spikes: torch.Tensor, clean: torch.Tensor):
        """"TFP & Spike" samples (dense frame reconstruction): the first
        ``round(tfp_fraction * B)`` samples of the (shuffled) batch get the spikes' TFP
        pseudo-frame as their RGB input (``SpikeGen.tfp_frame``, as ``sample(tfp_rgb=True)``
        makes it) and the gray clean image as their target."""
        k = int(round(self.tfp_fraction * rgb.shape[0]))
        if k == 0:
            return rgb, clean
        rgb = torch.cat([self.model.tfp_frame(spikes[:k]).to(rgb.dtype), rgb[k:]])
        clean = torch.cat([rgb_to_gray(clean[:k].float()).expand(-1, 3, -1, -1).to(clean.dtype), clean[k:]])
        return rgb, clean

    def _gamma(self, clean: torch.Tensor) -> torch.Tensor | None:
        """Per-sample g: ``None`` (the model draws its truncated normal) unless ``gamma_ends``;
        then the model's draw with a random ``gamma_ends`` share set to 0 or 1."""
        if self.gamma_ends <= 0:
            return None
        b, cfg = clean.shape[0], self.model.config
        g = sample_gamma(b, mean=cfg.gamma_mean, std=cfg.gamma_std, device=clean.device)
        u = torch.rand(b, device=clean.device)
        g = torch.where(u < self.gamma_ends / 2, torch.zeros_like(g), g)
        return torch.where((u >= self.gamma_ends / 2) & (u < self.gamma_ends), torch.ones_like(g), g)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        rgb, clean = batch.get(self.rgb_key), batch["clean"]
        self.spike_frames = int(batch["spikes"].shape[1])  # recorded in the exported config
        if self.tfp_fraction > 0 and rgb is not None:
            rgb, clean = self._tfp_samples(rgb, batch["spikes"], clean)
        need = self.align_weight > 0 or self.pixel_weight > 0
        out = self.model(rgb=rgb, spikes=batch["spikes"], target=clean, gamma=self._gamma(clean), return_latents=need)
        if not need:
            return out
        h, w = clean.shape[-2:]
        pred = decode_latents(self.model.vae, out.pop("pred_latent"), size=(h, w), clamp=False).clamp(0, 1)
        g = out.pop("gamma")
        out.pop("target_latent", None)
        loss = out["loss"]
        if self.align_weight > 0:
            a = spike_alignment_loss(pred, batch["spikes"], sigma=self.align_sigma, gamma=self.align_gamma)
            loss = loss + self.align_weight * a
            out["align"] = a.detach()
        if self.pixel_weight > 0:
            p = pixel_loss(pred, color_fade(clean.float(), g.to(pred.device).float()))
            loss = loss + self.pixel_weight * p
            out["pixel"] = p.detach()
        out["loss"] = loss
        return out


# ----------------------------------------------------------------------------- stages
class Stage:
    """Base stage: data building and collation shared by all stages."""

    def __init__(self, cfg: dict, *, resuming: bool = False):
        self.cfg = cfg
        self.resuming = resuming  # the weights will come from a checkpoint: skip initial fits

    def build_dataset(self) -> torch.utils.data.Dataset:
        return build_dataset(self.cfg["data"], int(self.cfg.get("seed", 0)))

    @staticmethod
    def collate(batch: list) -> Any:
        return collate_samples(batch)

    @staticmethod
    def batch_size(batch: dict) -> int:
        return int(batch["clean"].shape[0])


class VaeStage(Stage):
    @property
    def decoder_only(self) -> bool:
        return bool(self.cfg["train"].get("decoder_only", False))

    def build_model(self) -> nn.Module:
        m = self.cfg["model"]
        src = m.get("init") or m.get("vae") or "tiny-f8-d16"
        src = str(src).removeprefix("preset:")
        try:
            vae = build_vae(src)
        except (KeyError, ValueError, SpikeGenError):
            vae = load_vae(src)
        if isinstance(vae, PatchAutoencoder) and not m.get("init") and not self.resuming:
            self._fit_pca(vae)
        vae.train()
        for name, p in vae.named_parameters():
            # decoder_only: the encoder (and its quant_conv) stays fixed, so the latent space
            # and the latent scale do not move and a SpikeGen trained on this VAE stays valid.
            p.requires_grad_(not (self.decoder_only and name.startswith(ENCODER_PARAMS)))
        losses = self.cfg["train"].get("losses", {})
        return VaeTrainModule(vae, kl_weight=float(losses.get("kl", 1e-6)), lpips_weight=float(losses.get("lpips", 0.0)))

    def _fit_pca(self, vae: PatchAutoencoder) -> None:
        """Start a patch autoencoder at the PCA of ``train.fit_images`` training crops (default
        2048, over as many epochs of the dataset as that takes). Not on resume or export: the
        checkpoint holds the weights."""
        ds = self.build_dataset()
        n, per_epoch = int(self.cfg["train"].get("fit_images", 2048)), len(ds)

        def item(j: int) -> torch.Tensor:  # past one epoch: the next epochs' crops
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(j // per_epoch)
            return ds[j % per_epoch]["clean"]

        batches = (torch.stack([item(j) for j in range(i, min(i + 64, n))]) for i in range(0, n, 64))
        kept = fit_patch_autoencoder(vae, batches)
        print(f"patch autoencoder: the PCA of {n} crops' blocks keeps {100 * kept:.3f} % of their variance", flush=True)

    def preview(self, module: VaeTrainModule, batch: dict, generator: torch.Generator) -> list[list[torch.Tensor]]:
        x = batch["clean"][:4].float()
        rec = decode_latents(module.vae, encode_images(module.vae, x), size=tuple(x.shape[-2:]))
        return [[a, b.float()] for a, b in zip(x, rec)]

    def export(self, module: VaeTrainModule, out: Path) -> None:
        vae = module.vae.eval()
        out.mkdir(parents=True, exist_ok=True)
        if self.decoder_only:
            vae.save_pretrained(str(out), safe_serialization=True)  # latent scale unchanged
            share_files(out)
            return
        ds = self.build_dataset()
        n = min(len(ds), int(self.cfg["train"].get("scale_images", 64)))
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(0)
        imgs = torch.stack([ds[i]["clean"] for i in range(n)]).to(next(vae.parameters()).device)
        set_latent_scale(vae, estimate_latent_scale(vae, imgs), 0.0)
        out.mkdir(parents=True, exist_ok=True)
        vae.save_pretrained(str(out), safe_serialization=True)
        share_files(out)  # safetensors writes 0600 files


#: SpikeGenConfig fields ``model.overrides`` may change on top of ``model.init``: the ones that
#: leave every parameter's shape alone (how training and sampling use the network).
INIT_OVERRIDABLE = frozenset({
    "residual", "tfp_window", "tfp_min_spikes", "pseudo_tfi", "tfp_scale", "tfp_rgb", "gamma_mean", "gamma_std", "spike_frames",
    "target_sample_posterior", "attn_dropout", "proj_dropout", "grad_checkpointing", "diffusion_batch_mul",
    "sample_steps", "sampler", "sample_clip_x0", "sample_temperature", "sample_g0_residual",
})


class SpikeGenStage(Stage):
    def build_model(self) -> nn.Module:
        m, losses = self.cfg["model"], self.cfg["train"].get("losses", {})
        init = m.get("init")
        if self.cfg["stage"] == "finetune" and not init:
            raise SpikeGenError("finetune needs model.init: a pretrained SpikeGen folder")
        if init:
            model = SpikeGen.from_pretrained(init)
            over = dict(m.get("overrides") or {})
            shaped = sorted(k for k in over if k not in INIT_OVERRIDABLE)
            if shaped:
                raise SpikeGenError(f"model.overrides {', '.join(shaped)}: not with model.init (the weights fix "
                                    f"the architecture); these can change: {', '.join(sorted(INIT_OVERRIDABLE))}")
            if over:
                try:
                    model.config = dataclasses.replace(model.config, **over)
                    model.config.validate()
                except (TypeError, ValueError) as exc:
                    raise SpikeGenError(f"model.overrides: {exc}") from None
        else:
            vae_src = m.get("vae")
            if not vae_src:
                raise SpikeGenError("model.vae is required: a trained VAE folder (spikegen train vae), or preset:tiny-f4-d16 for a random one")
            vae_src = str(vae_src)
            vae = build_vae(vae_src.removeprefix("preset:")) if vae_src.startswith("preset:") else load_vae(vae_src)
            overrides = dict(m.get("overrides") or {})
            # the preset follows the VAE it is given: its stride, and the patch size that keeps
            # tokens at 8x8 pixels (an f8 VAE -> patch 1, an f4 VAE -> 2x2 patches)
            stride = vae_downsample_factor(vae)
            overrides.setdefault("vae_stride", stride)
            overrides.setdefault("patch_size", max(TOKEN_STRIDE // stride, 1))
            overrides.setdefault("latent_channels", int(vae.config.latent_channels))
            cfg = SpikeGenConfig.preset(m.get("preset", "tiny"), **overrides)
            model = SpikeGen(cfg, vae=vae)
        model.train()
        default_align = 0.1 if self.cfg["stage"] == "finetune" else 0.0
        return SpikeGenTrainModule(
            model,
            align_weight=float(losses.get("align", default_align)),
            pixel_weight=float(losses.get("pixel", 0.0)),
            align_sigma=float(losses.get("align_sigma", 1.0)),
            align_gamma=float(losses.get("align_gamma", 1.0)),
            tfp_fraction=float(self.cfg["train"].get("tfp_fraction", 0.0)),
            gamma_ends=float(self.cfg["train"].get("gamma_ends", 0.0)),
        )

    def preview(self, module: SpikeGenTrainModule, batch: dict, generator: torch.Generator) -> list[list[torch.Tensor]]:
        n = min(4, batch["clean"].shape[0])
        rgb = batch.get("blurry")
        rgb = rgb[:n].float() if rgb is not None else None
        spikes = batch["spikes"][:n]
        out = module.model.sample(rgb=rgb, spikes=spikes, gamma=0.5, steps=25, generator=generator)
        tfp = spikes.float().mean(1, keepdim=True).expand(-1, 3, -1, -1)
        rows = []
        for i in range(n):
            row = [rgb[i]] if rgb is not None else []
            rows.append(row + [tfp[i], out[i].float(), batch["clean"][i].float()])
        return rows

    def export(self, module: SpikeGenTrainModule, out: Path) -> None:
        t = getattr(module, "spike_frames", None)
        if t is not None:  # the frames it was trained on: tasks pass that many centre frames
            module.model.config.spike_frames = t
        module.model.save_pretrained(out, overwrite=True)


def build_stage(cfg: dict, *, resuming: bool = False) -> Stage:
    return (VaeStage if cfg["stage"] == "vae" else SpikeGenStage)(cfg, resuming=resuming)
