"""Spike-camera simulators: integrate-and-fire (with an optional sensor-noise model), the
SpikeGen photon-sampling converter, and video sources (frame folders and video files).

Everything is batched torch, follows the input's device, and draws random numbers only from
the ``torch.Generator`` you pass (so results are reproducible). See ``docs/simulation.md`` for
the models and the conventions chosen here.

One job per module; this package re-exports their public names (import them from here):

* :mod:`~spikegen.spikes.simulate.noise`: the sensor-noise model, :class:`SpikeNoise`;
* :mod:`~spikegen.spikes.simulate.fire`: integrate-and-fire, :func:`integrate_and_fire`;
* :mod:`~spikegen.spikes.simulate.photon`: photon sampling, :func:`photon_probability`,
  :func:`photon_sampling`;
* :mod:`~spikegen.spikes.simulate.video`: frame loading and interpolation, and video simulation
  (:func:`load_frames`, :func:`interpolate_frames`, :func:`iter_simulate_video`,
  :func:`simulate_video`), with :func:`~spikegen.media.iter_frames` and the suffix lists of
  :mod:`spikegen.media`;
* ``_common``: what they share (the input check of light values).

Example:
    >>> import torch
    >>> from spikegen.spikes.simulate import integrate_and_fire, photon_sampling
    >>> g = torch.Generator().manual_seed(0)
    >>> img = torch.rand(2, 1, 32, 32)
    >>> integrate_and_fire(img, steps=100, generator=g).shape
    torch.Size([2, 100, 32, 32])
    >>> photon_sampling(torch.rand(2, 3, 32, 32), generator=g).shape
    torch.Size([2, 8, 32, 32])
"""

from spikegen.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, iter_frames
from spikegen.spikes.simulate.fire import integrate_and_fire
from spikegen.spikes.simulate.noise import SpikeNoise
from spikegen.spikes.simulate.photon import photon_probability, photon_sampling
from spikegen.spikes.simulate.video import interpolate_frames, iter_simulate_video, load_frames, simulate_video

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "SpikeNoise",
    "integrate_and_fire",
    "interpolate_frames",
    "iter_frames",
    "iter_simulate_video",
    "load_frames",
    "photon_probability",
    "photon_sampling",
    "simulate_video",
]
