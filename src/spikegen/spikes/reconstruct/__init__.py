"""Classic spike-stream reconstructions: TFP (texture from playback) and TFI (texture from
interval), batched torch, in memory or streamed over long recordings with bounded memory.

Definitions (``S`` a stream of ``T`` frames, ``c`` a centre frame):

* **TFP**: ``scale * (number of spikes in the window) / (number of frames in the window)``,
  clamped to [0, 1]. The window of ``w`` frames at centre ``c`` is frames
  ``c - w // 2 ... c - w // 2 + w - 1`` (centred for odd ``w``; one more frame before ``c``
  for even ``w``). At the ends of the stream the window is clipped and the mean is taken over
  the frames that exist.
* **TFI**: ``v_th / d`` with ``d = next - prev``, ``prev`` the last spike at or before ``c`` and
  ``next`` the first spike after ``c``. The search looks at most ``max_half_window`` frames on
  each side (``prev`` in ``c - h + 1 ... c``, ``next`` in ``c + 1 ... c + h``, clipped to the
  stream; the whole stream when ``h`` is ``None``). When only one side has a spike, the missing
  one is placed just outside the searched range (so ``d`` is a lower bound of the true interval);
  when neither side has one the output is 0. With ``v_th = 1`` values lie in ``(0, 1]`` (or 0).

One job per module; this package re-exports their public names (import them from here):

* :mod:`~spikegen.spikes.reconstruct.playback`: TFP, :func:`tfp` and :class:`TFP`;
* :mod:`~spikegen.spikes.reconstruct.interval`: TFI, :func:`tfi` and :class:`TFI`;
* :mod:`~spikegen.spikes.reconstruct.streaming`: both over long recordings with bounded memory,
  :func:`tfp_stream` and :func:`tfi_stream`;
* ``_common``: what they share (input checks, centres, the CPU / accelerator switch).

(The modules are not named ``tfp`` and ``tfi``: a submodule would share its name with the
function this package exports.)

Example:
    >>> import torch
    >>> from spikegen.spikes.reconstruct import tfp, tfi
    >>> s = (torch.rand(100, 8, 8) < 0.3).to(torch.uint8)
    >>> tfp(s, 41).shape, tfp(s, 41, centers=[50]).shape, tfi(s, centers=[50]).shape
    (torch.Size([60, 8, 8]), torch.Size([1, 8, 8]), torch.Size([1, 8, 8]))
"""

from spikegen.spikes.reconstruct.interval import TFI, tfi
from spikegen.spikes.reconstruct.playback import TFP, tfp
from spikegen.spikes.reconstruct.streaming import tfi_stream, tfp_stream

__all__ = ["TFI", "TFP", "tfi", "tfi_stream", "tfp", "tfp_stream"]
