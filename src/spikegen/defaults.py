"""Defaults shared across layers, in one place (bottom layer: imports nothing).

``DEFAULT_GAIN`` is the integrate-and-fire gain of the training data and of every command's
default: the charge a white pixel (intensity 1) adds per step. At V_th = 1 a pixel of intensity
x fires on average 0.6 x spikes per step, the firing-rate/intensity ratio measured on the
Spk2ImgNet/REDS ``.dat`` files (``shared/data/SOURCES.md``), so simulated and recorded-format
data have the same statistics. Over 8 frames a white pixel gives ~4.8 spikes at V_th = 1, ~2.4
at V_th = 2, ~1.2 at V_th = 4. It lives here (and not in :mod:`spikegen.data.common`, which
re-exports it) so that the command line can show it without importing torch.
"""

DEFAULT_GAIN = 0.6
