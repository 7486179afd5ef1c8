"""The scene types: :class:`SceneFrame` (one view), :class:`Scene` (one split), :class:`SpikeGSScene`.

A :class:`Scene` holds its views' poses and the camera; images are read when asked for
(:meth:`Scene.image`). The readers that build them are in :mod:`~spikegen.data.scenes.readers`,
the writers in :mod:`~spikegen.data.scenes.writers`.

Example:
    >>> import numpy as np
    >>> frame = SceneFrame("./train/r_0", np.eye(4), None)
    >>> s = Scene(Path("scene"), "train", [frame], camera_angle_x=0.6911, width=800, height=600)
    >>> frame.name, round(s.focal, 1), s.intrinsics()[:2, 2].tolist(), s.poses.shape
    ('r_0', 1111.1, [400.0, 300.0], (1, 4, 4))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from spikegen.data.scenes._common import file_stem, image_candidates, load_rgba_composited
from spikegen.errors import SpikeFileError

__all__ = ["Scene", "SceneFrame", "SpikeGSScene"]


@dataclass
class SceneFrame:
    """One view of a scene.

    Attributes:
        file_path: the ``file_path`` entry exactly as in the json (e.g. ``"./train/r_0"``).
        transform_matrix: ``[4, 4]`` float64 camera-to-world matrix (OpenGL convention).
        path: the image file it resolves to (``None`` when the file does not exist).
        entry: the whole json entry of the frame (``rotation``, ``time`` ... kept verbatim).
    """

    file_path: str
    transform_matrix: np.ndarray
    path: Path | None
    entry: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The file name stem (``"r_0"``)."""
        return file_stem(self.file_path)


@dataclass
class Scene:
    """The views of one split of a scene folder (images are read lazily).

    Attributes:
        root: the scene folder (``file_path`` entries are relative to it).
        split: ``"train"``, ``"test"``, ``"val"``, ``"TFP"`` ...
        frames: the views, in json order.
        camera_angle_x: horizontal field of view in radians.
        width, height: image size in pixels.
        background: RGB in [0, 1] that RGBA images are composited on.
        transforms: the json content as read (written back by :func:`write_scene`).
    """

    root: Path
    split: str
    frames: list[SceneFrame]
    camera_angle_x: float
    width: int
    height: int
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    transforms: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def focal(self) -> float:
        """Horizontal focal length in pixels, ``0.5 * width / tan(0.5 * camera_angle_x)``."""
        if "fl_x" in self.transforms:
            return float(self.transforms["fl_x"])
        return 0.5 * self.width / math.tan(0.5 * self.camera_angle_x)

    @property
    def focal_y(self) -> float:
        """Vertical focal length in pixels (equal to :attr:`focal` unless the json says otherwise)."""
        if "fl_y" in self.transforms:
            return float(self.transforms["fl_y"])
        if "camera_angle_y" in self.transforms:
            return 0.5 * self.height / math.tan(0.5 * float(self.transforms["camera_angle_y"]))
        return self.focal

    @property
    def cx(self) -> float:
        return float(self.transforms.get("cx", self.width / 2.0))

    @property
    def cy(self) -> float:
        return float(self.transforms.get("cy", self.height / 2.0))

    @property
    def poses(self) -> np.ndarray:
        """``[N, 4, 4]`` float64 camera-to-world matrices."""
        if not self.frames:
            return np.zeros((0, 4, 4))
        return np.stack([f.transform_matrix for f in self.frames])

    def intrinsics(self) -> np.ndarray:
        """``[3, 3]`` pinhole matrix ``K`` in pixels."""
        return np.array([[self.focal, 0.0, self.cx], [0.0, self.focal_y, self.cy], [0.0, 0.0, 1.0]])

    def image(self, i: int) -> torch.Tensor:
        """View ``i`` as float ``[3, H, W]`` in [0, 1], RGBA composited on :attr:`background`."""
        f = self.frames[i]
        if f.path is None:
            raise SpikeFileError(f"{self.root}: no image file for file_path {f.file_path!r} "
                                 f"(looked for {image_candidates(self.root, f.file_path)[0]})")
        return load_rgba_composited(f.path, self.background)

    def images(self) -> Iterator[torch.Tensor]:
        """All views in order, one at a time."""
        for i in range(len(self.frames)):
            yield self.image(i)

    def subset(self, indices: Sequence[int], split: str | None = None) -> "Scene":
        """A scene with only the given views (the json's ``frames`` list is cut to match)."""
        frames = [replace(self.frames[i], transform_matrix=self.frames[i].transform_matrix.copy(),
                          entry=dict(self.frames[i].entry)) for i in indices]
        tr = dict(self.transforms)
        tr["frames"] = [f.entry for f in frames]
        return Scene(self.root, split or self.split, frames, self.camera_angle_x, self.width, self.height,
                     self.background, tr)


@dataclass
class SpikeGSScene:
    """A SpikeGS scene folder: Blender splits plus the per-view TFP / TFI reconstructions.

    Attributes:
        root: the scene folder.
        splits: every ``transforms_{split}.json`` found, by split name.
        variants: ``"tfp"`` / ``"tfi"`` (and any other ``*_noise`` folder, lower-cased, without the
            suffix) -> a :class:`Scene` whose frames point into that folder with the poses of the
            matching training views.
    """

    root: Path
    splits: dict[str, Scene]
    variants: dict[str, Scene]

    @property
    def train(self) -> Scene:
        return self.splits["train"]

    @property
    def test(self) -> Scene | None:
        return self.splits.get("test")

    @property
    def tfp(self) -> Scene | None:
        return self.variants.get("tfp")

    @property
    def tfi(self) -> Scene | None:
        return self.variants.get("tfi")
