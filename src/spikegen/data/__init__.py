"""Datasets that turn images, videos, ``.dat`` folders and scene folders into training samples.

Every dataset yields the same sample dict::

    {"clean":  float [3, H, W] in [0, 1]  (None where there is no ground truth),
     "blurry": float [3, H, W] in [0, 1]  (None where there is no RGB input: reconstruction),
     "spikes": uint8 [T, H, W] of {0, 1},
     "meta":   dict of JSON-able values (source file, index, crop, v_th, seed ...)}

Batch them with :func:`collate_samples` (``DataLoader(ds, batch_size, collate_fn=collate_samples)``).
See ``docs/data.md`` for the layouts on disk, seeding and the validation split.
"""

from spikegen.data.collate import collate_samples
from spikegen.data.common import DEFAULT_GAIN, SeededDataset, find_images, is_excluded, sample_generator, sample_seed
from spikegen.data.layouts import GoproSpikeDataset, SpikeFolderPairs, SREDSDataset
from spikegen.data.scenes import (
    Scene,
    SceneFrame,
    SpikeGSScene,
    load_rgba_composited,
    nerfstudio_transforms,
    read_blender_scene,
    read_scene_splits,
    read_spikegs_scene,
    write_scene,
)
from spikegen.data.motion import ReconstructionPairs
from spikegen.data.synthetic import SyntheticPairs
from spikegen.data.video import VideoPairs

#: The project's validation split: every image under these folder names stays out of training.
VALIDATION_EXCLUDE = ("mcmaster18",)

__all__ = [
    "DEFAULT_GAIN",
    "VALIDATION_EXCLUDE",
    "GoproSpikeDataset",
    "ReconstructionPairs",
    "SREDSDataset",
    "Scene",
    "SceneFrame",
    "SeededDataset",
    "SpikeFolderPairs",
    "SpikeGSScene",
    "SyntheticPairs",
    "VideoPairs",
    "collate_samples",
    "find_images",
    "is_excluded",
    "load_rgba_composited",
    "nerfstudio_transforms",
    "read_blender_scene",
    "read_scene_splits",
    "read_spikegs_scene",
    "sample_generator",
    "sample_seed",
    "write_scene",
]

# Windows of N frames from long recordings, with bounded memory (spikegen.data.windows).
from spikegen.data.windows import SpikeWindows  # noqa: E402

__all__ += ["SpikeWindows"]
