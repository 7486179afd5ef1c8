"""spikegen: the spike-camera toolkit and SpikeGen (spike + RGB generative fusion).

Sub-packages: :mod:`spikegen.spikes` (I/O, simulation, TFP/TFI), :mod:`spikegen.degrade`,
:mod:`spikegen.models` (VAE, S3 encoder, transformer, diffusion head, :class:`SpikeGen`),
:mod:`spikegen.data`, :mod:`spikegen.train`, :mod:`spikegen.metrics`, :mod:`spikegen.tasks`.
Heavy modules load on first use, so ``import spikegen`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "SpikeGen": "spikegen.models",
    "SpikeGenConfig": "spikegen.models",
    "read_dat": "spikegen.spikes.io",
    "write_dat": "spikegen.spikes.io",
    "load_spikes": "spikegen.spikes.io",
    "save_spikes": "spikegen.spikes.io",
    "integrate_and_fire": "spikegen.spikes.simulate",
    "photon_sampling": "spikegen.spikes.simulate",
    "tfp": "spikegen.spikes.reconstruct",
    "tfi": "spikegen.spikes.reconstruct",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'spikegen' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
