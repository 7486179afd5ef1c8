"""Novel-view-synthesis scene folders: Blender/NeRF-synthetic and SpikeGS, read and written.

**Blender / NeRF-synthetic** (Mildenhall et al.; also what 3DGS, nerfstudio's ``blender-data``
and SpikeGS read)::

    scene/
      transforms_train.json   {"camera_angle_x": fov_x, "frames": [{"file_path": "./train/r_0",
      transforms_test.json                                     "transform_matrix": 4x4 c2w}, ...]}
      train/r_0.png ...       RGBA PNGs; "file_path" has no suffix, ".png" is appended
      test/r_0.png ...

``transform_matrix`` is camera-to-world in the OpenGL/Blender camera convention (x right,
y up, the camera looks down -z). The focal length in pixels is
``0.5 * width / tan(0.5 * camera_angle_x)``; the principal point is the image centre.
RGBA images are composited on ``background`` (white by default, as 3DGS ``--white_background``
and nerfstudio's Blender parser do).

**SpikeGS** (Guo et al., AAAI 2025) keeps the Blender layout and adds per-view spike
reconstructions beside the (blurry) training views::

    scene/
      transforms_train.json  train/       blurry RGB training views
      transforms_test.json   test/        sharp held-out views (the metric's ground truth)
      [transforms_TFP.json]  TFP_noise/   TFP of each training view's spike stream (noisy sensor)
                             TFI_noise/   TFI of each training view's spike stream

A variant folder without its own ``transforms_*.json`` gets the training poses, matched by
file name stem (``TFP_noise/r_0.png`` <-> ``./train/r_0``).

**Writing** (:func:`write_scene`) puts every image at exactly its ``file_path`` entry (with
``.png`` appended when the entry has no suffix, as Blender readers do), writes each
``transforms_{split}.json`` with the same content, and adds nerfstudio's ``transforms.json``
(``fl_x, fl_y, cx, cy, w, h``, ``camera_model: OPENCV`` with zero distortion, frames with
``file_path`` and ``transform_matrix``, and ``train/val/test_filenames``). nerfstudio also
uses the OpenGL camera convention, so poses are copied without any axis change.

One file per job: the scene types in :mod:`~spikegen.data.scenes.types`, reading in
:mod:`~spikegen.data.scenes.readers`, writing in :mod:`~spikegen.data.scenes.writers`, a view's
image file in ``_common`` (package-private); every public name is re-exported here.

Example:
    >>> from spikegen.data.scenes import read_blender_scene, write_scene
    >>> scene = read_blender_scene("shared/data/nvs/lego", "train")      # doctest: +SKIP
    >>> len(scene), scene.width, round(scene.focal, 1)                   # doctest: +SKIP
    (50, 800, 1111.1)
    >>> img = scene.image(0)          # float [3, 800, 800], composited on white  # doctest: +SKIP
    >>> write_scene(scene, "out/lego_restored", images=restored)         # doctest: +SKIP
"""

from spikegen.data.scenes._common import PathLike, load_rgba_composited  # noqa: F401  (PathLike: as before)
from spikegen.data.scenes.readers import read_blender_scene, read_scene_splits, read_spikegs_scene, scene_from_transforms
from spikegen.data.scenes.types import Scene, SceneFrame, SpikeGSScene
from spikegen.data.scenes.writers import ImagesArg, image_relpath, nerfstudio_transforms, write_json, write_scene  # noqa: F401

__all__ = [
    "Scene",
    "SceneFrame",
    "SpikeGSScene",
    "image_relpath",
    "load_rgba_composited",
    "nerfstudio_transforms",
    "read_blender_scene",
    "read_scene_splits",
    "read_spikegs_scene",
    "scene_from_transforms",
    "write_json",
    "write_scene",
]
