"""``spikegen nvs``: novel-view synthesis of high-speed scenes (paper section 4, Tables 4 and 8).

The two-stage pipeline of the paper: every training view of a fast-moving camera is a blurry RGB
image plus the spike stream recorded over its exposure; stage 1 restores each view (SpikeGen,
or the TFP / TFI baselines of Table 8), stage 2 trains 3D Gaussian splatting on the restored
views and scores renders of held-out test views (PSNR / SSIM / LPIPS).

* :func:`prepare_scene` (``spikegen nvs prepare``) turns a *sharp* Blender / NeRF-synthetic scene
  into that input: per training view a blurry image (a motion kernel of the pretraining kernel
  bank, :func:`spikegen.degrade.motion_blur` -- there is no renderer in this package, so the blur
  is a 2-D kernel, not the average of renders along the camera path) and a spike stream
  (integrate-and-fire of the sharp view, :func:`spikegen.spikes.integrate_and_fire`), with test
  views held out as sharp ground truth.
* :func:`restore_scene` (``spikegen nvs restore``) restores every training view and writes the
  restored scene (Blender layout + nerfstudio's ``transforms.json``).
* :func:`train_3dgs` (``spikegen nvs train``) runs 3DGS with ``gsplat`` on CUDA
  (the Gaussians themselves: :mod:`spikegen.tasks.nvs.gaussians`); without CUDA it raises with
  the equivalent nerfstudio command.
* :func:`evaluate_renders` (``spikegen nvs eval``) scores a folder of renders against a split's
  ground truth (runs anywhere).

Layout written by :func:`prepare_scene` (poses and ``file_path`` entries unchanged, so the folder
is itself a Blender scene of blurry views)::

    OUT/
      transforms_train.json  train/r_1.png ...   blurry training views (RGB, composited)
      transforms_test.json   test/r_0.png ...    sharp held-out views (the metric's ground truth)
      transforms.json                            nerfstudio (train/val/test_filenames)
      spikes/r_1.npz ...                         packed spike stream per training view
      sharp/                                     the same scene, sharp (evaluation only; also
                                                 the "3DGS (Clear)" upper bound's input)
      kernels.npz                                the blur kernel of every training view
      prepare.json                               every option, sizes, seeds, per-view files

One job per module, imports pointing down only (each module imports just those below it)::

    train      train_3dgs, nerfstudio_command    the `nvs train` run: checks, outputs, test renders, scores
    gaussians  GSplatConfig, train_gaussians ... fit / render 3D Gaussians with gsplat (lazy import)
    restore    restore_scene, restore_views      stage 1: restore every training view
    prepare    prepare_scene                     a sharp scene -> blurry views + spike streams
    evaluate   evaluate_renders, metric_rows     score renders against ground truth (any machine)
    helpers    parse_background, view_names ...  options, names, resize, output checks, json

Example:
    >>> from spikegen.tasks.nvs import prepare_scene, restore_scene      # doctest: +SKIP
    >>> prepare_scene("shared/data/nvs/lego", "out/lego", resolution=200)  # doctest: +SKIP
    >>> restore_scene("out/lego", "out/lego_tfp", method="tfp")          # doctest: +SKIP
"""

from __future__ import annotations

from spikegen.tasks.nvs.evaluate import evaluate_renders
from spikegen.tasks.nvs.helpers import parse_background, resized_size, view_names
from spikegen.tasks.nvs.prepare import prepare_scene
from spikegen.tasks.nvs.restore import METHODS, restore_scene, restore_views
from spikegen.tasks.nvs.train import nerfstudio_command, train_3dgs

__all__ = [
    "METHODS",
    "nerfstudio_command",
    "parse_background",
    "prepare_scene",
    "resized_size",
    "restore_scene",
    "restore_views",
    "evaluate_renders",
    "train_3dgs",
    "view_names",
]
