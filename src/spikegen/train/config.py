"""Training configuration: YAML files plus ``key=value`` overrides.

A config is a nested dict with the sections ``model``, ``data``, ``train`` and ``log`` (see
``configs/*.yaml``). Overrides use dotted keys and YAML values: ``train.steps=200``,
``data.v_th=[1,4]``. Relative paths *inside a config file* are resolved against that file's
folder (so shipped configs work from any working directory); paths given as overrides are
resolved against the current directory, as a user typing them expects.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from spikegen.errors import SpikeGenError

DEFAULTS: dict[str, Any] = {
    "stage": "pretrain",
    "seed": 0,
    "model": {"preset": "tiny", "vae": None, "init": None, "overrides": {}},
    "data": {"kind": "synthetic", "roots": [], "size": 64, "exclude": [], "num_workers": 0},
    "train": {
        "steps": 100, "batch_size": 8, "lr": 1e-4, "weight_decay": 0.05, "betas": [0.9, 0.95],
        "warmup": 0.1, "start_lr": 1e-8, "min_lr": 1e-6, "grad_clip": 3.0, "ema": 0.999,
        "grad_accum": 1, "mixed_precision": "auto", "losses": {},
    },
    "log": {"dir": "runs/default", "every": 10, "checkpoint_every": 50, "preview_every": 0, "keep": 3},
}

# Keys whose values are file-system paths (resolved against the config file's folder), at any
# depth inside these sections (e.g. data.parts[i].root).
PATH_SECTIONS = ("model", "data")
PATH_NAMES = {"vae", "init", "root", "roots", "spike_root", "image_root"}


class ConfigError(SpikeGenError, ValueError):
    """A config file or override is malformed."""


def _merge(base: dict, new: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _resolve_paths(cfg: dict, base: Path) -> None:
    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for key, val in node.items():
                if key in PATH_NAMES and val is not None and not isinstance(val, dict):
                    node[key] = [_resolve_one(v, base) for v in val] if isinstance(val, list) else _resolve_one(val, base)
                else:
                    walk(val)

    for section in PATH_SECTIONS:
        walk(cfg.get(section))


def _resolve_one(v: Any, base: Path) -> Any:
    if not isinstance(v, str) or not v or v.startswith(("hf:", "preset:")):
        return v
    p = Path(os.path.expanduser(v))
    if p.is_absolute():
        return str(p)
    cand = (base / p).resolve()
    # A bare preset or hub-like name (no separator, nothing on disk) stays as it is.
    if "/" not in v and not cand.exists():
        return v
    return str(cand)


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value (e.g. train.steps=100)")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: cannot parse the value ({exc})") from None
    return key.strip().split("."), value


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a YAML config (or only defaults), apply overrides, resolve paths.

    Example:
        >>> cfg = load_config(None, ["train.steps=5", "stage=vae"])
        >>> cfg["train"]["steps"], cfg["stage"]
        (5, 'vae')
    """
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        _resolve_paths(data, path.resolve().parent)
        cfg = _merge(cfg, data)
    over: dict[str, Any] = {}
    for item in overrides or []:
        keys, value = parse_override(item)
        d = over
        for k in keys[:-1]:
            d = d.setdefault(k, {})
        d[keys[-1]] = value
    _resolve_paths(over, Path.cwd())
    cfg = _merge(cfg, over)
    tc = cfg["train"]
    for key in ("lr", "weight_decay", "warmup", "start_lr", "min_lr", "grad_clip", "ema"):
        # YAML 1.1 reads "1e-4" (no dot) as a string: accept it as the number it means.
        if isinstance(tc.get(key), str):
            try:
                tc[key] = float(tc[key])
            except ValueError:
                raise ConfigError(f"train.{key} must be a number, got {tc[key]!r}") from None
    if cfg["stage"] not in ("vae", "pretrain", "finetune"):
        raise ConfigError(f"stage must be vae, pretrain or finetune, got {cfg['stage']!r}")
    return cfg
