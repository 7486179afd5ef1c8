"""SpikeGen checkpoints on disk: writing and strictly loading a folder of config, weights and VAE.

A checkpoint is a folder (what :meth:`SpikeGen.save_pretrained <spikegen.models.SpikeGen.save_pretrained>`
writes and :meth:`SpikeGen.from_pretrained <spikegen.models.SpikeGen.from_pretrained>` reads,
through :func:`save_pretrained` and :func:`load_pretrained` here)::

    config.json         the SpikeGenConfig, plus "_class_name" and "_spikegen_format"
    model.safetensors   every tensor outside the VAE (no pickle)
    vae/                the VAE in diffusers format (optional: else config.vae names it)

Files are written to a temporary name and renamed, so a folder never holds half a file.

Example:
    >>> from spikegen.models import SpikeGen
    >>> path = SpikeGen.from_config("tiny").save_pretrained("ckpt")
    >>> sorted(p.name for p in path.iterdir())
    ['config.json', 'model.safetensors', 'vae']
    >>> type(SpikeGen.from_pretrained(path)).__name__
    'SpikeGen'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from spikegen.errors import CheckpointError, OutputExistsError
from spikegen.models.config import SpikeGenConfig
from spikegen.models.vae import VAE_PRESETS, load_vae
from spikegen.outputs import share_files

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "VAE_SUBFOLDER", "own_state_dict", "save_pretrained", "load_pretrained"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
VAE_SUBFOLDER = "vae"


def own_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state without the VAE's tensors (those are saved in ``vae/``)."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith("vae.")}


def save_pretrained(model: nn.Module, directory: str | os.PathLike, *, overwrite: bool = False, save_vae: bool = True) -> Path:
    """Write a SpikeGen ``model`` to ``directory``; what :meth:`SpikeGen.save_pretrained` does (see there)."""
    out = Path(directory)
    existing = [p for p in (out / CONFIG_NAME, out / WEIGHTS_NAME) if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{out}: already holds a checkpoint ({existing[0].name}); pass overwrite=True to replace it")
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in own_state_dict(model).items()}
    tmp = out / (WEIGHTS_NAME + ".tmp")
    save_file(state, str(tmp), metadata={"format": "pt", "library": "spikegen"})
    os.replace(tmp, out / WEIGHTS_NAME)
    if save_vae:
        model.vae.save_pretrained(str(out / VAE_SUBFOLDER), safe_serialization=True)
    cfg = {"_class_name": type(model).__name__, "_spikegen_format": 1, **model.config.to_dict()}
    tmp = out / (CONFIG_NAME + ".tmp")
    tmp.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out / CONFIG_NAME)
    share_files(out)  # safetensors writes 0600 files
    return out


def _read_config(src: Path) -> SpikeGenConfig:
    cfg_path = src / CONFIG_NAME
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
    return config


def _find_vae(src: Path, config: SpikeGenConfig) -> Any:
    """The VAE a checkpoint uses: its ``vae/`` folder, else the folder or hub id ``config.vae``."""
    if (src / VAE_SUBFOLDER).is_dir():
        return load_vae(src / VAE_SUBFOLDER)
    if config.vae in VAE_PRESETS:
        raise CheckpointError(
            f"{src}: no {VAE_SUBFOLDER}/ folder and config.vae is the preset {config.vae!r} (random weights); "
            "pass vae= or save with save_vae=True"
        )
    ref = Path(config.vae).expanduser()
    if not ref.is_absolute() and (src / ref).is_dir():
        ref = src / ref  # relative to the checkpoint, never to the working directory
    return load_vae(ref if ref.exists() else config.vae)


def load_pretrained(
    cls: type[nn.Module],
    directory: str | os.PathLike,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    vae: Any = None,
) -> Any:
    """Build a ``cls`` (``SpikeGen``) from a checkpoint folder; what :meth:`SpikeGen.from_pretrained` does (see there)."""
    src = Path(directory)
    if src.is_file():
        raise CheckpointError(f"{src}: is a file; SpikeGen weights are a folder (config.json + {WEIGHTS_NAME} "
                              "+ vae/), as written by save_pretrained or `spikegen train`: give the folder")
    if not src.is_dir():
        raise CheckpointError(f"{src}: no such checkpoint folder")
    cfg_path, w_path = src / CONFIG_NAME, src / WEIGHTS_NAME
    config = _read_config(src)
    if not w_path.is_file():
        raise CheckpointError(f"{src}: no {WEIGHTS_NAME} next to {CONFIG_NAME}")
    try:
        state = load_file(str(w_path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{w_path}: cannot read weights (corrupt or truncated?): {exc}") from None
    if dtype is None:  # half-precision storage (the shipped task weights, for size): compute in float32
        state = {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v for k, v in state.items()}

    if vae is None:
        vae = _find_vae(src, config)
    try:
        with torch.device("meta"):
            model = cls(config, vae=vae)
    except CheckpointError:
        raise
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{cfg_path}: cannot build the model: {exc}") from None
    own = set(own_state_dict(model))
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
