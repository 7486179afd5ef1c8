"""Atomic, verifiable training checkpoints (safetensors + JSON, no pickle).

A checkpoint is a folder ``step-00001234/`` under the run's ``checkpoints/`` folder::

    model.safetensors        model weights (unwrapped, float32 or the training dtype)
    ema.safetensors          EMA weights (when EMA is on)
    optimizer.safetensors    optimiser tensors, flattened as ``state.<param>.<name>``
    state.json               step, data position, optimiser hyper-parameters, config, RNG
    rng-rank<r>.safetensors  torch CPU (and CUDA) generator states of rank r
    MANIFEST.json            size and SHA-256 of every file above, written last

It is written into ``.step-00001234.tmp/`` and renamed when complete, and ``latest`` (a
one-line text file, itself replaced atomically) names the newest one. Loading first checks the
manifest (missing, truncated or altered files are refused), then reads every tensor and
compares names and shapes with the live model and optimiser *before* anything is applied, so a
bad checkpoint raises :class:`~spikegen.errors.CheckpointError` and never half-loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from spikegen.errors import CheckpointError

MANIFEST = "MANIFEST.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _contiguous(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in sd.items()}


def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser state dict into safetensors-able tensors and a JSON part."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for name, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"state.{pid}.{name}"] = val.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(pid), {})[name] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, val in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = val
    for pid, st in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(st)
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """Capture torch (CPU, CUDA), numpy and Python RNG states."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    np_state = np.random.get_state()
    py_state = random.getstate()
    meta = {
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("torch_cuda_"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    if "numpy" in meta:
        n = meta["numpy"]
        np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    if "python" in meta:
        p = meta["python"]
        random.setstate((p[0], tuple(p[1]), p[2]))


class CheckpointWriter:
    """Writes one checkpoint folder cooperatively across ranks.

    Every rank calls :meth:`begin` and :meth:`write_rank`; rank 0 additionally calls
    :meth:`write_main` and, after a barrier, :meth:`finish` which writes the manifest and renames.
    """

    def __init__(self, root: str | os.PathLike, step: int):
        self.root = Path(root)
        self.name = f"step-{step:08d}"
        self.tmp = self.root / f".{self.name}.tmp"
        self.final = self.root / self.name

    def begin(self, is_main: bool) -> None:
        if is_main:
            if self.tmp.exists():
                shutil.rmtree(self.tmp)
            self.tmp.mkdir(parents=True)

    def write_rank(self, rank: int) -> None:
        t, m = rng_state()
        save_file(_contiguous(t), str(self.tmp / f"rng-rank{rank}.safetensors"), metadata={"json": json.dumps(m)})

    def write_main(self, *, model: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                   ema: dict[str, torch.Tensor] | None, state: dict[str, Any]) -> None:
        save_file(_contiguous(model), str(self.tmp / "model.safetensors"))
        if ema is not None:
            save_file(_contiguous(ema), str(self.tmp / "ema.safetensors"))
        opt_t, opt_meta = optimizer_to_flat(optimizer)
        save_file(opt_t, str(self.tmp / "optimizer.safetensors"))
        state = dict(state, optimizer=opt_meta)
        (self.tmp / "state.json").write_text(json.dumps(state, indent=1))

    def finish(self, keep: int | None = None) -> Path:
        files = sorted(p.name for p in self.tmp.iterdir())
        manifest = {f: {"size": (self.tmp / f).stat().st_size, "sha256": _sha256(self.tmp / f)} for f in files}
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        for d in (self.tmp, ):
            fd = os.open(d, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if self.final.exists():
            shutil.rmtree(self.final)
        os.replace(self.tmp, self.final)
        latest_tmp = self.root / ".latest.tmp"
        latest_tmp.write_text(self.name + "\n")
        os.replace(latest_tmp, self.root / "latest")
        if keep:
            old = sorted(p for p in self.root.glob("step-*") if p.is_dir())[:-keep]
            for p in old:
                shutil.rmtree(p, ignore_errors=True)
        return self.final


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder from itself, a run folder, or a ``checkpoints/`` folder (``latest``)."""
    path = Path(path)
    for cand in (path, path / "checkpoints"):
        if (cand / "latest").is_file():
            name = (cand / "latest").read_text().strip()
            return cand / name
    if (path / MANIFEST).is_file() or (path / "state.json").exists():
        return path
    raise CheckpointError(f"{path}: no checkpoint here (expected a step-* folder, or a run with checkpoints/latest)")


def verify(ckpt: Path) -> dict:
    """Check a checkpoint against its manifest; return the manifest."""
    mf = ckpt / MANIFEST
    if not mf.is_file():
        raise CheckpointError(f"{ckpt}: incomplete checkpoint (no {MANIFEST}); it was probably interrupted while writing")
    try:
        manifest = json.loads(mf.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{mf}: corrupt manifest ({exc})") from None
    for name, info in manifest.items():
        p = ckpt / name
        if not p.is_file():
            raise CheckpointError(f"{p}: missing from the checkpoint")
        size = p.stat().st_size
        if size != info["size"]:
            raise CheckpointError(f"{p}: truncated or altered ({size} bytes, the manifest says {info['size']})")
        if _sha256(p) != info["sha256"]:
            raise CheckpointError(f"{p}: corrupt (SHA-256 differs from the manifest)")
    return manifest


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise CheckpointError(f"{path}: cannot read safetensors ({exc})") from None


def check_state_dict(name: str, loaded: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], where: Path) -> None:
    """Raise CheckpointError unless ``loaded`` has exactly the keys and shapes of ``expected``."""
    missing = sorted(set(expected) - set(loaded))
    extra = sorted(set(loaded) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{where}: {name} does not match this model: {len(missing)} missing keys "
            f"(e.g. {missing[:3]}), {len(extra)} unexpected keys (e.g. {extra[:3]})"
        )
    bad = [(k, tuple(loaded[k].shape), tuple(v.shape)) for k, v in expected.items() if loaded[k].shape != v.shape]
    if bad:
        k, got, want = bad[0]
        raise CheckpointError(f"{where}: {name} shape mismatch for {len(bad)} tensors, e.g. {k}: checkpoint {got}, model {want}")


def load_checkpoint(path: str | os.PathLike, *, rank: int = 0) -> dict[str, Any]:
    """Verify and read a checkpoint fully into memory (nothing is applied here).

    Returns ``{"dir", "model", "ema", "optimizer", "state", "rng": (tensors, meta) | None}``.
    """
    ckpt = resolve_checkpoint(path)
    verify(ckpt)
    try:
        state = json.loads((ckpt / "state.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{ckpt / 'state.json'}: unreadable ({exc})") from None
    out: dict[str, Any] = {"dir": ckpt, "state": state}
    out["model"] = _load_tensors(ckpt / "model.safetensors")
    out["ema"] = _load_tensors(ckpt / "ema.safetensors") if (ckpt / "ema.safetensors").is_file() else None
    out["optimizer"] = optimizer_from_flat(_load_tensors(ckpt / "optimizer.safetensors"), state["optimizer"])
    rng_path = ckpt / f"rng-rank{rank}.safetensors"
    if rng_path.is_file():
        from safetensors import safe_open

        with safe_open(str(rng_path), "pt") as f:
            meta = json.loads(f.metadata()["json"])
        out["rng"] = (_load_tensors(rng_path), meta)
    else:
        out["rng"] = None
    return out
