"""``spikegen eval``: the evaluation protocols of DESIGN.md section 4, with a report; re-exports the public names of its modules.

Three tasks (every detail is in ``docs/evaluation.md``):

* ``deblur`` -- GOPRO-style conditional deblurring. From an image folder: each image (sorted,
  index ``i``) is prepared exactly as the training data :class:`spikegen.data.SyntheticPairs`
  does with ``augment=False``: centre crop ``size`` (upscaled first when smaller), motion blur
  with the average of 8 random 40x40 kernels, and 8 integrate-and-fire frames of the **sharp**
  crop's gray at gain 0.6 (:data:`spikegen.data.DEFAULT_GAIN`), all drawn from one generator
  seeded with ``sample_seed(seed, 0, i)``. The same seed is used at every ``V_th``, so the
  blurry image is identical across thresholds and only the spikes change. From a video
  folder (``source="video"``): :class:`spikegen.data.VideoPairs` windows of ``n_blur`` frames
  (blur = their mean, spikes over the same frames, target = the middle frame),
  non-overlapping. Methods are scored on gray (BT.601 luma of prediction and target) and RGB
  methods also on RGB: PSNR, SSIM (Gaussian 11x11, sigma 1.5), LPIPS (AlexNet).
* ``reconstruct`` -- STIR-style: ``spike/*.dat`` + ``gt/*.png`` (Spk2ImgNet layout), a
  61-frame window centred on the GT frame; PSNR and SSIM (MATLAB protocol) on 8-bit gray
  [0, 255], LPIPS on gray.
* ``real`` -- no-reference NIQE and BRISQUE of reconstructions of real captures (every
  ``.dat`` / ``.npz`` / ``.npy`` in the folder) at a few evenly spaced centres.

Each run writes ``results.json``, ``results.csv`` (the summary table), ``per_image.csv``,
``results.md``, ``report.html`` (with side-by-side images under ``images/``) and, for
``deblur``, ``psnr_vs_vth.png``.

Example:
    >>> from spikegen.tasks.evaluate import run_eval
    >>> report = run_eval("deblur", "shared/data/images/mcmaster18", "outputs/eval",
    ...                   methods="blurry,tfp,tfi", v_ths=(1, 2, 4))   # doctest: +SKIP
"""


from __future__ import annotations

import os
from typing import Any

from spikegen.errors import SpikeGenError
from spikegen.tasks.evaluate.deblur import evaluate_deblur
from spikegen.tasks.evaluate.methods import DEFAULT_METHODS, TASKS, Method, parse_floats, parse_methods
from spikegen.tasks.evaluate.real import SPIKE_SUFFIXES, evaluate_real
from spikegen.tasks.evaluate.reconstruct import SPK2IMGNET_RATE_SCALE, evaluate_reconstruct, tfp_and_spike_gray
from spikegen.tasks.evaluate.results import DISPLAY, display_rows
from spikegen.tasks.evaluate.scoring import METRIC_DOC, SCORES, deblur_scores, image_scores, reconstruct_scores

__all__ = [
    "TASKS",
    "DEFAULT_METHODS",
    "Method",
    "parse_methods",
    "parse_floats",
    "image_scores",
    "SCORES",
    "deblur_scores",
    "reconstruct_scores",
    "evaluate_deblur",
    "evaluate_reconstruct",
    "evaluate_real",
    "run_eval",
    "display_rows",
    "tfp_and_spike_gray",
    "SPK2IMGNET_RATE_SCALE",
    "SPIKE_SUFFIXES",
    "METRIC_DOC",
    "DISPLAY",
]


# ----------------------------------------------------------------------------- dispatch
def run_eval(task: str, data: str | os.PathLike, out_dir: str | os.PathLike, **kwargs: Any) -> dict[str, Any]:
    """Run ``evaluate_<task>`` (``task`` in deblur / reconstruct / real); returns the results dict."""
    fns = {"deblur": evaluate_deblur, "reconstruct": evaluate_reconstruct, "real": evaluate_real}
    if task not in fns:
        raise SpikeGenError(f"unknown eval task {task!r}; expected one of {', '.join(TASKS)}")
    return fns[task](data, out_dir, **kwargs)
