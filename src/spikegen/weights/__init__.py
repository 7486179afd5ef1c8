"""Weights shipped inside the package (see ``MODEL_CARD.md`` beside each set).

``tiny-pca/vae`` is the pca-f4-d16 patch autoencoder, the default autoencoder
(:func:`default_vae`), whose ceiling is far above the others; ``tiny-pca/deblur`` and
``tiny-pca/reconstruct`` are the tiny SpikeGen's per-task fine-tunes on it (residual generation;
float16 on disk, float32 when loaded), the defaults of the CLI, the demo and ``eval``.
``tiny-f4/`` is the previous set: the tiny-f4-d16 VAE (the ``tiny`` preset's latent) and its two
task fine-tunes. ``tiny/`` is the earlier f8 set: the tiny-f8-d16 VAE, its two task fine-tunes
and the shared v1 (``tiny/spikegen``) they started from. All were trained on these CPUs by the
commands in each set's ``MODEL_CARD.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

from spikegen.errors import CheckpointError
from spikegen.models import SpikeGen

WEIGHTS_DIR = Path(__file__).resolve().parent


#: The tasks that have (or will have) their own fine-tuned weights, as the paper fine-tunes per
#: task: ``deblur`` (deblur, eval deblur, demo, nvs restore) and ``reconstruct`` (reconstruct
#: --method spikegen, eval reconstruct / real, the demo's real capture).
TASKS = ("deblur", "reconstruct")

#: Weight sets searched for a task, best first: a set's ``<task>/`` fine-tune, else its shared
#: ``spikegen/`` weights.
WEIGHT_SETS = ("tiny-pca", "tiny-f4", "tiny")


def task_weights(task: str) -> Path:
    """Folder of the shipped SpikeGen weights for ``task`` (``"deblur"`` or ``"reconstruct"``).

    Task fine-tunes (``weights/<set>/<task>/``) come first, then each set's shared
    ``spikegen/`` weights, in the order of :data:`WEIGHT_SETS`.

    Example:
        >>> task_weights("deblur").name in ("deblur", "spikegen")
        True
    """
    if task not in TASKS:
        raise CheckpointError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    cands = [WEIGHTS_DIR / s / task for s in WEIGHT_SETS] + [WEIGHTS_DIR / s / "spikegen" for s in WEIGHT_SETS]
    for c in cands:
        if (c / "config.json").is_file():
            return c
    raise CheckpointError(f"no shipped SpikeGen weights for {task} in {WEIGHTS_DIR}; pass --weights DIR "
                          "(a folder written by SpikeGen.save_pretrained or `spikegen train`)")


def load_default_model(weights: str | os.PathLike | None = None, device=None, *, task: str = "deblur"):
    """A :class:`~spikegen.models.SpikeGen` in eval mode from ``weights`` or, by default, the
    shipped weights of ``task`` (:func:`task_weights`)."""
    path = Path(weights) if weights is not None else task_weights(task)
    return SpikeGen.from_pretrained(path, device=device).eval()


def default_weights(name: str = "tiny") -> Path:
    """Folder of the shipped SpikeGen weights ``name`` (``save_pretrained`` layout): a weight
    set (``"tiny"``) or a task (``"deblur"``, ``"reconstruct"``; see :func:`task_weights`)."""
    if name in TASKS:
        return task_weights(name)
    path = WEIGHTS_DIR / name / "spikegen"
    if not (path / "config.json").is_file():
        raise CheckpointError(
            f"{path}: the shipped '{name}' SpikeGen weights are not in this install; pass --weights DIR "
            "(a folder written by SpikeGen.save_pretrained or `spikegen train`)")
    return path


#: The default autoencoder: the shipped one with the highest encode -> decode ceiling, the latent
#: new models are trained on (``configs/tiny_pretrain_pca.yaml``; docs/model.md). Each SpikeGen
#: weight folder carries its own ``vae/``, so this does not change what shipped models decode with.
DEFAULT_VAE = "tiny-pca"


def default_vae(name: str = DEFAULT_VAE) -> Path:
    """Folder of the shipped autoencoder of weight set ``name`` (``"tiny-pca"``: the PCA patch
    autoencoder, the default; ``"tiny-f4"``, ``"tiny"``: the convolutional f4 and f8 VAEs)."""
    path = WEIGHTS_DIR / name / "vae"
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path}: the shipped '{name}' VAE is not in this install")
    return path


def shipped_vaes() -> list[Path]:
    """Every shipped autoencoder folder (``weights/<set>/vae``), sorted by set name."""
    return sorted(p.parent for p in WEIGHTS_DIR.glob("*/vae/config.json"))


def has_default_weights(name: str = "tiny") -> bool:
    """Whether the shipped weights ``name`` (a set or a task) are installed."""
    if name in TASKS:
        try:
            task_weights(name)
        except CheckpointError:
            return False
        return True
    return (WEIGHTS_DIR / name / "spikegen" / "config.json").is_file()
