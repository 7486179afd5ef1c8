"""Training configuration: YAML files plus ``key=value`` overrides.

A config is a nested dict with the sections ``model``, ``data``, ``train`` and ``log`` (see
``configs/*.yaml``). Overrides use dotted keys and YAML values: ``train.steps=200``,
``data.v_th=[1,4]``. Relative paths *inside a config file* are resolved against that file's
folder (so shipped configs work from any working directory); paths given as overrides are
resolved against the current directory, as a user typing them expects.

Everything is checked before anything runs (:func:`validate_config`): an unknown key (with a
"did you mean"), a value of the wrong type or out of range, or a path that does not exist is a
one-line :class:`ConfigError` naming the key and the file it came from. The ``data`` keys are
checked against the dataset's own arguments when the dataset is built.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
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

#: Keys each section may hold besides those of DEFAULTS (their types are checked below).
OPTIONAL_KEYS: dict[str, set[str]] = {
    "": {"stage", "seed", "model", "data", "train", "log"},
    "model": set(),
    "train": {"epochs", "global_batch_size", "decoder_only", "tfp_fraction", "gamma_ends", "scale_images", "fit_images"},
    "log": set(),
}
LOSS_KEYS = {"kl", "lpips", "align", "pixel", "align_sigma", "align_gamma"}

# (section, key): (type(s), check, what it must be)
_NUM = (int, float)
CHECKS: dict[tuple[str, str], tuple[tuple[type, ...], Any, str]] = {
    ("", "seed"): ((int,), lambda v: v >= 0, "an integer >= 0"),
    ("train", "steps"): ((int,), lambda v: v >= 1, "an integer >= 1"),
    ("train", "epochs"): ((int,), lambda v: v >= 1, "an integer >= 1"),
    ("train", "batch_size"): ((int,), lambda v: v >= 1, "an integer >= 1"),
    ("train", "global_batch_size"): ((int,), lambda v: v >= 1, "an integer >= 1"),
    ("train", "grad_accum"): ((int,), lambda v: v >= 1, "an integer >= 1"),
    ("train", "lr"): (_NUM, lambda v: 0 < v < 1, "a number in (0, 1)"),
    ("train", "start_lr"): (_NUM, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("train", "min_lr"): (_NUM, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("train", "weight_decay"): (_NUM, lambda v: v >= 0, "a number >= 0"),
    ("train", "warmup"): (_NUM, lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
    ("train", "grad_clip"): (_NUM + (type(None),), lambda v: v is None or v >= 0, "a number >= 0 (0 or null: off)"),
    ("train", "ema"): (_NUM + (type(None), bool), lambda v: v in (None, False) or 0 <= v < 1, "a decay in [0, 1) (0 or null: off)"),
    ("train", "tfp_fraction"): (_NUM, lambda v: 0 <= v <= 1, "a fraction in [0, 1]"),
    ("train", "gamma_ends"): (_NUM, lambda v: 0 <= v <= 1, "a fraction in [0, 1]"),
    ("train", "scale_images"): ((int,), lambda v: v >= 1, "an integer >= 1"),
    ("train", "fit_images"): ((int,), lambda v: v >= 1, "an integer >= 1"),
    ("train", "decoder_only"): ((bool,), lambda v: True, "true or false"),
    ("train", "betas"): ((list, tuple), lambda v: len(v) == 2 and all(isinstance(b, _NUM) and 0 <= b < 1 for b in v),
                         "two numbers in [0, 1), e.g. [0.9, 0.95]"),
    ("train", "mixed_precision"): ((str, bool, type(None)), lambda v: v in ("auto", "no", "bf16", "fp16", False, None),
                                   "auto, no, bf16 or fp16"),
    ("train", "losses"): ((dict,), lambda v: True, "a mapping, e.g. {kl: 1.0e-6}"),
    ("log", "dir"): ((str,), lambda v: bool(v), "a folder path"),
    ("log", "every"): ((int,), lambda v: v >= 1, "an integer >= 1"),
    ("log", "checkpoint_every"): ((int,), lambda v: v >= 0, "an integer >= 0 (0: only at the end)"),
    ("log", "preview_every"): ((int, type(None)), lambda v: v is None or v >= 0, "an integer >= 0 (0: off)"),
    ("log", "keep"): ((int, type(None)), lambda v: v is None or v >= 0, "an integer >= 0 (0 or null: keep every checkpoint)"),
    ("model", "overrides"): ((dict, type(None)), lambda v: True, "a mapping of SpikeGenConfig fields"),
    ("model", "preset"): ((str,), lambda v: True, "a SpikeGen preset name (tiny, base, large)"),
    ("data", "num_workers"): ((int,), lambda v: v >= 0, "an integer >= 0"),
    ("data", "size"): ((int, list), lambda v: True, "a crop size in pixels"),
}

# Keys whose values are file-system paths (resolved against the config file's folder), at any
# depth inside these sections (e.g. data.parts[i].root).
PATH_SECTIONS = ("model", "data")
PATH_NAMES = {"vae", "init", "root", "roots", "spike_root", "image_root"}


class ConfigError(SpikeGenError, ValueError):
    """A config file or override is malformed."""


def _did_you_mean(key: str, known: Any) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(known))}"


def _where(key: str, origins: dict[str, str]) -> str:
    return origins.get(key) or origins.get(key.split(".")[0]) or "the defaults"


def validate_config(cfg: dict, origins: dict[str, str] | None = None) -> None:
    """Check keys, types and ranges of a merged config (see the module docstring).

    ``origins`` maps dotted keys (or top-level sections) to where they were set (a file, or
    "the command line"), for the messages.

    Raises:
        ConfigError: the first problem found, naming the key and where it was set.
    """
    origins = origins or {}
    for key in cfg:
        if key not in OPTIONAL_KEYS[""]:
            raise ConfigError(f"{_where(key, origins)}: unknown top-level key {key!r}{_did_you_mean(key, OPTIONAL_KEYS[''])}")
    for section in ("model", "train", "log"):
        sec = cfg.get(section)
        if not isinstance(sec, dict):
            raise ConfigError(f"{_where(section, origins)}: {section} must be a mapping, got {type(sec).__name__}")
        known = set(DEFAULTS[section]) | OPTIONAL_KEYS[section]
        for key in sec:
            if key not in known:
                raise ConfigError(f"{_where(f'{section}.{key}', origins)}: unknown key {section}.{key}{_did_you_mean(key, known)}")
    if not isinstance(cfg.get("data"), dict):
        raise ConfigError(f"{_where('data', origins)}: data must be a mapping")
    for k in cfg["train"].get("losses") or {}:
        if k not in LOSS_KEYS:
            raise ConfigError(f"{_where('train.losses', origins)}: unknown loss train.losses.{k}{_did_you_mean(k, LOSS_KEYS)}")
        v = cfg["train"]["losses"][k]
        if isinstance(v, bool) or not isinstance(v, _NUM) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"{_where('train.losses', origins)}: train.losses.{k} must be a number >= 0, got {v!r}")
    for (section, key), (types, ok, what) in CHECKS.items():
        node = cfg if section == "" else cfg.get(section, {})
        if key not in node:
            continue
        v = node[key]
        name = key if section == "" else f"{section}.{key}"
        bad_type = not isinstance(v, types) or (isinstance(v, bool) and bool not in types)
        if not bad_type and isinstance(v, float) and not math.isfinite(v):
            bad_type = True
        if bad_type or not ok(v):
            raise ConfigError(f"{_where(name, origins)}: {name} must be {what}, got {v!r}")


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
    origins: dict[str, str] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            if path.suffix.lower() == ".json":  # a run's stored config (YAML 1.1 would read 1e-06 as text)
                data = json.loads(path.read_text()) or {}
            else:
                data = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, ValueError) as exc:
            raise ConfigError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'} ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        _resolve_paths(data, path.resolve().parent)
        for k, v in data.items():
            origins[k] = str(path)
            if isinstance(v, dict):
                origins.update({f"{k}.{kk}": str(path) for kk in v})
        cfg = _merge(cfg, data)
    over: dict[str, Any] = {}
    for item in overrides or []:
        keys, value = parse_override(item)
        origins[".".join(keys)] = f"override {item!r}"
        if len(keys) > 1:
            origins.setdefault(keys[0], f"override {item!r}")
        d = over
        for k in keys[:-1]:
            d = d.setdefault(k, {})
        d[keys[-1]] = value
    _resolve_paths(over, Path.cwd())
    cfg = _merge(cfg, over)
    tc = cfg["train"]
    for key, val in list((tc.get("losses") or {}).items()) if isinstance(tc.get("losses"), dict) else []:
        if isinstance(val, str):  # YAML 1.1 reads "1e-6" as a string
            try:
                tc["losses"][key] = float(val)
            except ValueError:
                pass  # validate_config names it
    for key in ("lr", "weight_decay", "warmup", "start_lr", "min_lr", "grad_clip", "ema"):
        # YAML 1.1 reads "1e-4" (no dot) as a string: accept it as the number it means.
        if isinstance(tc.get(key), str):
            try:
                tc[key] = float(tc[key])
            except ValueError:
                raise ConfigError(f"train.{key} must be a number, got {tc[key]!r}") from None
    if cfg["stage"] not in ("vae", "pretrain", "finetune"):
        raise ConfigError(f"stage must be vae, pretrain or finetune, got {cfg['stage']!r}")
    file_stage = data.get("stage") if path is not None else None
    if file_stage is not None and "stage" in over and over["stage"] != file_stage:
        raise ConfigError(f"{path} is a stage: {file_stage} config, but the command trains {over['stage']}; "
                          f"run `spikegen train {file_stage}` or use a {over['stage']} config")
    validate_config(cfg, origins)
    _check_paths(cfg, origins)
    return cfg


def _check_paths(cfg: dict, origins: dict[str, str]) -> None:
    """Model and data paths must exist (checked now, not after the model is built)."""
    def check(name: str, v: Any) -> None:
        if not isinstance(v, str) or not v or v.startswith(("hf:", "preset:")):
            return
        if "/" not in v and not os.sep in v:  # a preset or hub-like name
            return
        if not Path(v).exists() and not (v.count("/") == 1 and not v.startswith((".", "/", "~"))):
            raise ConfigError(f"{_where(name, origins)}: {name} = {v}: no such file or folder "
                              "(paths in a config file are relative to that file's folder; on the command line, "
                              "to the current directory)")

    m = cfg.get("model") or {}
    for key in ("vae", "init"):
        check(f"model.{key}", m.get(key))
    d = cfg.get("data") or {}
    parts = [d] + [p for p in (d.get("parts") or []) if isinstance(p, dict)]
    for part in parts:
        for key in ("root", "roots", "spike_root", "image_root"):
            vals = part.get(key)
            for v in vals if isinstance(vals, list) else [vals]:
                check(f"data.{key}", v)
