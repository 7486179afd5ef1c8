"""The spike-camera toolkit: file I/O, simulation and classic reconstruction.

Spike arrays are uint8 ``[T, H, W]`` (or ``[B, T, H, W]``) of {0, 1}.

Example:
    >>> import torch
    >>> from spikegen.spikes import integrate_and_fire, tfp
    >>> s = integrate_and_fire(torch.full((1, 1, 4, 4), 0.5), steps=100, init="zero")
    >>> float(tfp(s, 100)[0, 0].mean())
    0.5
"""

from spikegen.spikes.io import (
    DatFile,
    DatWriter,
    SpikeFileInfo,
    dat_info,
    iter_dat,
    iter_spikes,
    load_spikes,
    open_spikes,
    read_dat,
    save_spikes,
    spikes_info,
    write_dat,
)
from spikegen.spikes.reconstruct import TFI, TFP, tfi, tfi_stream, tfp, tfp_stream
from spikegen.spikes.simulate import (
    SpikeNoise,
    integrate_and_fire,
    interpolate_frames,
    iter_simulate_video,
    load_frames,
    photon_probability,
    photon_sampling,
    simulate_video,
)

__all__ = [
    "DatFile", "DatWriter", "SpikeFileInfo", "dat_info", "iter_dat", "iter_spikes", "load_spikes",
    "open_spikes", "read_dat", "save_spikes", "spikes_info", "write_dat",
    "TFI", "TFP", "tfi", "tfi_stream", "tfp", "tfp_stream",
    "SpikeNoise", "integrate_and_fire", "interpolate_frames", "iter_simulate_video", "load_frames",
    "photon_probability", "photon_sampling", "simulate_video",
]

# Augmentations (spikegen.spikes.transforms) and Bayer colour spikes (spikegen.spikes.cfa).
from spikegen.spikes import transforms  # noqa: E402
from spikegen.spikes.cfa import (  # noqa: E402
    CFA_PATTERNS,
    cfa_mask,
    demosaic_bilinear,
    integrate_and_fire_cfa,
    mosaic,
    tfi_color,
    tfp_color,
)

__all__ += [
    "transforms",
    "CFA_PATTERNS", "cfa_mask", "demosaic_bilinear", "integrate_and_fire_cfa", "mosaic", "tfi_color", "tfp_color",
]
