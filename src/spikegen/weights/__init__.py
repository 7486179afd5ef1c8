"""Weights shipped inside the package (see ``MODEL_CARD.md`` beside each set).

``tiny/vae`` is the tiny-f8-d16 VAE and ``tiny/spikegen`` the tiny SpikeGen trained on these
CPUs by the commands in the model card; they are the defaults of the CLI and the demo.
``tiny-f4/vae`` is the tiny-f4-d16 autoencoder, the latent of the ``tiny`` preset from now on
(:func:`default_vae("tiny-f4") <default_vae>`); SpikeGen weights on it ship beside it later.
"""

from __future__ import annotations

from pathlib import Path

from spikegen.errors import CheckpointError

WEIGHTS_DIR = Path(__file__).resolve().parent


def default_weights(name: str = "tiny") -> Path:
    """Folder of the shipped SpikeGen weights ``name`` (``save_pretrained`` layout)."""
    path = WEIGHTS_DIR / name / "spikegen"
    if not (path / "config.json").is_file():
        raise CheckpointError(
            f"{path}: the shipped '{name}' SpikeGen weights are not in this install; pass --weights DIR "
            "(a folder written by SpikeGen.save_pretrained or `spikegen train`)")
    return path


def default_vae(name: str = "tiny") -> Path:
    """Folder of the shipped VAE ``name`` (diffusers ``save_pretrained`` layout)."""
    path = WEIGHTS_DIR / name / "vae"
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path}: the shipped '{name}' VAE is not in this install")
    return path


def has_default_weights(name: str = "tiny") -> bool:
    return (WEIGHTS_DIR / name / "spikegen" / "config.json").is_file()
